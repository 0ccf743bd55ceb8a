/* zipdoc.c — DOCX, ODT and EPUB: zip entries read in memory (never extracted) under caps on
 * entry count, sizes and compression ratio; Office XML walked for headings, paragraphs,
 * lists and table rows; EPUB chapters in spine order, each marked with its title. */
#include "ingest/doc_int.h"

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
#define ZIP_MAX_DEPTH 256

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
    if (st.size > ZIP_MAX_ENTRY || z->total + st.size > ZIP_MAX_TOTAL)
        return kb_err_set(err, KB_EFORMAT, "zip bomb: %s expands to %llu bytes (limit %llu)",
                          name, (unsigned long long)st.size,
                          (unsigned long long)(ZIP_MAX_TOTAL < ZIP_MAX_ENTRY ? ZIP_MAX_TOTAL
                                                                             : ZIP_MAX_ENTRY));
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

static int zipdoc_is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

/* The value of the attribute with local name `attr` (any namespace); xmlFree it. */
static char *zipdoc_attr(const xmlNode *n, const char *attr)
{
    for (xmlAttr *a = n->properties; a; a = a->next)
        if (!strcmp((const char *)a->name, attr))
            return (char *)xmlNodeGetContent((xmlNode *)a);
    return NULL;
}

/* First descendant element with local name `name` (depth-first). */
static xmlNode *zipdoc_find(xmlNode *n, const char *name, int depth)
{
    for (xmlNode *c = n ? n->children : NULL; c && depth < ZIP_MAX_DEPTH; c = c->next) {
        if (zipdoc_is(c, name))
            return c;
        xmlNode *found = zipdoc_find(c, name, depth + 1);
        if (found)
            return found;
    }
    return NULL;
}

/* dc:title from docProps/core.xml (DOCX), meta.xml (ODT) or the OPF (EPUB). */
static void zipdoc_title(struct kb_doc *doc, xmlDocPtr xml)
{
    xmlNode *t = xml ? zipdoc_find((xmlNode *)xml, "title", 0) : NULL;
    xmlChar *text = t ? xmlNodeGetContent(t) : NULL;
    if (text && *text && !doc->title)
        doc->title = strdup((const char *)text);
    xmlFree(text);
}

/* ---- DOCX and ODT ---------------------------------------------------------------------- */

#define OFFICE_MAX_STYLES 64

struct office_walk {
    struct kb_docw *w;
    int docx;
    int first_cell;
    char style_ids[OFFICE_MAX_STYLES][48];   /* DOCX styles whose names say "heading N" */
    int style_levels[OFFICE_MAX_STYLES];
    size_t n_styles;
};

/* "Heading 2", "heading2", "Title" -> 2, 2, 1; else 0. */
static int office_heading_name(const char *name)
{
    if (!strcasecmp(name, "title"))
        return 1;
    if (strncasecmp(name, "heading", 7))
        return 0;
    name += 7;
    name += *name == ' ';
    return name[0] >= '1' && name[0] <= '9' && !name[1] ? name[0] - '0' : 0;
}

/* Records which DOCX style ids are headings, from word/styles.xml (names are stable across
 * languages; ids such as "berschrift1" are not). */
static void office_docx_styles(struct office_walk *o, xmlDocPtr styles)
{
    xmlNode *root = styles ? xmlDocGetRootElement(styles) : NULL;
    for (xmlNode *s = root ? root->children : NULL; s; s = s->next) {
        xmlNode *name = zipdoc_is(s, "style") ? zipdoc_find(s, "name", 0) : NULL;
        char *id = name ? zipdoc_attr(s, "styleId") : NULL, *val = name ? zipdoc_attr(name, "val") : NULL;
        int level = val ? office_heading_name(val) : 0;
        if (id && level && o->n_styles < OFFICE_MAX_STYLES && strlen(id) < 48) {
            strcpy(o->style_ids[o->n_styles], id);
            o->style_levels[o->n_styles++] = level;
        }
        xmlFree(id);
        xmlFree(val);
    }
}

