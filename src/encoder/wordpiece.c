/* wordpiece.c — BERT WordPiece tokenizer with Hugging Face `tokenizers` parity (BertNormalizer +
 * BertPreTokenizer + WordPiece), streaming over the text with no allocation per word. */
#include "encoder/wordpiece.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "util/buf.h"
#include "util/file.h"
#include "util/path.h"
#include "util/utf8.h"

#define WP_FILE_MAX ((size_t)256 << 20)  /* refuse tokenizer files past 256 MiB */
#define WP_MAX_ID ((int32_t)1 << 24)     /* ids past this are a corrupt file, not a vocabulary */
#define WP_STACK_WORD_CHARS 256          /* words up to this limit use stack scratch */
#define WP_HELD_MAX 8                    /* combining marks reordered at once (see hold_mark) */
#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

enum { ASCII_DROP, ASCII_SPACE, ASCII_PUNCT, ASCII_WORD };

struct wp_slot {
    uint32_t hash;
    int32_t id;      /* -1: empty */
    uint32_t off;    /* token bytes at arena + off, NUL-terminated */
    uint32_t len;
};

/* An added token matched on the raw text before normalisation (tokenizers' AddedVocabulary). */
struct wp_added {
    uint32_t off;
    uint32_t len;
    int32_t id;
};

struct kb_wordpiece {
    char *arena;                 /* every token string, NUL-terminated */
    size_t arena_len;
    uint32_t *id_off;            /* id -> arena offset, UINT32_MAX for a gap */
    size_t n_ids;
    struct wp_slot *slots;       /* open addressing, power-of-two size */
    uint32_t mask;
    size_t max_token_len;        /* longest vocabulary entry in bytes */
    int32_t unk_id;
    int32_t special[KB_WORDPIECE_MASK + 1];
    char prefix[32];             /* continuing_subword_prefix */
    size_t prefix_len;
    uint32_t prefix_hash;
    size_t max_word_chars;       /* max_input_chars_per_word */
    int clean_text, chinese, strip_accents, lowercase;
    struct wp_added *added;      /* longest first */
    size_t n_added;
    uint8_t added_first[256];    /* 1 when some added token starts with this byte */
    uint8_t ascii_class[128];
    char ascii_norm[128];        /* the byte an ASCII char becomes (lowercased) */
    const char *file;            /* "tokenizer.json" or "vocab.txt": where the ids come from */
};

/* ---- vocabulary: arena + hash table ---------------------------------------------------------- */

struct vocab_builder {
    struct kb_buf arena;
    uint32_t *off;
    uint32_t *len;
    int32_t *id;
    size_t n, cap;
};

static uint32_t wordpiece_hash(uint32_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * FNV_PRIME;
    return h;
}

static int builder_add(struct vocab_builder *vb, const char *tok, size_t len, int32_t id)
{
    if (vb->n == vb->cap) {
        size_t cap = vb->cap ? vb->cap * 2 : 32768;
        uint32_t *off = realloc(vb->off, cap * sizeof *off);
        if (off)
            vb->off = off;
        uint32_t *lens = realloc(vb->len, cap * sizeof *lens);
        if (lens)
            vb->len = lens;
        int32_t *ids = realloc(vb->id, cap * sizeof *ids);
        if (ids)
            vb->id = ids;
        if (!off || !lens || !ids)
            return KB_ENOMEM;
        vb->cap = cap;
    }
    if (vb->arena.len + len + 1 > UINT32_MAX)
        return KB_ENOMEM;
    vb->off[vb->n] = (uint32_t)vb->arena.len;
    vb->len[vb->n] = (uint32_t)len;
    vb->id[vb->n] = id;
    if (kb_buf_append(&vb->arena, tok, len) < 0 || kb_buf_append(&vb->arena, "", 1) < 0)
        return KB_ENOMEM;
    vb->n++;
    return 0;
}

static void builder_free(struct vocab_builder *vb)
{
    kb_buf_free(&vb->arena);
    free(vb->off);
    free(vb->len);
    free(vb->id);
}

static int32_t vocab_find(const struct kb_wordpiece *wp, uint32_t hash, const char *pre,
                          size_t pre_len, const char *s, size_t len)
{
    for (uint32_t i = hash & wp->mask;; i = (i + 1) & wp->mask) {
        const struct wp_slot *slot = &wp->slots[i];
        if (slot->id < 0)
            return -1;
        if (slot->hash != hash || slot->len != pre_len + len)
            continue;
        const char *tok = wp->arena + slot->off;
        if (memcmp(tok, pre, pre_len) == 0 && memcmp(tok + pre_len, s, len) == 0)
            return slot->id;
    }
}

/* Inserts or, for a repeated string, re-points it: the later entry wins, as in HF's load_vocab. */
static void vocab_insert(struct kb_wordpiece *wp, uint32_t off, uint32_t len, int32_t id)
{
    const char *tok = wp->arena + off;
    uint32_t hash = wordpiece_hash(FNV_OFFSET, tok, len);
    uint32_t i = hash & wp->mask;
    for (;; i = (i + 1) & wp->mask) {
        struct wp_slot *slot = &wp->slots[i];
        if (slot->id < 0)
            break;
        if (slot->hash == hash && slot->len == len && memcmp(wp->arena + slot->off, tok, len) == 0)
            break;
    }
    wp->slots[i] = (struct wp_slot){ hash, id, off, len };
    if (len > wp->max_token_len)
        wp->max_token_len = len;
}

