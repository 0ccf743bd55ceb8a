/* zipdoc.c — DOCX, ODT and EPUB: zip entries read in memory (never extracted) under caps on
 * entry count, sizes and compression ratio; Office bodies handed to office.c; EPUB chapters in
 * spine order, each a top-level section marked with its title. */
#include "ingest/office_int.h"

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zip.h>

#define ZIP_MAX_ENTRIES 10000
#define ZIP_MAX_ENTRY ((zip_uint64_t)64 << 20)
#define ZIP_MAX_TOTAL ((zip_uint64_t)256 << 20)
#define ZIP_MAX_RATIO 200            /* uncompressed / compressed, for entries over 1 MiB */

struct zipdoc {
    zip_t *zip;
    zip_uint64_t total;     /* uncompressed bytes read so far */
};

static int zipdoc_open(struct zipdoc *z, const char *raw, size_t len, struct kb_err *err)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(raw, len, 0, &ze);
    z->zip = src ? zip_open_from_source(src, ZIP_RDONLY, &ze) : NULL;
    if (!z->zip) {
        if (src)
            zip_source_free(src);
        int rc = kb_err_set(err, KB_EFORMAT, "not a readable zip: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);
    z->total = 0;
    zip_int64_t n = zip_get_num_entries(z->zip, 0);
    if (n < 0 || n > ZIP_MAX_ENTRIES)
        return kb_err_set(err, KB_EFORMAT, "zip has %lld entries (limit %d)", (long long)n,
                          ZIP_MAX_ENTRIES);
    return 0;
}

/* Entry names that could escape a folder if extracted are never read: absolute paths,
 * backslashes, drive letters and ".." components. */
static int zipdoc_name_safe(const char *name)
{
    if (!*name || name[0] == '/' || strchr(name, '\\') || strchr(name, ':'))
        return 0;
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        p += n + (p[n] == '/');
    }
    return 1;
}

/* Reads entry `name` whole into *out (NUL-terminated, free()). 1 when there is no such entry
 * (or its name is unsafe), 0 when read, or KB_EFORMAT for a bomb or a damaged entry. */
static int zipdoc_read(struct zipdoc *z, const char *name, char **out, size_t *len,
                       struct kb_err *err)
{
    zip_stat_t st;
    zip_int64_t idx = zipdoc_name_safe(name) ? zip_name_locate(z->zip, name, 0) : -1;
    if (idx < 0 || zip_stat_index(z->zip, (zip_uint64_t)idx, 0, &st) != 0)
        return 1;
    if (st.size > ZIP_MAX_ENTRY)
        return kb_err_set(err, KB_EFORMAT, "zip bomb: %s expands to %llu bytes (limit %llu)",
                          name, (unsigned long long)st.size, (unsigned long long)ZIP_MAX_ENTRY);
    if (z->total + st.size > ZIP_MAX_TOTAL)
        return kb_err_set(err, KB_EFORMAT, "zip bomb: %s brings the entries read to %llu "
                          "bytes (limit %llu)", name, (unsigned long long)(z->total + st.size),
                          (unsigned long long)ZIP_MAX_TOTAL);
    if (st.size > ((zip_uint64_t)1 << 20) && st.size / (st.comp_size ? st.comp_size : 1) > ZIP_MAX_RATIO)
        return kb_err_set(err, KB_EFORMAT, "zip bomb: %s compressed %llu:1 (limit %d:1)", name,
                          (unsigned long long)(st.size / (st.comp_size ? st.comp_size : 1)),
                          ZIP_MAX_RATIO);
    zip_file_t *f = zip_fopen_index(z->zip, (zip_uint64_t)idx, 0);
    char *buf = f ? malloc(st.size + 2) : NULL;
    zip_int64_t got = buf ? zip_fread(f, buf, st.size + 1) : -1;
    if (f)
        zip_fclose(f);
    if (got < 0 || (zip_uint64_t)got != st.size) {
        free(buf);
        return kb_err_set(err, KB_EFORMAT, "zip entry %s is damaged or not its stated size", name);
    }
    z->total += st.size;
    buf[got] = '\0';
    *out = buf;
    *len = (size_t)got;
    return 0;
}

