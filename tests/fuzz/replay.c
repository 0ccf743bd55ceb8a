/* replay.c — runs a fuzz target's kept inputs (seeds and crash regressions) through its
 * LLVMFuzzerTestOneInput without libFuzzer, so that every build's ctest (the sanitized one
 * included) replays them. Linked with one tests/fuzz/fuzz_<name>.c.
 * Usage: replay FOLDER... (every regular file below each folder, in sorted order) */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT ((size_t)16 << 20)   /* libFuzzer's inputs are far smaller */

struct replay_list {
    char **paths;
    size_t n, alloc;
    int failed;
};

static struct replay_list replay_found;   /* nftw passes no payload */

static int replay_collect(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_DNR || flag == FTW_NS) {
        fprintf(stderr, "replay: %s: cannot be read\n", path);
        replay_found.failed = 1;
        return 0;
    }
    if (flag != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    if (replay_found.n == replay_found.alloc) {
        size_t na = replay_found.alloc ? replay_found.alloc * 2 : 64;
        char **grown = realloc(replay_found.paths, na * sizeof *grown);
        if (!grown)
            return 1;
        replay_found.paths = grown;
        replay_found.alloc = na;
    }
    if (!(replay_found.paths[replay_found.n] = strdup(path)))
        return 1;
    replay_found.n++;
    return 0;
}

static int replay_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a whole input into a new buffer (no NUL added: the target gets the bytes as they are). */
static uint8_t *replay_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = f ? malloc(REPLAY_MAX_INPUT) : NULL;
    size_t n = data ? fread(data, 1, REPLAY_MAX_INPUT, f) : 0;
    int bad = !f || !data || ferror(f) || n == REPLAY_MAX_INPUT;
    if (f)
        fclose(f);
    /* An exact-size copy, as libFuzzer passes: a read past the end is then a sanitizer report. */
    uint8_t *exact = bad ? NULL : malloc(n ? n : 1);
    if (exact)
        memcpy(exact, data, n);
    free(data);
    *len = n;
    return exact;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: replay FOLDER...\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        size_t before = replay_found.n;
        if (nftw(argv[i], replay_collect, 16, FTW_PHYS) != 0) {
            fprintf(stderr, "replay: %s: cannot be walked\n", argv[i]);
            return 1;
        }
        if (replay_found.n == before) {
            fprintf(stderr, "replay: %s: no inputs (a missing corpus would pass unseen)\n", argv[i]);
            return 1;
        }
    }
    qsort(replay_found.paths, replay_found.n, sizeof *replay_found.paths, replay_cmp);
    for (size_t i = 0; i < replay_found.n; i++) {
        size_t len = 0;
        uint8_t *data = replay_read(replay_found.paths[i], &len);
        if (!data) {
            fprintf(stderr, "replay: %s: cannot be read (or over 16 MiB)\n", replay_found.paths[i]);
            replay_found.failed = 1;
        } else {
            LLVMFuzzerTestOneInput(data, len);   /* a crash or a sanitizer report fails */
        }
        free(data);
        free(replay_found.paths[i]);
    }
    printf("replayed %zu inputs\n", replay_found.n);
    free(replay_found.paths);
    return replay_found.failed;
}
