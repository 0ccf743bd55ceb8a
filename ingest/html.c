/* html.c — HTML/XHTML to Markdown-shaped text with libxml2's HTML parser: headings, blocks,
 * lists, table rows, <pre>; scripts, styles, page chrome and hidden elements dropped. */
#include "ingest/doc_int.h"

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTML_MAX_DEPTH 512

static int html_is(const xmlNode *n, const char *const *names)
{
    for (; *names; names++)
        if (!strcasecmp((const char *)n->name, *names))
            return 1;
    return 0;
}

/* 1 when attribute `attr` of n equals one of `values` (ASCII case folded). */
static int html_attr_is(xmlNode *n, const char *attr, const char *const *values)
{
    if (!n->properties || !xmlHasProp(n, (const xmlChar *)attr))
        return 0;   /* most elements: no copy made */
    xmlChar *v = xmlGetProp(n, (const xmlChar *)attr);
    int match = 0;
    for (; v && *values && !match; values++)
        match = !strcasecmp((const char *)v, *values);
    xmlFree(v);
    return match;
}

/* Elements inside which a <header> or <footer> belongs to the text (an article's byline
 * and title) rather than to the page around it (Readability keeps those, drops the rest). */
static int html_is_content(xmlNode *n)
{
    static const char *const content[] = { "article", "section", "main", NULL };
    static const char *const main_role[] = { "main", "article", NULL };
    return html_is(n, content) || html_attr_is(n, "role", main_role);
}

/* Never text: scripts, styles, navigation, embedded objects, form controls, elements marked
 * hidden, the ARIA landmarks of page chrome (banner, contentinfo, navigation), and where
 * `chrome` (outside any article, section or main of a page) <header> and <footer>. */
static int html_hidden(xmlNode *n, int chrome)
{
    static const char *const dropped[] = { "script", "style", "nav", "noscript", "template",
        "iframe", "svg", "object", "embed", "canvas", "select", "button", "head", NULL };
    static const char *const page_parts[] = { "header", "footer", NULL };
    static const char *const chrome_roles[] = { "banner", "contentinfo", "navigation", NULL };
    static const char *const yes[] = { "true", NULL };
    if (html_is(n, dropped) || (chrome && html_is(n, page_parts)) ||
        xmlHasProp(n, (const xmlChar *)"hidden") || html_attr_is(n, "aria-hidden", yes) ||
        html_attr_is(n, "role", chrome_roles))
        return 1;
    int hidden = 0;
    xmlChar *style = n->properties ? xmlGetProp(n, (const xmlChar *)"style") : NULL;
    if (style) {
        char squeezed[256];
        size_t k = 0;
        for (const xmlChar *p = style; *p && k + 1 < sizeof squeezed; p++)
            if (*p != ' ')
                squeezed[k++] = (char)tolower(*p);
        squeezed[k] = '\0';
        hidden = strstr(squeezed, "display:none") || strstr(squeezed, "visibility:hidden");
    }
    xmlFree(style);
    return hidden;
}

struct html_walk {
    struct kb_docw *w;
    int level_shift;
    int chrome;         /* page headers and footers are dropped here (a page, not inside an
                           article, section or main; never in an EPUB chapter) */
    int first_cell;     /* inside a <tr>, before its first cell */
};

static void html_children(struct html_walk *h, xmlNode *n, int depth);

/* Text of a node and everything below it, folded onto one line (headings, titles). */
static void html_inline_text(struct html_walk *h, xmlNode *n, int depth)
{
    for (xmlNode *c = n->children; c && depth < HTML_MAX_DEPTH; c = c->next) {
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
            kb_docw_text(h->w, (const char *)c->content, strlen((const char *)c->content));
        else if (c->type == XML_ELEMENT_NODE && !html_hidden(c, h->chrome))
            html_inline_text(h, c, depth + 1);
    }
}

static void html_pre(struct html_walk *h, xmlNode *n)
{
    xmlChar *text = xmlNodeGetContent(n);
    kb_docw_break(h->w);
    kb_docw_raw(h->w, "```\n", 4);
    if (text) {
        size_t len = strlen((const char *)text);
        while (len && ((const char *)text)[len - 1] == '\n')
            len--;
        kb_docw_raw(h->w, (const char *)text, len);
    }
    kb_docw_raw(h->w, "\n```", 4);
    kb_docw_break(h->w);
    xmlFree(text);
}

