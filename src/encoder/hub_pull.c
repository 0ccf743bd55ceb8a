/* hub_pull.c — downloading a model's files from the Hugging Face hub (libcurl) into kb's cache.
 *
 * The hub's protocol, as huggingface_hub uses it: GET {endpoint}/api/models/{repo}/revision/
 * {rev}?blobs=true answers the commit ("sha") and the files ("siblings": rfilename, size, and
 * lfs {sha256, size} for large files); GET {endpoint}/{repo}/resolve/{commit}/{path} serves a
 * file, redirecting large (LFS) files to a CDN with X-Linked-Etag (their SHA-256) and
 * X-Linked-Size. Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound,
 * GatedRepo). */
#include "encoder/hub.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kb/kb.h"
#include "util/buf.h"
#include "util/path.h"

/* The files kb reads, in the order they are fetched (the large one last). */
static const char *const pull_wanted[] = {
    "config.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
    "tokenizer.json", "modules.json", "config_sentence_transformers.json",
    "sentence_bert_config.json", "1_Pooling/config.json", "model.safetensors",
};
#define PULL_N_WANTED (sizeof pull_wanted / sizeof *pull_wanted)
#define PULL_MAX_TRIES 4              /* an interrupted transfer is resumed up to 3 times */
#define PULL_API_MAX ((size_t)8 << 20) /* cap on the API answer */
#define PULL_SIZE_UNKNOWN UINT64_MAX

struct pull_file {
    const char *path;          /* in the repo: one of pull_wanted */
    uint64_t size;             /* announced by the hub, or PULL_SIZE_UNKNOWN */
    char sha256[65];           /* announced for LFS files, else "" */
    char actual_sha256[65];    /* of the file written */
};

struct pull {
    const char *name;
    const kb_pull_options *opts;
    const char *revision;
    char *endpoint;            /* without a trailing slash */
    char *cache_dir;
    char *dir;                 /* the model folder */
    char commit[41];
    struct pull_file files[PULL_N_WANTED];
    size_t n_files;
    CURL *curl;
    struct curl_slist *headers; /* Authorization, when a token is set */
    int lock_fd;
    char curl_msg[CURL_ERROR_SIZE];
    struct kb_err *err;
};

/* One HTTP exchange: what the headers said and where the body goes. */
struct pull_http {
    struct pull *p;
    long status;               /* of the last response, after redirects */
    char linked_etag[80], error_code[48], error_message[120];
    uint64_t range_start;      /* from Content-Range of a 206 */
    int has_range;
    struct kb_buf *body;       /* API answers go here ... */
    FILE *file;                /* ... downloads are appended here */
    const char *file_path;
    struct pull_file *pf;
    uint64_t done;             /* bytes in the file */
    int started, bad_range, write_errno;
};

/* ---- HTTP ------------------------------------------------------------------------------ */

/* When `line` is "Name: value", copies the trimmed value (quotes and a W/ prefix removed). */
static int pull_header(const char *line, size_t len, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n))
        return 0;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    if (end - v >= 2 && v[0] == 'W' && v[1] == '/')
        v += 2;
    while (end > v && strchr(" \t\r\n\"", end[-1]))
        end--;
    if (v < end && *v == '"')
        v++;
    snprintf(out, size, "%.*s", (int)(end - v), v);
    return 1;
}

static size_t pull_on_header(char *line, size_t size, size_t n, void *payload)
{
    struct pull_http *h = payload;
    size_t len = size * n;
    char value[80];
    if (len > 5 && !strncmp(line, "HTTP/", 5)) {
        const char *sp = memchr(line, ' ', len);
        h->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        h->has_range = 0;
    } else if (pull_header(line, len, "Content-Range", value, sizeof value)) {
        h->has_range = !strncmp(value, "bytes ", 6) && value[6] >= '0' && value[6] <= '9';
        h->range_start = h->has_range ? strtoull(value + 6, NULL, 10) : 0;
    } else if (!pull_header(line, len, "X-Linked-Etag", h->linked_etag, sizeof h->linked_etag) &&
               !pull_header(line, len, "X-Error-Code", h->error_code, sizeof h->error_code)) {
        pull_header(line, len, "X-Error-Message", h->error_message, sizeof h->error_message);
    }
    return len;
}