/* Moves the builder's strings into wp and indexes them by id and by string. */
static int vocab_finish(struct kb_wordpiece *wp, struct vocab_builder *vb, const char *file,
                        struct kb_err *err)
{
    if (vb->n == 0)
        return kb_err_set(err, KB_EFORMAT, "%s: the vocabulary is empty", file);
    int32_t max_id = 0;
    for (size_t i = 0; i < vb->n; i++)
        if (vb->id[i] > max_id)
            max_id = vb->id[i];
    size_t n_slots = 1024;
    while (n_slots < vb->n * 2)
        n_slots *= 2;
    wp->n_ids = (size_t)max_id + 1;
    wp->id_off = malloc(wp->n_ids * sizeof *wp->id_off);
    wp->slots = malloc(n_slots * sizeof *wp->slots);
    if (!wp->id_off || !wp->slots)
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory for the vocabulary", file);
    memset(wp->id_off, 0xff, wp->n_ids * sizeof *wp->id_off);
    for (size_t i = 0; i < n_slots; i++)
        wp->slots[i].id = -1;
    wp->mask = (uint32_t)(n_slots - 1);
    wp->arena_len = vb->arena.len;
    wp->arena = kb_buf_detach(&vb->arena);
    for (size_t i = 0; i < vb->n; i++) {
        if (wp->id_off[vb->id[i]] == UINT32_MAX)
            wp->id_off[vb->id[i]] = vb->off[i];
        vocab_insert(wp, vb->off[i], vb->len[i], vb->id[i]);
    }
    return 0;
}

static int32_t vocab_lookup(const struct kb_wordpiece *wp, const char *tok)
{
    size_t len = strlen(tok);
    return vocab_find(wp, wordpiece_hash(FNV_OFFSET, tok, len), "", 0, tok, len);
}

/* ---- files ----------------------------------------------------------------------------------- */

/* Reads a tokenizer file whole; a FIFO, device or folder in its place is refused unread
 * (KB_EFORMAT "not a regular file"), as is one past WP_FILE_MAX (KB_ENOMEM). */
static int read_file(char **out, size_t *out_len, const char *path, struct kb_err *err)
{
    *out = NULL;
    struct kb_buf buf = KB_BUF_INIT;
    buf.max = WP_FILE_MAX;
    int rc = kb_file_read_regular(&buf, path, err);
    size_t len = buf.len;
    if (rc)
        kb_err_prefix(err, path);
    else if (!(*out = kb_buf_detach(&buf)))
        rc = kb_err_set(err, KB_ENOMEM, "%s: out of memory", path);
    else
        *out_len = len;
    kb_buf_free(&buf);
    return rc;
}

/* 1 when something is at path: a file, or what read_file refuses to read as one. */
static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* vocab.txt: one token per line, id = line number (from 0); "\r\n" endings and a missing final
 * newline are accepted; an empty line is the empty token, as in HF's load_vocab. */
static int parse_vocab_txt(struct vocab_builder *vb, const char *data, size_t len,
                           const char *path, struct kb_err *err)
{
    size_t line = 0;
    for (size_t pos = 0; pos < len; line++) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t tok_len = end - pos;
        if (tok_len > 0 && data[pos + tok_len - 1] == '\r')
            tok_len--;
        size_t bad;
        if (!kb_utf8_valid(data + pos, tok_len, &bad) || memchr(data + pos, '\0', tok_len))
            return kb_err_set(err, KB_EFORMAT, "%s: invalid UTF-8 at line %zu", path, line + 1);
        if (line >= (size_t)WP_MAX_ID)
            return kb_err_set(err, KB_EFORMAT, "%s: more than %d lines", path, WP_MAX_ID);
        if (builder_add(vb, data + pos, tok_len, (int32_t)line) < 0)
            return kb_err_set(err, KB_ENOMEM, "%s: out of memory", path);
        pos = end + 1;
    }
    return 0;
}

/* The JSON line of a parse error, for "file: invalid JSON at line N". */
static size_t json_error_line(const char *data, const char *at)
{
    size_t line = 1;
    for (const char *p = data; p < at; p++)
        line += *p == '\n';
    return line;
}

static int parse_json_file(cJSON **out, const char *path, struct kb_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = read_file(&data, &len, path, err);
    if (rc < 0)
        return rc;
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!*out) {
        const char *at = end && end >= data && end <= data + len ? end : data;
        rc = kb_err_set(err, KB_EFORMAT, "%s: invalid JSON at line %zu", path,
                        json_error_line(data, at));
    }
    free(data);
    return rc;
}

/* ---- character classes (utf8proc for every Unicode property) --------------------------------- */

static int wp_category(int32_t c)
{
    return utf8proc_get_property(c)->category;
}

/* Rust's char::is_whitespace (Unicode White_Space), which tokenizers' BertPreTokenizer splits on;
 * it equals Zs + Zl + Zp + U+0009..U+000D + U+0085. */
static int is_ws(int32_t c)
{
    if (c == ' ' || (c >= 0x9 && c <= 0xd) || c == 0x85)
        return 1;
    if (c < 0x80)
        return 0;
    int cat = wp_category(c);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
           cat == UTF8PROC_CATEGORY_ZP;
}

/* tokenizers' BertNormalizer is_control: unicode_categories' is_other() = Cc, Cf, Co (not Cn),
 * except \t \n \r, which clean_text turns into spaces. */
static int is_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r')
        return 0;
    int cat = wp_category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_CO;
}

