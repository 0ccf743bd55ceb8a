/* safetensors.c — validating reader for .safetensors files: header checks, mmap, dtype conversion. */
#include "encoder/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"
#include "util/half.h"

#define ST_MAX_TENSORS 1000000
#define ST_MAX_INT ((double)((uint64_t)1 << 53))

struct st_dtype_info {
    const char *name;
    unsigned size;
    enum kb_st_dtype dtype;
};

/* The dtypes of safetensors 0.4; kb computes with the first three. */
static const struct st_dtype_info st_dtypes[] = {
    { "F32", 4, KB_ST_F32 },    { "F16", 2, KB_ST_F16 },    { "BF16", 2, KB_ST_BF16 },
    { "F64", 8, KB_ST_OTHER },  { "I64", 8, KB_ST_OTHER },  { "I32", 4, KB_ST_OTHER },
    { "I16", 2, KB_ST_OTHER },  { "I8", 1, KB_ST_OTHER },   { "U64", 8, KB_ST_OTHER },
    { "U32", 4, KB_ST_OTHER },  { "U16", 2, KB_ST_OTHER },  { "U8", 1, KB_ST_OTHER },
    { "BOOL", 1, KB_ST_OTHER }, { "F8_E4M3", 1, KB_ST_OTHER }, { "F8_E5M2", 1, KB_ST_OTHER },
};

static const struct st_dtype_info *st_dtype_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return &st_dtypes[i];
    return NULL;
}

/* A JSON number that is an integer in [0, 2^53]. */
static int st_get_uint(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return 0;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= ST_MAX_INT) || floor(v) != v)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

static int st_parse_shape(struct kb_st_tensor *t, const cJSON *shape, const char *label,
                          struct kb_err *err)
{
    if (!cJSON_IsArray(shape))
        return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' has no shape array", label, t->name);
    int n = cJSON_GetArraySize(shape);
    if (n > KB_ST_MAX_DIMS)
        return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' has %d dimensions (at most %d)",
                          label, t->name, n, KB_ST_MAX_DIMS);
    t->n_dims = n;
    t->n_elems = 1;
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++) {
        if (!st_get_uint(d, &t->shape[i]))
            return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' has a shape entry that is not "
                              "a non-negative integer", label, t->name);
        if (__builtin_mul_overflow(t->n_elems, t->shape[i], &t->n_elems))
            return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' has an impossibly large shape",
                              label, t->name);
    }
    return 0;
}

static int st_parse_offsets(struct kb_st_tensor *t, const cJSON *offs, unsigned elem_size,
                            const uint8_t *data, size_t data_size, const char *label,
                            struct kb_err *err)
{
    uint64_t begin, end, need;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !st_get_uint(offs->child, &begin) || !st_get_uint(offs->child->next, &end))
        return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' needs data_offsets [begin, end] "
                          "of non-negative integers", label, t->name);
    if (begin > end)
        return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' has data_offsets [%llu, %llu] that "
                          "begin after they end", label, t->name, (unsigned long long)begin,
                          (unsigned long long)end);
    if (end > data_size)
        return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' ends past the file (byte %llu of "
                          "a %zu-byte data area)", label, t->name, (unsigned long long)end,
                          data_size);
    if (__builtin_mul_overflow(t->n_elems, (uint64_t)elem_size, &need) || need != end - begin)
        return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' holds %llu bytes but its shape and "
                          "dtype %s need %llu", label, t->name,
                          (unsigned long long)(end - begin), t->dtype_name,
                          (unsigned long long)t->n_elems * elem_size);
    t->data = data + begin;
    t->n_bytes = (size_t)(end - begin);
    return 0;
}

static int st_parse_tensor(struct kb_st_tensor *t, const cJSON *desc, const uint8_t *data,
                           size_t data_size, const char *label, struct kb_err *err)
{
    t->name = strdup(desc->string);
    if (!t->name)
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", label);
    if (!cJSON_IsObject(desc))
        return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' is not described by an object",
                          label, t->name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(desc, "dtype");
    if (!cJSON_IsString(dtype))
        return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' has no dtype", label, t->name);
    const struct st_dtype_info *info = st_dtype_lookup(dtype->valuestring);
    if (!info)
        return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' has unknown dtype '%.16s'", label,
                          t->name, dtype->valuestring);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", info->name);
    t->dtype = info->dtype;
    int rc = st_parse_shape(t, cJSON_GetObjectItemCaseSensitive(desc, "shape"), label, err);
    if (rc == 0)
        rc = st_parse_offsets(t, cJSON_GetObjectItemCaseSensitive(desc, "data_offsets"),
                              info->size, data, data_size, label, err);
    return rc;
}

