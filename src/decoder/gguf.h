/* gguf.h — GGUF model files (versions 2 and 3) read over mmap. The whole layout is checked
 * before anything is used: magic, version, counts, key/value types, string and array lengths,
 * tensor shapes, types, sizes and offsets (inside the file, aligned, not overlapping). Tensor
 * data is used in place from the mapping. Format: github.com/ggml-org/ggml docs/gguf.md. */
#ifndef KB_DECODER_GGUF_H
#define KB_DECODER_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Value types of the key/value section. */
enum kb_gguf_vtype {
    KB_GGUF_U8 = 0, KB_GGUF_I8, KB_GGUF_U16, KB_GGUF_I16, KB_GGUF_U32, KB_GGUF_I32,
    KB_GGUF_F32, KB_GGUF_BOOL, KB_GGUF_STRING, KB_GGUF_ARRAY, KB_GGUF_U64, KB_GGUF_I64,
    KB_GGUF_F64,
    KB_GGUF_N_VTYPES
};

/* A string inside the mapping: not NUL-terminated. */
struct kb_gguf_str {
    const char *p;
    size_t len;
};

struct kb_gguf_kv {
    struct kb_gguf_str key;
    uint32_t type;            /* enum kb_gguf_vtype */
    uint32_t elem_type;       /* ARRAY: the elements' type (never ARRAY) */
    uint64_t n;               /* ARRAY: the element count; 1 otherwise */
    const uint8_t *value;     /* the value, or an ARRAY's first element, in the mapping */
};

#define KB_GGUF_MAX_DIMS 4
#define KB_GGUF_MAX_NAME 255

struct kb_gguf_tensor {
    char name[KB_GGUF_MAX_NAME + 1];
    uint32_t n_dims;
    uint64_t ne[KB_GGUF_MAX_DIMS]; /* ne[0] is the row length; unused dimensions are 1 */
    uint32_t type;            /* a ggml type id (decoder/quant.h) */
    uint64_t n_elems, n_bytes, row_bytes;
    const uint8_t *data;      /* in the mapping, aligned */
};

struct kb_gguf {
    char *path;
    const uint8_t *map;
    size_t size;
    uint32_t version, alignment;
    size_t n_kv, n_tensors;
    struct kb_gguf_kv *kv;
    struct kb_gguf_tensor *tensors;
    struct kb_gguf_tensor **by_name; /* sorted by name, for lookups */
};

/* Maps and checks `path`. A file that is not a regular file, not GGUF, or whose layout is
 * damaged in any way is KB_EFORMAT with one line naming the file and what is wrong (a missing
 * file KB_ENOTFOUND, an unreadable one KB_EIO); nothing is allocated by what the file claims
 * before it is checked against the file's size. */
int kb_gguf_open(struct kb_gguf **out, const char *path, struct kb_err *err);
void kb_gguf_close(struct kb_gguf *g);

const struct kb_gguf_kv *kb_gguf_find(const struct kb_gguf *g, const char *key);
const struct kb_gguf_tensor *kb_gguf_tensor(const struct kb_gguf *g, const char *name);

/* Typed reads of a key. An absent key leaves *out as it is and returns KB_ENOTFOUND (no
 * message); a value of another type, or out of range, is KB_EFORMAT naming the key. Integers
 * of any width convert when they fit. */
int kb_gguf_get_u32(const struct kb_gguf *g, const char *key, uint32_t *out, struct kb_err *err);
int kb_gguf_get_f32(const struct kb_gguf *g, const char *key, float *out, struct kb_err *err);
int kb_gguf_get_str(const struct kb_gguf *g, const char *key, struct kb_gguf_str *out,
                    struct kb_err *err);

/* An array of strings as n pointers into the mapping (*out malloc'ed, caller frees);
 * KB_EFORMAT when the key holds something else. */
int kb_gguf_get_strings(const struct kb_gguf *g, const char *key, struct kb_gguf_str **out,
                        size_t *n, struct kb_err *err);
/* An array of numbers as floats or int32s (*out malloc'ed, caller frees). */
int kb_gguf_get_f32s(const struct kb_gguf *g, const char *key, float **out, size_t *n,
                     struct kb_err *err);
int kb_gguf_get_i32s(const struct kb_gguf *g, const char *key, int32_t **out, size_t *n,
                     struct kb_err *err);

#endif
