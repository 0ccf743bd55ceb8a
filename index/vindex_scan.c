/* vindex_scan.c — exact inner-product top-k over flat rows: vectorised dots, threads, a heap. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "index/vindex_int.h"

/*
 * 16 float lanes. GCC lowers this type to whatever each target clone has (one zmm, two ymm or
 * four xmm), and lane l always accumulates the same products in the same order, so a row's
 * score is bit-for-bit the same on every CPU without -ffast-math (and no FMA contraction:
 * C11 mode keeps -ffp-contract=off).
 */
typedef float scan_v16 __attribute__((vector_size(64)));

#define SCAN_BLOCK 256              /* rows scored before the heap sees them */
#define SCAN_MIN_ROWS_PER_THREAD 8192 /* below this a thread costs more than it saves */

/* acc += x[0..16) * y[0..16), lane by lane (unaligned loads; no vector crosses a call, so the
 * ABI stays the same in every clone). */
#define SCAN_MUL_ADD(acc, x, y)                                                               \
    do {                                                                                      \
        scan_v16 x_, y_;                                                                      \
        memcpy(&x_, (x), sizeof x_);                                                          \
        memcpy(&y_, (y), sizeof y_);                                                          \
        (acc) += x_ * y_;                                                                     \
    } while (0)

/* Sum of the 16 lanes, pairwise in a fixed order. Inlined into each clone: a call would mix
 * its legacy-SSE code with the clone's AVX registers. */
static inline __attribute__((always_inline)) float scan_sum_lanes(const scan_v16 *v)
{
    float lane[16];
    memcpy(lane, v, sizeof lane);
    for (int width = 8; width > 0; width /= 2)
        for (int l = 0; l < width; l++)
            lane[l] += lane[l + width];
    return lane[0];
}

/* out[r] = rows[r] . query for r < n_rows: two 16-lane accumulators, then a scalar tail. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void scan_dots(const float *rows, size_t n_rows, int dim, const float *query, float *out)
{
    size_t d = (size_t)dim;
    for (size_t r = 0; r < n_rows; r++) {
        const float *x = rows + r * d;
        scan_v16 acc0 = {0}, acc1 = {0};
        size_t j = 0;
        for (; j + 32 <= d; j += 32) {
            SCAN_MUL_ADD(acc0, x + j, query + j);
            SCAN_MUL_ADD(acc1, x + j + 16, query + j + 16);
        }
        if (j + 16 <= d) {
            SCAN_MUL_ADD(acc0, x + j, query + j);
            j += 16;
        }
        float tail = 0;
        for (; j < d; j++)
            tail += x[j] * query[j];
        acc0 += acc1;
        out[r] = scan_sum_lanes(&acc0) + tail;
    }
}

float kb_vindex_scan_dot(const float *a, const float *b, int dim)
{
    float out;
    scan_dots(a, 1, dim, b, &out);
    return out;
}

struct scan_hit {
    float score;
    int64_t id;
};

/* a ranks below b: lower score, or the same score and a larger id. */
static int scan_worse(struct scan_hit a, struct scan_hit b)
{
    return a.score < b.score || (a.score == b.score && a.id > b.id);
}

/* heap[0] is the worst of the n kept; restores that after heap[at] got worse. */
static void scan_sift_down(struct scan_hit *heap, size_t n, size_t at)
{
    for (;;) {
        size_t worst = at, left = 2 * at + 1, right = left + 1;
        if (left < n && scan_worse(heap[left], heap[worst]))
            worst = left;
        if (right < n && scan_worse(heap[right], heap[worst]))
            worst = right;
        if (worst == at)
            return;
        struct scan_hit swap = heap[at];
        heap[at] = heap[worst];
        heap[worst] = swap;
        at = worst;
    }
}

static void scan_sift_up(struct scan_hit *heap, size_t at)
{
    while (at > 0) {
        size_t parent = (at - 1) / 2;
        if (!scan_worse(heap[at], heap[parent]))
            return;
        struct scan_hit swap = heap[at];
        heap[at] = heap[parent];
        heap[parent] = swap;
        at = parent;
    }
}