static size_t pull_on_body(char *data, size_t size, size_t n, void *payload)
{
    struct pull_http *h = payload;
    size_t len = size * n;
    return kb_buf_append(h->body, data, len) ? 0 : len;
}

/* The first bytes of a download: append after a 206 that starts where the file ends; start
 * over after a 200 (the server ignored Range). Returns 0, or -1 to abort. */
static int pull_begin_file(struct pull_http *h)
{
    if (h->status == 206 && h->has_range && h->range_start == h->done)
        return 0;
    if (h->status == 206) {
        h->bad_range = 1;
        return -1;
    }
    if (h->done == 0)
        return 0;
    if (fflush(h->file) || ftruncate(fileno(h->file), 0)) {
        h->write_errno = errno;
        return -1;
    }
    h->done = 0;
    return 0;
}

static size_t pull_on_file(char *data, size_t size, size_t n, void *payload)
{
    struct pull_http *h = payload;
    size_t len = size * n;
    if (h->status < 200 || h->status >= 300)
        return len; /* an error page: dropped, the status says it all */
    if (!h->started && pull_begin_file(h))
        return 0;
    h->started = 1;
    if (fwrite(data, 1, len, h->file) != len) {
        h->write_errno = errno ? errno : EIO;
        return 0;
    }
    h->done += len;
    const kb_pull_options *o = h->p->opts;
    if (o && o->on_progress)
        o->on_progress(h->pf->path, h->done,
                       h->pf->size == PULL_SIZE_UNKNOWN ? 0 : h->pf->size, o->payload);
    return len;
}

/* GETs url (redirects followed) into h; `range` ("N-") may be NULL. */
static CURLcode pull_perform(struct pull *p, const char *url, struct pull_http *h,
                             const char *range)
{
    CURL *c = p->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L); /* abort below 1 KB/s ... */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);    /* ... for 30 s */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kb (model pull)");
    /* curl does not send this header to another host after a redirect (the CDN). */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, p->curl_msg);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, pull_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h->file ? pull_on_file : pull_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    if (range)
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    p->curl_msg[0] = '\0';
    return curl_easy_perform(c);
}

static int pull_interrupted(CURLcode crc)
{
    return crc == CURLE_PARTIAL_FILE || crc == CURLE_RECV_ERROR || crc == CURLE_SEND_ERROR ||
           crc == CURLE_GOT_NOTHING || crc == CURLE_OPERATION_TIMEDOUT ||
           crc == CURLE_HTTP2_STREAM;
}

/* 401/403, read as huggingface_hub does: the hub answers 401 for a repo that does not exist
 * or that the caller may not see (RepoNotFound, or no code), "Invalid credentials" for a bad
 * token, GatedRepo for a model whose terms were not accepted. */
static int pull_auth_error(struct pull *p, const struct pull_http *h)
{
    const char *name = p->name;
    int has_token = p->headers != NULL;
    if (!strcasecmp(h->error_code, "GatedRepo"))
        return kb_err_set(p->err, KB_EAUTH, "%s: the model is gated (HTTP %ld): accept its terms "
                          "on its hub page, then set HF_TOKEN to a token of that account", name,
                          h->status);
    if (strstr(h->error_message, "Invalid credentials"))
        return kb_err_set(p->err, KB_EAUTH, "%s: the hub refused the token in HF_TOKEN (HTTP "
                          "%ld: invalid credentials)", name, h->status);
    if (h->status == 403)
        return kb_err_set(p->err, KB_EAUTH, "%s: the hub refused access (HTTP 403)%s", name,
                          has_token ? "; the token in HF_TOKEN has no access to it"
                                    : "; set HF_TOKEN to a token that can read it");
    return kb_err_set(p->err, KB_ENOTFOUND, "%s: no such model on the hub, or it is private "
                      "(HTTP 401)%s", name, has_token ? " and the token in HF_TOKEN cannot read it"
                      : "; set HF_TOKEN if you have access");
}

