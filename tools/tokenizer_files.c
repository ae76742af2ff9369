/* tokenizer_files.c — generated vocabularies for make-pipeline's tokenizer
 * folders (tokenizer_files.h): byte-level BPE (CLIP, Qwen2) as
 * vocab.json + merges.txt, and a Unigram model (T5, UMT5) as the
 * tokenizers library's tokenizer.json.
 *
 * BPE merges are built word by word from one word list: a word's symbols
 * are merged left to right (the prefix so far with the next symbol), each
 * merge adding its result to the vocabulary, so every merge joins two
 * tokens that exist and yields one that exists — whatever order a BPE
 * applies the merges in, it ends on tokens of the vocabulary. */
#include "tokenizer_files.h"

#include "hoist.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Words of image prompts, in no particular order. */
static const char *const words[] = {
    "a",        "an",       "the",      "of",       "and",     "in",       "on",       "with",
    "at",       "to",       "is",       "photo",    "picture", "image",    "painting", "portrait",
    "drawing",  "red",      "blue",     "green",    "yellow",  "white",    "black",    "orange",
    "purple",   "cube",     "sphere",   "cat",      "dog",     "bird",     "horse",    "tree",
    "house",    "city",     "sky",      "sun",      "moon",    "sea",      "mountain", "river",
    "forest",   "flower",   "car",      "street",   "night",   "day",      "light",    "water",
    "girl",     "boy",      "man",      "woman",    "person",  "face",     "hand",     "eyes",
    "hair",     "small",    "large",    "big",      "old",     "new",      "beautiful", "style",
    "detailed", "high",     "quality",  "art",      "digital", "realistic", "background", "standing",
    "sitting",  "wearing",  "holding",  "table",    "room",    "window",   "garden",   "snow",
    "rain",     "cloud",    "fire",     "stone",    "wood",    "glass",    "metal",    "gold",
    "silver",   "cinematic", "lighting", "sharp",   "focus",   "describe", "system",   "user",
    "assistant", "video",   "scene",    "camera",   "motion",  "slow",     "walking",  "running",
};
#define NWORDS (sizeof words / sizeof words[0])

/* ------------------------------------------------------------------------ */
/* An ordered set of tokens */

typedef struct tokens {
  char **s;
  size_t n, cap;
  int oom;
} tokens;

static long tokens_find(const tokens *t, const char *s) {
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->s[i], s) == 0) return (long)i;
  return -1;
}

/* Appends s unless present; returns 1 when it was added. */
static int tokens_add(tokens *t, const char *s) {
  if (t->oom || tokens_find(t, s) >= 0) return 0;
  if (t->n == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 1024;
    char **grown = realloc(t->s, cap * sizeof *grown);
    if (grown == NULL) {
      t->oom = 1;
      return 0;
    }
    t->s = grown;
    t->cap = cap;
  }
  char *copy = malloc(strlen(s) + 1);
  if (copy == NULL) {
    t->oom = 1;
    return 0;
  }
  strcpy(copy, s);
  t->s[t->n++] = copy;
  return 1;
}

static void tokens_free(tokens *t) {
  for (size_t i = 0; i < t->n; i++) free(t->s[i]);
  free(t->s);
  memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------------ */
/* Byte-level symbols (GPT-2's bytes_to_unicode) */

static size_t utf8_put(char *out, unsigned cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    out[1] = '\0';
    return 1;
  }
  out[0] = (char)(0xC0 | (cp >> 6));
  out[1] = (char)(0x80 | (cp & 0x3F));
  out[2] = '\0';
  return 2;
}

/* sym[b]: the symbol of byte b; order[k]: the byte of vocabulary id k (the
 * printable bytes first, then the others mapped to U+0100 and up). */
typedef struct byte_symbols {
  char sym[256][4];
  unsigned char order[256];
} byte_symbols;

