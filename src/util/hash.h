/* hash.h — content hashes (SHA-256, via nettle) for change detection. */
#ifndef KB_UTIL_HASH_H
#define KB_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define KB_SHA256_HEX_SIZE 65

/* Writes the lowercase hex SHA-256 of data[0..len) and a NUL into out. */
void kb_sha256_hex(const void *data, size_t len, char out[KB_SHA256_HEX_SIZE]);

/* The SHA-256 of the concatenation of n parts. */
void kb_sha256_hex_parts(const void *const *parts, const size_t *lens, size_t n,
                         char out[KB_SHA256_HEX_SIZE]);

/* The SHA-256 of len bytes of a regular file from offset (len 0: to the end; a shorter file
 * is hashed as far as it goes), opened as kb_file_open_regular does (util/file.h). 0, or -1
 * with errno set when the file cannot be read (ENOENT: absent; EINVAL: not a regular file). */
int kb_sha256_file(const char *path, uint64_t offset, uint64_t len,
                   char out[KB_SHA256_HEX_SIZE]);

#endif
