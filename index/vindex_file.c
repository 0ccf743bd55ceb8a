/* vindex_file.c — checks a FAISS index file's layout before FAISS reads it (FAISS 1.7.3 format). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/vindex_int.h"

/*
 * The layout follows faiss/impl/index_read.cpp (1.7.3): a fourcc, then per index type a header
 * (int32 d, int64 ntotal, two int64 unused, uint8 is_trained, int32 metric) and fields; a
 * "vector" is a uint64 count followed by count items (for IndexFlat's rows, count is in floats).
 */

#define FILE_MAX_DIM 65536
#define FILE_MAX_N ((uint64_t)1 << 40)
#define FILE_MAX_NLIST ((uint64_t)1 << 24)
#define FILE_MAX_LEVELS 64
#define FILE_METRIC_IP 0

struct vfile {
    int fd;
    const char *path;
    uint64_t size, at;
    struct kb_err *err;
};

struct vfile_header {
    int32_t d;
    int64_t ntotal;
    int32_t metric;
};

static uint32_t vfile_fourcc(const char *s)
{
    return (uint32_t)(unsigned char)s[0] | (uint32_t)(unsigned char)s[1] << 8 |
           (uint32_t)(unsigned char)s[2] << 16 | (uint32_t)(unsigned char)s[3] << 24;
}

static int vfile_corrupt(struct vfile *f, const char *what)
{
    return kb_err_set(f->err, KB_ECORRUPT, "%s: damaged vector index: bad %s at byte %llu",
                      f->path, what, (unsigned long long)f->at);
}

