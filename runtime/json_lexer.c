/* json_lexer.c — the strict JSON validator run over a safetensors header
 * before cJSON parses it (see json_lexer.h for why and what it records).
 *
 * One pass checks UTF-8 (as Rust's str::from_utf8 does), a second walks the
 * RFC 8259 grammar with an explicit state and a fixed nesting stack, so that
 * hostile input (a 100 MB header, a nesting bomb) costs linear time and no
 * recursion. */
#include "json_lexer.h"

#include "hoist.h"
#include "text.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void hoist__json_tokens_free(hoist__json_tokens *tok) {
  free(tok->members);
  free(tok->numbers);
  free(tok->strings);
  memset(tok, 0, sizeof *tok);
}

static bool push_number(hoist__json_tokens *tok, uint64_t v) {
  if (tok->number_count == tok->number_cap) {
    size_t cap = tok->number_cap != 0 ? tok->number_cap * 2 : 256;
    uint64_t *n = realloc(tok->numbers, cap * sizeof *n);
    if (n == NULL) return false;
    tok->numbers = n;
    tok->number_cap = cap;
  }
  tok->numbers[tok->number_count++] = v;
  return true;
}

static bool push_string(hoist__json_tokens *tok, uint8_t flags) {
  if (tok->string_count == tok->string_cap) {
    size_t cap = tok->string_cap != 0 ? tok->string_cap * 2 : 256;
    uint8_t *n = realloc(tok->strings, cap);
    if (n == NULL) return false;
    tok->strings = n;
    tok->string_cap = cap;
  }
  tok->strings[tok->string_count++] = flags;
  return true;
}

static bool push_member(hoist__json_tokens *tok, size_t key_begin, size_t key_end) {
  if (tok->member_count == tok->member_cap) {
    size_t cap = tok->member_cap != 0 ? tok->member_cap * 2 : 64;
    hoist__json_member *n = realloc(tok->members, cap * sizeof *n);
    if (n == NULL) return false;
    tok->members = n;
    tok->member_cap = cap;
  }
  hoist__json_member *m = &tok->members[tok->member_count++];
  m->key_begin = key_begin;
  m->key_end = key_end;
  m->value_begin = m->value_end = 0;
  return true;
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

/* Bytes that need no attention inside a string: not a quote, not a
 * backslash, not a control character (UTF-8 was checked before). */
static bool plain_string_byte(unsigned char c) { return c >= 0x20 && c != '"' && c != '\\'; }

/* Lexes the string starting at text[*pos] == '"'.  On success *pos is past
 * the closing quote and *flags says whether it decodes to a U+0000. */
static bool lex_string(const char *text, size_t len, size_t *pos, uint8_t *flags,
                       hoist__json_error *err) {
  size_t p = *pos + 1;
  uint8_t f = 0;
  for (;;) {
    /* Most of a header is plain name bytes: skip them four at a time. */
    while (len - p >= 4 && plain_string_byte((unsigned char)text[p]) &&
           plain_string_byte((unsigned char)text[p + 1]) &&
           plain_string_byte((unsigned char)text[p + 2]) &&
           plain_string_byte((unsigned char)text[p + 3]))
      p += 4;
    if (p >= len) {
      err->offset = *pos;
      err->what = "unterminated string";
      return false;
    }
    unsigned char c = (unsigned char)text[p];
    if (c == '"') break;
    if (c < 0x20) {
      err->offset = p;
      err->byte = c;
      err->what = "raw control character in a string";
      return false;
    }
    if (c != '\\') {
      p++;
      continue;
    }
    if (p + 1 >= len) {
      err->offset = p;
      err->what = "unterminated escape";
      return false;
    }
    char e = text[p + 1];
    if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
        e == 't') {
      p += 2;
      continue;
    }
    if (e != 'u') {
      err->offset = p;
      err->byte = (unsigned char)e;
      err->what = "invalid escape in a string";
      return false;
    }
    int cp = len - p >= 6 ? hex4(text + p + 2) : -1;
    if (cp < 0) {
      err->offset = p;
      err->what = "invalid \\u escape";
      return false;
    }
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
      err->offset = p;
      err->what = "lone low surrogate in a \\u escape";
      return false;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      int lo = len - p >= 12 && text[p + 6] == '\\' && text[p + 7] == 'u' ? hex4(text + p + 8) : -1;
      if (lo < 0xDC00 || lo > 0xDFFF) {
        err->offset = p;
        err->what = "lone high surrogate in a \\u escape";
        return false;
      }
      p += 12;
      continue;
    }
    if (cp == 0) f |= HOIST_JSON_STR_HAS_NUL;
    p += 6;
  }
  *pos = p + 1;
  *flags = f;
  return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Lexes a number at text[*pos] (a '-' or a digit) per RFC 8259 and
 * computes its plain value. */
