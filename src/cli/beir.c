/* beir.c — BEIR datasets: JSON-lines corpus and queries (gzip or plain), TSV qrels, metrics
 * as BEIR computes them (nDCG@10 with linear gains, Recall@100, MRR@10). */
#include "beir.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define BEIR_MAX_LINE (64u << 20)

/* Reads one line of any length from a (possibly gzip'ed) file into *buf. 1 line, 0 EOF,
 * -1 error or a line over the cap. */
static int beir_getline(gzFile f, char **buf, size_t *cap)
{
    size_t len = 0;
    if (!*buf) {
        *cap = 1 << 16;
        if (!(*buf = malloc(*cap)))
            return -1;
    }
    for (;;) {
        if (!gzgets(f, *buf + len, (int)(*cap - len)))
            return len ? 1 : (gzeof(f) ? 0 : -1);
        len += strlen(*buf + len);
        if (len && (*buf)[len - 1] == '\n')
            return 1;
        if (*cap >= BEIR_MAX_LINE)
            return -1;
        char *nb = realloc(*buf, *cap * 2);
        if (!nb)
            return -1;
        *buf = nb;
        *cap *= 2;
    }
}

/* Opens DIR/NAME, or DIR/NAME.gz when only that exists; gzopen reads plain files too. */
static gzFile beir_open(const char *dir, const char *name, char *path, size_t path_size)
{
    snprintf(path, path_size, "%s/%s", dir, name);
    gzFile f = gzopen(path, "rb");
    if (f)
        return f;
    snprintf(path, path_size, "%s/%s.gz", dir, name);
    return gzopen(path, "rb");
}

static char *beir_string(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsString(v))
        return strdup(v->valuestring);
    if (cJSON_IsNumber(v)) {
        char num[32];
        snprintf(num, sizeof num, "%.0f", v->valuedouble);
        return strdup(num);
    }
    return v ? NULL : strdup("");
}

typedef int (*beir_row_fn)(struct beir *b, const cJSON *row);

static int beir_add_doc(struct beir *b, const cJSON *row)
{
    struct beir_doc d = { beir_string(row, "_id"), beir_string(row, "title"),
                          beir_string(row, "text") };
    if (!d.id || !*d.id || !d.title || !d.text) {
        free(d.id); free(d.title); free(d.text);
        return -1;
    }
    b->docs[b->n_docs++] = d;
    return 0;
}

static int beir_add_query(struct beir *b, const cJSON *row)
{
    struct beir_query q = { beir_string(row, "_id"), beir_string(row, "text") };
    if (!q.id || !*q.id || !q.text) {
        free(q.id); free(q.text);
        return -1;
    }
    b->queries[b->n_queries++] = q;
    return 0;
}

/* Reads a JSON-lines file, calling add for each row (arrays grow as needed). */
static int beir_read_jsonl(struct beir *b, const char *dir, const char *name, beir_row_fn add,
                           void **items, size_t *n, size_t item_size, char *errbuf,
                           size_t errsize)
{
    char path[4096];
    gzFile f = beir_open(dir, name, path, sizeof path);
    if (!f) {
        snprintf(errbuf, errsize, "%s/%s: cannot open", dir, name);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, alloc = 0, lineno = 0;
    int rc = 0, got;
    while (rc == 0 && (got = beir_getline(f, &line, &cap)) == 1) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        if (*n == alloc) {
            alloc = alloc ? alloc * 2 : 1024;
            void *grown = realloc(*items, alloc * item_size);
            if (!grown) { rc = -1; snprintf(errbuf, errsize, "%s: out of memory", path); break; }
            *items = grown;
        }
        cJSON *row = cJSON_Parse(line);
        if (!row || add(b, row) != 0) {
            snprintf(errbuf, errsize, "%s: line %zu: %s", path, lineno,
                     row ? "missing or non-string \"_id\"/\"text\"" : "not valid JSON");
            rc = -1;
        }
        cJSON_Delete(row);
    }
    if (rc == 0 && got < 0) {
        snprintf(errbuf, errsize, "%s: line %zu: read error or line too long", path, lineno + 1);
        rc = -1;
    }
    free(line);
    gzclose(f);
    return rc;
}

static int beir_qrel_cmp(const void *a, const void *b)
{
    return strcmp(((const struct beir_qrel *)a)->query_id, ((const struct beir_qrel *)b)->query_id);
}

/* Parses one qrels row "query-id<TAB>corpus-id<TAB>score"; 1 parsed, 0 header, -1 bad. */
static int beir_parse_qrel(char *line, struct beir_qrel *out)
{
    char *save, *q = strtok_r(line, "\t\r\n", &save), *d = strtok_r(NULL, "\t\r\n", &save);
    char *s = strtok_r(NULL, "\t\r\n", &save), *end;
    if (!q || !d || !s)
        return -1;
    long rel = strtol(s, &end, 10);
    if (*end)
        return strcmp(s, "score") == 0 ? 0 : -1;
    out->query_id = strdup(q);
    out->doc_id = strdup(d);
    out->relevance = (int)rel;
    return out->query_id && out->doc_id ? 1 : -1;
}