/* is_bert_punc: ASCII punctuation (33-47, 58-64, 91-96, 123-126) or a Unicode P* category. */
static int is_punct(int32_t c)
{
    if (c < 0x80)
        return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
               (c >= 123 && c <= 126);
    int cat = wp_category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

/* The ranges of tokenizers' is_chinese_char, verbatim. Note 0x2B920 (Python's BertTokenizer has
 * 0x2B820): we follow tokenizers, the implementation behind tokenizer.json. */
static int is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* One pass over ASCII through the same rules the general path applies, so the hot loop can
 * classify a byte with one table load. */
static void ascii_tables_build(struct kb_wordpiece *wp)
{
    for (int32_t c = 0; c < 128; c++) {
        int32_t n = c;
        if (wp->clean_text && (c == 0 || is_control(c))) {
            wp->ascii_class[c] = ASCII_DROP;
            continue;
        }
        if (wp->clean_text && is_ws(c))
            n = ' ';
        if (wp->lowercase)
            n = utf8proc_tolower(n);
        wp->ascii_norm[c] = (char)n;
        wp->ascii_class[c] = is_ws(n) ? ASCII_SPACE : is_punct(n) ? ASCII_PUNCT : ASCII_WORD;
    }
}

/* ---- added tokens and specials --------------------------------------------------------------- */

static int added_push(struct kb_wordpiece *wp, struct vocab_builder *vb, const char *content,
                      int32_t id)
{
    size_t len = strlen(content);
    if (len == 0)
        return 0;
    for (size_t i = 0; i < wp->n_added; i++)
        if (wp->added[i].len == len && strcmp(vb->arena.data + wp->added[i].off, content) == 0)
            return 0;
    struct wp_added *grown = realloc(wp->added, (wp->n_added + 1) * sizeof *grown);
    if (!grown)
        return KB_ENOMEM;
    wp->added = grown;
    uint32_t off = (uint32_t)vb->arena.len;
    if (kb_buf_append(&vb->arena, content, len + 1) < 0)
        return KB_ENOMEM;
    wp->added[wp->n_added++] = (struct wp_added){ off, (uint32_t)len, id };
    return 0;
}

static int added_cmp_longest_first(const void *a, const void *b)
{
    const struct wp_added *x = a, *y = b;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

/* Added-token offsets pointed into the builder's arena; after vocab_finish they point into wp's. */
static void added_finish(struct kb_wordpiece *wp)
{
    if (wp->n_added > 1)  /* equal lengths need no order: two can't match at one place */
        qsort(wp->added, wp->n_added, sizeof *wp->added, added_cmp_longest_first);
    memset(wp->added_first, 0, sizeof wp->added_first);
    for (size_t i = 0; i < wp->n_added; i++)
        wp->added_first[(uint8_t)wp->arena[wp->added[i].off]] = 1;
}

static int32_t lookup_first(const struct kb_wordpiece *wp, const char *const *names)
{
    for (; *names; names++) {
        int32_t id = vocab_lookup(wp, *names);
        if (id >= 0)
            return id;
    }
    return -1;
}

/* [CLS]/[SEP] come from the post-processor when tokenizer.json has one (cls_id/sep_id >= 0),
 * else from the vocabulary; [PAD]/[MASK] from the vocabulary. */
static void specials_find(struct kb_wordpiece *wp, int32_t cls_id, int32_t sep_id)
{
    static const char *const cls[] = { "[CLS]", "<s>", NULL };
    static const char *const sep[] = { "[SEP]", "</s>", NULL };
    static const char *const pad[] = { "[PAD]", "<pad>", NULL };
    static const char *const mask[] = { "[MASK]", "<mask>", NULL };
    wp->special[KB_WORDPIECE_CLS] = cls_id >= 0 ? cls_id : lookup_first(wp, cls);
    wp->special[KB_WORDPIECE_SEP] = sep_id >= 0 ? sep_id : lookup_first(wp, sep);
    wp->special[KB_WORDPIECE_PAD] = lookup_first(wp, pad);
    wp->special[KB_WORDPIECE_MASK] = lookup_first(wp, mask);
    wp->special[KB_WORDPIECE_UNK] = wp->unk_id;
}

static struct kb_wordpiece *wordpiece_new(void)
{
    struct kb_wordpiece *wp = calloc(1, sizeof *wp);
    if (!wp)
        return NULL;
    memcpy(wp->prefix, "##", 3);
    wp->prefix_len = 2;
    wp->max_word_chars = 100;
    wp->clean_text = wp->chinese = wp->lowercase = wp->strip_accents = 1;
    wp->unk_id = -1;
    return wp;
}

/* The last step of every open: tables, specials, checks. `unk` names the unknown token. */
static int wordpiece_finish(struct kb_wordpiece *wp, struct vocab_builder *vb, const char *unk,
                            int32_t cls_id, int32_t sep_id, const char *file, struct kb_err *err)
{
    int rc = vocab_finish(wp, vb, file, err);
    if (rc < 0)
        return rc;
    added_finish(wp);
    wp->unk_id = vocab_lookup(wp, unk);
    for (size_t i = 0; wp->unk_id < 0 && i < wp->n_added; i++)
        if (strcmp(wp->arena + wp->added[i].off, unk) == 0)
            wp->unk_id = wp->added[i].id;
    if (wp->unk_id < 0)
        return kb_err_set(err, KB_EFORMAT, "%s: the unknown token '%s' is not in the vocabulary",
                          file, unk);
    wp->prefix_hash = wordpiece_hash(FNV_OFFSET, wp->prefix, wp->prefix_len);
    specials_find(wp, cls_id, sep_id);
    ascii_tables_build(wp);
    return 0;
}

/* The strings of HF's BertTokenizer special tokens, present in the vocabulary, are added tokens:
 * the literal text "[CLS]" encodes as the [CLS] id, as both HF tokenizers do by default. */
static int add_default_specials(struct kb_wordpiece *wp, struct vocab_builder *vb)
{
    static const char *const names[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        for (size_t j = vb->n; j-- > 0;) {  /* the last line wins, as in the hash table */
            if (vb->len[j] == strlen(names[i]) &&
                memcmp(vb->arena.data + vb->off[j], names[i], vb->len[j]) == 0) {
                if (added_push(wp, vb, names[i], vb->id[j]) < 0)
                    return KB_ENOMEM;
                break;
            }
        }
    }
    return 0;
}

/* ---- tokenizer_config.json + vocab.txt ------------------------------------------------------- */

/* A JSON boolean field: 1/0, `dflt` when absent or null; -2 when it is something else. */
static int json_bool(const cJSON *obj, const char *name, int dflt)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item || cJSON_IsNull(item))
        return dflt;
    if (!cJSON_IsBool(item))
        return -2;
    return cJSON_IsTrue(item);
}

