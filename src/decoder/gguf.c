/* gguf.c — the GGUF reader: one pass over the header with a bounded cursor, every count and
 * length checked against what is left of the file before it is trusted, then the tensor table
 * checked as a whole (types, sizes, alignment, bounds, overlaps, duplicate names). */
#include "decoder/gguf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decoder/quant.h"
#include "util/file.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ALIGNMENT (1u << 16)

/* A bounded reader over the mapping. */
struct cursor {
    const uint8_t *p, *end;
};

static int rd(struct cursor *c, void *out, size_t n)
{
    if ((size_t)(c->end - c->p) < n)
        return -1;
    memcpy(out, c->p, n);
    c->p += n;
    return 0;
}

static int rd_str(struct cursor *c, struct kb_gguf_str *s)
{
    uint64_t len;
    if (rd(c, &len, 8) || len > (uint64_t)(c->end - c->p))
        return -1;
    s->p = (const char *)c->p;
    s->len = (size_t)len;
    c->p += len;
    return 0;
}

/* Bytes of one scalar value of type t; 0 for STRING and ARRAY, -1 for an unknown type. */
static int vtype_size(uint32_t t)
{
    static const int8_t sizes[KB_GGUF_N_VTYPES] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
    return t < KB_GGUF_N_VTYPES ? sizes[t] : -1;
}

static const char *vtype_name(uint32_t t)
{
    static const char *const names[KB_GGUF_N_VTYPES] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string",
        "array", "uint64", "int64", "float64" };
    return t < KB_GGUF_N_VTYPES ? names[t] : "unknown";
}

/* Steps over n values of type t (never ARRAY). */
static int skip_values(struct cursor *c, uint32_t t, uint64_t n)
{
    int size = vtype_size(t);
    if (size < 0 || t == KB_GGUF_ARRAY)
        return -1;
    if (size > 0) {
        if (n > (uint64_t)(c->end - c->p) / (uint64_t)size)
            return -1;
        c->p += n * (uint64_t)size;
        return 0;
    }
    struct kb_gguf_str s;
    for (uint64_t i = 0; i < n; i++)
        if (rd_str(c, &s))
            return -1;
    return 0;
}