/* An HTTP error status as a kb status with a one-line message; `what` is the file or NULL. */
static int pull_http_error(struct pull *p, const struct pull_http *h, const char *what)
{
    const char *code = h->error_code, *name = p->name;
    if (h->status == 404 && !strcasecmp(code, "RevisionNotFound"))
        return kb_err_set(p->err, KB_ENOTFOUND, "%s: no revision '%s' on the hub", name,
                          p->revision);
    if (h->status == 404 && what && strcasecmp(code, "RepoNotFound"))
        return kb_err_set(p->err, KB_ENOTFOUND, "%s: %s is missing at commit %.12s (HTTP 404)",
                          name, what, p->commit);
    if (h->status == 404)
        return kb_err_set(p->err, KB_ENOTFOUND, "%s: no such model on the hub (HTTP 404)", name);
    if (h->status == 401 || h->status == 403)
        return pull_auth_error(p, h);
    if (h->status == 429 || h->status >= 500)
        return kb_err_set(p->err, KB_EUNAVAILABLE, "%s: the hub answered HTTP %ld; try again "
                          "later", what ? what : name, h->status);
    return kb_err_set(p->err, KB_ERROR, "%s: unexpected answer from the hub: HTTP %ld",
                      what ? what : name, h->status);
}

/* Turns the outcome of pull_perform into 0 or an error with its message. */
static int pull_check(struct pull *p, const struct pull_http *h, CURLcode crc, const char *what)
{
    const char *why = p->curl_msg[0] ? p->curl_msg : curl_easy_strerror(crc);
    if (crc == CURLE_WRITE_ERROR && h->write_errno)
        return kb_err_set(p->err, KB_EIO, "%s: cannot write: %s", h->file_path,
                          strerror(h->write_errno));
    if (crc == CURLE_WRITE_ERROR && h->body)
        return kb_err_set(p->err, KB_EFORMAT, "%s: the hub's answer is over %zu bytes",
                          p->name, PULL_API_MAX);
    if (crc != CURLE_OK && what && pull_interrupted(crc))
        return kb_err_set(p->err, KB_EUNAVAILABLE, "%s: download interrupted after %llu bytes "
                          "(%s); run the command again to resume", what,
                          (unsigned long long)h->done, why);
    if (crc != CURLE_OK)
        return kb_err_set(p->err, KB_EUNAVAILABLE, "cannot reach the model hub at %s: %s",
                          p->endpoint, why);
    if (h->status >= 200 && h->status < 300)
        return 0;
    return pull_http_error(p, h, what);
}

/* ---- the model's commit and files ---------------------------------------------------- */

static int pull_is_hex(const char *s, size_t len)
{
    if (!s || strlen(s) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return 0;
    return 1;
}

/* Records a sibling of the API answer that kb wants. */
static void pull_add_file(struct pull *p, const char *path, const cJSON *sibling)
{
    struct pull_file *f = &p->files[p->n_files++];
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(sibling, "size");
    const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(sibling, "lfs");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(lfs, "sha256");
    const cJSON *lfs_size = cJSON_GetObjectItemCaseSensitive(lfs, "size");
    memset(f, 0, sizeof *f);
    f->path = path;
    f->size = PULL_SIZE_UNKNOWN;
    if (cJSON_IsNumber(lfs_size) && lfs_size->valuedouble >= 0)
        f->size = (uint64_t)lfs_size->valuedouble;
    else if (cJSON_IsNumber(size) && size->valuedouble >= 0)
        f->size = (uint64_t)size->valuedouble;
    if (pull_is_hex(cJSON_GetStringValue(sha), 64))
        memcpy(f->sha256, sha->valuestring, 65);
}

static const cJSON *pull_find_sibling(const cJSON *siblings, const char *path)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, siblings) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "rfilename"));
        if (name && !strcmp(name, path))
            return s;
    }
    return NULL;
}

static int pull_has(const struct pull *p, const char *path)
{
    for (size_t i = 0; i < p->n_files; i++)
        if (!strcmp(p->files[i].path, path))
            return 1;
    return 0;
}