/* A token named by a config: a string, or an object with "content" (AddedToken). */
static const char *json_token_name(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsString(item))
        return item->valuestring;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
    return cJSON_IsString(content) ? content->valuestring : NULL;
}

/* do_lower_case, strip_accents, tokenize_chinese_chars, unk_token of tokenizer_config.json;
 * a missing file leaves BertTokenizer's defaults. `unk` receives a copy of the unk token name. */
static int read_tokenizer_config(struct kb_wordpiece *wp, const char *path, char *unk,
                                 size_t unk_size, struct kb_err *err)
{
    if (!file_exists(path))
        return 0;
    cJSON *root = NULL;
    int rc = parse_json_file(&root, path, err);
    if (rc < 0)
        return rc;
    static const char *const fields[] = { "do_lower_case", "strip_accents",
                                          "tokenize_chinese_chars" };
    int values[3];
    for (int i = 0; i < 3; i++) {
        values[i] = json_bool(root, fields[i], i == 1 ? -1 : 1);
        if (values[i] == -2) {
            rc = kb_err_set(err, KB_EFORMAT, "%s: field '%s' is not a boolean", path, fields[i]);
            goto done;
        }
    }
    wp->lowercase = values[0];
    wp->strip_accents = values[1] < 0 ? values[0] : values[1];
    wp->chinese = values[2];
    const char *name = json_token_name(root, "unk_token");
    if (name)
        snprintf(unk, unk_size, "%s", name);
done:
    cJSON_Delete(root);
    return rc;
}

static int open_vocab_txt(struct kb_wordpiece *wp, const char *vocab_path, const char *unk,
                          struct kb_err *err)
{
    struct vocab_builder vb = { KB_BUF_INIT, NULL, NULL, NULL, 0, 0 };
    char *data = NULL;
    size_t len = 0;
    wp->file = "vocab.txt";
    int rc = read_file(&data, &len, vocab_path, err);
    if (rc < 0)
        goto done;
    rc = parse_vocab_txt(&vb, data, len, vocab_path, err);
    if (rc < 0)
        goto done;
    if (add_default_specials(wp, &vb) < 0) {
        rc = kb_err_set(err, KB_ENOMEM, "%s: out of memory", vocab_path);
        goto done;
    }
    rc = wordpiece_finish(wp, &vb, unk, -1, -1, vocab_path, err);
done:
    free(data);
    builder_free(&vb);
    return rc;
}

int kb_wordpiece_open_vocab(struct kb_wordpiece **out, const char *vocab_path, int lowercase,
                            int strip_accents, struct kb_err *err)
{
    *out = NULL;
    struct kb_wordpiece *wp = wordpiece_new();
    if (!wp)
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", vocab_path);
    wp->lowercase = lowercase != 0;
    wp->strip_accents = strip_accents < 0 ? wp->lowercase : strip_accents != 0;
    int rc = open_vocab_txt(wp, vocab_path, "[UNK]", err);
    if (rc < 0) {
        kb_wordpiece_free(wp);
        return rc;
    }
    *out = wp;
    return 0;
}

/* ---- tokenizer.json -------------------------------------------------------------------------- */

/* One normaliser: BertNormalizer sets every flag; Lowercase / StripAccents / NFD (only together
 * with StripAccents, which is how it appears) set theirs. Applied in BertNormalizer's order. */
static int parse_normalizer_one(struct kb_wordpiece *wp, const cJSON *norm, int *nfd,
                                const char *path, struct kb_err *err)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(norm, "type");
    const char *name = cJSON_IsString(type) ? type->valuestring : "";
    if (strcmp(name, "BertNormalizer") == 0) {
        int clean = json_bool(norm, "clean_text", 1);
        int chinese = json_bool(norm, "handle_chinese_chars", 1);
        int lower = json_bool(norm, "lowercase", 1), strip = json_bool(norm, "strip_accents", -1);
        if (clean == -2 || chinese == -2 || lower == -2 || strip == -2)
            return kb_err_set(err, KB_EFORMAT,
                              "%s: normalizer: a BertNormalizer field is not a boolean", path);
        wp->clean_text = clean;
        wp->chinese = chinese;
        wp->lowercase = lower;
        wp->strip_accents = strip < 0 ? lower : strip;
    } else if (strcmp(name, "Lowercase") == 0) {
        wp->lowercase = 1;
    } else if (strcmp(name, "StripAccents") == 0) {
        wp->strip_accents = 1;
    } else if (strcmp(name, "NFD") == 0) {
        *nfd = 1;
    } else {
        return kb_err_set(err, KB_EFORMAT, "%s: normalizer type '%s' is not supported", path, name);
    }
    return 0;
}