static int office_docx_level(const struct office_walk *o, xmlNode *p)
{
    xmlNode *ppr = zipdoc_find(p, "pPr", ZIP_MAX_DEPTH - 1);
    xmlNode *style = ppr ? zipdoc_find(ppr, "pStyle", ZIP_MAX_DEPTH - 1) : NULL;
    char *id = style ? zipdoc_attr(style, "val") : NULL;
    int level = id ? office_heading_name(id) : 0;
    for (size_t i = 0; id && !level && i < o->n_styles; i++)
        if (!strcmp(o->style_ids[i], id))
            level = o->style_levels[i];
    xmlFree(id);
    return level;
}

/* Text of a paragraph, cell or list item. */
static void office_inline(struct office_walk *o, xmlNode *n, int depth)
{
    for (xmlNode *c = n->children; c && depth < ZIP_MAX_DEPTH; c = c->next) {
        const char *name = (const char *)c->name;
        if (c->type == XML_TEXT_NODE && c->content && (!o->docx || !strcmp((const char *)n->name, "t")))
            kb_docw_text(o->w, (const char *)c->content, strlen((const char *)c->content));
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (!strcmp(name, "tab") || !strcmp(name, "s"))
            kb_docw_text(o->w, " ", 1);
        else if (!strcmp(name, "br") || !strcmp(name, "cr") || !strcmp(name, "line-break"))
            kb_docw_newline(o->w);
        else if (!strcmp(name, "instrText") || !strcmp(name, "delText") ||
                 !strcmp(name, "annotation") || !strcmp(name, "pPr") || !strcmp(name, "rPr"))
            continue;
        else {
            if (!strcmp(name, "p") || !strcmp(name, "h"))
                kb_docw_text(o->w, " ", 1);
            office_inline(o, c, depth + 1);
        }
    }
}

static void office_row(struct office_walk *o, xmlNode *row, int depth)
{
    kb_docw_newline(o->w);
    int first = 1;
    for (xmlNode *c = row->children; c; c = c->next) {
        if (!zipdoc_is(c, "tc") && !zipdoc_is(c, "table-cell"))
            continue;
        if (!first)
            kb_docw_text(o->w, " | ", 3);
        first = 0;
        office_inline(o, c, depth + 1);
    }
    kb_docw_newline(o->w);
}

static void office_blocks(struct office_walk *o, xmlNode *n, int depth)
{
    for (xmlNode *c = n->children; c && depth < ZIP_MAX_DEPTH; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        const char *name = (const char *)c->name;
        char *lvl = NULL;
        int level = 0;
        if (o->docx && !strcmp(name, "p"))
            level = office_docx_level(o, c);
        else if (!o->docx && !strcmp(name, "h")) {
            lvl = zipdoc_attr(c, "outline-level");
            level = lvl ? atoi(lvl) : 1;
            level = level < 1 ? 1 : level;
            xmlFree(lvl);
        }
        if (level) {
            kb_docw_heading(o->w, level);
            office_inline(o, c, depth + 1);
            kb_docw_break(o->w);
        } else if (!strcmp(name, "p") || !strcmp(name, "h")) {
            int item = o->docx && zipdoc_find(c, "numPr", ZIP_MAX_DEPTH - 1);
            item ? kb_docw_newline(o->w) : kb_docw_break(o->w);
            if (item)
                kb_docw_text(o->w, "- ", 2);
            office_inline(o, c, depth + 1);
            item ? kb_docw_newline(o->w) : kb_docw_break(o->w);
        } else if (!strcmp(name, "list-item")) {
            kb_docw_newline(o->w);
            kb_docw_text(o->w, "- ", 2);
            office_inline(o, c, depth + 1);
            kb_docw_newline(o->w);
        } else if (!strcmp(name, "tr") || !strcmp(name, "table-row")) {
            office_row(o, c, depth);
        } else if (strcmp(name, "sectPr") && strcmp(name, "automatic-styles") &&
                   strcmp(name, "font-face-decls")) {
            office_blocks(o, c, depth + 1);
            if (!strcmp(name, "tbl") || !strcmp(name, "table"))
                kb_docw_break(o->w);
        }
    }
}

