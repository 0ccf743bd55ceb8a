/* hash.c — SHA-256 hex digests through nettle. */
#include "util/hash.h"

#include <nettle/sha2.h>
#include <stdint.h>
#include <stdio.h>

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
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    static __thread unsigned char buf[1 << 16];
    int rc = offset && fseeko(f, (off_t)offset, SEEK_SET) != 0 ? -1 : 0;
    uint64_t left = len ? len : UINT64_MAX;
    while (!rc && left) {
        size_t want = left < sizeof buf ? (size_t)left : sizeof buf;
        size_t got = fread(buf, 1, want, f);
        sha256_update(&ctx, got, buf);
        left -= got;
        if (got < want) {
            rc = ferror(f) ? -1 : 0;
            break;
        }
    }
    fclose(f);
    if (!rc)
        hash_finish(&ctx, out);
    return rc;
}

void kb_sha256_hex(const void *data, size_t len, char out[KB_SHA256_HEX_SIZE])
{
    kb_sha256_hex_parts(&data, &len, 1, out);
}