static int parse_normalizer(struct kb_wordpiece *wp, const cJSON *norm, const char *path,
                            struct kb_err *err)
{
    wp->clean_text = wp->chinese = wp->lowercase = wp->strip_accents = 0;
    if (!norm || cJSON_IsNull(norm))
        return 0;
    int nfd = 0, rc = 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(norm, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "Sequence") == 0) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(norm, "normalizers"))
            if ((rc = parse_normalizer_one(wp, item, &nfd, path, err)) < 0)
                return rc;
    } else if ((rc = parse_normalizer_one(wp, norm, &nfd, path, err)) < 0) {
        return rc;
    }
    if (nfd && !wp->strip_accents)
        return kb_err_set(err, KB_EFORMAT,
                          "%s: normalizer NFD without StripAccents is not supported", path);
    return 0;
}

static int parse_model(struct kb_wordpiece *wp, struct vocab_builder *vb, const cJSON *model,
                       const char **unk, const char *path, struct kb_err *err)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsObject(model) || (type && !(cJSON_IsString(type) &&
                                             strcmp(type->valuestring, "WordPiece") == 0)))
        return kb_err_set(err, KB_EFORMAT, "%s: model.type is not WordPiece", path);
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    if (cJSON_IsString(prefix)) {
        if (strlen(prefix->valuestring) >= sizeof wp->prefix)
            return kb_err_set(err, KB_EFORMAT, "%s: model.continuing_subword_prefix is too long",
                              path);
        wp->prefix_len = strlen(prefix->valuestring);
        memcpy(wp->prefix, prefix->valuestring, wp->prefix_len + 1);
    }
    const cJSON *max_chars = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
    if (cJSON_IsNumber(max_chars)) {
        if (max_chars->valuedouble < 1 || max_chars->valuedouble > 1e6)
            return kb_err_set(err, KB_EFORMAT, "%s: model.max_input_chars_per_word is out of range",
                              path);
        wp->max_word_chars = (size_t)max_chars->valuedouble;
    }
    const cJSON *unk_item = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk_item))
        *unk = unk_item->valuestring;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab))
        return kb_err_set(err, KB_EFORMAT, "%s: model.vocab is missing or not an object", path);
    const cJSON *entry;
    cJSON_ArrayForEach(entry, vocab) {
        if (!cJSON_IsNumber(entry) || entry->valuedouble < 0 || entry->valuedouble >= WP_MAX_ID ||
            entry->valuedouble != (double)entry->valueint)
            return kb_err_set(err, KB_EFORMAT, "%s: model.vocab['%.64s'] is not a valid id", path,
                              entry->string);
        if (builder_add(vb, entry->string, strlen(entry->string), entry->valueint) < 0)
            return kb_err_set(err, KB_ENOMEM, "%s: out of memory", path);
    }
    return 0;
}

/* added_tokens: every entry is indexed by id; the ones with "normalized": false are matched on
 * the raw text (tokenizers' AddedVocabulary). "normalized": true entries (rare in BERT models)
 * are only reachable through WordPiece. */
static int parse_added_tokens(struct kb_wordpiece *wp, struct vocab_builder *vb, const cJSON *arr,
                              const char *path, struct kb_err *err)
{
    const cJSON *tok;
    size_t i = 0;
    cJSON_ArrayForEach(tok, arr) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(tok, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(tok, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= WP_MAX_ID ||
            !cJSON_IsString(content))
            return kb_err_set(err, KB_EFORMAT, "%s: added_tokens[%zu] lacks a valid id or content",
                              path, i);
        int32_t known = -1;
        for (size_t j = 0; j < vb->n && known < 0; j++)
            if (vb->id[j] == id->valueint)
                known = vb->id[j];
        if (known < 0 && builder_add(vb, content->valuestring, strlen(content->valuestring),
                                     id->valueint) < 0)
            return kb_err_set(err, KB_ENOMEM, "%s: out of memory", path);
        if (json_bool(tok, "normalized", 1) == 0 &&
            added_push(wp, vb, content->valuestring, id->valueint) < 0)
            return kb_err_set(err, KB_ENOMEM, "%s: out of memory", path);
        i++;
    }
    return 0;
}

/* The [CLS]/[SEP] ids of a TemplateProcessing, BertProcessing or RobertaProcessing. */
static void parse_post_processor(const cJSON *post, int32_t *cls_id, int32_t *sep_id)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(post, "type");
    if (!cJSON_IsString(type))
        return;
    if (strcmp(type->valuestring, "TemplateProcessing") == 0) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single");
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(post, "special_tokens");
        int n = cJSON_GetArraySize(single);
        for (int k = 0; k < 2 && n > 0; k++) {
            const cJSON *piece = cJSON_GetArrayItem(single, k == 0 ? 0 : n - 1);
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(st, "id");
            if (!cJSON_IsString(name))
                continue;
            const cJSON *def = cJSON_GetObjectItemCaseSensitive(specials, name->valuestring);
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
            const cJSON *first = cJSON_GetArrayItem(ids, 0);
            if (cJSON_GetArraySize(ids) == 1 && cJSON_IsNumber(first))
                *(k == 0 ? cls_id : sep_id) = first->valueint;
        }
    } else if (strcmp(type->valuestring, "BertProcessing") == 0 ||
               strcmp(type->valuestring, "RobertaProcessing") == 0) {
        const cJSON *cls = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(post, "cls"), 1);
        const cJSON *sep = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(post, "sep"), 1);
        if (cJSON_IsNumber(cls))
            *cls_id = cls->valueint;
        if (cJSON_IsNumber(sep))
            *sep_id = sep->valueint;
    }
}