static int gguf_fail(struct kb_err *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int gguf_fail(struct kb_err *err, const char *path, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return kb_err_set(err, KB_EFORMAT, "%s: %s", path, what);
}

static int kv_read(struct kb_gguf *g, struct cursor *c, size_t i, struct kb_err *err)
{
    struct kb_gguf_kv *kv = &g->kv[i];
    if (rd_str(c, &kv->key) || rd(c, &kv->type, 4))
        return gguf_fail(err, g->path, "truncated in key/value %zu of %zu", i + 1, g->n_kv);
    if (kv->key.len == 0 || kv->key.len > 1024)
        return gguf_fail(err, g->path, "key/value %zu has a key of %zu bytes", i + 1,
                         kv->key.len);
    int key_len = (int)kv->key.len;
    kv->n = 1;
    if (kv->type == KB_GGUF_ARRAY) {
        if (rd(c, &kv->elem_type, 4) || rd(c, &kv->n, 8))
            return gguf_fail(err, g->path, "truncated in key '%.*s'", key_len, kv->key.p);
        if (kv->elem_type == KB_GGUF_ARRAY || vtype_size(kv->elem_type) < 0)
            return gguf_fail(err, g->path, "key '%.*s' is an array of %s (type %u), which kb "
                             "does not read", key_len, kv->key.p, vtype_name(kv->elem_type),
                             kv->elem_type);
        kv->value = c->p;
        if (skip_values(c, kv->elem_type, kv->n))
            return gguf_fail(err, g->path, "key '%.*s': its %llu values run past the end of "
                             "the file", key_len, kv->key.p, (unsigned long long)kv->n);
        return 0;
    }
    if (vtype_size(kv->type) < 0)
        return gguf_fail(err, g->path, "key '%.*s' has unknown value type %u", key_len,
                         kv->key.p, kv->type);
    kv->value = c->p;
    if (skip_values(c, kv->type, 1))
        return gguf_fail(err, g->path, "key '%.*s': its value runs past the end of the file",
                         key_len, kv->key.p);
    return 0;
}

static int tensor_read(struct kb_gguf *g, struct cursor *c, size_t i, uint64_t *offset,
                       struct kb_err *err)
{
    struct kb_gguf_tensor *t = &g->tensors[i];
    struct kb_gguf_str name;
    if (rd_str(c, &name) || rd(c, &t->n_dims, 4))
        return gguf_fail(err, g->path, "truncated in tensor %zu of %zu", i + 1, g->n_tensors);
    if (name.len == 0 || name.len > KB_GGUF_MAX_NAME || memchr(name.p, '\0', name.len))
        return gguf_fail(err, g->path, "tensor %zu has a name of %zu bytes", i + 1, name.len);
    memcpy(t->name, name.p, name.len);
    t->name[name.len] = '\0';
    if (t->n_dims == 0 || t->n_dims > KB_GGUF_MAX_DIMS)
        return gguf_fail(err, g->path, "tensor '%s' has %u dimensions (1 to %d)", t->name,
                         t->n_dims, KB_GGUF_MAX_DIMS);
    t->n_elems = 1;
    for (uint32_t d = 0; d < KB_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d < t->n_dims && rd(c, &t->ne[d], 8))
            return gguf_fail(err, g->path, "truncated in tensor '%s'", t->name);
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX / t->n_elems)
            return gguf_fail(err, g->path, "tensor '%s' has an impossible shape", t->name);
        t->n_elems *= t->ne[d];
    }
    if (rd(c, &t->type, 4) || rd(c, offset, 8))
        return gguf_fail(err, g->path, "truncated in tensor '%s'", t->name);
    const struct kb_qtype *q = kb_qtype(t->type);
    if (!q)
        return gguf_fail(err, g->path, "tensor '%s' has type %u, whose layout kb does not know",
                         t->name, t->type);
    if (t->ne[0] % q->block)
        return gguf_fail(err, g->path, "tensor '%s': rows of %llu are not whole %s blocks of %u",
                         t->name, (unsigned long long)t->ne[0], q->name, q->block);
    t->row_bytes = t->ne[0] / q->block * q->bytes;
    if (t->n_elems / t->ne[0] > (uint64_t)INT64_MAX / t->row_bytes)
        return gguf_fail(err, g->path, "tensor '%s' has an impossible size", t->name);
    t->n_bytes = t->row_bytes * (t->n_elems / t->ne[0]);
    return 0;
}

/* Keys in byte order (sorted once, then found by binary search). */
static int cmp_key(const void *a, const void *b)
{
    const struct kb_gguf_str *x = &((const struct kb_gguf_kv *)a)->key;
    const struct kb_gguf_str *y = &((const struct kb_gguf_kv *)b)->key;
    int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int cmp_offset(const void *a, const void *b)
{
    const struct kb_gguf_tensor *x = *(struct kb_gguf_tensor *const *)a;
    const struct kb_gguf_tensor *y = *(struct kb_gguf_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(struct kb_gguf_tensor *const *)a)->name,
                  (*(struct kb_gguf_tensor *const *)b)->name);
}