/* Keeps the k best hits seen in heap[0..*n). */
static void scan_offer(struct scan_hit *heap, size_t *n, size_t k, struct scan_hit hit)
{
    if (*n < k) {
        heap[*n] = hit;
        scan_sift_up(heap, (*n)++);
    } else if (scan_worse(heap[0], hit)) {
        heap[0] = hit;
        scan_sift_down(heap, k, 0);
    }
}

/* One thread's share: rows [begin, end) into its own heap of k. */
struct scan_part {
    const float *rows;
    const int64_t *row_ids;
    size_t begin, end;
    int dim;
    const float *query;
    size_t k;
    struct scan_hit *heap; /* k slots */
    size_t n_kept;
};

static void *scan_part_run(void *payload)
{
    struct scan_part *part = payload;
    float dots[SCAN_BLOCK];
    for (size_t at = part->begin; at < part->end; at += SCAN_BLOCK) {
        size_t n = part->end - at < SCAN_BLOCK ? part->end - at : SCAN_BLOCK;
        scan_dots(part->rows + at * (size_t)part->dim, n, part->dim, part->query, dots);
        for (size_t r = 0; r < n; r++) {
            struct scan_hit hit = {dots[r], part->row_ids[at + r]};
            scan_offer(part->heap, &part->n_kept, part->k, hit);
        }
    }
    return NULL;
}

static int scan_hit_order(const void *a, const void *b)
{
    const struct scan_hit *x = a, *y = b;
    return scan_worse(*y, *x) ? -1 : scan_worse(*x, *y) ? 1 : 0;
}

/* Runs parts[1..n_parts) on new threads and parts[0] here. */
static int scan_run_parts(struct scan_part *parts, int n_parts, struct kb_err *err)
{
    pthread_t threads[64];
    int n_started = 0, rc = 0;
    for (int t = 1; t < n_parts; t++) {
        if (pthread_create(&threads[t], NULL, scan_part_run, &parts[t]) != 0) {
            rc = kb_err_set(err, KB_ERROR, "vector search: cannot start a thread");
            break;
        }
        n_started = t;
    }
    scan_part_run(&parts[0]);
    for (int t = 1; t <= n_started; t++)
        pthread_join(threads[t], NULL);
    return rc;
}

static int scan_thread_count(size_t n_rows, int n_threads)
{
    size_t most = n_rows / SCAN_MIN_ROWS_PER_THREAD;
    int n = n_threads < 1 ? 1 : n_threads > 64 ? 64 : n_threads;
    if ((size_t)n > most)
        n = most < 1 ? 1 : (int)most;
    return n;
}

int kb_vindex_scan_top_k(const float *rows, const int64_t *row_ids, size_t n_rows, int dim,
                         const float *query, size_t k, int n_threads, int64_t *ids,
                         float *scores, size_t *n_out, struct kb_err *err)
{
    *n_out = 0;
    if (k > n_rows)
        k = n_rows;
    if (k == 0)
        return 0;
    int n_parts = scan_thread_count(n_rows, n_threads);
    struct scan_part parts[64];
    struct scan_hit *hits = malloc(sizeof *hits * k * (size_t)n_parts);
    if (!hits)
        return kb_err_set(err, KB_ENOMEM, "vector search: out of memory for %zu results", k);
    for (int t = 0; t < n_parts; t++)
        parts[t] = (struct scan_part){rows, row_ids, n_rows * (size_t)t / (size_t)n_parts,
                                      n_rows * (size_t)(t + 1) / (size_t)n_parts, dim, query,
                                      k, hits + k * (size_t)t, 0};
    int rc = scan_run_parts(parts, n_parts, err);
    if (rc < 0)
        goto done;
    /* the parts' heaps, packed together, sorted best first */
    size_t n_hits = 0;
    for (int t = 0; t < n_parts; t++) {
        memmove(hits + n_hits, parts[t].heap, sizeof *hits * parts[t].n_kept);
        n_hits += parts[t].n_kept;
    }
    qsort(hits, n_hits, sizeof *hits, scan_hit_order);
    for (size_t i = 0; i < k; i++) {
        ids[i] = hits[i].id;
        scores[i] = hits[i].score;
    }
    *n_out = k;
done:
    free(hits);
    return rc;
}