/* Reads and parses an XML entry; NULL with rc set (1: absent, <0: error). */
static xmlDocPtr zipdoc_xml(struct zipdoc *z, const char *name, int *rc, struct kb_err *err)
{
    char *raw = NULL;
    size_t len = 0;
    xmlDocPtr xml = NULL;
    if ((*rc = zipdoc_read(z, name, &raw, &len, err)) == 0) {
        xml = kb_xml_read_safe(raw, len, err);
        if (!xml) {
            kb_err_prefix(err, name);
            *rc = KB_EFORMAT;
        }
    }
    free(raw);
    return xml;
}

int kb_zipdoc_is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

char *kb_zipdoc_attr(const xmlNode *n, const char *attr)
{
    for (xmlAttr *a = n->properties; a; a = a->next)
        if (!strcmp((const char *)a->name, attr))
            return (char *)xmlNodeGetContent((xmlNode *)a);
    return NULL;
}

xmlNode *kb_zipdoc_find(xmlNode *n, const char *name, int depth)
{
    for (xmlNode *c = n ? n->children : NULL; c && depth < KB_OFFICE_MAX_DEPTH; c = c->next) {
        if (kb_zipdoc_is(c, name))
            return c;
        xmlNode *found = kb_zipdoc_find(c, name, depth + 1);
        if (found)
            return found;
    }
    return NULL;
}

/* dc:title from docProps/core.xml (DOCX), meta.xml (ODT) or the OPF (EPUB). */
static void zipdoc_title(struct kb_doc *doc, xmlDocPtr xml)
{
    xmlNode *t = xml ? kb_zipdoc_find((xmlNode *)xml, "title", 0) : NULL;
    xmlChar *text = t ? xmlNodeGetContent(t) : NULL;
    if (text && *text && !doc->title)
        doc->title = strdup((const char *)text);
    xmlFree(text);
}

static int zipdoc_office(struct zipdoc *z, struct kb_docw *w, int docx, struct kb_err *err)
{
    int rc, meta_rc;
    const char *body_name = docx ? "word/document.xml" : "content.xml";
    xmlDocPtr body = zipdoc_xml(z, body_name, &rc, err), meta = NULL, styles = NULL;
    if (rc == 1)
        rc = kb_err_set(err, KB_EFORMAT, "no %s in the zip", body_name);
    if (rc == 0) {
        meta = zipdoc_xml(z, docx ? "docProps/core.xml" : "meta.xml", &meta_rc, err);
        zipdoc_title(w->doc, meta);
        styles = docx ? zipdoc_xml(z, "word/styles.xml", &meta_rc, err) : NULL;
        if (kb_office_emit(w, body, styles, docx))
            rc = kb_err_set(err, KB_ENOMEM, "out of memory reading %s", body_name);
    }
    xmlFreeDoc(meta);
    xmlFreeDoc(styles);
    xmlFreeDoc(body);
    return rc;
}

/* ---- EPUB -------------------------------------------------------------------------------- */

/* Resolves an OPF href against the OPF's folder: %XX decoded, "." and ".." folded. NULL when
 * it would leave the book (zip slip) or memory ran out. */