static bool lex_number(const char *text, size_t len, size_t *pos, uint64_t *value,
                       hoist__json_error *err) {
  size_t start = *pos, p = start;
  bool plain = true;
  if (text[p] == '-') {
    plain = false;
    p++;
  }
  if (p >= len || !is_digit(text[p])) {
    err->offset = start;
    err->what = "a '-' not followed by a digit";
    return false;
  }
  size_t int_start = p;
  if (text[p] == '0') {
    p++;
    if (p < len && is_digit(text[p])) {
      err->offset = start;
      err->what = "number with a leading zero";
      return false;
    }
  } else {
    while (p < len && is_digit(text[p])) p++;
  }
  size_t int_end = p;
  if (p < len && text[p] == '.') {
    plain = false;
    p++;
    if (p >= len || !is_digit(text[p])) {
      err->offset = start;
      err->what = "number with no digit after its decimal point";
      return false;
    }
    while (p < len && is_digit(text[p])) p++;
  }
  if (p < len && (text[p] == 'e' || text[p] == 'E')) {
    plain = false;
    p++;
    if (p < len && (text[p] == '+' || text[p] == '-')) p++;
    if (p >= len || !is_digit(text[p])) {
      err->offset = start;
      err->what = "number with no digit in its exponent";
      return false;
    }
    while (p < len && is_digit(text[p])) p++;
  }
  if (p - start > HOIST_JSON_MAX_NUMBER_CHARS) {
    err->offset = start;
    err->what = "number longer than the 63 characters cJSON can parse";
    return false;
  }
  uint64_t v = HOIST_JSON_NOT_PLAIN | start;
  /* 2^53 = 9007199254740992 has 16 digits. */
  if (plain && int_end - int_start <= 16) {
    v = 0;
    for (size_t i = int_start; i < int_end; i++) v = v * 10 + (uint64_t)(text[i] - '0');
    if (v > HOIST_JSON_MAX_PLAIN) v = HOIST_JSON_NOT_PLAIN | start;
  }
  *pos = p;
  *value = v;
  return true;
}

enum lex_state {
  ST_VALUE,          /* a value must come */
  ST_VALUE_OR_CLOSE, /* just after '[' */
  ST_KEY_OR_CLOSE,   /* just after '{' */
  ST_KEY,            /* after ',' in an object */
  ST_COLON,          /* after a key */
  ST_COMMA_OR_CLOSE, /* after a value inside a container */
  ST_END             /* after the top-level value */
};

/* The walk's state: the text, where it is, the open containers. */
typedef struct lexer {
  const char *text;
  size_t len, p, depth;
  char stack[HOIST_JSON_MAX_DEPTH];
  enum lex_state st;
  hoist__json_tokens *tok; /* NULL in check mode: validate, record nothing */
  hoist__json_error *err;
  size_t max_depth;        /* nesting limit, at most HOIST_JSON_MAX_DEPTH */
  bool refuse_nul;         /* strings that decode to U+0000 are an error */
  size_t values;           /* JSON values seen (keys not counted) */
} lexer;