static int st_cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct kb_st_tensor *)a)->name, ((const struct kb_st_tensor *)b)->name);
}

/* Fills st->tensors from the parsed header object, then sorts them and refuses duplicates. */
static int st_read_header(struct kb_safetensors *st, const cJSON *root, const uint8_t *data,
                          size_t data_size, struct kb_err *err)
{
    size_t n = 0;
    for (const cJSON *it = root->child; it; it = it->next)
        n++;
    if (n > ST_MAX_TENSORS)
        return kb_err_set(err, KB_EFORMAT, "%s: header lists %zu tensors (at most %d)",
                          st->label, n, ST_MAX_TENSORS);
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    if (!st->tensors)
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", st->label);
    for (const cJSON *it = root->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0)
            continue;
        int rc = st_parse_tensor(&st->tensors[st->n_tensors++], it, data, data_size, st->label,
                                 err);
        if (rc)
            return rc;
    }
    qsort(st->tensors, st->n_tensors, sizeof *st->tensors, st_cmp_name);
    for (size_t i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' is listed twice", st->label,
                              st->tensors[i].name);
    return 0;
}

int kb_safetensors_parse(struct kb_safetensors *st, const uint8_t *bytes, size_t size,
                         const char *label, struct kb_err *err)
{
    memset(st, 0, sizeof *st);
    st->label = label;
    if (size < 8)
        return kb_err_set(err, KB_EFORMAT, "%s: file is too short (%zu bytes) to hold a header",
                          label, size);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | bytes[i];
    if (header_len > KB_ST_MAX_HEADER)
        return kb_err_set(err, KB_EFORMAT, "%s: header length %llu exceeds the %llu-byte limit",
                          label, (unsigned long long)header_len,
                          (unsigned long long)KB_ST_MAX_HEADER);
    if (header_len > size - 8)
        return kb_err_set(err, KB_EFORMAT, "%s: header length %llu runs past the end of the "
                          "file (%zu bytes)", label, (unsigned long long)header_len, size);
    const char *json = (const char *)bytes + 8;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)header_len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = root ? 0 : (size_t)(end && end >= json ? end - json : 0);
        cJSON_Delete(root);
        return kb_err_set(err, KB_EFORMAT, "%s: header is not a well-formed JSON object (at "
                          "byte %zu of %llu)", label, at, (unsigned long long)header_len);
    }
    int rc = st_read_header(st, root, bytes + 8 + header_len, size - 8 - (size_t)header_len,
                            err);
    cJSON_Delete(root);
    if (rc)
        kb_safetensors_close(st);
    return rc;
}

int kb_safetensors_open(struct kb_safetensors *st, const char *path, const char *label,
                        struct kb_err *err)
{
    memset(st, 0, sizeof *st);
    struct stat sb;
    int fd, rc = kb_file_open_regular(path, &fd, &sb, err);
    void *map = NULL;
    if (rc) {
        kb_err_prefix(err, label);
        return rc;
    }
    if (sb.st_size < 8) {
        rc = kb_err_set(err, KB_EFORMAT, "%s: file is too short (%lld bytes) to hold a header",
                        label, (long long)sb.st_size);
        goto done;
    }
    map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        map = NULL;
        rc = kb_err_set(err, KB_EIO, "%s: cannot map: %s", label, strerror(errno));
        goto done;
    }
    rc = kb_safetensors_parse(st, map, (size_t)sb.st_size, label, err);
    if (rc == 0) {
        st->map = map;
        st->map_size = (size_t)sb.st_size;
        map = NULL;
    }
done:
    if (map)
        munmap(map, (size_t)sb.st_size);
    close(fd);
    return rc;
}

void kb_safetensors_close(struct kb_safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; st->tensors && i < st->n_tensors; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    if (st->map)
        munmap(st->map, st->map_size);
    const char *label = st->label;
    memset(st, 0, sizeof *st);
    st->label = label;
}

const struct kb_st_tensor *kb_safetensors_find(const struct kb_safetensors *st,
                                               const char *name)
{
    if (!st->n_tensors)
        return NULL;
    struct kb_st_tensor key = { .name = (char *)name };
    return bsearch(&key, st->tensors, st->n_tensors, sizeof key, st_cmp_name);
}

int kb_safetensors_to_f32(const struct kb_st_tensor *t, float *out)
{
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case KB_ST_F32:
        memcpy(out, p, t->n_bytes);      /* the files are little-endian, like this machine */
        return 0;
    case KB_ST_F16:
        for (size_t i = 0; i < t->n_elems; i++)
            out[i] = kb_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case KB_ST_BF16:
        for (size_t i = 0; i < t->n_elems; i++)
            out[i] = kb_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    default:
        return KB_EFORMAT;
    }
}
