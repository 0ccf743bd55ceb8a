/* hash.c — SHA-256 hex digests through nettle. */
#include "util/hash.h"

#include <nettle/sha2.h>

void kb_sha256_hex_parts(const void *const *parts, const size_t *lens, size_t n,
                         char out[KB_SHA256_HEX_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    for (size_t i = 0; i < n; i++)
        sha256_update(&ctx, lens[i], parts[i]);
    sha256_digest(&ctx, sizeof digest, digest);
    for (size_t i = 0; i < sizeof digest; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[2 * SHA256_DIGEST_SIZE] = '\0';
}

void kb_sha256_hex(const void *data, size_t len, char out[KB_SHA256_HEX_SIZE])
{
    kb_sha256_hex_parts(&data, &len, 1, out);
}
