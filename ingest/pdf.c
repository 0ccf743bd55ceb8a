/* pdf.c — PDF text per page through the pdftotext program (poppler-utils), run in its own
 * process with a time limit and an output cap, so a hostile PDF can neither hang nor crash
 * kb, and poppler's GPL code stays out of our address space (docs/FORMATS.md). */
#define _GNU_SOURCE
#include "ingest/doc_int.h"
#include "util/utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PDF_TIMEOUT_MS 60000
#define PDF_MAX_STDERR 4096

extern char **environ;

struct pdf_run {
    struct kb_buf out, errs;
    int status;         /* from waitpid */
    int timed_out;
};

static long long pdf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads both pipes until they close or the deadline passes. */
static void pdf_drain(struct pdf_run *r, int out_fd, int err_fd)
{
    struct pollfd fds[2] = { { out_fd, POLLIN, 0 }, { err_fd, POLLIN, 0 } };
    struct kb_buf *bufs[2] = { &r->out, &r->errs };
    long long deadline = pdf_now_ms() + PDF_TIMEOUT_MS;
    char chunk[65536];
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
        long long left = deadline - pdf_now_ms();
        if (left <= 0) {
            r->timed_out = 1;
            return;
        }
        if (poll(fds, 2, (int)left) < 0 && errno != EINTR)
            return;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR)
                continue;
            /* Past its cap stderr is read and dropped; stdout is closed, so the child gets
             * SIGPIPE, and the file is refused as too large. */
            int full = n > 0 && kb_buf_append(bufs[i], chunk, (size_t)n) && i == 0;
            if (n <= 0 || full) {
                r->timed_out = full ? 2 : r->timed_out;
                close(fds[i].fd);
                fds[i].fd = -1;
            }
        }
    }
}

static int pdf_spawn(struct pdf_run *r, const char *path, struct kb_err *err)
{
    const char *tool = getenv("KB_PDFTOTEXT");
    tool = tool && *tool ? tool : "pdftotext";
    char *argv[] = { (char *)tool, "-enc", "UTF-8", "-eol", "unix", "--", (char *)path, "-", NULL };
    int out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 }, rc = 0;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    pid_t pid = -1;
    if (pipe2(out_p, O_CLOEXEC) || pipe2(err_p, O_CLOEXEC)) {
        rc = kb_err_set(err, KB_EIO, "pipe: %s", strerror(errno));
        goto done;
    }
    posix_spawn_file_actions_adddup2(&fa, out_p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err_p[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    int e = posix_spawnp(&pid, tool, &fa, NULL, argv, environ);
    if (e) {
        rc = kb_err_set(err, KB_EFORMAT, "PDF needs the pdftotext program (poppler-utils): %s",
                        strerror(e));
        goto done;
    }
    close(out_p[1]);
    close(err_p[1]);
    out_p[1] = err_p[1] = -1;
    pdf_drain(r, out_p[0], err_p[0]);
    if (r->timed_out)
        kill(pid, SIGKILL);
    while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
        ;
done:
    for (int i = 0; i < 2; i++) {
        if (out_p[i] >= 0)
            close(out_p[i]);
        if (err_p[i] >= 0)
            close(err_p[i]);
    }
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Turns pdftotext's failure into a skip reason. */
static int pdf_failure(const struct pdf_run *r, struct kb_err *err)
{
    const char *msg = r->errs.data ? r->errs.data : "";
    if (r->timed_out == 1)
        return kb_err_set(err, KB_EFORMAT, "PDF text extraction took over %d s",
                          PDF_TIMEOUT_MS / 1000);
    if (r->timed_out == 2)
        return kb_err_set(err, KB_ENOMEM, "PDF text larger than %zu bytes", r->out.max);
    if (strstr(msg, "Incorrect password"))
        return kb_err_set(err, KB_EFORMAT, "encrypted PDF (needs a password)");
    if (strstr(msg, "Copying of text") || (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 3))
        return kb_err_set(err, KB_EFORMAT, "copy-protected PDF (text extraction not permitted)");
    if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 127)
        return kb_err_set(err, KB_EFORMAT, "PDF needs the pdftotext program (poppler-utils)");
    const char *line = strstr(msg, "Error");
    size_t n = line ? strcspn(line, "\n") : 0;
    return kb_err_set(err, KB_EFORMAT, "damaged PDF (pdftotext: %.*s)",
                      (int)(n ? (n > 160 ? 160 : n) : 7), n ? line : "failed");
}

/* One mark per page; pdftotext ends each page with a form feed. */
static int pdf_pages(struct kb_doc *doc, const char *text, size_t len, struct kb_err *err)
{
    struct kb_docw w;
    kb_docw_init(&w, doc);
    uint32_t page = 1;
    for (size_t pos = 0; pos < len && w.rc == 0; page++) {
        const char *ff = memchr(text + pos, '\f', len - pos);
        size_t end = ff ? (size_t)(ff - text) : len;
        size_t blank = pos;
        while (blank < end && strchr(" \t\r\n", text[blank]))
            blank++;
        if (blank < end) {
            kb_docw_break(&w);
            char label[32];
            snprintf(label, sizeof label, "page %u", page);
            kb_docw_mark(&w, page, label);
            kb_docw_raw(&w, text + pos, end - pos);
        }
        pos = ff ? end + 1 : len;
    }
    if (w.rc == 0 && w.buf.len == 0) {
        kb_docw_free(&w);
        return kb_err_set(err, KB_EFORMAT, "no text in PDF (scanned or image-only; kb does no OCR)");
    }
    int rc = kb_docw_finish(&w, err);
    kb_docw_free(&w);
    return rc;
}

int kb_pdf_read(struct kb_doc *doc, const char *path, size_t max_text, struct kb_err *err)
{
    struct pdf_run r = { KB_BUF_INIT, KB_BUF_INIT, 0, 0 };
    r.out.max = max_text;
    r.errs.max = PDF_MAX_STDERR;
    int rc = pdf_spawn(&r, path, err);
    if (rc == 0 && (r.timed_out || !WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0))
        rc = pdf_failure(&r, err);
    if (rc == 0 && r.out.len && !kb_utf8_valid(r.out.data, r.out.len, &(size_t){ 0 }))
        rc = kb_err_set(err, KB_EFORMAT, "pdftotext gave text that is not UTF-8");
    if (rc == 0)
        rc = pdf_pages(doc, r.out.data ? r.out.data : "", r.out.len, err);
    kb_buf_free(&r.out);
    kb_buf_free(&r.errs);
    return rc;
}