static int printable_byte(unsigned b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static void byte_symbols_init(byte_symbols *bs) {
  size_t k = 0;
  for (unsigned b = 0; b < 256; b++)
    if (printable_byte(b)) {
      utf8_put(bs->sym[b], b);
      bs->order[k++] = (unsigned char)b;
    }
  unsigned extra = 0;
  for (unsigned b = 0; b < 256; b++)
    if (!printable_byte(b)) {
      utf8_put(bs->sym[b], 256 + extra++);
      bs->order[k++] = (unsigned char)b;
    }
}

/* ------------------------------------------------------------------------ */
/* BPE: vocab.json + merges.txt */

typedef struct bpe {
  tokens vocab, merges;
} bpe;

/* Merges the symbols of one word left to right.  prefix: a symbol put
 * before the word (GPT-2's space), or NULL; suffix: appended to the last
 * symbol (CLIP's "</w>"), or "". */
static void bpe_word(bpe *b, const byte_symbols *bs, const char *prefix, const char *word,
                     const char *suffix) {
  /* Words are short: a symbol is at most 2 bytes, the suffix 4. */
  char cur[128], next[16], line[160];
  size_t n = strlen(word), i = 0, lc;
  if (prefix != NULL) {
    snprintf(cur, sizeof cur, "%s", prefix);
  } else {
    snprintf(cur, sizeof cur, "%s%s", bs->sym[(unsigned char)word[0]], n == 1 ? suffix : "");
    i = 1;
  }
  for (; i < n; i++) {
    snprintf(next, sizeof next, "%s%s", bs->sym[(unsigned char)word[i]], i + 1 == n ? suffix : "");
    lc = strlen(cur);
    if (lc + strlen(next) + 2 > sizeof cur) return;
    snprintf(line, sizeof line, "%s %s", cur, next);
    strcat(cur, next); /* the merged token */
    if (tokens_add(&b->merges, line)) tokens_add(&b->vocab, cur);
  }
}

static char *vocab_json(const tokens *vocab) {
  cJSON *root = cJSON_CreateObject();
  for (size_t i = 0; root != NULL && i < vocab->n; i++)
    if (cJSON_AddNumberToObject(root, vocab->s[i], (double)i) == NULL) {
      cJSON_Delete(root);
      root = NULL;
    }
  char *text = root != NULL ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  return text;
}

static char *merges_txt(const tokens *merges) {
  static const char header[] = "#version: 0.2\n";
  size_t len = sizeof header;
  for (size_t i = 0; i < merges->n; i++) len += strlen(merges->s[i]) + 1;
  char *text = malloc(len);
  if (text == NULL) return NULL;
  char *p = text + sprintf(text, "%s", header);
  for (size_t i = 0; i < merges->n; i++) p += sprintf(p, "%s\n", merges->s[i]);
  return text;
}

/* cJSON allocates with malloc (the library's default hooks): its strings
 * are freed with free() like the others. */
static int bpe_files(hoist__vocab_kind kind, hoist__vocab_file *out) {
  byte_symbols bs;
  byte_symbols_init(&bs);
  bpe b;
  memset(&b, 0, sizeof b);
  const int clip = kind == HOIST_VOCAB_CLIP;
  for (size_t k = 0; k < 256; k++) tokens_add(&b.vocab, bs.sym[bs.order[k]]);
  if (clip) {
    char with_end[16];
    for (size_t k = 0; k < 256; k++) {
      snprintf(with_end, sizeof with_end, "%s</w>", bs.sym[bs.order[k]]);
      tokens_add(&b.vocab, with_end);
    }
  }
  /* Longer words first, so their merges outrank the shorter words' that
   * could cut them (with "t o</w>" first, "photo" would end "pho" "to");
   * in GPT-2 style the word after a space first, as prompts have it. */
  for (size_t len = 16; len > 0; len--)
    for (size_t w = 0; w < NWORDS; w++) {
      if (strlen(words[w]) != len) continue;
      if (clip) {
        bpe_word(&b, &bs, NULL, words[w], "</w>");
      } else {
        bpe_word(&b, &bs, bs.sym[' '], words[w], "");
        bpe_word(&b, &bs, NULL, words[w], "");
      }
    }
  if (clip) {
    tokens_add(&b.vocab, "<|startoftext|>");
    tokens_add(&b.vocab, "<|endoftext|>");
  } else {
    tokens_add(&b.vocab, "<|endoftext|>");
    tokens_add(&b.vocab, "<|im_start|>");
    tokens_add(&b.vocab, "<|im_end|>");
  }
  int rc = HOIST_NO_MEMORY;
  if (!b.vocab.oom && !b.merges.oom) {
    out[0] = (hoist__vocab_file){"vocab.json", vocab_json(&b.vocab)};
    out[1] = (hoist__vocab_file){"merges.txt", merges_txt(&b.merges)};
    if (out[0].text != NULL && out[1].text != NULL) rc = HOIST_OK;
  }
  tokens_free(&b.vocab);
  tokens_free(&b.merges);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Unigram: tokenizer.json */

#define METASPACE "\xe2\x96\x81" /* U+2581, SentencePiece's word boundary */

/* Adds item to array (deleting it when it cannot be added); 0 on failure. */
static int push(cJSON *array, cJSON *item) {
  if (array != NULL && item != NULL && cJSON_AddItemToArray(array, item)) return 1;
  cJSON_Delete(item);
  return 0;
}

static cJSON *piece(const char *text, double score) {
  cJSON *p = cJSON_CreateArray();
  if (p == NULL || !push(p, cJSON_CreateString(text)) || !push(p, cJSON_CreateNumber(score))) {
    cJSON_Delete(p);
    return NULL;
  }
  return p;
}

static cJSON *added_token(size_t id, const char *content) {
  cJSON *t = cJSON_CreateObject();
  int ok = t != NULL && cJSON_AddNumberToObject(t, "id", (double)id) != NULL &&
           cJSON_AddStringToObject(t, "content", content) != NULL &&
           cJSON_AddBoolToObject(t, "single_word", 0) != NULL &&
           cJSON_AddBoolToObject(t, "lstrip", 0) != NULL &&
           cJSON_AddBoolToObject(t, "rstrip", 0) != NULL &&
           cJSON_AddBoolToObject(t, "normalized", 0) != NULL &&
           cJSON_AddBoolToObject(t, "special", 1) != NULL;
  if (!ok) cJSON_Delete(t);
  return ok ? t : NULL;
}

static cJSON *metaspace(const char *type) {
  cJSON *m = cJSON_CreateObject();
  int ok = m != NULL && cJSON_AddStringToObject(m, "type", type) != NULL &&
           cJSON_AddStringToObject(m, "replacement", METASPACE) != NULL &&
           cJSON_AddStringToObject(m, "prepend_scheme", "always") != NULL &&
           cJSON_AddBoolToObject(m, "split", 1) != NULL;
  if (!ok) cJSON_Delete(m);
  return ok ? m : NULL;
}

/* {"Sequence":{"id":"A","type_id":0}} or {"SpecialToken":{"id":"</s>","type_id":0}} */
static cJSON *template_item(const char *kind, const char *id) {
  cJSON *item = cJSON_CreateObject();
  cJSON *inner = item != NULL ? cJSON_AddObjectToObject(item, kind) : NULL;
  if (inner == NULL || cJSON_AddStringToObject(inner, "id", id) == NULL ||
      cJSON_AddNumberToObject(inner, "type_id", 0) == NULL) {
    cJSON_Delete(item);
    return NULL;
  }
  return item;
}

/* T5's post-processor: "$A </s>" and "$A </s> $B </s>". */
static cJSON *t5_template(void) {
  cJSON *pp = cJSON_CreateObject();
  cJSON *single = pp != NULL ? cJSON_AddArrayToObject(pp, "single") : NULL;
  cJSON *pair = pp != NULL ? cJSON_AddArrayToObject(pp, "pair") : NULL;
  cJSON *specials = pp != NULL ? cJSON_AddObjectToObject(pp, "special_tokens") : NULL;
  cJSON *eos = specials != NULL ? cJSON_AddObjectToObject(specials, "</s>") : NULL;
  cJSON *ids = eos != NULL ? cJSON_AddArrayToObject(eos, "ids") : NULL;
  cJSON *toks = eos != NULL ? cJSON_AddArrayToObject(eos, "tokens") : NULL;
  int ok = cJSON_AddStringToObject(pp, "type", "TemplateProcessing") != NULL &&
           push(single, template_item("Sequence", "A")) &&
           push(single, template_item("SpecialToken", "</s>")) &&
           push(pair, template_item("Sequence", "A")) &&
           push(pair, template_item("SpecialToken", "</s>")) &&
           push(pair, template_item("Sequence", "B")) &&
           push(pair, template_item("SpecialToken", "</s>")) &&
           cJSON_AddStringToObject(eos, "id", "</s>") != NULL &&
           push(ids, cJSON_CreateNumber(1)) && push(toks, cJSON_CreateString("</s>"));
  if (!ok) cJSON_Delete(pp);
  return ok ? pp : NULL;
}

/* Adds item under name (deleting it when it cannot be added); 0 on failure. */
static int put(cJSON *object, const char *name, cJSON *item) {
  if (object != NULL && item != NULL && cJSON_AddItemToObject(object, name, item)) return 1;
  cJSON_Delete(item);
  return 0;
}

static int unigram_files(hoist__vocab_kind kind, hoist__vocab_file *out) {
  const int umt5 = kind == HOIST_VOCAB_UMT5;
  const unsigned extra_ids = umt5 ? 300 : 100;
  static const char *const t5_specials[] = {"<pad>", "</s>", "<unk>"};
  static const char *const umt5_specials[] = {"<pad>", "</s>", "<s>", "<unk>"};
  const char *const *specials = umt5 ? umt5_specials : t5_specials;
  const size_t nspecials = umt5 ? 4 : 3;

  cJSON *root = cJSON_CreateObject();
  cJSON *added = cJSON_CreateArray(), *pre = cJSON_CreateObject(), *pres = cJSON_CreateArray();
  cJSON *model = cJSON_CreateObject(), *vocab = cJSON_CreateArray(), *ws = cJSON_CreateObject();
  int ok = root != NULL && cJSON_AddStringToObject(root, "version", "1.0") != NULL &&
           cJSON_AddNullToObject(root, "truncation") != NULL &&
           cJSON_AddNullToObject(root, "padding") != NULL &&
           cJSON_AddStringToObject(ws, "type", "WhitespaceSplit") != NULL &&
           cJSON_AddStringToObject(pre, "type", "Sequence") != NULL &&
           cJSON_AddStringToObject(model, "type", "Unigram") != NULL &&
           cJSON_AddNumberToObject(model, "unk_id", (double)(nspecials - 1)) != NULL;

  size_t id = 0;
  for (size_t i = 0; ok && i < nspecials; i++, id++)
    ok = push(vocab, piece(specials[i], 0.0)) && push(added, added_token(id, specials[i]));
  /* Whole words first (one piece beats several), then the boundary and
   * single characters that spell anything else. */
  ok = ok && push(vocab, piece(METASPACE, -2.0));
  id++;
  char text[64];
  for (size_t w = 0; ok && w < NWORDS; w++, id++) {
    snprintf(text, sizeof text, METASPACE "%s", words[w]);
    ok = push(vocab, piece(text, -5.0 - 0.01 * (double)w));
  }
  static const char chars[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()/";
  for (size_t c = 0; ok && chars[c] != '\0'; c++, id++) {
    snprintf(text, sizeof text, "%c", chars[c]);
    ok = push(vocab, piece(text, -10.0 - 0.01 * (double)c));
  }
  /* Sentinels last, highest first, as SentencePiece's T5 models end. */
  for (unsigned k = extra_ids; ok && k-- > 0; id++) {
    snprintf(text, sizeof text, "<extra_id_%u>", k);
    ok = push(vocab, piece(text, 0.0)) && push(added, added_token(id, text));
  }
  /* The containers join the tree last, each exactly once whatever failed
   * before (push and put delete what they cannot attach). */
  ok = push(pres, ws) && ok;
  ok = push(pres, metaspace("Metaspace")) && ok;
  ok = put(pre, "pretokenizers", pres) && ok;
  ok = put(model, "vocab", vocab) && ok;
  ok = cJSON_AddBoolToObject(model, "byte_fallback", 0) != NULL && ok;
  ok = put(root, "added_tokens", added) && ok;
  ok = cJSON_AddNullToObject(root, "normalizer") != NULL && ok;
  ok = put(root, "pre_tokenizer", pre) && ok;
  ok = put(root, "post_processor", t5_template()) && ok;
  ok = put(root, "decoder", metaspace("Metaspace")) && ok;
  ok = put(root, "model", model) && ok;
  out[0] = (hoist__vocab_file){"tokenizer.json", ok ? cJSON_PrintUnformatted(root) : NULL};
  cJSON_Delete(root);
  return out[0].text != NULL ? HOIST_OK : HOIST_NO_MEMORY;
}

/* ------------------------------------------------------------------------ */
/* Public functions */

size_t hoist__vocab_file_names(hoist__vocab_kind kind, const char **names) {
  switch (kind) {
  case HOIST_VOCAB_CLIP:
  case HOIST_VOCAB_QWEN2:
    names[0] = "vocab.json";
    names[1] = "merges.txt";
    return 2;
  case HOIST_VOCAB_T5:
  case HOIST_VOCAB_UMT5:
    names[0] = "tokenizer.json";
    return 1;
  default:
    return 0;
  }
}

int hoist__vocab_files(hoist__vocab_kind kind, hoist__vocab_file *out, size_t *count) {
  const char *names[HOIST_VOCAB_MAX_FILES];
  size_t n = hoist__vocab_file_names(kind, names);
  memset(out, 0, HOIST_VOCAB_MAX_FILES * sizeof *out);
  *count = 0;
  if (n == 0) return HOIST_OK;
  int rc = kind == HOIST_VOCAB_CLIP || kind == HOIST_VOCAB_QWEN2 ? bpe_files(kind, out)
                                                                : unigram_files(kind, out);
  if (rc != HOIST_OK) {
    hoist__vocab_files_free(out, n);
    return rc;
  }
  *count = n;
  return HOIST_OK;
}

void hoist__vocab_files_free(hoist__vocab_file *files, size_t count) {
  for (size_t i = 0; i < count; i++) {
    free(files[i].text);
    files[i].text = NULL;
  }
}
