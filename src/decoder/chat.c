/* chat.c — native renderings of the chat template families kb recognises, equal to what
 * Jinja makes of the real templates (trim_blocks, lstrip_blocks, add_generation_prompt): the
 * shared data's rendered_expected.json is the check. */
#include "decoder/chat.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum kb_chat_format kb_chat_format_named(const char *name)
{
    if (!strcmp(name, "chatml"))
        return KB_CHAT_CHATML;
    if (!strcmp(name, "llama3"))
        return KB_CHAT_LLAMA3;
    if (!strcmp(name, "llama3.1") || !strcmp(name, "llama3.2"))
        return KB_CHAT_LLAMA32;
    return KB_CHAT_UNKNOWN;
}

static const char *find(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (!memcmp(hay + i, needle, n))
            return hay + i;
    return NULL;
}

/* The system text a ChatML template writes itself: "<|im_start|>system" and a newline (a
 * real one, CR LF, or the two characters \n inside a Jinja string) directly followed by text
 * up to "<|im_end|>", rather than by the end of the string (a message's content follows). */
static char *chatml_default_system(const char *t, size_t len)
{
    static const char head[] = "<|im_start|>system";
    for (const char *p = t; (p = find(p, len - (size_t)(p - t), head)); p++) {
        const char *q = p + sizeof head - 1;
        size_t left = len - (size_t)(q - t);
        if (left >= 2 && ((q[0] == '\\' && q[1] == 'n') || (q[0] == '\r' && q[1] == '\n')))
            q += 2;
        else if (left >= 1 && q[0] == '\n')
            q += 1;
        else
            continue;
        if (q >= t + len || *q == '\'' || *q == '"')
            continue;
        const char *end = find(q, len - (size_t)(q - t), "<|im_end|>");
        if (!end)
            return NULL;
        char *sys = malloc((size_t)(end - q) + 1);
        if (!sys)
            return NULL;
        size_t n = 0;
        for (const char *c = q; c < end; c++) { /* Jinja string escapes: \n, \', \" */
            if (*c == '\r' && c + 1 < end && c[1] == '\n')
                continue; /* Jinja reads a template's line ends as \n */
            if (*c == '\\' && c + 1 < end && strchr("n'\"\\", c[1])) {
                c++;
                sys[n++] = *c == 'n' ? '\n' : *c;
            } else {
                sys[n++] = *c;
            }
        }
        sys[n] = '\0';
        return sys;
    }
    return NULL;
}

enum kb_chat_format kb_chat_detect(const char *tmpl, size_t len, char **default_system)
{
    *default_system = NULL;
    if (find(tmpl, len, "<|im_start|>")) {
        *default_system = chatml_default_system(tmpl, len);
        return KB_CHAT_CHATML;
    }
    if (find(tmpl, len, "<|start_header_id|>"))
        return find(tmpl, len, "Cutting Knowledge Date") ? KB_CHAT_LLAMA32 : KB_CHAT_LLAMA3;
    return KB_CHAT_UNKNOWN;
}

/* ---- rendering ------------------------------------------------------------------------ */

static int add(struct kb_chat_out *o, const char *text, size_t len, int plain)
{
    if (o->n_parts == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        struct kb_chat_part *p = realloc(o->parts, cap * sizeof *p);
        if (!p)
            return -1;
        o->parts = p;
        o->cap = cap;
    }
    if (len && kb_buf_append(&o->text, text, len))
        return -1;
    o->parts[o->n_parts++] = (struct kb_chat_part){ o->text.len - len, len, plain };
    return 0;
}

static int tmpl(struct kb_chat_out *o, const char *text)
{
    return add(o, text, strlen(text), 0);
}

/* Jinja's trim: leading and trailing whitespace off. */
static int content(struct kb_chat_out *o, const char *text, int trim)
{
    size_t len = strlen(text);
    if (trim) {
        while (len && strchr(" \t\n\r\f\v", *text))
            text++, len--;
        while (len && strchr(" \t\n\r\f\v", text[len - 1]))
            len--;
    }
    return add(o, text, len, 1);
}

static int render_chatml(struct kb_chat_out *o, const struct kb_chat_in *in)
{
    int rc = 0;
    if (in->default_system && (!in->n_msgs || strcmp(in->msgs[0].role, "system")))
        rc = tmpl(o, "<|im_start|>system\n") || content(o, in->default_system, 0) ||
             tmpl(o, "<|im_end|>\n");
    for (size_t i = 0; i < in->n_msgs && !rc; i++)
        rc = tmpl(o, "<|im_start|>") || content(o, in->msgs[i].role, 0) || tmpl(o, "\n") ||
             content(o, in->msgs[i].content, 0) || tmpl(o, "<|im_end|>\n");
    if (!rc && in->add_generation_prompt)
        rc = tmpl(o, "<|im_start|>assistant\n");
    return rc;
}

static int llama3_turn(struct kb_chat_out *o, const struct kb_chat_msg *m)
{
    return tmpl(o, "<|start_header_id|>") || content(o, m->role, 0) ||
           tmpl(o, "<|end_header_id|>\n\n") || content(o, m->content, 1) || tmpl(o, "<|eot_id|>");
}

static int render_llama3(struct kb_chat_out *o, const struct kb_chat_in *in)
{
    int rc = in->bos_text ? tmpl(o, in->bos_text) : 0;
    size_t first = 0;
    if (!rc && in->format == KB_CHAT_LLAMA32) {
        char today[32];
        const char *date = in->date;
        if (!date) {
            time_t now = time(NULL);
            struct tm tm;
            strftime(today, sizeof today, "%d %b %Y", gmtime_r(&now, &tm));
            date = today;
        }
        int has_system = in->n_msgs && !strcmp(in->msgs[0].role, "system");
        first = has_system ? 1 : 0;
        rc = tmpl(o, "<|start_header_id|>system<|end_header_id|>\n\n"
                     "Cutting Knowledge Date: December 2023\nToday Date: ") ||
             tmpl(o, date) || tmpl(o, "\n\n") ||
             content(o, has_system ? in->msgs[0].content : "", 1) || tmpl(o, "<|eot_id|>");
    }
    for (size_t i = first; i < in->n_msgs && !rc; i++)
        rc = llama3_turn(o, &in->msgs[i]);
    if (!rc && in->add_generation_prompt)
        rc = tmpl(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return rc;
}

int kb_chat_render(struct kb_chat_out *out, const struct kb_chat_in *in, struct kb_err *err)
{
    memset(out, 0, sizeof *out);
    out->text = (struct kb_buf)KB_BUF_INIT;
    int rc;
    switch (in->format) {
    case KB_CHAT_CHATML: rc = render_chatml(out, in); break;
    case KB_CHAT_LLAMA3: case KB_CHAT_LLAMA32: rc = render_llama3(out, in); break;
    default:
        return kb_err_set(err, KB_EINVALID, "no chat format to render with");
    }
    if (rc) {
        kb_chat_out_free(out);
        return kb_err_set(err, KB_ENOMEM, "out of memory rendering the chat");
    }
    return 0;
}

void kb_chat_out_free(struct kb_chat_out *out)
{
    kb_buf_free(&out->text);
    free(out->parts);
    out->parts = NULL;
    out->n_parts = out->cap = 0;
}
