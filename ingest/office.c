/* office.c — DOCX and ODT bodies to Markdown-shaped text: headings from paragraph styles (any
 * language, outline levels, basedOn chains) or, in a DOCX that styles none, from how its
 * paragraphs look; list items as "- " lines, table rows as "a | b" lines. */
#include "ingest/office_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OFFICE_BASED_ON_MAX 16       /* basedOn links followed (a cycle ends here) */
#define OFFICE_MAX_SIZES 32          /* distinct font sizes counted for visual headings */
#define OFFICE_VISUAL_MAX_BYTES 120  /* longest paragraph that may be a visual heading */
#define OFFICE_VISUAL_LEVELS 3       /* larger sizes get levels 1-3; all-bold lines the next */

/* A paragraph style of word/styles.xml. level: 1-9 a heading, 0 stated body text, -1 states
 * nothing (the style it is based on decides). */
struct office_style {
    char *id, *based_on;
    int level;
};

/* How a paragraph looks, for visual headings. */
struct office_look {
    size_t bytes;    /* text bytes */
    int size;        /* largest font size of its runs, in half-points; 0 when unstated */
    int all_bold;    /* every run with visible text is bold */
    char last;       /* last non-space character */
};

struct office_walk {
    struct kb_docw *w;
    int docx;
    struct office_style *styles;
    size_t n_styles;
    int visual;                               /* headings by look (no style gives one) */
    int body_size;                            /* the size most text is set in */
    int big_sizes[OFFICE_VISUAL_LEVELS];      /* heading sizes above body_size, largest first */
    int n_big;
    int open_level;                           /* the visual heading just written ... */
    size_t open_end;                          /* ... and where the text ended after it */
};

/* ---- styles ------------------------------------------------------------------------------ */

/* What heading styles are called: Word writes built-in names in English ("heading 1") in
 * every language, but other writers store the localized name. */
static const char *const office_heading_words[] = {
    "heading", "Überschrift", "überschrift", "titre", "título", "titulo", "titolo", "kop",
    "nagłówek", "rubrik", "overskrift", "otsikko", "Заголовок", "заголовок", "見出し", "标题",
    "제목", NULL
};

/* "heading 2", "Heading2", "Überschrift 2", "Title" -> 2, 2, 2, 1; else 0. */
static int office_heading_name(const char *name)
{
    if (!strcasecmp(name, "title"))
        return 1;
    for (const char *const *word = office_heading_words; *word; word++) {
        size_t n = strlen(*word);
        if (strncasecmp(name, *word, n))
            continue;
        const char *p = name + n;
        p += *p == ' ';
        return p[0] >= '1' && p[0] <= '9' && !p[1] ? p[0] - '0' : 0;
    }
    return 0;
}

/* The direct child element of n with local name `name`. */
static xmlNode *office_child(const xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (kb_zipdoc_is(c, name))
            return c;
    return NULL;
}

/* w:outlineLvl's level (val 0-8 -> 1-9; 9, body text, -> 0), or -1 when n has none. */
static int office_outline_level(const xmlNode *ppr)
{
    xmlNode *outline = office_child(ppr, "outlineLvl");
    char *val = outline ? kb_zipdoc_attr(outline, "val") : NULL;
    int level = val ? atoi(val) : -1;
    xmlFree(val);
    return level < 0 ? -1 : level <= 8 ? level + 1 : 0;
}

static int office_style_add(struct office_walk *o, const xmlNode *s, size_t *alloc)
{
    if (o->n_styles == *alloc) {
        size_t n = *alloc ? *alloc * 2 : 64;
        struct office_style *grown = realloc(o->styles, n * sizeof *grown);
        if (!grown)
            return KB_ENOMEM;
        o->styles = grown;
        *alloc = n;
    }
    xmlNode *name = office_child(s, "name"), *based_on = office_child(s, "basedOn");
    char *name_val = name ? kb_zipdoc_attr(name, "val") : NULL;
    struct office_style *st = &o->styles[o->n_styles++];
    st->id = kb_zipdoc_attr(s, "styleId");
    st->based_on = based_on ? kb_zipdoc_attr(based_on, "val") : NULL;
    st->level = office_outline_level(office_child(s, "pPr"));
    if (st->level < 0 && name_val && office_heading_name(name_val))
        st->level = office_heading_name(name_val);
    xmlFree(name_val);
    return 0;
}