static char *epub_resolve(const char *base_dir, const char *href)
{
    size_t n = strlen(base_dir) + strlen(href) + 2;
    char *joined = malloc(n), *out = malloc(n);
    if (!joined || !out) {
        free(joined);
        free(out);
        return NULL;
    }
    snprintf(joined, n, "%s%s", base_dir, href);
    joined[strcspn(joined, "#?")] = '\0';
    size_t k = 0;
    for (const char *p = joined; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (k == 0) {
                free(joined);
                free(out);
                return NULL;
            }
            while (k > 0 && out[--k] != '/')
                ;
        } else if (len && !(len == 1 && p[0] == '.')) {
            if (k)
                out[k++] = '/';
            for (size_t i = 0; i < len; i++) {
                unsigned hi, lo;
                if (p[i] == '%' && i + 2 < len + 1 && sscanf(p + i + 1, "%1x%1x", &hi, &lo) == 2) {
                    out[k++] = (char)(hi << 4 | lo);
                    i += 2;
                } else {
                    out[k++] = p[i];
                }
            }
        }
        p += len + (p[len] == '/');
    }
    out[k] = '\0';
    free(joined);
    return out;
}

/* The chapter's title: its first top-level heading, else its HTML <title>, else "chapter N". */
static char *epub_chapter_title(const struct kb_docw *cw, const char *html_title, size_t number)
{
    char fallback[40];
    if (cw->min_level) {
        const char *line = cw->buf.data + cw->min_at + cw->min_level + 1;
        size_t n = strcspn(line, "\n");
        return strndup(line, n > 120 ? 120 : n);
    }
    snprintf(fallback, sizeof fallback, "chapter %zu", number);
    return strdup(html_title && *html_title ? html_title : fallback);
}

/* Writes a chapter as top-level sections, so that no chunk spans two chapters: its headings
 * are promoted until the highest is level 1 (re-reading the HTML when they must move), and a
 * chapter that does not open with such a heading gets one with its title. */
static int epub_chapter_put(struct kb_docw *w, const struct kb_docw *cw, const char *html_title,
                            const char *raw, size_t len, size_t number, struct kb_err *err)
{
    char *title = epub_chapter_title(cw, html_title, number), label[160];
    if (!title)
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    snprintf(label, sizeof label, "chapter %zu%s%s", number,
             strncmp(title, "chapter ", 8) ? ": " : "", strncmp(title, "chapter ", 8) ? title : "");
    kb_docw_break(w);
    kb_docw_mark(w, 0, label);
    if (!(cw->n_headings && cw->first_at == 0 && cw->first_level == cw->min_level)) {
        kb_docw_heading(w, 1);
        kb_docw_text(w, title, strlen(title));
        kb_docw_break(w);
    }
    free(title);
    if (cw->min_level <= 1) {
        kb_docw_blocks(w, cw->buf.data, cw->buf.len);
        return 0;
    }
    char *saved_title = w->doc->title;
    w->doc->title = (char *)"";   /* chapter <title>s are not the book's title */
    int rc = kb_html_emit(w, raw, len, 1 - cw->min_level, KB_HTML_CHAPTER, err);
    w->doc->title = saved_title;
    kb_docw_break(w);
    return rc;
}

static int epub_chapter(struct zipdoc *z, struct kb_docw *w, const char *path, size_t number,
                        struct kb_err *err)
{
    char *raw = NULL;
    size_t len = 0;
    int rc = zipdoc_read(z, path, &raw, &len, err);
    if (rc)
        return rc == 1 ? 0 : rc;    /* a missing chapter is left out */
    struct kb_doc chapter = { 0 };  /* takes the chapter's <title> */
    struct kb_docw cw;
    kb_docw_init(&cw, &chapter);
    rc = kb_html_emit(&cw, raw, len, 0, KB_HTML_CHAPTER, err);
    if (rc == 0 && cw.rc)
        rc = kb_err_set(err, cw.rc, "%s: text larger than %zu bytes", path, cw.buf.max);
    size_t start = 0;
    while (rc == 0 && start < cw.buf.len && strchr(" \t\r\n", cw.buf.data[start]))
        start++;
    if (rc == 0 && start < cw.buf.len)
        rc = epub_chapter_put(w, &cw, chapter.title, raw, len, number, err);
    kb_docw_free(&cw);
    kb_doc_free(&chapter);
    free(raw);
    return rc;
}