static int beir_read_qrels(struct beir *b, const char *dir, const char *split, char *errbuf,
                           size_t errsize)
{
    char name[256], path[4096];
    snprintf(name, sizeof name, "qrels/%s.tsv", split);
    gzFile f = beir_open(dir, name, path, sizeof path);
    if (!f) {
        snprintf(errbuf, errsize, "%s/%s: cannot open (is '%s' a split of this dataset?)", dir,
                 name, split);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, alloc = 0, lineno = 0;
    int rc = 0;
    while (rc == 0 && beir_getline(f, &line, &cap) == 1) {
        lineno++;
        if (b->n_qrels == alloc) {
            alloc = alloc ? alloc * 2 : 1024;
            struct beir_qrel *grown = realloc(b->qrels, alloc * sizeof *grown);
            if (!grown) { rc = -1; break; }
            b->qrels = grown;
        }
        int got = beir_parse_qrel(line, &b->qrels[b->n_qrels]);
        if (got < 0) {
            snprintf(errbuf, errsize, "%s: line %zu: expected query-id, corpus-id, score", path,
                     lineno);
            rc = -1;
        }
        b->n_qrels += got == 1;
    }
    free(line);
    gzclose(f);
    if (rc == 0)
        qsort(b->qrels, b->n_qrels, sizeof *b->qrels, beir_qrel_cmp);
    return rc;
}

int beir_load(struct beir *out, const char *dir, const char *split, char *errbuf,
              size_t errsize)
{
    memset(out, 0, sizeof *out);
    int rc = beir_read_jsonl(out, dir, "corpus.jsonl", beir_add_doc, (void **)&out->docs,
                             &out->n_docs, sizeof *out->docs, errbuf, errsize);
    if (rc == 0)
        rc = beir_read_jsonl(out, dir, "queries.jsonl", beir_add_query, (void **)&out->queries,
                             &out->n_queries, sizeof *out->queries, errbuf, errsize);
    if (rc == 0)
        rc = beir_read_qrels(out, dir, split, errbuf, errsize);
    if (rc)
        beir_free(out);
    return rc;
}

void beir_free(struct beir *b)
{
    for (size_t i = 0; i < b->n_docs; i++) {
        free(b->docs[i].id); free(b->docs[i].title); free(b->docs[i].text);
    }
    for (size_t i = 0; i < b->n_queries; i++) {
        free(b->queries[i].id); free(b->queries[i].text);
    }
    for (size_t i = 0; i < b->n_qrels; i++) {
        free(b->qrels[i].query_id); free(b->qrels[i].doc_id);
    }
    free(b->docs); free(b->queries); free(b->qrels);
    memset(b, 0, sizeof *b);
}

const struct beir_qrel *beir_qrels_of(const struct beir *b, const char *query_id, size_t *n)
{
    struct beir_qrel key = { (char *)query_id, NULL, 0 };
    const struct beir_qrel *hit = bsearch(&key, b->qrels, b->n_qrels, sizeof key, beir_qrel_cmp);
    *n = 0;
    if (!hit)
        return NULL;
    while (hit > b->qrels && !strcmp(hit[-1].query_id, query_id))
        hit--;
    while (hit + *n < b->qrels + b->n_qrels && !strcmp(hit[*n].query_id, query_id))
        (*n)++;
    return hit;
}

static int beir_relevance(const struct beir_qrel *qrels, size_t n, const char *doc_id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(qrels[i].doc_id, doc_id))
            return qrels[i].relevance;
    return 0;
}

static int beir_int_desc(const void *a, const void *b)
{
    return *(const int *)b - *(const int *)a;
}

void beir_score(const struct beir_qrel *qrels, size_t n_qrels, const char *const *ranked,
                size_t n_ranked, struct beir_scores *out)
{
    double dcg = 0, idcg = 0;
    size_t n_relevant = 0, found = 0;
    out->mrr10 = 0;
    for (size_t i = 0; i < n_ranked; i++) {
        int rel = beir_relevance(qrels, n_qrels, ranked[i]);
        if (i < 10 && rel > 0)
            dcg += rel / log2((double)i + 2);
        if (i < 10 && rel > 0 && out->mrr10 == 0)
            out->mrr10 = 1.0 / (double)(i + 1);
        if (i < 100 && rel > 0)
            found++;
    }
    int *ideal = malloc((n_qrels ? n_qrels : 1) * sizeof *ideal);
    for (size_t i = 0; ideal && i < n_qrels; i++) {
        ideal[i] = qrels[i].relevance;
        n_relevant += qrels[i].relevance > 0;
    }
    if (ideal) {
        qsort(ideal, n_qrels, sizeof *ideal, beir_int_desc);
        for (size_t i = 0; i < n_qrels && i < 10; i++)
            if (ideal[i] > 0)
                idcg += ideal[i] / log2((double)i + 2);
    }
    free(ideal);
    out->ndcg10 = idcg > 0 ? dcg / idcg : 0;
    out->recall100 = n_relevant ? (double)found / (double)n_relevant : 0;
}