/* Reads the paragraph styles of word/styles.xml (NULL: none). */
static int office_styles_read(struct office_walk *o, xmlDocPtr styles)
{
    xmlNode *root = styles ? xmlDocGetRootElement(styles) : NULL;
    size_t alloc = 0;
    for (xmlNode *s = root ? root->children : NULL; s; s = s->next) {
        char *type = kb_zipdoc_is(s, "style") ? kb_zipdoc_attr(s, "type") : NULL;
        int paragraph = type && !strcmp(type, "paragraph");
        xmlFree(type);
        if (paragraph && office_style_add(o, s, &alloc))
            return KB_ENOMEM;
    }
    return 0;
}

/* A style's heading level, following basedOn; an id missing from styles.xml goes by itself. */
static int office_style_level(const struct office_walk *o, const char *id)
{
    for (int hops = 0; id && hops < OFFICE_BASED_ON_MAX; hops++) {
        const struct office_style *s = NULL;
        for (size_t i = 0; i < o->n_styles && !s; i++)
            if (o->styles[i].id && !strcmp(o->styles[i].id, id))
                s = &o->styles[i];
        if (!s)
            return office_heading_name(id);
        if (s->level >= 0)
            return s->level;
        id = s->based_on;
    }
    return 0;
}

/* The heading level its paragraph properties give p: its own outline level, else its style's. */
static int office_styled_level(const struct office_walk *o, const xmlNode *p)
{
    xmlNode *ppr = office_child(p, "pPr"), *pstyle = office_child(ppr, "pStyle");
    int level = office_outline_level(ppr);
    if (level >= 0)
        return level;
    char *id = pstyle ? kb_zipdoc_attr(pstyle, "val") : NULL;
    level = id ? office_style_level(o, id) : 0;
    xmlFree(id);
    return level;
}

/* ---- visual headings ---------------------------------------------------------------------- */

/* Whether run property `name` (w:b) is on: present, and its val is not 0/false/off. */
static int office_prop_on(const xmlNode *rpr, const char *name)
{
    xmlNode *prop = office_child(rpr, name);
    char *val = prop ? kb_zipdoc_attr(prop, "val") : NULL;
    int on = prop && !(val && (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "off")));
    xmlFree(val);
    return on;
}

static int office_prop_int(const xmlNode *rpr, const char *name)
{
    xmlNode *prop = office_child(rpr, name);
    char *val = prop ? kb_zipdoc_attr(prop, "val") : NULL;
    int n = val ? atoi(val) : 0;
    xmlFree(val);
    return n > 0 ? n : 0;
}

static void office_look_run(const xmlNode *r, struct office_look *look)
{
    size_t bytes = 0;
    char last = 0;
    for (xmlNode *t = r->children; t; t = t->next) {
        if (!kb_zipdoc_is(t, "t"))
            continue;
        for (xmlNode *c = t->children; c; c = c->next) {
            const char *s = c->type == XML_TEXT_NODE ? (const char *)c->content : NULL;
            for (size_t i = 0; s && s[i]; i++, bytes++)
                last = strchr(" \t\r\n", s[i]) ? last : s[i];
        }
    }
    if (!bytes)
        return;
    const xmlNode *rpr = office_child(r, "rPr");
    int size = office_prop_int(rpr, "sz");
    look->size = size > look->size ? size : look->size;
    if (last && !office_prop_on(rpr, "b"))
        look->all_bold = 0;
    look->last = last ? last : look->last;
    look->bytes += bytes;
}