/* What one step did. */
enum step { STEP_NEXT, STEP_VALUE_DONE, STEP_FAIL, STEP_OOM };

/* A string that decodes to U+0000 (cJSON would cut it short) starting at
 * begin, in check mode. */
static enum step fail_nul(lexer *lx, size_t begin) {
  lx->err->offset = begin;
  lx->err->what = "a string decodes to U+0000";
  return STEP_FAIL;
}

/* Records the offending character at the current offset. */
static enum step fail_at(lexer *lx, const char *what) {
  lx->err->offset = lx->p;
  lx->err->byte = (unsigned char)lx->text[lx->p];
  lx->err->what = what;
  return STEP_FAIL;
}

/* ST_KEY_OR_CLOSE and ST_KEY: a key (or, just after '{', the close). */
static enum step step_key(lexer *lx, char c) {
  if (c == '}' && lx->st == ST_KEY_OR_CLOSE) {
    lx->p++;
    lx->depth--;
    return STEP_VALUE_DONE;
  }
  if (c != '"') return fail_at(lx, "expected a string key");
  uint8_t flags;
  size_t key_begin = lx->p;
  if (!lex_string(lx->text, lx->len, &lx->p, &flags, lx->err)) return STEP_FAIL;
  if (lx->refuse_nul && (flags & HOIST_JSON_STR_HAS_NUL)) return fail_nul(lx, key_begin);
  if (lx->tok != NULL && !push_string(lx->tok, flags)) return STEP_OOM;
  if (lx->tok != NULL && lx->depth == 1 && !push_member(lx->tok, key_begin, lx->p))
    return STEP_OOM;
  lx->st = ST_COLON;
  return STEP_NEXT;
}

/* ST_COMMA_OR_CLOSE: after a value inside a container. */
static enum step step_comma_or_close(lexer *lx, char c) {
  char open = lx->stack[lx->depth - 1];
  if (c == ',') {
    lx->p++;
    lx->st = open == '{' ? ST_KEY : ST_VALUE;
    return STEP_NEXT;
  }
  if (c != (open == '{' ? '}' : ']'))
    return fail_at(lx, open == '{' ? "expected ',' or '}' in an object"
                                   : "expected ',' or ']' in an array");
  lx->p++;
  lx->depth--;
  return STEP_VALUE_DONE;
}

/* ST_VALUE (and ST_VALUE_OR_CLOSE past its ']' case): opens a container or
 * reads a scalar. */
static enum step step_value(lexer *lx, char c) {
  hoist__json_tokens *tok = lx->tok;
  const char *text = lx->text;
  const size_t len = lx->len, p = lx->p;
  lx->values++;
  if (tok != NULL && lx->depth == 0)
    tok->top = c;
  else if (tok != NULL && lx->depth == 1 && lx->stack[0] == '{')
    tok->members[tok->member_count - 1].value_begin = p;
  if (c == '{' || c == '[') {
    if (lx->depth == lx->max_depth) {
      lx->err->offset = p;
      lx->err->depth_limit = lx->max_depth;
      lx->err->what = lx->max_depth == HOIST_JSON_MAX_DEPTH ? "nesting deeper than 127 levels"
                                                            : "nesting deeper than the limit";
      return STEP_FAIL;
    }
    lx->stack[lx->depth++] = c;
    lx->p++;
    lx->st = c == '{' ? ST_KEY_OR_CLOSE : ST_VALUE_OR_CLOSE;
    return STEP_NEXT;
  }
  if (c == '"') {
    uint8_t flags;
    if (!lex_string(text, len, &lx->p, &flags, lx->err)) return STEP_FAIL;
    if (lx->refuse_nul && (flags & HOIST_JSON_STR_HAS_NUL)) return fail_nul(lx, p);
    if (tok != NULL && !push_string(tok, flags)) return STEP_OOM;
  } else if (c == '-' || is_digit(c)) {
    uint64_t v;
    if (!lex_number(text, len, &lx->p, &v, lx->err)) return STEP_FAIL;
    if (tok != NULL && !push_number(tok, v)) return STEP_OOM;
  } else if (len - p >= 4 && memcmp(text + p, "true", 4) == 0) {
    lx->p += 4;
  } else if (len - p >= 5 && memcmp(text + p, "false", 5) == 0) {
    lx->p += 5;
  } else if (len - p >= 4 && memcmp(text + p, "null", 4) == 0) {
    lx->p += 4;
  } else {
    return fail_at(lx, "expected a JSON value");
  }
  return STEP_VALUE_DONE;
}