static void html_element(struct html_walk *h, xmlNode *n, int depth)
{
    static const char *const blocks[] = { "p", "div", "section", "article", "main", "aside",
        "blockquote", "ul", "ol", "dl", "dt", "dd", "table", "thead", "tbody", "tfoot",
        "figure", "figcaption", "address", "form", "fieldset", "caption", "center", "body",
        "html", "hr", NULL };
    const char *name = (const char *)n->name;
    if (html_hidden(n, h->chrome))
        return;
    if ((name[0] == 'h' || name[0] == 'H') && name[1] >= '1' && name[1] <= '6' && !name[2]) {
        kb_docw_heading(h->w, name[1] - '0' + h->level_shift);
        html_inline_text(h, n, depth);
        kb_docw_break(h->w);
    } else if (!strcasecmp(name, "pre")) {
        html_pre(h, n);
    } else if (!strcasecmp(name, "img")) {
        xmlChar *alt = xmlGetProp(n, (const xmlChar *)"alt");   /* the image's words */
        if (alt)
            kb_docw_text(h->w, (const char *)alt, strlen((const char *)alt));
        kb_docw_text(h->w, " ", 1);
        xmlFree(alt);
    } else if (!strcasecmp(name, "br")) {
        kb_docw_newline(h->w);
    } else if (!strcasecmp(name, "li")) {
        kb_docw_newline(h->w);
        kb_docw_text(h->w, "- ", 2);
        html_children(h, n, depth + 1);
        kb_docw_newline(h->w);
    } else if (!strcasecmp(name, "tr")) {
        kb_docw_newline(h->w);
        h->first_cell = 1;
        html_children(h, n, depth + 1);
        kb_docw_newline(h->w);
    } else if (!strcasecmp(name, "td") || !strcasecmp(name, "th")) {
        if (!h->first_cell)
            kb_docw_text(h->w, " | ", 3);
        h->first_cell = 0;
        html_inline_text(h, n, depth);
    } else if (html_is(n, blocks)) {
        int chrome = h->chrome;
        h->chrome = chrome && !html_is_content(n);
        kb_docw_break(h->w);
        html_children(h, n, depth + 1);
        kb_docw_break(h->w);
        h->chrome = chrome;
    } else {
        html_children(h, n, depth + 1);
    }
}

static void html_children(struct html_walk *h, xmlNode *n, int depth)
{
    if (depth >= HTML_MAX_DEPTH)
        return;
    for (xmlNode *c = n->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
            kb_docw_text(h->w, (const char *)c->content, strlen((const char *)c->content));
        else if (c->type == XML_ELEMENT_NODE)
            html_element(h, c, depth);
    }
}

/* The <title> text, whitespace folded; NULL when none. */
static char *html_title(xmlNode *n, int depth)
{
    for (xmlNode *c = n; c && depth < 8; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (!strcasecmp((const char *)c->name, "title")) {
            xmlChar *t = xmlNodeGetContent(c);
            struct kb_doc scratch = { 0 };
            struct kb_docw w;
            kb_docw_init(&w, &scratch);
            if (t)
                kb_docw_text(&w, (const char *)t, strlen((const char *)t));
            xmlFree(t);
            char *title = w.rc == 0 && w.buf.len ? kb_buf_detach(&w.buf) : NULL;
            kb_docw_free(&w);
            return title;
        }
        char *t = html_title(c->children, depth + 1);
        if (t)
            return t;
    }
    return NULL;
}

int kb_html_emit(struct kb_docw *w, const char *utf8, size_t len, int level_shift,
                 enum kb_html_mode mode, struct kb_err *err)
{
    if (len > (size_t)INT32_MAX)
        return kb_err_set(err, KB_ENOMEM, "HTML larger than 2 GiB");
    htmlDocPtr html = htmlReadMemory(utf8, (int)len, NULL, "UTF-8",
                                     HTML_PARSE_RECOVER | HTML_PARSE_NOERROR |
                                     HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
                                     HTML_PARSE_IGNORE_ENC | HTML_PARSE_COMPACT);
    if (!html)
        return kb_err_set(err, KB_EFORMAT, "not HTML that libxml2 can read");
    xmlNode *root = xmlDocGetRootElement(html);
    if (root && !w->doc->title)
        w->doc->title = html_title(root, 0);
    struct html_walk h = { w, level_shift, mode == KB_HTML_PAGE, 0 };
    if (root)
        html_element(&h, root, 0);
    xmlFreeDoc(html);
    return 0;
}
