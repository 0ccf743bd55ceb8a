/* tokens.c — the bearer tokens of `kb serve`: KBDIR/tokens/{read,admin}, 0600, from getrandom(). */
#include "kb/kb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKENS_HEX 64

/* Group or other permission bits on a secret: refused like a 0644 key file. */
static int tokens_private(const struct stat *st)
{
    return (st->st_mode & (S_IRWXG | S_IRWXO)) == 0;
}

static int tokens_random_hex(char out[TOKENS_HEX + 1])
{
    unsigned char raw[TOKENS_HEX / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno != EINTR)
            return KB_EIO;
        if (n > 0)
            got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/* Reads one token file: exactly 64 hex characters, optionally followed by a newline. */
static int tokens_read(const char *path, char out[TOKENS_HEX + 1])
{
    char data[TOKENS_HEX + 2];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc = 0;
    if (fd < 0)
        return errno == ENOENT ? KB_ENOTFOUND : errno == ELOOP ? KB_ECONFIG : KB_EIO;
    ssize_t n = -1;
    if (fstat(fd, &st) != 0)
        rc = KB_EIO;
    else if (!S_ISREG(st.st_mode) || !tokens_private(&st))
        rc = KB_ECONFIG;
    else if ((n = read(fd, data, sizeof data)) < 0)
        rc = KB_EIO;
    close(fd);
    if (rc)
        return rc;
    if (n == TOKENS_HEX + 1 && data[TOKENS_HEX] == '\n')
        n = TOKENS_HEX;
    if (n != TOKENS_HEX || strspn(data, "0123456789abcdef") < TOKENS_HEX)
        return KB_ECONFIG;
    memcpy(out, data, TOKENS_HEX);
    out[TOKENS_HEX] = '\0';
    return 0;
}

/* Writes a fresh token to a private temporary file and links it into place, so a reader never
 * sees half a token and a token another process created first is kept (EEXIST). */
static int tokens_create(const char *path)
{
    char tmp[4200], token[TOKENS_HEX + 2];
    int rc = tokens_random_hex(token);
    if (rc)
        return rc;
    token[TOKENS_HEX] = '\n';
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
        return KB_EINVALID;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return KB_ECANTCREATE;
    if (write(fd, token, TOKENS_HEX + 1) != TOKENS_HEX + 1 || fsync(fd) != 0)
        rc = KB_EIO;
    close(fd);
    if (!rc && link(tmp, path) != 0 && errno != EEXIST)
        rc = KB_ECANTCREATE;
    unlink(tmp);
    return rc;
}

static int tokens_dir(const char *dir, int create)
{
    struct stat st;
    if (create && mkdir(dir, 0700) != 0 && errno != EEXIST)
        return errno == ENOENT ? KB_ENOTFOUND : KB_ECANTCREATE;
    if (lstat(dir, &st) != 0)
        return errno == ENOENT ? KB_ENOTFOUND : KB_EIO;
    if (!S_ISDIR(st.st_mode) || !tokens_private(&st))
        return KB_ECONFIG;
    return 0;
}

static int tokens_get(const char *dir, const char *name, int create, char *out)
{
    char path[4200], token[TOKENS_HEX + 1];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return KB_EINVALID;
    int rc = tokens_read(path, token);
    if (rc == KB_ENOTFOUND && create && !(rc = tokens_create(path)))
        rc = tokens_read(path, token);
    if (!rc && out)
        memcpy(out, token, sizeof token);
    return rc;
}

int kb_service_tokens(const char *kb_dir, int create, char read_token[65], char admin_token[65])
{
    char dir[4200];
    if (!kb_dir || !*kb_dir)
        return KB_EINVALID;
    if (snprintf(dir, sizeof dir, "%s/tokens", kb_dir) >= (int)sizeof dir)
        return KB_EINVALID;
    int rc = tokens_dir(dir, create);
    if (!rc)
        rc = tokens_get(dir, "read", create, read_token);
    if (!rc)
        rc = tokens_get(dir, "admin", create, admin_token);
    return rc;
}
