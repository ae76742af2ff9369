/* text.c — text rules every module shares: strict UTF-8 validation (the
 * safetensors header, JSON side files) and the one-line rendering of names
 * and paths in messages (hoist__show).  With status.c it is the bottom of
 * the dependency order: it calls nothing else of hoist's. */
#include "text.h"

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

/* The length of the UTF-8 sequence a lead byte announces (1 for anything
 * that cannot lead one: it is then escaped alone). */
static size_t utf8_seq_len(unsigned char c) {
  return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

const char *hoist__show(const char *s, char *buf, size_t size) {
  static const char hex[] = "0123456789abcdef";
  size_t i = 0, o = 0, slen = strlen(s);
  /* Room for the longest piece (4 bytes), then "..." and the NUL. */
  while (i < slen && o + 4 + 4 <= size) {
    const unsigned char *c = (const unsigned char *)s + i;
    size_t n = utf8_seq_len(c[0]);
    bool valid = n <= slen - i && hoist__utf8_invalid_offset(c, n) == n;
    /* C0 controls, DEL and the C1 controls U+0080..U+009F (a terminal may
     * take U+009B as CSI) are escaped like the bytes of broken UTF-8. */
    bool control = c[0] < 0x20 || c[0] == 0x7f || (c[0] == 0xC2 && n == 2 && c[1] < 0xA0);
    if (valid && !control) {
      memcpy(buf + o, c, n);
      o += n;
      i += n;
      continue;
    }
    size_t k = valid ? n : 1;
    if (o + 4 * k + 4 > size) break;
    for (size_t j = 0; j < k; j++) {
      buf[o++] = '\\';
      buf[o++] = 'x';
      buf[o++] = hex[c[j] >> 4];
      buf[o++] = hex[c[j] & 15];
    }
    i += k;
  }
  if (i < slen) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o] = '\0';
  return buf;
}