static int pull_parse_info(struct pull *p, const char *text)
{
    cJSON *doc = cJSON_Parse(text);
    const char *sha = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "sha"));
    const cJSON *siblings = cJSON_GetObjectItemCaseSensitive(doc, "siblings");
    int rc = 0;
    if (!pull_is_hex(sha, 40) || !cJSON_IsArray(siblings)) {
        rc = kb_err_set(p->err, KB_EFORMAT, "%s: the hub's answer has no commit or file list",
                        p->name);
        goto done;
    }
    memcpy(p->commit, sha, 41);
    for (size_t i = 0; i < PULL_N_WANTED; i++) {
        const cJSON *s = pull_find_sibling(siblings, pull_wanted[i]);
        if (s)
            pull_add_file(p, pull_wanted[i], s);
    }
    if (!pull_has(p, "model.safetensors"))
        rc = kb_err_set(p->err, KB_EFORMAT, "%s has no model.safetensors (kb reads only "
                        "safetensors weights)", p->name);
    else if (!pull_has(p, "config.json"))
        rc = kb_err_set(p->err, KB_EFORMAT, "%s has no config.json", p->name);
    else if (!pull_has(p, "vocab.txt") && !pull_has(p, "tokenizer.json"))
        rc = kb_err_set(p->err, KB_EFORMAT, "%s has no vocab.txt or tokenizer.json (kb reads "
                        "WordPiece tokenizers)", p->name);
done:
    cJSON_Delete(doc);
    return rc;
}

static int pull_fetch_info(struct pull *p)
{
    struct kb_buf url = KB_BUF_INIT, body = KB_BUF_INIT;
    char *rev = curl_easy_escape(p->curl, p->revision, 0);
    struct pull_http h = { .p = p, .body = &body };
    int rc;
    body.max = PULL_API_MAX;
    if (!rev || kb_buf_printf(&url, "%s/api/models/%s/revision/%s?blobs=true", p->endpoint,
                              p->name, rev)) {
        rc = kb_err_set(p->err, KB_ENOMEM, "out of memory");
        goto done;
    }
    rc = pull_check(p, &h, pull_perform(p, url.data, &h, NULL), NULL);
    if (rc == 0)
        rc = pull_parse_info(p, body.data ? body.data : "");
done:
    curl_free(rev);
    kb_buf_free(&url);
    kb_buf_free(&body);
    return rc;
}

/* ---- one file ------------------------------------------------------------------------- */

/* SHA-256 and size of a file; -1 when it cannot be read. */
static int pull_hash_file(const char *path, char hex[65], uint64_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE], chunk[1 << 16];
    size_t n;
    sha256_init(&ctx);
    *size = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        sha256_update(&ctx, n, chunk);
        *size += n;
    }
    int bad = ferror(f);
    fclose(f);
    sha256_digest(&ctx, sizeof digest, digest);
    for (size_t i = 0; i < sizeof digest; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return bad ? -1 : 0;
}

/* Checks a finished .part against the announced size and SHA-256; a mismatch deletes it. */
static int pull_verify(struct pull *p, struct pull_file *f, const char *part)
{
    uint64_t size;
    if (pull_hash_file(part, f->actual_sha256, &size))
        return kb_err_set(p->err, KB_EIO, "%s: cannot read: %s", part, strerror(errno));
    if (f->size != PULL_SIZE_UNKNOWN && size != f->size) {
        unlink(part);
        return kb_err_set(p->err, KB_EFORMAT, "%s: got %llu bytes, the hub announced %llu; the "
                          "download was deleted", f->path, (unsigned long long)size,
                          (unsigned long long)f->size);
    }
    if (f->sha256[0] && strcmp(f->sha256, f->actual_sha256)) {
        unlink(part);
        return kb_err_set(p->err, KB_EFORMAT, "%s: checksum mismatch (SHA-256 %.16s..., the hub "
                          "announced %.16s...); the download was deleted", f->path,
                          f->actual_sha256, f->sha256);
    }
    return 0;
}

/* One GET of a file into its .part, resuming after what is there. Sets *retry when another
 * try may succeed (the transfer broke off, or the .part did not fit the server's range). */