static int parse_tokenizer_json(struct kb_wordpiece *wp, const cJSON *root, const char *path,
                                struct kb_err *err)
{
    struct vocab_builder vb = { KB_BUF_INIT, NULL, NULL, NULL, 0, 0 };
    const char *unk = "[UNK]";
    int32_t cls_id = -1, sep_id = -1;
    int rc = parse_normalizer(wp, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), path, err);
    if (rc < 0)
        goto done;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *pre_type = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (!cJSON_IsString(pre_type) || strcmp(pre_type->valuestring, "BertPreTokenizer") != 0) {
        rc = kb_err_set(err, KB_EFORMAT, "%s: pre_tokenizer is not BertPreTokenizer", path);
        goto done;
    }
    rc = parse_model(wp, &vb, cJSON_GetObjectItemCaseSensitive(root, "model"), &unk, path, err);
    if (rc < 0)
        goto done;
    rc = parse_added_tokens(wp, &vb, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), path,
                            err);
    if (rc < 0)
        goto done;
    parse_post_processor(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), &cls_id,
                         &sep_id);
    rc = wordpiece_finish(wp, &vb, unk, cls_id, sep_id, path, err);
done:
    builder_free(&vb);
    return rc;
}

static int open_tokenizer_json(struct kb_wordpiece *wp, const char *path, struct kb_err *err)
{
    cJSON *root = NULL;
    wp->file = "tokenizer.json";
    int rc = parse_json_file(&root, path, err);
    if (rc < 0)
        return rc;
    rc = parse_tokenizer_json(wp, root, path, err);
    cJSON_Delete(root);
    return rc;
}

