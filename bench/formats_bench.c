/* formats_bench.c — parse and parse + chunk throughput per document format over folders of
 * files, as kb ingest does them (kb_doc_read, then kb_chunk_text at 256/32 word tokens), without
 * storing or embedding. Prints one row per format: files, MB, and MB/s (medians of runs).
 * Usage: formats_bench RUNS FOLDER... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/chunk.h"
#include "ingest/doc.h"
#include "ingest/walk.h"
#include "kb/kb.h"

#define BENCH_MAX_RUNS 15
#define BENCH_MAX_BYTES ((uint64_t)64 << 20)

struct bench_format {
    size_t files, bytes, chunks, skipped;
    double parse_s[BENCH_MAX_RUNS], total_s[BENCH_MAX_RUNS];
};

struct bench {
    struct bench_format formats[KB_DOC_KIND_COUNT];
    int run;
};

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reads, parses and chunks one file, adding its times to its format's row. */
static int bench_file(enum kb_walk_kind kind, const char *path, const char *rel,
                      const struct stat *st, const char *reason, void *payload)
{
    struct bench *b = payload;
    enum kb_doc_kind doc_kind = kind == KB_WALK_FILE ? kb_doc_kind_of_path(path) : KB_DOC_NONE;
    (void)rel;
    (void)reason;
    if (doc_kind == KB_DOC_NONE)
        return 0;
    struct bench_format *f = &b->formats[doc_kind];
    struct kb_doc doc;
    struct kb_err err = { 0 };
    struct kb_chunk_list chunks = { 0 };
    struct kb_chunk_options opts = { KB_DEFAULT_CHUNK_TOKENS, KB_DEFAULT_OVERLAP_TOKENS,
                                     KB_CHUNK_TEXT, &kb_tokcounter_words };
    double t0 = bench_now();
    int rc = kb_doc_read(&doc, path, doc_kind, BENCH_MAX_BYTES, &err);
    double t1 = bench_now();
    if (rc == 0) {
        opts.format = doc.markdown ? KB_CHUNK_MARKDOWN : KB_CHUNK_TEXT;
        rc = kb_chunk_text(&chunks, doc.text, doc.len, &opts, &err);
    }
    double t2 = bench_now();
    if (b->run == 0) {
        f->files++;
        f->bytes += (size_t)st->st_size;
        f->chunks += chunks.count;
        f->skipped += rc != 0;
    }
    f->parse_s[b->run] += t1 - t0;
    f->total_s[b->run] += t2 - t0;
    kb_chunk_list_free(&chunks);
    if (rc == 0)
        kb_doc_free(&doc);
    return 0;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void bench_print(struct bench *b, int runs)
{
    printf("%-9s %6s %8s %7s %7s %12s %14s\n", "format", "files", "MB", "chunks", "skipped",
           "parse MB/s", "+chunk MB/s");
    for (int k = 1; k < KB_DOC_KIND_COUNT; k++) {
        struct bench_format *f = &b->formats[k];
        if (!f->files)
            continue;
        double mb = (double)f->bytes / 1e6;
        double parse = bench_median(f->parse_s, runs), total = bench_median(f->total_s, runs);
        printf("%-9s %6zu %8.2f %7zu %7zu %12.1f %14.1f\n", kb_doc_kind_name((enum kb_doc_kind)k),
               f->files, mb, f->chunks, f->skipped, mb / parse, mb / total);
    }
}

int main(int argc, char **argv)
{
    int runs = argc > 2 ? atoi(argv[1]) : 0;
    if (runs < 1 || runs > BENCH_MAX_RUNS) {
        fprintf(stderr, "usage: formats_bench RUNS(1-%d) FOLDER...\n", BENCH_MAX_RUNS);
        return 2;
    }
    static struct bench b;
    struct kb_walk_options walk = { 0 };
    for (b.run = 0; b.run < runs; b.run++) {
        for (int i = 2; i < argc; i++) {
            struct kb_err err = { 0 };
            if (kb_walk(argv[i], &walk, bench_file, &b, &err)) {
                fprintf(stderr, "formats_bench: %s\n", err.msg);
                return 1;
            }
        }
    }
    bench_print(&b, runs);
    return 0;
}