/* One step from the state at the next non-blank character c. */
static enum step step(lexer *lx, char c) {
  switch (lx->st) {
  case ST_END:
    return fail_at(lx, "extra data after the JSON value");
  case ST_COLON:
    if (c != ':') return fail_at(lx, "expected ':' after an object key");
    lx->p++;
    lx->st = ST_VALUE;
    return STEP_NEXT;
  case ST_KEY_OR_CLOSE:
  case ST_KEY:
    return step_key(lx, c);
  case ST_COMMA_OR_CLOSE:
    return step_comma_or_close(lx, c);
  case ST_VALUE_OR_CLOSE:
    if (c == ']') {
      lx->p++;
      lx->depth--;
      return STEP_VALUE_DONE;
    }
    return step_value(lx, c);
  case ST_VALUE:
    return step_value(lx, c);
  }
  return fail_at(lx, "expected a JSON value");
}

/* Walks the grammar over text with lx's options (tokens recorded when
 * lx->tok is set). */
static int lex(lexer *lx) {
  const char *text = lx->text;
  const size_t len = lx->len;
  hoist__json_error *err = lx->err;
  memset(err, 0, sizeof *err);
  size_t bad = hoist__utf8_invalid_offset((const unsigned char *)text, len);
  if (bad != len) {
    err->offset = bad;
    err->byte = (unsigned char)text[bad];
    err->what = "invalid UTF-8 sequence";
    return HOIST_HEADER_UTF8;
  }
  enum step r = STEP_NEXT;
  for (;;) {
    while (lx->p < len && (text[lx->p] == ' ' || text[lx->p] == '\t' || text[lx->p] == '\n' ||
                           text[lx->p] == '\r'))
      lx->p++;
    if (lx->p >= len) {
      if (lx->st == ST_END) return HOIST_OK;
      err->offset = len;
      err->what = "unexpected end of the header";
      r = STEP_FAIL;
      break;
    }
    r = step(lx, text[lx->p]);
    if (r == STEP_FAIL || r == STEP_OOM) break;
    if (r == STEP_VALUE_DONE) {
      if (lx->tok != NULL && lx->depth == 1 && lx->stack[0] == '{')
        lx->tok->members[lx->tok->member_count - 1].value_end = lx->p;
      lx->st = lx->depth == 0 ? ST_END : ST_COMMA_OR_CLOSE;
    }
  }
  if (r == STEP_OOM) err->what = "out of memory";
  if (lx->tok != NULL) hoist__json_tokens_free(lx->tok);
  return r == STEP_OOM ? HOIST_NO_MEMORY : HOIST_HEADER_JSON;
}

int hoist__json_lex(const char *text, size_t len, hoist__json_tokens *tok, hoist__json_error *err) {
  memset(tok, 0, sizeof *tok);
  lexer lx = {.text = text, .len = len, .st = ST_VALUE, .tok = tok, .err = err,
              .max_depth = HOIST_JSON_MAX_DEPTH};
  return lex(&lx);
}

int hoist__json_check(const char *text, size_t len, size_t max_depth, size_t *values,
                      hoist__json_error *err) {
  lexer lx = {.text = text, .len = len, .st = ST_VALUE, .err = err, .refuse_nul = true,
              .max_depth = max_depth < HOIST_JSON_MAX_DEPTH ? max_depth : HOIST_JSON_MAX_DEPTH};
  int rc = lex(&lx);
  *values = lx.values;
  return rc;
}
