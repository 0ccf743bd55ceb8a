/* safetensors.h — a validating reader for Hugging Face .safetensors files.
 *
 * Format (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
 * N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {...}}, then the data area; offsets are relative to the start of the data area. Everything
 * is validated before use: header length against the file and a 100 MB cap, well-formed JSON,
 * known dtypes, integral non-negative shapes and offsets, begin <= end <= data size, and byte
 * size == product(shape) * dtype size. Errors are one line prefixed with the label given
 * ("model.safetensors: tensor 'x' ends past the file"). */
#ifndef KB_ENCODER_SAFETENSORS_H
#define KB_ENCODER_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define KB_ST_MAX_DIMS 8
#define KB_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

enum kb_st_dtype {
    KB_ST_F32,
    KB_ST_F16,
    KB_ST_BF16,
    KB_ST_OTHER     /* a valid safetensors dtype kb does not compute with (I64, F64, ...) */
};

struct kb_st_tensor {
    char *name;
    char dtype_name[12];      /* as written in the header: "F32", "I64", ... */
    enum kb_st_dtype dtype;
    int n_dims;
    uint64_t shape[KB_ST_MAX_DIMS];
    uint64_t n_elems;
    const uint8_t *data;      /* inside the mapping; n_bytes long */
    size_t n_bytes;
};

struct kb_safetensors {
    const char *label;        /* borrowed; prefixes error messages */
    void *map;                /* the read-only mapping when opened from a file, else NULL */
    size_t map_size;
    struct kb_st_tensor *tensors;   /* sorted by name */
    size_t n_tensors;
};

/* Parses and validates `size` bytes (the whole file) in place: tensors point into `bytes`,
 * which must outlive `st`. KB_EFORMAT or KB_ENOMEM; on failure st holds nothing to free. */
int kb_safetensors_parse(struct kb_safetensors *st, const uint8_t *bytes, size_t size,
                         const char *label, struct kb_err *err);

/* mmaps `path` read-only and parses it. KB_ENOTFOUND, KB_EIO, KB_EFORMAT, KB_ENOMEM. */
int kb_safetensors_open(struct kb_safetensors *st, const char *path, const char *label,
                        struct kb_err *err);

/* Releases the tensor table and the mapping; safe on a zeroed or failed struct. */
void kb_safetensors_close(struct kb_safetensors *st);

/* The tensor called `name`, or NULL. */
const struct kb_st_tensor *kb_safetensors_find(const struct kb_safetensors *st,
                                               const char *name);

/* Converts an F32/F16/BF16 tensor to n_elems floats in `out` (exact: F16 subnormals, inf and
 * nan included). Returns 0, or KB_EFORMAT for another dtype. */
int kb_safetensors_to_f32(const struct kb_st_tensor *t, float *out);


#endif