static int open_dir(struct kb_wordpiece *wp, const char *model_dir, struct kb_err *err)
{
    char *json_path = kb_path_join(model_dir, "tokenizer.json");
    char *vocab_path = kb_path_join(model_dir, "vocab.txt");
    char *config_path = kb_path_join(model_dir, "tokenizer_config.json");
    char unk[256] = "[UNK]";
    int rc = 0;
    struct stat st;
    if (!json_path || !vocab_path || !config_path) {
        rc = kb_err_set(err, KB_ENOMEM, "%s: out of memory", model_dir);
    } else if (stat(model_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = kb_err_set(err, KB_ENOTFOUND, "%s: no such model folder", model_dir);
    } else if (file_exists(json_path)) {
        rc = open_tokenizer_json(wp, json_path, err);
    } else if (!file_exists(vocab_path)) {
        rc = kb_err_set(err, KB_ENOTFOUND, "%s: neither tokenizer.json nor vocab.txt is there",
                        model_dir);
    } else if ((rc = read_tokenizer_config(wp, config_path, unk, sizeof unk, err)) == 0) {
        rc = open_vocab_txt(wp, vocab_path, unk, err);
    }
    free(json_path);
    free(vocab_path);
    free(config_path);
    return rc;
}

int kb_wordpiece_open(struct kb_wordpiece **out, const char *model_dir, struct kb_err *err)
{
    *out = NULL;
    struct kb_wordpiece *wp = wordpiece_new();
    if (!wp)
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", model_dir);
    int rc = open_dir(wp, model_dir, err);
    if (rc < 0) {
        kb_wordpiece_free(wp);
        return rc;
    }
    *out = wp;
    return 0;
}

void kb_wordpiece_free(struct kb_wordpiece *wp)
{
    if (!wp)
        return;
    free(wp->arena);
    free(wp->id_off);
    free(wp->slots);
    free(wp->added);
    free(wp);
}

const char *kb_wordpiece_token(const struct kb_wordpiece *wp, int32_t id)
{
    if (id < 0 || (size_t)id >= wp->n_ids || wp->id_off[id] == UINT32_MAX)
        return NULL;
    return wp->arena + wp->id_off[id];
}

int32_t kb_wordpiece_special_id(const struct kb_wordpiece *wp, enum kb_wordpiece_special which)
{
    return wp->special[which];
}

size_t kb_wordpiece_vocab_size(const struct kb_wordpiece *wp)
{
    return wp->n_ids;
}

const char *kb_wordpiece_file(const struct kb_wordpiece *wp)
{
    return wp->file;
}

/* ---- encoding -------------------------------------------------------------------------------- */

/* The state of one encode call. The text streams through normalise -> pre-tokenise -> WordPiece
 * one character at a time; the only buffers are the current word and its scratch. */
struct wp_enc {
    const struct kb_wordpiece *wp;
    int32_t *ids;           /* where content ids go (after [CLS]); NULL when counting */
    size_t cap;             /* content ids that fit */
    size_t n_written;
    size_t n_total;         /* content ids the whole text needs */
    int stop;               /* the output is full and nobody wants n_full: stop early */
    int want_total;
    char *word;             /* the word's normalised UTF-8, max_word_chars * 4 bytes */
    size_t word_len;
    size_t word_chars;
    uint32_t *hashes;       /* hashes[k]: hash of prefix + word[start, start + k) */
    int32_t *pieces;        /* the word's WordPiece ids until it is known to be complete */
    int32_t held[WP_HELD_MAX];   /* kept combining marks awaiting canonical order */
    uint8_t held_ccc[WP_HELD_MAX];
    int n_held;
};

static void enc_emit(struct wp_enc *st, int32_t id)
{
    if (st->n_written < st->cap)
        st->ids[st->n_written++] = id;
    st->n_total++;
    if (st->n_written == st->cap && !st->want_total)
        st->stop = 1;
}

/* One greedy longest-match-first piece from word[start..): its id and end, or -1. */
static int32_t wordpiece_piece(struct wp_enc *st, size_t start, size_t *end_out)
{
    const struct kb_wordpiece *wp = st->wp;
    const char *w = st->word;
    const char *pre = start ? wp->prefix : "";
    size_t pre_len = start ? wp->prefix_len : 0;
    size_t limit = st->word_len - start;
    if (wp->max_token_len < pre_len + limit)
        limit = wp->max_token_len > pre_len ? wp->max_token_len - pre_len : 0;
    uint32_t h = start ? wp->prefix_hash : FNV_OFFSET;
    for (size_t k = 0; k < limit; k++)
        st->hashes[k + 1] = h = (h ^ (uint8_t)w[start + k]) * FNV_PRIME;
    size_t end = start + limit;
    while (end > start && end < st->word_len && ((uint8_t)w[end] & 0xC0) == 0x80)
        end--;
    while (end > start) {
        int32_t id = vocab_find(wp, st->hashes[end - start], pre, pre_len, w + start, end - start);
        if (id >= 0) {
            *end_out = end;
            return id;
        }
        do
            end--;
        while (end > start && ((uint8_t)w[end] & 0xC0) == 0x80);
    }
    return -1;
}

/* The word ends: WordPiece it (tokenizers' WordPiece::tokenize) and emit its ids. */
static void enc_word_end(struct wp_enc *st)
{
    if (st->word_chars == 0)
        return;
    size_t n_pieces = 0;
    if (st->word_chars <= st->wp->max_word_chars) {
        for (size_t start = 0; start < st->word_len;) {
            int32_t id = wordpiece_piece(st, start, &start);
            if (id < 0) {
                n_pieces = 0;
                break;
            }
            st->pieces[n_pieces++] = id;
        }
    }
    if (n_pieces == 0)
        enc_emit(st, st->wp->unk_id);
    for (size_t i = 0; i < n_pieces && !st->stop; i++)
        enc_emit(st, st->pieces[i]);
    st->word_len = st->word_chars = 0;
}

/* Appends a normalised character to the word; past max_word_chars only the count grows. */
static void enc_word_add(struct wp_enc *st, int32_t c)
{
    if (++st->word_chars <= st->wp->max_word_chars)
        st->word_len +=
            (size_t)utf8proc_encode_char(c, (utf8proc_uint8_t *)st->word + st->word_len);
}

/* BertPreTokenizer on one normalised character: whitespace ends a word, punctuation is a word. */
static void enc_pretok(struct wp_enc *st, int32_t c)
{
    if (is_ws(c)) {
        enc_word_end(st);
    } else if (is_punct(c)) {
        enc_word_end(st);
        enc_word_add(st, c);
        enc_word_end(st);
    } else {
        enc_word_add(st, c);
    }
}

/* Lowercase is Rust's char::to_lowercase (full mapping); the one multi-character lowercase
 * mapping in SpecialCasing.txt is U+0130 -> "i" U+0307, which utf8proc's simple map lacks. */
static void enc_lower(struct wp_enc *st, int32_t c)
{
    if (!st->wp->lowercase) {
        enc_pretok(st, c);
    } else if (c == 0x130) {
        enc_pretok(st, 'i');
        enc_pretok(st, 0x307);
    } else {
        enc_pretok(st, utf8proc_tolower(c));
    }
}

static void enc_flush_held(struct wp_enc *st)
{
    for (int i = 0; i < st->n_held; i++)
        enc_lower(st, st->held[i]);
    st->n_held = 0;
}

/* NFD puts a run of combining marks (ccc > 0) in stable ccc order. Mn marks are dropped anyway,
 * so only the few non-Mn marks with ccc > 0 are held here and sorted; a run of more than
 * WP_HELD_MAX of them is ordered in pieces. */
static void enc_hold_mark(struct wp_enc *st, int32_t c, uint8_t ccc)
{
    if (st->n_held == WP_HELD_MAX)
        enc_flush_held(st);
    int i = st->n_held++;
    for (; i > 0 && st->held_ccc[i - 1] > ccc; i--) {
        st->held[i] = st->held[i - 1];
        st->held_ccc[i] = st->held_ccc[i - 1];
    }
    st->held[i] = c;
    st->held_ccc[i] = ccc;
}

/* strip_accents: NFD, then drop Mn. */
static void enc_strip(struct wp_enc *st, int32_t c)
{
    utf8proc_int32_t parts[8];
    int last_boundclass = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(c, parts, 8, UTF8PROC_DECOMPOSE, &last_boundclass);
    if (n < 1 || n > 8) {
        parts[0] = c;
        n = 1;
    }
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        const utf8proc_property_t *prop = utf8proc_get_property(parts[i]);
        if (prop->combining_class == 0)
            enc_flush_held(st);
        if (prop->category == UTF8PROC_CATEGORY_MN)
            continue;
        if (prop->combining_class != 0)
            enc_hold_mark(st, parts[i], (uint8_t)prop->combining_class);
        else
            enc_lower(st, parts[i]);
    }
}

/* BertNormalizer on one input character, in tokenizers' order: clean_text, chinese chars,
 * strip_accents, lowercase. */