/* The tensors' data: inside the data section, aligned, no two overlapping, names unique. */
static int tensors_check(struct kb_gguf *g, const uint64_t *offsets, uint64_t data_start,
                         struct kb_err *err)
{
    uint64_t data_size = g->size - data_start;
    for (size_t i = 0; i < g->n_tensors; i++) {
        struct kb_gguf_tensor *t = &g->tensors[i];
        if (offsets[i] % g->alignment)
            return gguf_fail(err, g->path, "tensor '%s' is at offset %llu, not aligned to %u",
                             t->name, (unsigned long long)offsets[i], g->alignment);
        if (offsets[i] > data_size || t->n_bytes > data_size - offsets[i])
            return gguf_fail(err, g->path, "tensor '%s' (%llu bytes at offset %llu) ends past "
                             "the end of the file (truncated?)", t->name,
                             (unsigned long long)t->n_bytes, (unsigned long long)offsets[i]);
        t->data = g->map + data_start + offsets[i];
        g->by_name[i] = t;
    }
    qsort(g->by_name, g->n_tensors, sizeof *g->by_name, cmp_offset);
    for (size_t i = 1; i < g->n_tensors; i++) {
        const struct kb_gguf_tensor *a = g->by_name[i - 1], *b = g->by_name[i];
        if ((uint64_t)(b->data - a->data) < a->n_bytes)
            return gguf_fail(err, g->path, "tensors '%s' and '%s' overlap", a->name, b->name);
    }
    qsort(g->by_name, g->n_tensors, sizeof *g->by_name, cmp_name);
    for (size_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(g->by_name[i - 1]->name, g->by_name[i]->name))
            return gguf_fail(err, g->path, "tensor '%s' appears twice", g->by_name[i]->name);
    return 0;
}

static int gguf_alignment(struct kb_gguf *g, struct kb_err *err)
{
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int rc = kb_gguf_get_u32(g, "general.alignment", &g->alignment, err);
    if (rc && rc != KB_ENOTFOUND)
        return rc;
    if (g->alignment == 0 || g->alignment > GGUF_MAX_ALIGNMENT ||
        (g->alignment & (g->alignment - 1)))
        return gguf_fail(err, g->path, "general.alignment %u is not a power of two up to %u",
                         g->alignment, GGUF_MAX_ALIGNMENT);
    return 0;
}

static int gguf_parse(struct kb_gguf *g, struct kb_err *err)
{
    struct cursor c = { g->map, g->map + g->size };
    char magic[4];
    uint64_t n_tensors, n_kv;
    if (rd(&c, magic, 4) || memcmp(magic, "GGUF", 4))
        return gguf_fail(err, g->path, "not a GGUF file (no GGUF magic)");
    if (rd(&c, &g->version, 4) || rd(&c, &n_tensors, 8) || rd(&c, &n_kv, 8))
        return gguf_fail(err, g->path, "truncated in the header");
    if (g->version != 2 && g->version != 3)
        return gguf_fail(err, g->path, "GGUF version %u; kb reads versions 2 and 3",
                         g->version);
    /* A key/value takes at least 12 bytes and a tensor entry 24: counts past that cannot be. */
    if (n_kv > g->size / 12 || n_tensors > g->size / 24)
        return gguf_fail(err, g->path, "the header claims %llu keys and %llu tensors, more than "
                         "the file can hold", (unsigned long long)n_kv,
                         (unsigned long long)n_tensors);
    g->n_kv = (size_t)n_kv;
    g->n_tensors = (size_t)n_tensors;
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    g->by_name = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->by_name);
    uint64_t *offsets = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *offsets);
    int rc = !g->kv || !g->tensors || !g->by_name || !offsets
             ? kb_err_set(err, KB_ENOMEM, "%s: out of memory", g->path) : 0;
    for (size_t i = 0; !rc && i < g->n_kv; i++)
        rc = kv_read(g, &c, i, err);
    if (!rc) {
        qsort(g->kv, g->n_kv, sizeof *g->kv, cmp_key);
        for (size_t i = 1; !rc && i < g->n_kv; i++)
            if (!cmp_key(&g->kv[i - 1], &g->kv[i]))
                rc = gguf_fail(err, g->path, "key '%.*s' appears twice", (int)g->kv[i].key.len,
                               g->kv[i].key.p);
    }
    if (!rc)
        rc = gguf_alignment(g, err);
    for (size_t i = 0; !rc && i < g->n_tensors; i++)
        rc = tensor_read(g, &c, i, &offsets[i], err);
    if (!rc) {
        uint64_t header = (uint64_t)(c.p - g->map);
        uint64_t data_start = (header + g->alignment - 1) / g->alignment * g->alignment;
        if (data_start > g->size && g->n_tensors)
            rc = gguf_fail(err, g->path, "truncated before the tensor data");
        else if (g->n_tensors)
            rc = tensors_check(g, offsets, data_start, err);
    }
    free(offsets);
    return rc;
}