/* Walks the spine in order, looking each itemref up in the manifest. */
static int epub_spine(struct zipdoc *z, struct kb_docw *w, xmlDocPtr opf, const char *dir,
                      struct kb_err *err)
{
    xmlNode *manifest = kb_zipdoc_find((xmlNode *)opf, "manifest", 0);
    xmlNode *spine = kb_zipdoc_find((xmlNode *)opf, "spine", 0);
    size_t number = 0;
    int rc = 0;
    for (xmlNode *ref = spine ? spine->children : NULL; ref && rc == 0; ref = ref->next) {
        char *idref = kb_zipdoc_is(ref, "itemref") ? kb_zipdoc_attr(ref, "idref") : NULL;
        for (xmlNode *it = manifest && idref ? manifest->children : NULL; it; it = it->next) {
            char *id = kb_zipdoc_is(it, "item") ? kb_zipdoc_attr(it, "id") : NULL;
            char *href = id && !strcmp(id, idref) ? kb_zipdoc_attr(it, "href") : NULL;
            char *path = href ? epub_resolve(dir, href) : NULL;
            if (path)
                rc = epub_chapter(z, w, path, ++number, err);
            free(path);
            xmlFree(href);
            xmlFree(id);
            if (href)
                break;
        }
        xmlFree(idref);
    }
    return rc;
}

static int zipdoc_epub(struct zipdoc *z, struct kb_docw *w, struct kb_err *err)
{
    int rc;
    xmlDocPtr container = zipdoc_xml(z, "META-INF/container.xml", &rc, err), opf = NULL;
    xmlNode *rootfile = container ? kb_zipdoc_find((xmlNode *)container, "rootfile", 0) : NULL;
    char *opf_path = rootfile ? kb_zipdoc_attr(rootfile, "full-path") : NULL;
    if (rc == 0 && !opf_path)
        rc = kb_err_set(err, KB_EFORMAT, "EPUB without a rootfile in META-INF/container.xml");
    if (rc == 1)
        rc = kb_err_set(err, KB_EFORMAT, "EPUB without META-INF/container.xml");
    if (rc == 0 && (opf = zipdoc_xml(z, opf_path, &rc, err)) == NULL && rc == 1)
        rc = kb_err_set(err, KB_EFORMAT, "EPUB package %s is missing", opf_path);
    if (rc == 0) {
        zipdoc_title(w->doc, opf);
        const char *slash = strrchr(opf_path, '/');
        char *dir = strndup(opf_path, slash ? (size_t)(slash - opf_path) + 1 : 0);
        rc = dir ? epub_spine(z, w, opf, dir, err) : kb_err_set(err, KB_ENOMEM, "out of memory");
        free(dir);
    }
    xmlFree(opf_path);
    xmlFreeDoc(opf);
    xmlFreeDoc(container);
    return rc;
}

static int zipdoc_docx(struct zipdoc *z, struct kb_docw *w, struct kb_err *err)
{
    return zipdoc_office(z, w, 1, err);
}

static int zipdoc_odt(struct zipdoc *z, struct kb_docw *w, struct kb_err *err)
{
    return zipdoc_office(z, w, 0, err);
}


int kb_zipdoc_parse(struct kb_doc *doc, enum kb_doc_kind kind, const char *raw, size_t len,
                    struct kb_err *err)
{
    struct zipdoc z = { 0 };
    struct kb_docw w;
    kb_docw_init(&w, doc);
    int rc = zipdoc_open(&z, raw, len, err);
    if (rc == 0 && kind == KB_DOC_DOCX)
        rc = zipdoc_docx(&z, &w, err);
    else if (rc == 0 && kind == KB_DOC_ODT)
        rc = zipdoc_odt(&z, &w, err);
    else if (rc == 0)
        rc = zipdoc_epub(&z, &w, err);
    doc->markdown = 1;
    if (rc == 0)
        rc = kb_docw_finish(&w, err);
    kb_docw_free(&w);
    if (z.zip)
        zip_discard(z.zip);
    return rc;
}
