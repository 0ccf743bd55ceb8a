/* office_int.h — private to ingest/: libxml2 node helpers the zip-based parsers share, and the
 * DOCX/ODT body walker (office.c) that zipdoc.c hands its parsed entries to. */
#ifndef KB_INGEST_OFFICE_INT_H
#define KB_INGEST_OFFICE_INT_H

#include <libxml/tree.h>

#include "ingest/doc_int.h"

/* Deepest element nesting the walkers follow; deeper content is left out. */
#define KB_OFFICE_MAX_DEPTH 256

/* Whether n is an element with local name `name` (any namespace). */
int kb_zipdoc_is(const xmlNode *n, const char *name);
/* The value of n's attribute with local name `attr` (any namespace), or NULL; xmlFree it. */
char *kb_zipdoc_attr(const xmlNode *n, const char *attr);
/* The first element below n (depth-first, n excluded) with local name `name`, or NULL. */
xmlNode *kb_zipdoc_find(xmlNode *n, const char *name, int depth);

/* Writes a DOCX (docx = 1: word/document.xml, with word/styles.xml when the zip has one, else
 * styles NULL) or ODT (docx = 0: content.xml) body into w. Headings come from paragraph
 * styles: built-in and localized names ("heading 2", "Überschrift 2", "Titre 2"), outline
 * levels (w:outlineLvl, on the paragraph or its style), and basedOn chains; a DOCX that styles
 * no heading at all gets its headings from how paragraphs look (short lines set larger than
 * the body text, or all bold). 0, or KB_ENOMEM (w->rc is the writer's own sticky error). */
int kb_office_emit(struct kb_docw *w, xmlDocPtr body, xmlDocPtr styles, int docx);

#endif