static void enc_char(struct wp_enc *st, int32_t c)
{
    const struct kb_wordpiece *wp = st->wp;
    if (wp->clean_text) {
        if (c == 0 || c == 0xFFFD || is_control(c))
            return;
        if (is_ws(c))
            c = ' ';
    }
    int spaced = wp->chinese && is_cjk(c);
    if (spaced)
        enc_pretok(st, ' ');
    if (wp->strip_accents)
        enc_strip(st, c);
    else
        enc_lower(st, c);
    if (spaced)
        enc_pretok(st, ' ');
}

/* The added token starting at text (longest first), or NULL. */
static const struct wp_added *added_match(const struct kb_wordpiece *wp, const char *text,
                                          size_t len)
{
    for (size_t i = 0; i < wp->n_added; i++) {
        const struct wp_added *a = &wp->added[i];
        if (a->len <= len && memcmp(text, wp->arena + a->off, a->len) == 0)
            return a;
    }
    return NULL;
}

static void enc_ascii(struct wp_enc *st, uint8_t b)
{
    if (st->n_held)
        enc_flush_held(st);
    switch (st->wp->ascii_class[b]) {
    case ASCII_DROP:
        break;
    case ASCII_SPACE:
        enc_word_end(st);
        break;
    case ASCII_PUNCT:
        enc_word_end(st);
        enc_word_add(st, (uint8_t)st->wp->ascii_norm[b]);
        enc_word_end(st);
        break;
    default:
        if (++st->word_chars <= st->wp->max_word_chars)
            st->word[st->word_len++] = st->wp->ascii_norm[b];
    }
}

/* The whole text (valid UTF-8): added tokens split out first, every other piece normalised. */
static void enc_text(struct wp_enc *st, const char *text, size_t len)
{
    const struct kb_wordpiece *wp = st->wp;
    for (size_t i = 0; i < len && !st->stop;) {
        uint8_t b = (uint8_t)text[i];
        const struct wp_added *a = wp->added_first[b] ? added_match(wp, text + i, len - i) : NULL;
        if (a) {
            enc_flush_held(st);
            enc_word_end(st);
            if (!st->stop)
                enc_emit(st, a->id);
            i += a->len;
        } else if (b < 0x80) {
            enc_ascii(st, b);
            i++;
        } else {
            utf8proc_int32_t c;
            utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)text + i,
                                                  (utf8proc_ssize_t)(len - i), &c);
            enc_char(st, c);
            i += (size_t)n;
        }
    }
    enc_flush_held(st);
    enc_word_end(st);
}

/* Runs the encoder with scratch sized for max_word_chars: on the stack for the usual 100. */
static int enc_run(struct wp_enc *st, const char *text, size_t len, struct kb_err *err)
{
    size_t max_chars = st->wp->max_word_chars;
    char word[WP_STACK_WORD_CHARS * 4 + 8];
    uint32_t hashes[WP_STACK_WORD_CHARS * 4 + 8];
    int32_t pieces[WP_STACK_WORD_CHARS + 1];
    void *heap = NULL;
    if (max_chars <= WP_STACK_WORD_CHARS) {
        st->word = word;
        st->hashes = hashes;
        st->pieces = pieces;
    } else {
        size_t bytes = max_chars * 4 + 8;
        heap = malloc(bytes + bytes * sizeof(uint32_t) + (max_chars + 1) * sizeof(int32_t));
        if (!heap)
            return kb_err_set(err, KB_ENOMEM, "tokenizer: out of memory");
        st->hashes = heap;
        st->pieces = (int32_t *)(st->hashes + bytes);
        st->word = (char *)(st->pieces + max_chars + 1);
    }
    enc_text(st, text, len);
    free(heap);
    return 0;
}

int kb_wordpiece_encode(const struct kb_wordpiece *wp, const char *text, size_t len,
                        unsigned flags, int32_t *ids, size_t max_ids, size_t *n_out,
                        size_t *n_full, struct kb_err *err)
{
    *n_out = 0;
    if (n_full)
        *n_full = 0;
    size_t bad;
    if (!kb_utf8_valid(text, len, &bad))
        return kb_err_set(err, KB_EFORMAT, "invalid UTF-8 at byte %zu", bad);
    int specials = (flags & KB_WORDPIECE_ADD_SPECIAL) != 0;
    int32_t cls = wp->special[KB_WORDPIECE_CLS], sep = wp->special[KB_WORDPIECE_SEP];
    if (specials && (cls < 0 || sep < 0))
        return kb_err_set(err, KB_EFORMAT, "tokenizer: the vocabulary has no %s token",
                          cls < 0 ? "[CLS]" : "[SEP]");
    if (!ids)
        max_ids = 0;
    struct wp_enc st = { 0 };
    st.wp = wp;
    st.want_total = n_full != NULL;
    st.ids = specials && max_ids > 0 ? ids + 1 : ids;
    st.cap = specials ? (max_ids >= 2 ? max_ids - 2 : 0) : max_ids;
    st.stop = st.cap == 0 && !st.want_total;
    int rc = st.stop ? 0 : enc_run(&st, text, len, err);
    if (rc < 0)
        return rc;
    *n_out = st.n_written;
    if (specials && max_ids > 0) {
        ids[0] = cls;
        if (max_ids >= 2)
            ids[1 + st.n_written] = sep;
        *n_out += max_ids >= 2 ? 2 : 1;
    }
    if (n_full)
        *n_full = st.n_total + (specials ? 2 : 0);
    return 0;
}