static void office_look_runs(const xmlNode *n, struct office_look *look, int depth)
{
    for (xmlNode *c = n->children; c && depth < 8; c = c->next) {
        if (kb_zipdoc_is(c, "r"))
            office_look_run(c, look);
        else if (kb_zipdoc_is(c, "hyperlink") || kb_zipdoc_is(c, "smartTag") ||
                 kb_zipdoc_is(c, "ins") || kb_zipdoc_is(c, "fldSimple"))
            office_look_runs(c, look, depth + 1);
    }
}

static struct office_look office_look_of(const xmlNode *p)
{
    struct office_look look = { 0, 0, 1, 0 };
    office_look_runs(p, &look, 0);
    if (!look.size)   /* the paragraph mark's size stands for runs that state none */
        look.size = office_prop_int(office_child(office_child(p, "pPr"), "rPr"), "sz");
    return look;
}

/* A short line that does not end like a sentence, set larger than the body or all bold. */
static int office_look_heading(const struct office_walk *o, const struct office_look *look)
{
    return look->bytes && look->bytes <= OFFICE_VISUAL_MAX_BYTES && look->last &&
           !strchr(".,;:!?", look->last) && (look->size > o->body_size || look->all_bold);
}

static int office_visual_level(const struct office_walk *o, const xmlNode *p)
{
    struct office_look look = office_look_of(p);
    if (!office_look_heading(o, &look))
        return 0;
    if (look.size > o->body_size) {
        for (int i = 0; i < o->n_big; i++)
            if (look.size >= o->big_sizes[i])
                return i + 1;
        return o->n_big;
    }
    return o->n_big + 1;
}

/* The size with the most text among the body's paragraphs. */
static int office_body_size(const xmlNode *body)
{
    int sizes[OFFICE_MAX_SIZES];
    size_t bytes[OFFICE_MAX_SIZES], n = 0, best = 0;
    for (xmlNode *p = body->children; p; p = p->next) {
        struct office_look look = kb_zipdoc_is(p, "p") ? office_look_of(p)
                                                       : (struct office_look){ 0, 0, 0, 0 };
        size_t i = 0;
        while (i < n && sizes[i] != look.size)
            i++;
        if (!look.bytes || (i == n && n == OFFICE_MAX_SIZES))
            continue;
        if (i == n) {
            sizes[n] = look.size;
            bytes[n++] = 0;
        }
        bytes[i] += look.bytes;
        best = bytes[i] > bytes[best] ? i : best;
    }
    return n ? sizes[best] : 0;
}

/* Turns visual headings on when no paragraph of the body is a styled heading, and ranks the
 * sizes that short lines above the body size use. */
static void office_visual_plan(struct office_walk *o, const xmlNode *body)
{
    for (xmlNode *p = body->children; p; p = p->next)
        if (kb_zipdoc_is(p, "p") && office_styled_level(o, p) > 0)
            return;
    o->body_size = office_body_size(body);
    for (xmlNode *p = body->children; p; p = p->next) {
        struct office_look look = kb_zipdoc_is(p, "p") ? office_look_of(p)
                                                       : (struct office_look){ 0, 0, 0, 0 };
        if (!office_look_heading(o, &look) || look.size <= o->body_size)
            continue;
        int i = 0;
        while (i < o->n_big && o->big_sizes[i] > look.size)
            i++;
        if ((i < o->n_big && o->big_sizes[i] == look.size) || i == OFFICE_VISUAL_LEVELS)
            continue;
        if (o->n_big == OFFICE_VISUAL_LEVELS)
            o->n_big--;
        memmove(o->big_sizes + i + 1, o->big_sizes + i, (size_t)(o->n_big - i) * sizeof(int));
        o->big_sizes[i] = look.size;
        o->n_big++;
    }
    o->visual = 1;
}

/* ---- the body ----------------------------------------------------------------------------- */