int kb_gguf_open(struct kb_gguf **out, const char *path, struct kb_err *err)
{
    *out = NULL;
    struct kb_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", path);
    }
    int fd;
    struct stat st;
    int rc = kb_file_open_regular(path, &fd, &st, err); /* a FIFO never hangs the open */
    if (rc)
        kb_err_prefix(err, path);
    else if (st.st_size < 24)
        rc = gguf_fail(err, path, "%lld bytes: too short for a GGUF file", (long long)st.st_size);
    if (!rc) {
        g->size = (size_t)st.st_size;
        void *map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
            rc = kb_err_set(err, errno == ENOMEM ? KB_ENOMEM : KB_EIO, "%s: cannot map: %s",
                            path, strerror(errno));
        else
            g->map = map;
    }
    if (fd >= 0)
        close(fd);
    if (!rc)
        rc = gguf_parse(g, err);
    if (rc) {
        kb_gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

void kb_gguf_close(struct kb_gguf *g)
{
    if (!g)
        return;
    if (g->map)
        munmap((void *)g->map, g->size);
    free(g->kv);
    free(g->tensors);
    free(g->by_name);
    free(g->path);
    free(g);
}

const struct kb_gguf_kv *kb_gguf_find(const struct kb_gguf *g, const char *key)
{
    struct kb_gguf_kv want = { { key, strlen(key) }, 0, 0, 0, NULL };
    return bsearch(&want, g->kv, g->n_kv, sizeof *g->kv, cmp_key);
}

const struct kb_gguf_tensor *kb_gguf_tensor(const struct kb_gguf *g, const char *name)
{
    size_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->by_name[mid]->name, name);
        if (c == 0)
            return g->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Element i of a numeric value of type t as a double (exact for every integer kb accepts). */
static double num_at(uint32_t t, const uint8_t *p, uint64_t i)
{
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            float f32; uint64_t u64; int64_t i64; double f64; } v;
    int size = vtype_size(t);
    size_t n = size > 0 && size <= 8 ? (size_t)size : 0; /* 1 to 8: t was checked at open */
    memcpy(&v, p + i * n, n);
    switch (t) {
    case KB_GGUF_U8: case KB_GGUF_BOOL: return v.u8;
    case KB_GGUF_I8: return v.i8;
    case KB_GGUF_U16: return v.u16;
    case KB_GGUF_I16: return v.i16;
    case KB_GGUF_U32: return v.u32;
    case KB_GGUF_I32: return v.i32;
    case KB_GGUF_F32: return v.f32;
    case KB_GGUF_U64: return (double)v.u64;
    case KB_GGUF_I64: return (double)v.i64;
    default: return v.f64;
    }
}

static int is_int(uint32_t t)
{
    return t <= KB_GGUF_I32 || t == KB_GGUF_U64 || t == KB_GGUF_I64;
}

static int is_num(uint32_t t)
{
    return is_int(t) || t == KB_GGUF_F32 || t == KB_GGUF_F64;
}

static int wrong_type(const struct kb_gguf *g, const struct kb_gguf_kv *kv, const char *want,
                      struct kb_err *err)
{
    return gguf_fail(err, g->path, "key '%.*s' holds %s%s, not %s", (int)kv->key.len,
                     kv->key.p, kv->type == KB_GGUF_ARRAY ? "an array of " : "",
                     vtype_name(kv->type == KB_GGUF_ARRAY ? kv->elem_type : kv->type), want);
}