static int pull_attempt(struct pull *p, struct pull_file *f, const char *url, const char *part,
                        int *retry)
{
    FILE *fp = fopen(part, "ab");
    struct stat st;
    char range[32];
    int rc = 0;
    *retry = 0;
    if (!fp || fstat(fileno(fp), &st)) {
        rc = kb_err_set(p->err, KB_EIO, "%s: cannot write: %s", part, strerror(errno));
        goto done;
    }
    struct pull_http h = { .p = p, .file = fp, .file_path = part, .pf = f,
                           .done = (uint64_t)st.st_size };
    if (f->size != PULL_SIZE_UNKNOWN && h.done > f->size && ftruncate(fileno(fp), 0) == 0)
        h.done = 0;
    if (f->size != PULL_SIZE_UNKNOWN && h.done == f->size)
        goto done; /* complete: a crash came between download and rename */
    snprintf(range, sizeof range, "%llu-", (unsigned long long)h.done);
    CURLcode crc = pull_perform(p, url, &h, h.done ? range : NULL);
    if (h.bad_range || h.status == 416) {
        /* The server's idea of the range does not fit our .part: start over. */
        rc = kb_err_set(p->err, KB_EUNAVAILABLE, "%s: the server refused to resume", f->path);
        *retry = ftruncate(fileno(fp), 0) == 0;
        goto done;
    }
    rc = pull_check(p, &h, crc, f->path);
    *retry = rc == KB_EUNAVAILABLE && pull_interrupted(crc);
    if (rc == 0 && !f->sha256[0] && pull_is_hex(h.linked_etag, 64))
        memcpy(f->sha256, h.linked_etag, 65); /* LFS files: X-Linked-Etag is the SHA-256 */
done:
    if (fp && (fflush(fp) || fsync(fileno(fp))) && rc == 0)
        rc = kb_err_set(p->err, KB_EIO, "%s: cannot write: %s", part, strerror(errno));
    if (fp && fclose(fp) && rc == 0)
        rc = kb_err_set(p->err, KB_EIO, "%s: cannot write: %s", part, strerror(errno));
    return rc;
}

/* 1 when `path` already holds f's content (an LFS file kept from an earlier commit). */
static int pull_reusable(struct pull_file *f, const char *path)
{
    uint64_t size;
    if (!f->sha256[0] || pull_hash_file(path, f->actual_sha256, &size))
        return 0;
    return (f->size == PULL_SIZE_UNKNOWN || size == f->size) &&
           !strcmp(f->sha256, f->actual_sha256);
}

/* mkdir -p */
static int pull_mkdirs(const char *dir, struct kb_err *err)
{
    char *path = strdup(dir);
    if (!path)
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    int rc = 0;
    for (char *s = strchr(path + 1, '/');; s = strchr(s + 1, '/')) {
        if (s)
            *s = '\0';
        if (mkdir(path, 0755) && errno != EEXIST) {
            rc = kb_err_set(err, KB_ECANTCREATE, "%s: cannot create: %s", path, strerror(errno));
            break;
        }
        if (!s)
            break;
        *s = '/';
    }
    free(path);
    return rc;
}

static int pull_download(struct pull *p, struct pull_file *f)
{
    struct kb_buf url = KB_BUF_INIT, part = KB_BUF_INIT;
    char *final = kb_path_join(p->dir, f->path), *slash;
    int rc = 0, retry = 0;
    if (!final || kb_buf_printf(&part, "%s.part", final) ||
        kb_buf_printf(&url, "%s/%s/resolve/%s/%s", p->endpoint, p->name, p->commit, f->path)) {
        rc = kb_err_set(p->err, KB_ENOMEM, "out of memory");
        goto done;
    }
    if (pull_reusable(f, final))
        goto done;
    if ((slash = strrchr(part.data, '/')) && slash > part.data + strlen(p->dir)) {
        *slash = '\0';
        rc = pull_mkdirs(part.data, p->err);
        *slash = '/';
        if (rc)
            goto done;
    }
    for (int tries = 0; tries < PULL_MAX_TRIES; tries++) {
        rc = pull_attempt(p, f, url.data, part.data, &retry);
        if (!retry)
            break;
    }
    if (rc == 0)
        rc = pull_verify(p, f, part.data);
    if (rc == 0 && rename(part.data, final))
        rc = kb_err_set(p->err, KB_EIO, "%s: cannot rename: %s", final, strerror(errno));
done:
    free(final);
    kb_buf_free(&url);
    kb_buf_free(&part);
    return rc;
}

/* ---- the manifest ---------------------------------------------------------------------- */