/* Text of a paragraph, cell or list item. */
static void office_inline(struct office_walk *o, xmlNode *n, int depth)
{
    for (xmlNode *c = n->children; c && depth < KB_OFFICE_MAX_DEPTH; c = c->next) {
        const char *name = (const char *)c->name;
        if (c->type == XML_TEXT_NODE && c->content &&
            (!o->docx || !strcmp((const char *)n->name, "t")))
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
        if (!kb_zipdoc_is(c, "tc") && !kb_zipdoc_is(c, "table-cell"))
            continue;
        if (!first)
            kb_docw_text(o->w, " | ", 3);
        first = 0;
        office_inline(o, c, depth + 1);
    }
    kb_docw_newline(o->w);
}

/* The heading level of a DOCX w:p or an ODT text:h; 0 for body text. */
static int office_level(const struct office_walk *o, const xmlNode *n, int depth)
{
    const char *name = (const char *)n->name;
    if (o->docx && !strcmp(name, "p")) {
        int level = office_styled_level(o, n);
        if (!level && o->visual && depth == 0)   /* body-level paragraphs only, not cells */
            level = office_visual_level(o, n);
        return level;
    }
    if (o->docx || strcmp(name, "h"))
        return 0;
    char *lvl = kb_zipdoc_attr(n, "outline-level");
    int level = lvl ? atoi(lvl) : 1;
    xmlFree(lvl);
    return level < 1 ? 1 : level;
}

static void office_paragraph(struct office_walk *o, xmlNode *p, int depth)
{
    int item = o->docx && kb_zipdoc_find(p, "numPr", KB_OFFICE_MAX_DEPTH - 1);
    item ? kb_docw_newline(o->w) : kb_docw_break(o->w);
    if (item)
        kb_docw_text(o->w, "- ", 2);
    office_inline(o, p, depth + 1);
    item ? kb_docw_newline(o->w) : kb_docw_break(o->w);
}

/* Consecutive visual headings of one level, nothing between ("CHAPTER 1", "INTRODUCTION" on a
 * title page), are one heading: one line of a title set over several. */
static void office_heading(struct office_walk *o, xmlNode *p, int level, int depth)
{
    int visual = o->visual && office_styled_level(o, p) == 0;
    if (visual && level == o->open_level && o->w->buf.len == o->open_end) {
        kb_docw_reopen_line(o->w);
        kb_docw_text(o->w, " ", 1);
    } else {
        kb_docw_heading(o->w, level);
    }
    office_inline(o, p, depth + 1);
    kb_docw_break(o->w);
    o->open_level = visual ? level : 0;
    o->open_end = o->w->buf.len;
}

static void office_blocks(struct office_walk *o, xmlNode *n, int depth)
{
    for (xmlNode *c = n->children; c && depth < KB_OFFICE_MAX_DEPTH; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        const char *name = (const char *)c->name;
        int level = office_level(o, c, depth);
        if (level) {
            office_heading(o, c, level, depth);
        } else if (!strcmp(name, "p") || !strcmp(name, "h")) {
            office_paragraph(o, c, depth);
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

int kb_office_emit(struct kb_docw *w, xmlDocPtr body, xmlDocPtr styles, int docx)
{
    struct office_walk o = { .w = w, .docx = docx };
    int rc = docx ? office_styles_read(&o, styles) : 0;
    xmlNode *root = xmlDocGetRootElement(body);
    xmlNode *docx_body = docx && root ? office_child(root, "body") : NULL;
    if (rc == 0 && docx_body) {
        office_visual_plan(&o, docx_body);
        office_blocks(&o, docx_body, 0);
    } else if (rc == 0) {
        office_blocks(&o, (xmlNode *)body, 0);
    }
    for (size_t i = 0; i < o.n_styles; i++) {
        xmlFree(o.styles[i].id);
        xmlFree(o.styles[i].based_on);
    }
    free(o.styles);
    return rc;
}