static int vfile_read(struct vfile *f, void *dst, size_t n, const char *what)
{
    if (n > f->size - f->at)
        return kb_err_set(f->err, KB_ECORRUPT,
                          "%s: damaged vector index: file ends inside %s at byte %llu", f->path,
                          what, (unsigned long long)f->at);
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(f->fd, (char *)dst + done, n - done, (off_t)(f->at + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return kb_err_set(f->err, KB_EIO, "%s: cannot read: %s", f->path,
                              got < 0 ? strerror(errno) : "file shrank");
        done += (size_t)got;
    }
    f->at += n;
    return 0;
}

/* Moves past n_items of item_size bytes, which must lie inside the file. */
static int vfile_skip(struct vfile *f, uint64_t n_items, uint64_t item_size, const char *what)
{
    uint64_t left = f->size - f->at;
    if (item_size && n_items > left / item_size)
        return kb_err_set(f->err, KB_ECORRUPT,
                          "%s: damaged vector index: %s (%llu items) runs past the end of the "
                          "file", f->path, what, (unsigned long long)n_items);
    f->at += n_items * item_size;
    return 0;
}

/* Reads a vector's count, which must be `expected` (or anything when expected is UINT64_MAX). */
static int vfile_count(struct vfile *f, uint64_t expected, uint64_t item_size, const char *what,
                       uint64_t *count)
{
    int rc = vfile_read(f, count, sizeof *count, what);
    if (rc < 0)
        return rc;
    if (expected != UINT64_MAX && *count != expected)
        return kb_err_set(f->err, KB_ECORRUPT,
                          "%s: damaged vector index: %s holds %llu items, expected %llu",
                          f->path, what, (unsigned long long)*count,
                          (unsigned long long)expected);
    uint64_t left = f->size - f->at;
    if (item_size && *count > left / item_size)
        return kb_err_set(f->err, KB_ECORRUPT,
                          "%s: damaged vector index: %s (%llu items) runs past the end of the "
                          "file", f->path, what, (unsigned long long)*count);
    return 0;
}

static int vfile_header(struct vfile *f, struct vfile_header *h)
{
    int64_t unused[2];
    uint8_t is_trained;
    int rc;
    if ((rc = vfile_read(f, &h->d, 4, "header")) < 0 ||
        (rc = vfile_read(f, &h->ntotal, 8, "header")) < 0 ||
        (rc = vfile_read(f, unused, 16, "header")) < 0 ||
        (rc = vfile_read(f, &is_trained, 1, "header")) < 0 ||
        (rc = vfile_read(f, &h->metric, 4, "header")) < 0)
        return rc;
    if (h->d < 1 || h->d > FILE_MAX_DIM)
        return vfile_corrupt(f, "dimension");
    if (h->ntotal < 0 || (uint64_t)h->ntotal > FILE_MAX_N)
        return vfile_corrupt(f, "vector count");
    if (h->metric != FILE_METRIC_IP)
        return kb_err_set(f->err, KB_EFORMAT,
                          "%s: vector index uses metric %d, not inner product", f->path,
                          (int)h->metric);
    return 0;
}

/* An IndexFlatIP of exactly n rows of d floats. */
static int vfile_flat(struct vfile *f, int32_t d, int64_t n)
{
    uint32_t fourcc;
    struct vfile_header h;
    uint64_t count;
    int rc;
    if ((rc = vfile_read(f, &fourcc, 4, "flat index")) < 0)
        return rc;
    if (fourcc != vfile_fourcc("IxFI"))
        return vfile_corrupt(f, "flat index type");
    if ((rc = vfile_header(f, &h)) < 0)
        return rc;
    if (h.d != d || (n >= 0 && h.ntotal != n))
        return vfile_corrupt(f, "flat index size");
    if ((rc = vfile_count(f, (uint64_t)h.ntotal * (uint64_t)d, 4, "vectors", &count)) < 0)
        return rc;
    return vfile_skip(f, count, 4, "vectors");
}

/* An IDMap2's id_map after its wrapped index: n int64 ids. */
static int vfile_id_map(struct vfile *f, int64_t n)
{
    uint64_t count;
    int rc = vfile_count(f, (uint64_t)n, 8, "id map", &count);
    return rc < 0 ? rc : vfile_skip(f, count, 8, "id map");
}

/* IndexIVFFlat's list lengths ("full" or "sprs" form) into sizes[nlist]. */
static int vfile_list_sizes(struct vfile *f, uint64_t nlist, uint64_t *sizes)
{
    uint32_t list_type;
    uint64_t count;
    int rc = vfile_read(f, &list_type, 4, "list type");
    if (rc < 0)
        return rc;
    if (list_type == vfile_fourcc("full")) {
        if ((rc = vfile_count(f, nlist, 8, "list sizes", &count)) < 0)
            return rc;
        return vfile_read(f, sizes, nlist * 8, "list sizes");
    }
    if (list_type != vfile_fourcc("sprs"))
        return vfile_corrupt(f, "list type");
    if ((rc = vfile_count(f, UINT64_MAX, 8, "list sizes", &count)) < 0)
        return rc;
    if (count % 2)
        return vfile_corrupt(f, "list sizes");
    for (uint64_t i = 0; i < count; i += 2) {
        uint64_t pair[2];
        if ((rc = vfile_read(f, pair, sizeof pair, "list sizes")) < 0)
            return rc;
        if (pair[0] >= nlist)
            return vfile_corrupt(f, "list number");
        sizes[pair[0]] = pair[1];
    }
    return 0;
}

/* ArrayInvertedLists: nlist lists of (codes, ids) that together hold ntotal vectors. */
static int vfile_invlists(struct vfile *f, uint64_t nlist, int32_t d, int64_t ntotal)
{
    uint32_t fourcc;
    uint64_t head[2], total = 0;
    int rc;
    if ((rc = vfile_read(f, &fourcc, 4, "inverted lists")) < 0 ||
        (rc = vfile_read(f, head, sizeof head, "inverted lists")) < 0)
        return rc;
    if (fourcc != vfile_fourcc("ilar") || head[0] != nlist || head[1] != (uint64_t)d * 4)
        return vfile_corrupt(f, "inverted lists");
    uint64_t *sizes = calloc(nlist, sizeof *sizes);
    if (!sizes)
        return kb_err_set(f->err, KB_ENOMEM, "%s: out of memory", f->path);
    if ((rc = vfile_list_sizes(f, nlist, sizes)) < 0)
        goto done;
    for (uint64_t i = 0; i < nlist && rc == 0; i++) {
        total += sizes[i];
        if (sizes[i] > FILE_MAX_N || total > (uint64_t)ntotal)
            rc = vfile_corrupt(f, "list size");
        else if ((rc = vfile_skip(f, sizes[i], (uint64_t)d * 4, "list vectors")) == 0)
            rc = vfile_skip(f, sizes[i], 8, "list ids");
    }
    if (rc == 0 && total != (uint64_t)ntotal)
        rc = vfile_corrupt(f, "inverted lists total");
done:
    free(sizes);
    return rc;
}

/* IndexIVFFlat after its fourcc: header, nlist, nprobe, quantizer, direct map, lists. */
static int vfile_ivf(struct vfile *f, struct kb_vindex_file_info *out)
{
    struct vfile_header h;
    uint64_t nlist_nprobe[2], count;
    uint8_t direct_map;
    int rc;
    if ((rc = vfile_header(f, &h)) < 0 ||
        (rc = vfile_read(f, nlist_nprobe, sizeof nlist_nprobe, "IVF parameters")) < 0)
        return rc;
    uint64_t nlist = nlist_nprobe[0];
    if (nlist < 1 || nlist > FILE_MAX_NLIST || nlist_nprobe[1] > nlist)
        return vfile_corrupt(f, "IVF parameters");
    if ((rc = vfile_flat(f, h.d, (int64_t)nlist)) < 0 ||
        (rc = vfile_read(f, &direct_map, 1, "direct map")) < 0 ||
        (rc = vfile_count(f, 0, 8, "direct map", &count)) < 0)
        return rc;
    if (direct_map != 0)
        return vfile_corrupt(f, "direct map");
    if ((rc = vfile_invlists(f, nlist, h.d, h.ntotal)) < 0)
        return rc;
    out->spec = (struct kb_vindex_spec){KB_VINDEX_IVF, h.d, (int)nlist,
                                        nlist_nprobe[1] ? (int)nlist_nprobe[1] : 1, 0, 0};
    out->n_vectors = (size_t)h.ntotal;
    return 0;
}

/* Reads n_items of item_size bytes in blocks, handing each block to check (0 or an error). */
static int vfile_stream(struct vfile *f, uint64_t n_items, size_t item_size, const char *what,
                        int (*check)(struct vfile *f, const void *items, size_t n,
                                     uint64_t first, void *payload),
                        void *payload)
{
    unsigned char block[1 << 16];
    size_t per_block = sizeof block / item_size;
    for (uint64_t first = 0; first < n_items; first += per_block) {
        size_t n = n_items - first < per_block ? (size_t)(n_items - first) : per_block;
        int rc = vfile_read(f, block, n * item_size, what);
        if (rc == 0)
            rc = check(f, block, n, first, payload);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The HNSW graph's shape, learnt while it is read. */
struct vfile_hnsw {
    int64_t n;                          /* vectors */
    int32_t cum[FILE_MAX_LEVELS + 1];   /* cum[l]: links of a vector on levels below l */
    uint64_t n_cum;
    int32_t *levels;                    /* (n): 1 + a vector's top level */
    uint64_t offset;                    /* running end of the previous vector's links */
};

static int vfile_hnsw_levels(struct vfile *f, const void *items, size_t n, uint64_t first,
                             void *payload)
{
    struct vfile_hnsw *g = payload;
    memcpy(g->levels + first, items, n * 4);
    for (size_t i = 0; i < n; i++)
        if (g->levels[first + i] < 1 || (uint64_t)g->levels[first + i] >= g->n_cum)
            return vfile_corrupt(f, "HNSW level");
    return 0;
}

/* offsets[i + 1] - offsets[i] is vector i's link count, cum[levels[i]], as HNSW lays it out. */
static int vfile_hnsw_offsets(struct vfile *f, const void *items, size_t n, uint64_t first,
                              void *payload)
{
    struct vfile_hnsw *g = payload;
    const uint64_t *offsets = items;
    for (size_t i = 0; i < n; i++) {
        uint64_t at = first + i;
        uint64_t want = at == 0 ? 0 : g->offset + (uint64_t)g->cum[g->levels[at - 1]];
        if (offsets[i] != want)
            return vfile_corrupt(f, "HNSW offsets");
        g->offset = want;
    }
    return 0;
}

static int vfile_hnsw_links(struct vfile *f, const void *items, size_t n, uint64_t first,
                            void *payload)
{
    const struct vfile_hnsw *g = payload;
    const int32_t *links = items;
    (void)first;
    for (size_t i = 0; i < n; i++)
        if (links[i] < -1 || links[i] >= g->n)
            return vfile_corrupt(f, "HNSW link");
    return 0;
}

/* Level probabilities and cumulative link counts per level. */
static int vfile_hnsw_levels_table(struct vfile *f, struct vfile_hnsw *g)
{
    uint64_t count;
    int rc;
    if ((rc = vfile_count(f, UINT64_MAX, 8, "HNSW level probabilities", &count)) < 0)
        return rc;
    if (count > FILE_MAX_LEVELS)
        return vfile_corrupt(f, "HNSW level probabilities");
    if ((rc = vfile_skip(f, count, 8, "HNSW level probabilities")) < 0 ||
        (rc = vfile_count(f, UINT64_MAX, 4, "HNSW links per level", &g->n_cum)) < 0)
        return rc;
    if (g->n_cum < 2 || g->n_cum > FILE_MAX_LEVELS + 1)
        return vfile_corrupt(f, "HNSW links per level");
    if ((rc = vfile_read(f, g->cum, g->n_cum * 4, "HNSW links per level")) < 0)
        return rc;
    for (uint64_t l = 0; l < g->n_cum; l++)
        if ((l == 0 && g->cum[0] != 0) || (l > 0 && (g->cum[l] < g->cum[l - 1] ||
                                                     g->cum[l] > 1 << 16)))
            return vfile_corrupt(f, "HNSW links per level");
    return 0;
}

/* faiss::HNSW as written by write_HNSW, for a graph over n vectors. */
static int vfile_hnsw_graph(struct vfile *f, struct vfile_hnsw *g, int32_t tail[5])
{
    uint64_t count;
    int rc;
    if ((rc = vfile_hnsw_levels_table(f, g)) < 0 ||
        (rc = vfile_count(f, (uint64_t)g->n, 4, "HNSW levels", &count)) < 0)
        return rc;
    g->levels = malloc(((size_t)g->n + 1) * sizeof *g->levels);
    if (!g->levels)
        return kb_err_set(f->err, KB_ENOMEM, "%s: out of memory", f->path);
    if ((rc = vfile_stream(f, count, 4, "HNSW levels", vfile_hnsw_levels, g)) < 0 ||
        (rc = vfile_count(f, (uint64_t)g->n + 1, 8, "HNSW offsets", &count)) < 0 ||
        (rc = vfile_stream(f, count, 8, "HNSW offsets", vfile_hnsw_offsets, g)) < 0 ||
        (rc = vfile_count(f, g->offset, 4, "HNSW links", &count)) < 0 ||
        (rc = vfile_stream(f, count, 4, "HNSW links", vfile_hnsw_links, g)) < 0)
        return rc;
    /* entry_point, max_level, efConstruction, efSearch, upper_beam */
    if ((rc = vfile_read(f, tail, 5 * 4, "HNSW parameters")) < 0)
        return rc;
    if (tail[0] < -1 || tail[0] >= g->n || (g->n > 0 && tail[0] < 0) || tail[1] < -1 ||
        (uint64_t)tail[1] + 2 > g->n_cum || tail[3] < 1)
        return vfile_corrupt(f, "HNSW parameters");
    return 0;
}

/* IndexHNSWFlat (fourcc included) inside an IDMap2 whose header said d and n. */
static int vfile_hnsw(struct vfile *f, int32_t d, int64_t n, struct kb_vindex_file_info *out)
{
    uint32_t fourcc;
    struct vfile_header h;
    struct vfile_hnsw g = {.n = n};
    int32_t tail[5];
    int rc;
    if ((rc = vfile_read(f, &fourcc, 4, "HNSW index")) < 0 ||
        (rc = vfile_header(f, &h)) < 0)
        return rc;
    if (h.d != d || h.ntotal != n)
        return vfile_corrupt(f, "HNSW index size");
    rc = vfile_hnsw_graph(f, &g, tail);
    free(g.levels);
    if (rc < 0 || (rc = vfile_flat(f, d, n)) < 0)
        return rc;
    out->spec = (struct kb_vindex_spec){KB_VINDEX_HNSW, d, 0, 0, g.cum[1] / 2, tail[3]};
    return 0;
}

/* IDMap2 (fourcc read) over a flat or HNSW index. */
static int vfile_idmap2(struct vfile *f, struct kb_vindex_file_info *out)
{
    struct vfile_header h;
    uint32_t fourcc;
    int rc;
    if ((rc = vfile_header(f, &h)) < 0 ||
        (rc = vfile_read(f, &fourcc, 4, "wrapped index")) < 0)
        return rc;
    f->at -= 4; /* the wrapped index reads its own fourcc */
    if (fourcc == vfile_fourcc("IxFI")) {
        rc = vfile_flat(f, h.d, h.ntotal);
        out->spec = (struct kb_vindex_spec){KB_VINDEX_FLAT, h.d, 0, 0, 0, 0};
    } else if (fourcc == vfile_fourcc("IHNf")) {
        rc = vfile_hnsw(f, h.d, h.ntotal, out);
    } else {
        rc = kb_err_set(f->err, KB_EFORMAT, "%s: not a vector index kb writes (an id map "
                        "over another index type)", f->path);
    }
    if (rc == 0)
        rc = vfile_id_map(f, h.ntotal);
    out->n_vectors = (size_t)h.ntotal;
    return rc;
}

static int vfile_open(struct vfile *f, const char *path, struct kb_err *err)
{
    struct stat st;
    *f = (struct vfile){.fd = open(path, O_RDONLY | O_CLOEXEC), .path = path, .err = err};
    if (f->fd < 0)
        return kb_err_set(err, errno == ENOENT ? KB_ENOTFOUND : KB_EIO, "%s: cannot open: %s",
                          path, strerror(errno));
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(f->fd);
        return kb_err_set(err, KB_EIO, "%s: not a regular file", path);
    }
    f->size = (uint64_t)st.st_size;
    return 0;
}

int kb_vindex_file_check(const char *path, struct kb_vindex_file_info *out, struct kb_err *err)
{
    struct vfile f;
    uint32_t fourcc = 0;
    int rc = vfile_open(&f, path, err);
    if (rc < 0)
        return rc;
    if (f.size < 4)
        rc = kb_err_set(err, KB_EFORMAT, "%s: %s, not a vector index", path,
                        f.size ? "too short" : "empty file");
    else if ((rc = vfile_read(&f, &fourcc, 4, "index type")) < 0)
        ;
    else if (fourcc == vfile_fourcc("IxM2"))
        rc = vfile_idmap2(&f, out);
    else if (fourcc == vfile_fourcc("IwFl"))
        rc = vfile_ivf(&f, out);
    else
        rc = kb_err_set(err, KB_EFORMAT, "%s: not a vector index kb writes (type %08x)", path,
                        (unsigned)fourcc);
    if (rc == 0 && f.at != f.size)
        rc = kb_err_set(err, KB_ECORRUPT, "%s: damaged vector index: %llu bytes after its end",
                        path, (unsigned long long)(f.size - f.at));
    close(f.fd);
    return rc;
}