int kb_gguf_get_u32(const struct kb_gguf *g, const char *key, uint32_t *out, struct kb_err *err)
{
    const struct kb_gguf_kv *kv = kb_gguf_find(g, key);
    if (!kv)
        return KB_ENOTFOUND;
    if (kv->type == KB_GGUF_ARRAY || !is_int(kv->type))
        return wrong_type(g, kv, "an integer", err);
    double v = num_at(kv->type, kv->value, 0);
    if (v < 0 || v > UINT32_MAX)
        return gguf_fail(err, g->path, "key '%s' is %.0f, out of range", key, v);
    *out = (uint32_t)v;
    return 0;
}

int kb_gguf_get_f32(const struct kb_gguf *g, const char *key, float *out, struct kb_err *err)
{
    const struct kb_gguf_kv *kv = kb_gguf_find(g, key);
    if (!kv)
        return KB_ENOTFOUND;
    if (kv->type == KB_GGUF_ARRAY || !is_num(kv->type))
        return wrong_type(g, kv, "a number", err);
    *out = (float)num_at(kv->type, kv->value, 0);
    return 0;
}

int kb_gguf_get_str(const struct kb_gguf *g, const char *key, struct kb_gguf_str *out,
                    struct kb_err *err)
{
    const struct kb_gguf_kv *kv = kb_gguf_find(g, key);
    if (!kv)
        return KB_ENOTFOUND;
    if (kv->type != KB_GGUF_STRING)
        return wrong_type(g, kv, "a string", err);
    struct cursor c = { kv->value, g->map + g->size };
    return rd_str(&c, out) ? gguf_fail(err, g->path, "key '%s' is damaged", key) : 0;
}

int kb_gguf_get_strings(const struct kb_gguf *g, const char *key, struct kb_gguf_str **out,
                        size_t *n, struct kb_err *err)
{
    *out = NULL;
    *n = 0;
    const struct kb_gguf_kv *kv = kb_gguf_find(g, key);
    if (!kv)
        return KB_ENOTFOUND;
    if (kv->type != KB_GGUF_ARRAY || kv->elem_type != KB_GGUF_STRING)
        return wrong_type(g, kv, "an array of strings", err);
    struct kb_gguf_str *s = malloc((kv->n ? kv->n : 1) * sizeof *s);
    if (!s)
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", g->path);
    struct cursor c = { kv->value, g->map + g->size };
    for (uint64_t i = 0; i < kv->n; i++)
        rd_str(&c, &s[i]); /* checked when the file was opened */
    *out = s;
    *n = (size_t)kv->n;
    return 0;
}

static int get_nums(const struct kb_gguf *g, const char *key, void **out, size_t *n,
                    int as_float, struct kb_err *err)
{
    *out = NULL;
    *n = 0;
    const struct kb_gguf_kv *kv = kb_gguf_find(g, key);
    if (!kv)
        return KB_ENOTFOUND;
    if (kv->type != KB_GGUF_ARRAY || !(as_float ? is_num(kv->elem_type) : is_int(kv->elem_type)))
        return wrong_type(g, kv, as_float ? "an array of numbers" : "an array of integers", err);
    void *v = malloc((kv->n ? kv->n : 1) * 4);
    if (!v)
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < kv->n; i++) {
        double x = num_at(kv->elem_type, kv->value, i);
        if (as_float) {
            ((float *)v)[i] = (float)x;
        } else if (x < INT32_MIN || x > INT32_MAX) {
            free(v);
            return gguf_fail(err, g->path, "key '%s': value %.0f is out of range", key, x);
        } else {
            ((int32_t *)v)[i] = (int32_t)x;
        }
    }
    *out = v;
    *n = (size_t)kv->n;
    return 0;
}

int kb_gguf_get_f32s(const struct kb_gguf *g, const char *key, float **out, size_t *n,
                     struct kb_err *err)
{
    return get_nums(g, key, (void **)out, n, 1, err);
}

int kb_gguf_get_i32s(const struct kb_gguf *g, const char *key, int32_t **out, size_t *n,
                     struct kb_err *err)
{
    return get_nums(g, key, (void **)out, n, 0, err);
}