static cJSON *pull_read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct kb_buf b = KB_BUF_INIT;
    char chunk[4096];
    size_t n;
    b.max = (size_t)1 << 20;
    while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (kb_buf_append(&b, chunk, n))
            break;
    cJSON *doc = f && b.data ? cJSON_Parse(b.data) : NULL;
    if (f)
        fclose(f);
    kb_buf_free(&b);
    return doc;
}

/* 1 when the folder's manifest names p's commit and its files are there with their sizes. */
static int pull_up_to_date(struct pull *p)
{
    char *path = kb_path_join(p->dir, KB_HUB_MANIFEST);
    cJSON *doc = path ? pull_read_json(path) : NULL, *file;
    const char *commit = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "commit"));
    int ok = commit && !strcmp(commit, p->commit) && kb_hub_has_model_files(p->dir);
    cJSON_ArrayForEach(file, cJSON_GetObjectItemCaseSensitive(doc, "files")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(file, "path"));
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(file, "size");
        char *fp = name && ok ? kb_path_join(p->dir, name) : NULL;
        struct stat st;
        ok = fp && cJSON_IsNumber(size) && stat(fp, &st) == 0 &&
             (double)st.st_size == size->valuedouble;
        free(fp);
    }
    cJSON_Delete(doc);
    free(path);
    return ok;
}

/* Makes the folder incomplete before it changes: the manifest goes first, then the files of
 * kb's list that this commit does not have. */
