/* wordpiece.h — BERT WordPiece tokenizer, exactly as Hugging Face's BertTokenizer / tokenizers
 * (BertNormalizer + BertPreTokenizer + WordPiece).
 *
 * Where the two HF implementations differ, the Rust `tokenizers` library (the one behind
 * tokenizer.json and BertTokenizerFast) is followed: normalisation order clean_text -> spaces
 * around CJK ideographs -> strip accents (NFD, drop Mn) -> lowercase (per character, full
 * mapping, so no final-sigma rule); control = Cc, Cf, Co (unassigned code points are kept);
 * CJK ranges as its is_chinese_char (0x2B920.., where Python's has 0x2B820..). Unicode
 * properties come from utf8proc, so characters assigned after the Unicode version of HF's
 * tables (9.0) may be classed differently; all published cases agree.
 *
 * Added tokens: as HF does by default, the special tokens written literally in the text
 * ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", exact case) are split out before normalisation
 * and encode as their ids: "hello[SEP]world" -> hello [SEP] world. From tokenizer.json these
 * are the added_tokens with "normalized": false; from vocab.txt, those five when present. */
#ifndef KB_ENCODER_WORDPIECE_H
#define KB_ENCODER_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct kb_wordpiece;

/* Special tokens, looked up in the vocabulary at open. */
enum kb_wordpiece_special {
    KB_WORDPIECE_CLS,
    KB_WORDPIECE_SEP,
    KB_WORDPIECE_PAD,
    KB_WORDPIECE_UNK,
    KB_WORDPIECE_MASK
};

/* Encoding flags. */
#define KB_WORDPIECE_ADD_SPECIAL 0x1u  /* [CLS] ... [SEP] around the tokens */

/* Opens the tokenizer of a Hugging Face model folder: tokenizer.json when present, else
 * vocab.txt + tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars;
 * defaults as BertTokenizer: lowercase on, accents stripped when lowercasing). Errors name
 * the file and line/field (KB_ENOTFOUND, KB_EFORMAT, KB_ENOMEM).
 * tokenizer.json must have a WordPiece model and a BertPreTokenizer; its normalizer may be
 * null, a BertNormalizer, or a Sequence of BertNormalizer / Lowercase / NFD + StripAccents;
 * [CLS]/[SEP] come from its post_processor (TemplateProcessing, BertProcessing,
 * RobertaProcessing) when there is one, else from the vocabulary. Anything else is KB_EFORMAT
 * rather than a silently different tokenisation. */
int kb_wordpiece_open(struct kb_wordpiece **out, const char *model_dir, struct kb_err *err);

/* Opens from a vocab.txt file alone, with explicit normalisation settings; strip_accents < 0
 * follows `lowercase` (HF's strip_accents=None). Clean-up and CJK splitting are on. */
int kb_wordpiece_open_vocab(struct kb_wordpiece **out, const char *vocab_path, int lowercase,
                            int strip_accents, struct kb_err *err);

void kb_wordpiece_free(struct kb_wordpiece *wp);

/* Tokenizes `len` bytes of UTF-8 `text` into ids[0..*n_out). At most max_ids ids are written
 * (truncation: with KB_WORDPIECE_ADD_SPECIAL the [SEP] is kept as the last id, as HF
 * truncation does; max_ids == 1 gives [CLS] alone). *n_full (may be NULL) receives the count
 * the text would need without truncation, specials included. ids may be NULL when max_ids is 0:
 * a pure count. When n_full is NULL, work stops once ids is full. Invalid UTF-8 is KB_EFORMAT
 * with the byte offset in the message ("invalid UTF-8 at byte 17"); KB_WORDPIECE_ADD_SPECIAL
 * with a vocabulary lacking [CLS]/[SEP] is KB_EFORMAT; KB_ENOMEM only when
 * max_input_chars_per_word is over 256 and its scratch can't be had. Allocates nothing
 * otherwise. Thread-safe on a shared tokenizer (it is read-only after open). */
int kb_wordpiece_encode(const struct kb_wordpiece *wp, const char *text, size_t len,
                        unsigned flags, int32_t *ids, size_t max_ids, size_t *n_out,
                        size_t *n_full, struct kb_err *err);

/* The token string of an id (borrowed), or NULL when out of range. */
const char *kb_wordpiece_token(const struct kb_wordpiece *wp, int32_t id);

/* The id of a special token, or -1 when the vocabulary lacks it. */
int32_t kb_wordpiece_special_id(const struct kb_wordpiece *wp, enum kb_wordpiece_special which);

/* The number of ids: the largest id in the vocabulary (added tokens included) plus one. */
size_t kb_wordpiece_vocab_size(const struct kb_wordpiece *wp);

/* The file the vocabulary was read from: "tokenizer.json" or "vocab.txt". */
const char *kb_wordpiece_file(const struct kb_wordpiece *wp);

#endif