static int zipdoc_office(struct zipdoc *z, struct kb_docw *w, int docx, struct kb_err *err)
{
    int rc;
    struct office_walk *o = calloc(1, sizeof *o);
    if (!o)
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    o->w = w;
    o->docx = docx;
    xmlDocPtr body = zipdoc_xml(z, docx ? "word/document.xml" : "content.xml", &rc, err);
    if (rc == 1)
        rc = kb_err_set(err, KB_EFORMAT, "no %s in the zip", docx ? "word/document.xml" : "content.xml");
    if (rc == 0) {
        int meta_rc;
        xmlDocPtr meta = zipdoc_xml(z, docx ? "docProps/core.xml" : "meta.xml", &meta_rc, err);
        zipdoc_title(w->doc, meta);
        xmlDocPtr styles = docx ? zipdoc_xml(z, "word/styles.xml", &meta_rc, err) : NULL;
        office_docx_styles(o, styles);
        office_blocks(o, (xmlNode *)body, 0);
        xmlFreeDoc(meta);
        xmlFreeDoc(styles);
    }
    xmlFreeDoc(body);
    free(o);
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

/* The first heading line written since `from`, as a chapter label; NULL when none. */
static char *epub_chapter_title(const struct kb_docw *w, size_t from)
{
    for (size_t i = from; i < w->buf.len; i++) {
        if (w->buf.data[i] == '#' && (i == 0 || w->buf.data[i - 1] == '\n')) {
            while (i < w->buf.len && w->buf.data[i] == '#')
                i++;
            while (i < w->buf.len && w->buf.data[i] == ' ')
                i++;
            size_t end = i;
            while (end < w->buf.len && w->buf.data[end] != '\n' && end - i < 120)
                end++;
            return end > i ? strndup(w->buf.data + i, end - i) : NULL;
        }
    }
    return NULL;
}

static int epub_chapter(struct zipdoc *z, struct kb_docw *w, const char *path, size_t number,
                        struct kb_err *err)
{
    char *raw = NULL;
    size_t len = 0;
    int rc = zipdoc_read(z, path, &raw, &len, err);
    if (rc)
        return rc == 1 ? 0 : rc;    /* a missing chapter is left out */
    size_t start = w->buf.len;
    char *saved_title = w->doc->title;
    w->doc->title = (char *)"";   /* chapter <title>s are not the book's title */
    rc = kb_html_emit(w, raw, len, 0, err);
    w->doc->title = saved_title;
    char *title = epub_chapter_title(w, start), label[160];
    snprintf(label, sizeof label, "chapter %zu%s%s", number, title ? ": " : "", title ? title : "");
    if (rc == 0 && w->buf.len > start)
        rc = kb_doc_mark_add(w->doc, start, 0, label);
    kb_docw_break(w);
    free(title);
    free(raw);
    return rc;
}

/* Walks the spine in order, looking each itemref up in the manifest. */
static int epub_spine(struct zipdoc *z, struct kb_docw *w, xmlDocPtr opf, const char *dir,
                      struct kb_err *err)
{
    xmlNode *manifest = zipdoc_find((xmlNode *)opf, "manifest", 0);
    xmlNode *spine = zipdoc_find((xmlNode *)opf, "spine", 0);
    size_t number = 0;
    int rc = 0;
    for (xmlNode *ref = spine ? spine->children : NULL; ref && rc == 0; ref = ref->next) {
        char *idref = zipdoc_is(ref, "itemref") ? zipdoc_attr(ref, "idref") : NULL;
        for (xmlNode *it = manifest && idref ? manifest->children : NULL; it; it = it->next) {
            char *id = zipdoc_is(it, "item") ? zipdoc_attr(it, "id") : NULL;
            char *href = id && !strcmp(id, idref) ? zipdoc_attr(it, "href") : NULL;
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
    xmlNode *rootfile = container ? zipdoc_find((xmlNode *)container, "rootfile", 0) : NULL;
    char *opf_path = rootfile ? zipdoc_attr(rootfile, "full-path") : NULL;
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