static int pull_forget(struct pull *p)
{
    char *path = kb_path_join(p->dir, KB_HUB_MANIFEST);
    int rc = 0;
    if (!path)
        return kb_err_set(p->err, KB_ENOMEM, "out of memory");
    if (unlink(path) == 0) {
        int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* the removal must stick */
        if (dfd >= 0 && fsync(dfd))
            rc = kb_err_set(p->err, KB_EIO, "%s: cannot sync: %s", p->dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
    } else if (errno != ENOENT) {
        rc = kb_err_set(p->err, KB_EIO, "%s: cannot remove: %s", path, strerror(errno));
    }
    free(path);
    for (size_t i = 0; rc == 0 && i < PULL_N_WANTED; i++) {
        char *stale = pull_has(p, pull_wanted[i]) ? NULL : kb_path_join(p->dir, pull_wanted[i]);
        if (stale)
            unlink(stale);
        free(stale);
    }
    return rc;
}

static int pull_write_manifest(struct pull *p)
{
    cJSON *doc = cJSON_CreateObject(), *files = cJSON_CreateArray();
    cJSON_AddStringToObject(doc, "name", p->name);
    cJSON_AddStringToObject(doc, "revision", p->revision);
    cJSON_AddStringToObject(doc, "commit", p->commit);
    cJSON_AddStringToObject(doc, "endpoint", p->endpoint);
    for (size_t i = 0; i < p->n_files; i++) {
        const struct pull_file *f = &p->files[i];
        char *path = kb_path_join(p->dir, f->path);
        struct stat st;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", f->path);
        cJSON_AddNumberToObject(o, "size", path && stat(path, &st) == 0 ? (double)st.st_size : 0);
        cJSON_AddStringToObject(o, "sha256", f->actual_sha256);
        cJSON_AddItemToArray(files, o);
        free(path);
    }
    cJSON_AddItemToObject(doc, "files", files);
    char *text = cJSON_Print(doc), *path = kb_path_join(p->dir, KB_HUB_MANIFEST);
    int rc = text && path ? kb_hub_write_atomic(path, text, strlen(text), p->err)
                          : kb_err_set(p->err, KB_ENOMEM, "out of memory");
    cJSON_Delete(doc);
    cJSON_free(text);
    free(path);
    return rc;
}

/* ---- the pull ------------------------------------------------------------------------- */

static const char *pull_env(const char *a, const char *b)
{
    const char *v = getenv(a);
    if (!v || !*v)
        v = b ? getenv(b) : NULL;
    return v && *v ? v : NULL;
}

/* The Authorization header from HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN). */
static int pull_auth(struct pull *p)
{
    const char *token = pull_env("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN");
    if (!token)
        return 0;
    for (const char *c = token; *c; c++)
        if ((unsigned char)*c < 0x21 || *c == 0x7f)
            return kb_err_set(p->err, KB_EINVALID, "HF_TOKEN holds spaces or control "
                              "characters");
    struct kb_buf b = KB_BUF_INIT;
    int rc = kb_buf_printf(&b, "Authorization: Bearer %s", token);
    if (rc == 0 && !(p->headers = curl_slist_append(NULL, b.data)))
        rc = KB_ENOMEM;
    /* The token is wiped from our copy; curl keeps its own in the list. */
    if (b.data)
        memset(b.data, 0, b.len);
    kb_buf_free(&b);
    return rc ? kb_err_set(p->err, KB_ENOMEM, "out of memory") : 0;
}

static int pull_init(struct pull *p, const char *name, const kb_pull_options *opts)
{
    const char *endpoint = opts && opts->endpoint ? opts->endpoint
                           : pull_env("KB_HF_ENDPOINT", "HF_ENDPOINT");
    int rc = kb_hub_check_name(name, p->err);
    if (rc)
        return rc;
    if (opts && opts->version != KB_PULL_OPTIONS_VERSION)
        return kb_err_set(p->err, KB_EINVALID, "kb_pull_options: unknown version %u",
                          opts->version);
    p->name = name;
    p->opts = opts;
    p->revision = opts && opts->revision && *opts->revision ? opts->revision : "main";
    p->endpoint = strdup(endpoint ? endpoint : KB_HUB_DEFAULT_ENDPOINT);
    p->cache_dir = opts && opts->cache_dir ? strdup(opts->cache_dir) : kb_hub_cache_dir();
    p->curl = curl_easy_init();
    if (!p->endpoint || !p->cache_dir || !p->curl)
        return kb_err_set(p->err, KB_ENOMEM, "out of memory");
    for (size_t n = strlen(p->endpoint); n > 0 && p->endpoint[n - 1] == '/'; n--)
        p->endpoint[n - 1] = '\0';
    return pull_auth(p);
}

/* Creates and locks the model folder (one puller at a time). */
static int pull_open_dir(struct pull *p)
{
    char *lock = NULL;
    int rc = 0;
    if (!(p->dir = kb_hub_model_dir(p->cache_dir, p->name)) ||
        !(lock = kb_path_join(p->dir, ".lock")))
        return kb_err_set(p->err, KB_ENOMEM, "out of memory");
    if ((rc = pull_mkdirs(p->dir, p->err)))
        goto done;
    p->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (p->lock_fd < 0)
        rc = kb_err_set(p->err, KB_ECANTCREATE, "%s: cannot create: %s", lock, strerror(errno));
    else if (flock(p->lock_fd, LOCK_EX | LOCK_NB))
        rc = kb_err_set(p->err, errno == EWOULDBLOCK ? KB_ELOCKED : KB_EIO,
                        "%s: another kb is pulling this model (%s)", p->dir, strerror(errno));
done:
    free(lock);
    return rc;
}

static int pull_run(struct pull *p)
{
    int rc = pull_fetch_info(p);
    if (rc == 0)
        rc = pull_open_dir(p);
    if (rc || pull_up_to_date(p))
        return rc;
    if ((rc = pull_forget(p)))
        return rc;
    for (size_t i = 0; rc == 0 && i < p->n_files; i++)
        rc = pull_download(p, &p->files[i]);
    if (rc == 0)
        rc = kb_hub_write_settings(p->dir, p->name, p->err);
    if (rc == 0)
        rc = pull_write_manifest(p); /* last: from here on the folder is complete */
    return rc;
}

int kb_hub_pull(char **out_dir, const char *name, const kb_pull_options *opts,
                struct kb_err *err)
{
    struct pull p = { .err = err, .lock_fd = -1 };
    *out_dir = NULL;
    int rc = pull_init(&p, name, opts);
    if (rc == 0)
        rc = pull_run(&p);
    if (rc == 0 && !(*out_dir = kb_path_absolute(p.dir)))
        rc = kb_err_set(err, KB_ENOMEM, "out of memory");
    if (p.lock_fd >= 0)
        close(p.lock_fd);
    curl_slist_free_all(p.headers);
    curl_easy_cleanup(p.curl);
    free(p.endpoint);
    free(p.cache_dir);
    free(p.dir);
    return rc;
}
