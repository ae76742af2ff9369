/* json_lexer.h — a strict, token-level JSON validator for safetensors
 * headers, run before cJSON builds the tree.
 *
 * Why: cJSON is lenient where the reference reader (serde_json inside
 * huggingface/safetensors) is not.  cJSON skips any byte <= 0x20 as
 * whitespace, hands numbers to strtod (so `01`, `1.`, `+1` and friends slip
 * through), keeps raw control characters inside strings and does not check
 * UTF-8.  This validator enforces RFC 8259 exactly as serde_json does
 * (including its nesting limit), checks that the whole text is valid UTF-8,
 * and records, in document order, what the safetensors reader needs to know
 * about each scalar token that cJSON loses:
 *   - for every number token: its value when it is a plain non-negative
 *     integer (digits only, no sign, fraction or exponent) <= 2^53, else
 *     HOIST_JSON_NOT_PLAIN with the token's byte offset in the low bits
 *     (so that messages can quote the number exactly as written);
 *   - for every string token (object keys included): whether its decoded
 *     value contains U+0000 (cJSON strings are NUL-terminated and would be
 *     silently truncated there).
 * cJSON keeps members in document order (duplicates included), so a walk
 * of its tree in document order meets the number and string tokens in the
 * same order as they are recorded here.  The byte spans of the top-level
 * object's members are recorded too, so that the reader can hand cJSON one
 * tensor entry at a time: a header of 100,000 tensors then never holds a
 * million cJSON nodes at once.
 *
 * It is a validator, not a parser: it builds no tree and allocates only the
 * two token arrays.  It never recurses; nesting is tracked in a fixed
 * array bounded by HOIST_JSON_MAX_DEPTH. */
#ifndef HOIST_JSON_LEXER_H
#define HOIST_JSON_LEXER_H

#include <stddef.h>
#include <stdint.h>

/* serde_json refuses the 128th level of nested arrays/objects (its default
 * recursion limit); so do we.  Depth 127 is accepted. */
#define HOIST_JSON_MAX_DEPTH 127

/* cJSON 1.7 copies a number into a 64-byte buffer before strtod; a longer
 * number token would be split by cJSON, so it is refused here up front. */
#define HOIST_JSON_MAX_NUMBER_CHARS 63

/* The largest integer the reader accepts in shapes and offsets. */
#define HOIST_JSON_MAX_PLAIN (UINT64_C(1) << 53)
#define HOIST_JSON_NOT_PLAIN (UINT64_C(1) << 63)
#define HOIST_JSON_IS_PLAIN(v) (((v) & HOIST_JSON_NOT_PLAIN) == 0)
#define HOIST_JSON_OFFSET(v) ((size_t)((v) & ~HOIST_JSON_NOT_PLAIN))

/* Flags of a string token. */
#define HOIST_JSON_STR_HAS_NUL 1u

/* Byte spans of one member of the top-level object: the key with its
 * quotes and the value, each [begin, end) in the text. */
typedef struct hoist__json_member {
  size_t key_begin, key_end;
  size_t value_begin, value_end;
} hoist__json_member;

typedef struct hoist__json_tokens {
  char top;             /* first byte of the top-level value: '{', '[', '"', ... */
  hoist__json_member *members; /* when top == '{': its members in order */
  size_t member_count;
  size_t member_cap;
  uint64_t *numbers;    /* value, or HOIST_JSON_NOT_PLAIN | offset; document order */
  size_t number_count;
  size_t number_cap;
  uint8_t *strings;     /* HOIST_JSON_STR_* flags; document order */
  size_t string_count;
  size_t string_cap;
} hoist__json_tokens;

/* What went wrong, for the caller's one-line message. */
typedef struct hoist__json_error {
  size_t offset;        /* byte offset in the text */
  const char *what;     /* static sentence, e.g. "raw control character in a string" */
  unsigned byte;        /* the offending byte, when meaningful */
} hoist__json_error;

/* Returns the offset of the first byte that is not part of valid UTF-8
 * (overlong forms, UTF-16 surrogates and code points above U+10FFFF are
 * invalid), or len when all of text is valid. */
size_t hoist__utf8_invalid_offset(const unsigned char *text, size_t len);

/* Validates text[0..len) (not NUL-terminated) as exactly one JSON value with
 * optional space/tab/CR/LF around it, after checking its UTF-8.  Returns
 * HOIST_OK and fills *tok (free with hoist__json_tokens_free), or
 * HOIST_HEADER_UTF8 / HOIST_HEADER_JSON with *err filled and *tok empty, or
 * HOIST_NO_MEMORY.  Thread-safe (no shared state). */
int hoist__json_lex(const char *text, size_t len, hoist__json_tokens *tok, hoist__json_error *err);

/* Frees the arrays and zeroes *tok; tok may be zeroed already. */
void hoist__json_tokens_free(hoist__json_tokens *tok);

#endif /* HOIST_JSON_LEXER_H */
