/* xml.c — generic XML and DocBook to text with libxml2 under safe options: no network, no DTD
 * loading, no entity substitution (entity references are left out, never expanded), and an
 * external-entity loader that refuses everything. */
#include "ingest/doc_int.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

#define XML_MAX_DEPTH 256
#define XML_SHORT_LEAF 200

/* Nothing outside the document is ever read: not files, not URLs, not DTDs. */
static xmlParserInputPtr xml_refuse_loader(const char *url, const char *id, xmlParserCtxtPtr ctx)
{
    (void)url;
    (void)id;
    (void)ctx;
    return NULL;
}

static int xml_is(const xmlNode *n, const char *const *names)
{
    for (; *names; names++)
        if (!strcmp((const char *)n->name, *names))
            return 1;
    return 0;
}

static const char *const xml_sections[] = { "book", "part", "chapter", "appendix", "preface",
    "article", "section", "sect1", "sect2", "sect3", "sect4", "sect5", "refsection", NULL };
static const char *const xml_text_blocks[] = { "para", "simpara", "formalpara", "programlisting",
    "literallayout", "screen", "term", "p", "content", "paragraph", NULL };

/* Appends the text below n (entity references skipped) to the writer. */
static void xml_text(struct kb_docw *w, const xmlNode *n, int depth)
{
    for (const xmlNode *c = n->children; c && depth < XML_MAX_DEPTH; c = c->next) {
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
            kb_docw_text(w, (const char *)c->content, strlen((const char *)c->content));
        else if (c->type == XML_ELEMENT_NODE) {
            kb_docw_text(w, " ", 1);
            xml_text(w, c, depth + 1);
        }
    }
}

static int xml_has_elements(const xmlNode *n)
{
    for (const xmlNode *c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            return 1;
    return 0;
}

static size_t xml_text_len(const xmlNode *n)
{
    size_t len = 0;
    for (const xmlNode *c = n->children; c; c = c->next)
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
            for (const xmlChar *p = c->content; *p; p++)
                len += !strchr(" \t\r\n", *p);
    return len;
}

static void xml_walk(struct kb_docw *w, const xmlNode *n, int section, int depth)
{
    if (depth >= XML_MAX_DEPTH)
        return;
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        int sub = section + xml_is(c, xml_sections);
        size_t own = xml_text_len(c);
        if (!strcmp((const char *)c->name, "title") && section > 0) {
            kb_docw_heading(w, section);
            xml_text(w, c, depth + 1);
            kb_docw_break(w);
        } else if (xml_is(c, xml_text_blocks) || (own && xml_has_elements(c))) {
            kb_docw_break(w);
            xml_text(w, c, depth + 1);
            kb_docw_break(w);
        } else if (own && own <= XML_SHORT_LEAF) {
            kb_docw_newline(w);   /* data XML: "capital: Ottawa" */
            kb_docw_text(w, (const char *)c->name, strlen((const char *)c->name));
            kb_docw_text(w, ": ", 2);
            xml_text(w, c, depth + 1);
            kb_docw_newline(w);
        } else if (own) {
            kb_docw_break(w);
            xml_text(w, c, depth + 1);
            kb_docw_break(w);
        } else {
            xml_walk(w, c, sub, depth + 1);
            kb_docw_break(w);
        }
    }
}

void *kb_xml_read_safe(const char *raw, size_t len, struct kb_err *err)
{
    if (len > (size_t)INT32_MAX) {
        kb_err_set(err, KB_ENOMEM, "XML larger than 2 GiB");
        return NULL;
    }
    xmlSetExternalEntityLoader(xml_refuse_loader);
    xmlResetLastError();
    xmlDocPtr xml = xmlReadMemory(raw, (int)len, NULL, NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                  XML_PARSE_COMPACT);
    if (!xml) {
        const xmlError *e = xmlGetLastError();
        kb_err_set(err, KB_EFORMAT, "not well-formed XML at line %d: %.200s", e ? e->line : 0,
                   e && e->message ? e->message : "unknown error");
        size_t n = strlen(err ? err->msg : "");
        while (err && n && (err->msg[n - 1] == '\n' || err->msg[n - 1] == ' '))
            err->msg[--n] = '\0';
    }
    return xml;
}

int kb_xml_parse(struct kb_doc *doc, const char *raw, size_t len, struct kb_err *err)
{
    xmlDocPtr xml = kb_xml_read_safe(raw, len, err);
    if (!xml)
        return KB_EFORMAT;
    struct kb_docw w;
    kb_docw_init(&w, doc);
    xmlNode *root = xmlDocGetRootElement(xml);
    if (root) {
        /* The root is a section when it is a DocBook book/article/chapter. */
        xmlNode wrapper = { .children = root };
        xml_walk(&w, &wrapper, 0, 0);
    }
    doc->markdown = 1;
    int rc = kb_docw_finish(&w, err);
    kb_docw_free(&w);
    xmlFreeDoc(xml);
    return rc;
}
