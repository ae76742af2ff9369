/* json_lexer.c — the strict JSON validator run over a safetensors header
 * before cJSON parses it (see json_lexer.h for why and what it records).
 *
 * One pass checks UTF-8 (as Rust's str::from_utf8 does), a second walks the
 * RFC 8259 grammar with an explicit state and a fixed nesting stack, so that
 * hostile input (a 100 MB header, a nesting bomb) costs linear time and no
 * recursion. */
#include "json_lexer.h"

#include "hoist.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

size_t hoist__utf8_invalid_offset(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    /* ASCII fast path, eight bytes at a time. */
    if (len - i >= 8) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if ((w & UINT64_C(0x8080808080808080)) == 0) {
        i += 8;
        continue;
      }
    }
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;      /* overlong three-byte forms */
      else if (c == 0xED) hi = 0x9F; /* UTF-16 surrogates D800..DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;      /* overlong four-byte forms */
      else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else {
      return i; /* continuation byte, C0/C1 overlong lead, or F5..FF */
    }
    if (len - i <= need) return i;
    unsigned c1 = s[i + 1];
    if (c1 < lo || c1 > hi) return i;
    for (size_t k = 2; k <= need; k++)
      if ((s[i + k] & 0xC0) != 0x80) return i;
    i += need + 1;
  }
  return len;
}

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

int hoist__json_lex(const char *text, size_t len, hoist__json_tokens *tok, hoist__json_error *err) {
  memset(tok, 0, sizeof *tok);
  memset(err, 0, sizeof *err);
  size_t bad = hoist__utf8_invalid_offset((const unsigned char *)text, len);
  if (bad != len) {
    err->offset = bad;
    err->byte = (unsigned char)text[bad];
    err->what = "invalid UTF-8 sequence";
    return HOIST_HEADER_UTF8;
  }

  char stack[HOIST_JSON_MAX_DEPTH];
  size_t depth = 0, p = 0;
  enum lex_state st = ST_VALUE;
  int rc = HOIST_HEADER_JSON;
  for (;;) {
    while (p < len && (text[p] == ' ' || text[p] == '\t' || text[p] == '\n' || text[p] == '\r'))
      p++;
    if (p >= len) {
      if (st == ST_END) return HOIST_OK;
      err->offset = len;
      err->what = "unexpected end of the header";
      goto fail;
    }
    char c = text[p];
    bool value_done = false;
    switch (st) {
    case ST_END:
      err->offset = p;
      err->byte = (unsigned char)c;
      err->what = "trailing characters after the JSON value";
      goto fail;
    case ST_COLON:
      if (c != ':') {
        err->offset = p;
        err->byte = (unsigned char)c;
        err->what = "expected ':' after an object key";
        goto fail;
      }
      p++;
      st = ST_VALUE;
      continue;
    case ST_KEY_OR_CLOSE:
    case ST_KEY: {
      if (c == '}' && st == ST_KEY_OR_CLOSE) {
        p++;
        depth--;
        value_done = true;
        break;
      }
      uint8_t flags;
      if (c != '"') {
        err->offset = p;
        err->byte = (unsigned char)c;
        err->what = "expected a string key";
        goto fail;
      }
      size_t key_begin = p;
      if (!lex_string(text, len, &p, &flags, err)) goto fail;
      if (!push_string(tok, flags)) goto oom;
      if (depth == 1 && !push_member(tok, key_begin, p)) goto oom;
      st = ST_COLON;
      continue;
    }
    case ST_COMMA_OR_CLOSE: {
      char open = stack[depth - 1];
      char close = open == '{' ? '}' : ']';
      if (c == ',') {
        p++;
        st = open == '{' ? ST_KEY : ST_VALUE;
        continue;
      }
      if (c != close) {
        err->offset = p;
        err->byte = (unsigned char)c;
        err->what = open == '{' ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array";
        goto fail;
      }
      p++;
      depth--;
      value_done = true;
      break;
    }
    case ST_VALUE_OR_CLOSE:
      if (c == ']') {
        p++;
        depth--;
        value_done = true;
        break;
      }
      /* fall through */
    case ST_VALUE:
      if (depth == 0) tok->top = c;
      else if (depth == 1 && stack[0] == '{') tok->members[tok->member_count - 1].value_begin = p;
      if (c == '{' || c == '[') {
        if (depth == HOIST_JSON_MAX_DEPTH) {
          err->offset = p;
          err->what = "nesting deeper than 127 levels";
          goto fail;
        }
        stack[depth++] = c;
        p++;
        st = c == '{' ? ST_KEY_OR_CLOSE : ST_VALUE_OR_CLOSE;
        continue;
      }
      if (c == '"') {
        uint8_t flags;
        if (!lex_string(text, len, &p, &flags, err)) goto fail;
        if (!push_string(tok, flags)) goto oom;
      } else if (c == '-' || is_digit(c)) {
        uint64_t v;
        if (!lex_number(text, len, &p, &v, err)) goto fail;
        if (!push_number(tok, v)) goto oom;
      } else if (len - p >= 4 && memcmp(text + p, "true", 4) == 0) {
        p += 4;
      } else if (len - p >= 5 && memcmp(text + p, "false", 5) == 0) {
        p += 5;
      } else if (len - p >= 4 && memcmp(text + p, "null", 4) == 0) {
        p += 4;
      } else {
        err->offset = p;
        err->byte = (unsigned char)c;
        err->what = "expected a JSON value";
        goto fail;
      }
      value_done = true;
      break;
    }
    if (value_done) {
      if (depth == 1 && stack[0] == '{') tok->members[tok->member_count - 1].value_end = p;
      st = depth == 0 ? ST_END : ST_COMMA_OR_CLOSE;
    }
  }

oom:
  rc = HOIST_NO_MEMORY;
  err->what = "out of memory";
fail:
  hoist__json_tokens_free(tok);
  return rc;
}
