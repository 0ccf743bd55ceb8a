/* hash.c — SHA-256 hex digests through nettle. */
#include "util/hash.h"

#include <errno.h>
#include <nettle/sha2.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"

static void hash_finish(struct sha256_ctx *ctx, char out[KB_SHA256_HEX_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(ctx, sizeof digest, digest);
    for (size_t i = 0; i < sizeof digest; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[2 * SHA256_DIGEST_SIZE] = '\0';
}

void kb_sha256_hex_parts(const void *const *parts, const size_t *lens, size_t n,
                         char out[KB_SHA256_HEX_SIZE])
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    for (size_t i = 0; i < n; i++)
        sha256_update(&ctx, lens[i], parts[i]);
    hash_finish(&ctx, out);
}

int kb_sha256_file(const char *path, uint64_t offset, uint64_t len, char out[KB_SHA256_HEX_SIZE])
{
    struct stat st;
    int fd;
    if (kb_file_open_regular(path, &fd, &st, NULL))
        return -1;
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    static __thread unsigned char buf[1 << 16];
    uint64_t left = len ? len : UINT64_MAX;
    ssize_t got = 0;
    while (left) {
        size_t want = left < sizeof buf ? (size_t)left : sizeof buf;
        got = pread(fd, buf, want, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        sha256_update(&ctx, (size_t)got, buf);
        left -= (uint64_t)got;
        offset += (uint64_t)got;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    if (got < 0)
        return -1;
    hash_finish(&ctx, out);
    return 0;
}

void kb_sha256_hex(const void *data, size_t len, char out[KB_SHA256_HEX_SIZE])
{
    kb_sha256_hex_parts(&data, &len, 1, out);
}
