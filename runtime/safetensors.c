/* safetensors.c — the strict safetensors reader.
 *
 * Byte layout of a .safetensors file:
 *
 *   offset 0      u64 little-endian N: the header length in bytes
 *   offset 8      N bytes of UTF-8 JSON (space/tab/CR/LF may surround it):
 *                   {
 *                     "__metadata__": null | {"key": "value", ...},   (optional)
 *                     "<tensor name>": {
 *                       "dtype": "F32" | "BF16" | ... (exact, case-sensitive),
 *                       "shape": [d0, d1, ...],          ([] is a scalar)
 *                       "data_offsets": [begin, end],    (relative to offset 8+N)
 *                       ...unknown fields are ignored...
 *                     }, ...
 *                   }
 *   offset 8+N    the data section: every tensor's bytes, row-major,
 *                 little-endian, contiguous from 0 in (begin, end) order with
 *                 no holes, ending exactly at the end of the file.
 *
 * The rules follow the reference reader (huggingface/safetensors 0.8,
 * serde_json) and are stricter where documented in hoist.h's status list:
 * duplicate keys anywhere, numbers that are not plain integers <= 2^53, and
 * object keys containing U+0000 (cJSON strings are NUL-terminated) are
 * rejected.  The header is read with pread, checked token by token by
 * json_lexer.c (cJSON alone is too lenient), then parsed by cJSON one
 * top-level member at a time (the lexer records their spans) and walked in
 * document order; nothing is allocated in proportion to a header length
 * before that length was checked against the file size.
 *
 * An open hoist_file is immutable, so every accessor is thread-safe. */
#include "safetensors.h"

#include "json_lexer.h"
#include "text.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A parsed tensor before the string arena and dimension array are final:
 * names and shapes are kept as offsets until then. */
typedef struct st_entry {
  hoist_tensor_info info;
  size_t name_off;
  size_t dim_off;
  size_t hash;             /* of the name, for the lookup index */
} st_entry;

struct hoist_file {
  char *path;
  int fd;
  uint64_t size;
  uint64_t header_bytes;
  void *map;
  size_t map_len;
  st_entry *tensors;       /* sorted by (begin, end, name) */
  size_t tensor_count;
  uint64_t *dims;          /* every tensor's shape, concatenated */
  char *arena;             /* names, metadata keys and values */
  uint32_t *index;         /* open addressing: tensor index + 1, 0 = empty */
  size_t index_mask;
  int has_metadata;
  size_t metadata_count;
  const char **metadata;   /* key0, value0, key1, value1, ... */
};

/* Parsing state for one open call. */
typedef struct st_ctx {
  hoist_runtime *rt;
  const char *path;
  const char *header;      /* the header text while it is parsed */
  size_t header_len;
  hoist__json_tokens tok;
  size_t si, ni;           /* next string / number token */
  char *arena;
  size_t arena_len, arena_cap;
  uint64_t *dims;
  size_t dim_count, dim_cap;
  st_entry *entries;
  size_t entry_count;
  size_t *meta_offs;       /* key/value arena offsets */
  uint32_t *index;         /* see struct hoist_file */
  size_t index_mask;
  size_t meta_count;
  int has_metadata;
} st_ctx;

/* ------------------------------------------------------------------------ */
/* Names, hashes and reads */

/* A tensor name in a message. */
static const char *show(const char *s, char buf[HOIST_SHOW_NAME]) {
  return hoist__show(s, buf, HOIST_SHOW_NAME);
}

/* A string hash for the lookup index and duplicate checks: eight bytes
 * per step (names are long: "model.layers.12.self_attn.q_proj.weight"),
 * then a final mix so that linear probing on the low bits spreads names
 * that differ only in their last characters. */
size_t hoist__hash_str(const char *s) {
  size_t len = strlen(s);
  uint64_t h = UINT64_C(0xcbf29ce484222325) ^ len;
  for (; len >= 8; s += 8, len -= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * UINT64_C(0x100000001b3);
    h ^= h >> 29;
  }
  for (; len > 0; s++, len--) h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
  h ^= h >> 33;
  h *= UINT64_C(0xff51afd7ed558ccd);
  h ^= h >> 33;
  return (size_t)h;
}

static bool read_full(int fd, uint64_t off, void *dst, size_t len, int *err) {
  unsigned char *p = dst;
  while (len > 0) {
    ssize_t n = pread(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    if (n == 0) {
      *err = 0;
      return false;
    }
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return true;
}

static bool arena_add_n(st_ctx *c, const char *s, size_t len, size_t *off) {
  size_t n = len + 1;
  if (c->arena_cap - c->arena_len < n) {
    size_t cap = c->arena_cap != 0 ? c->arena_cap : 4096;
    while (cap - c->arena_len < n) cap *= 2;
    char *a = realloc(c->arena, cap);
    if (a == NULL) return false;
    c->arena = a;
    c->arena_cap = cap;
  }
  memcpy(c->arena + c->arena_len, s, len);
  c->arena[c->arena_len + len] = '\0';
  *off = c->arena_len;
  c->arena_len += n;
  return true;
}

static bool dims_add(st_ctx *c, uint64_t v) {
  if (c->dim_count == c->dim_cap) {
    size_t cap = c->dim_cap != 0 ? c->dim_cap * 2 : 1024;
    uint64_t *d = realloc(c->dims, cap * sizeof *d);
    if (d == NULL) return false;
    c->dims = d;
    c->dim_cap = cap;
  }
  c->dims[c->dim_count++] = v;
  return true;
}

static bool arena_add(st_ctx *c, const char *s, size_t *off) {
  return arena_add_n(c, s, strlen(s), off);
}

static int oom(st_ctx *c) { return hoist__fail(c->rt, HOIST_NO_MEMORY, "%s: out of memory", c->path); }

/* Takes the next string token's flags.  The lexer and cJSON saw the same
 * document, so running out means a bug, reported rather than trusted. */
static bool next_string(st_ctx *c, uint8_t *flags) {
  if (c->si >= c->tok.string_count) return false;
  *flags = c->tok.strings[c->si++];
  return true;
}

static bool next_number(st_ctx *c, uint64_t *v) {
  if (c->ni >= c->tok.number_count) return false;
  *v = c->tok.numbers[c->ni++];
  return true;
}

static int desync(st_ctx *c) {
  return hoist__fail(c->rt, HOIST_HEADER_JSON,
                    "%s: header tokens disagree between the validator and cJSON", c->path);
}

/* ------------------------------------------------------------------------ */
/* Duplicate keys: pairwise for small objects, a hash set for large ones, so
 * that a header of 100,000 tensors stays linear. */

/* tensor: the entry the object belongs to, NULL for __metadata__. */
static int check_unique_keys(st_ctx *c, const cJSON *obj, const char *tensor) {
  size_t k = 0;
  for (const cJSON *m = obj->child; m != NULL; m = m->next) k++;
  const char *dup = NULL;
  if (k <= 8) {
    for (const cJSON *a = obj->child; a != NULL && dup == NULL; a = a->next)
      for (const cJSON *b = a->next; b != NULL; b = b->next)
        if (strcmp(a->string, b->string) == 0) {
          dup = a->string;
          break;
        }
  } else {
    size_t cap = 16;
    while (cap < 2 * k) cap *= 2;
    const cJSON **table = calloc(cap, sizeof *table);
    if (table == NULL) return oom(c);
    for (const cJSON *m = obj->child; m != NULL && dup == NULL; m = m->next) {
      size_t h = hoist__hash_str(m->string) & (cap - 1);
      while (table[h] != NULL) {
        if (strcmp(table[h]->string, m->string) == 0) {
          dup = m->string;
          break;
        }
        h = (h + 1) & (cap - 1);
      }
      table[h] = m;
    }
    free(table);
  }
  if (dup != NULL) {
    char b[160], tb[160];
    if (tensor == NULL)
      return hoist__fail(c->rt, HOIST_DUPLICATE_KEY, "%s: __metadata__: duplicate key '%s'",
                        c->path, show(dup, b));
    return hoist__fail(c->rt, HOIST_DUPLICATE_KEY, "%s: tensor '%s': duplicate key '%s'", c->path,
                      show(tensor, tb), show(dup, b));
  }
  return HOIST_OK;
}

/* Walks a value whose content is ignored (an unknown tensor field),
 * consuming its tokens and applying the rules that hold anywhere: unique
 * keys and no U+0000 in keys.  Depth is bounded by the lexer (127). */
static int skip_value(st_ctx *c, const cJSON *v, const char *tensor) {
  char b[160];
  uint8_t flags;
  uint64_t num;
  if (cJSON_IsString(v)) return next_string(c, &flags) ? HOIST_OK : desync(c);
  if (cJSON_IsNumber(v)) return next_number(c, &num) ? HOIST_OK : desync(c);
  if (cJSON_IsArray(v)) {
    for (const cJSON *e = v->child; e != NULL; e = e->next) {
      int rc = skip_value(c, e, tensor);
      if (rc != HOIST_OK) return rc;
    }
    return HOIST_OK;
  }
  if (cJSON_IsObject(v)) {
    for (const cJSON *m = v->child; m != NULL; m = m->next) {
      if (!next_string(c, &flags)) return desync(c);
      if (flags & HOIST_JSON_STR_HAS_NUL)
        return hoist__fail(c->rt, HOIST_BAD_TENSOR,
                          "%s: tensor '%s': an object key contains U+0000, which hoist does "
                          "not support",
                          c->path, show(tensor, b));
      int rc = skip_value(c, m, tensor);
      if (rc != HOIST_OK) return rc;
    }
    return check_unique_keys(c, v, tensor);
  }
  return HOIST_OK; /* true, false, null */
}

/* ------------------------------------------------------------------------ */
/* __metadata__ */

static int parse_metadata(st_ctx *c, const cJSON *v) {
  uint8_t flags;
  char b[160];
  if (cJSON_IsNull(v)) return HOIST_OK;
  if (!cJSON_IsObject(v))
    return hoist__fail(c->rt, HOIST_BAD_METADATA, "%s: __metadata__ is neither null nor an object",
                      c->path);
  size_t k = 0;
  for (const cJSON *m = v->child; m != NULL; m = m->next) k++;
  c->meta_offs = malloc((k != 0 ? k : 1) * 2 * sizeof *c->meta_offs);
  if (c->meta_offs == NULL) return oom(c);
  c->has_metadata = 1;
  for (const cJSON *m = v->child; m != NULL; m = m->next) {
    if (!next_string(c, &flags)) return desync(c);
    if (flags & HOIST_JSON_STR_HAS_NUL)
      return hoist__fail(c->rt, HOIST_BAD_METADATA,
                        "%s: __metadata__ key '%s' contains U+0000, which hoist does not support",
                        c->path, show(m->string, b));
    if (!cJSON_IsString(m))
      return hoist__fail(c->rt, HOIST_BAD_METADATA,
                        "%s: __metadata__ value of '%s' is not a string", c->path,
                        show(m->string, b));
    if (!next_string(c, &flags)) return desync(c);
    if (flags & HOIST_JSON_STR_HAS_NUL)
      return hoist__fail(c->rt, HOIST_BAD_METADATA,
                        "%s: __metadata__ value of '%s' contains U+0000, which hoist does not "
                        "support",
                        c->path, show(m->string, b));
    size_t *o = c->meta_offs + 2 * c->meta_count;
    if (!arena_add(c, m->string, &o[0]) || !arena_add(c, m->valuestring, &o[1])) return oom(c);
    c->meta_count++;
  }
  return check_unique_keys(c, v, NULL);
}

/* ------------------------------------------------------------------------ */
/* One tensor entry */

/* The text of a number token that is not a plain integer, as written. */
static const char *number_text(const st_ctx *c, uint64_t tok, char buf[72]) {
  size_t off = HOIST_JSON_OFFSET(tok), n = 0;
  while (off + n < c->header_len && n < 64 && strchr("0123456789+-.eE", c->header[off + n]) != NULL)
    n++;
  memcpy(buf, c->header + off, n);
  buf[n] = '\0';
  return buf;
}

/* The member "dtype" of tensor `name`: one of hoist's dtype names, exactly. */
static int parse_dtype(st_ctx *c, const cJSON *m, const char *name, st_entry *e) {
  char b[160], db[160];
  uint8_t flags;
  if (!cJSON_IsString(m))
    return hoist__fail(c->rt, HOIST_BAD_TENSOR, "%s: tensor '%s': dtype is not a string", c->path,
                      show(name, b));
  if (!next_string(c, &flags)) return desync(c);
  if ((flags & HOIST_JSON_STR_HAS_NUL) ||
      hoist_dtype_from_name(m->valuestring, strlen(m->valuestring), &e->info.dtype) != HOIST_OK)
    return hoist__fail(c->rt, HOIST_BAD_DTYPE, "%s: tensor '%s': unknown dtype '%s'", c->path,
                      show(name, b), show(m->valuestring, db));
  return HOIST_OK;
}

/* The member "shape": a list of plain integers, appended to c->dims. */
static int parse_shape(st_ctx *c, const cJSON *m, const char *name, st_entry *e) {
  char b[160], nb[72];
  if (!cJSON_IsArray(m))
    return hoist__fail(c->rt, HOIST_BAD_TENSOR, "%s: tensor '%s': shape is not a list", c->path,
                      show(name, b));
  e->dim_off = c->dim_count;
  uint32_t nd = 0;
  for (const cJSON *d = m->child; d != NULL; d = d->next, nd++) {
    uint64_t val;
    if (!cJSON_IsNumber(d))
      return hoist__fail(c->rt, HOIST_BAD_TENSOR,
                        "%s: tensor '%s': shape[%" PRIu32 "] is not a number", c->path,
                        show(name, b), nd);
    if (!next_number(c, &val)) return desync(c);
    if (!HOIST_JSON_IS_PLAIN(val))
      return hoist__fail(c->rt, HOIST_BAD_NUMBER,
                        "%s: tensor '%s': shape[%" PRIu32
                        "] is %s, not a plain integer in [0, 2^53]",
                        c->path, show(name, b), nd, number_text(c, val, nb));
    if (!dims_add(c, val)) return oom(c);
  }
  e->info.ndim = nd;
  return HOIST_OK;
}

/* The member "data_offsets": [begin, end], plain integers, begin <= end. */
static int parse_offsets(st_ctx *c, const cJSON *m, const char *name, st_entry *e) {
  char b[160], nb[72];
  if (!cJSON_IsArray(m))
    return hoist__fail(c->rt, HOIST_BAD_TENSOR, "%s: tensor '%s': data_offsets is not a list",
                      c->path, show(name, b));
  int n = cJSON_GetArraySize(m);
  if (n != 2)
    return hoist__fail(c->rt, HOIST_BAD_OFFSETS,
                      "%s: tensor '%s': data_offsets has %d entries, not 2", c->path,
                      show(name, b), n);
  uint64_t be[2];
  const cJSON *d = m->child;
  for (int i = 0; i < 2; i++, d = d->next) {
    if (!cJSON_IsNumber(d))
      return hoist__fail(c->rt, HOIST_BAD_OFFSETS,
                        "%s: tensor '%s': data_offsets[%d] is not a number", c->path,
                        show(name, b), i);
    if (!next_number(c, &be[i])) return desync(c);
    if (!HOIST_JSON_IS_PLAIN(be[i]))
      return hoist__fail(c->rt, HOIST_BAD_NUMBER,
                        "%s: tensor '%s': data_offsets[%d] is %s, not a plain integer in "
                        "[0, 2^53]",
                        c->path, show(name, b), i, number_text(c, be[i], nb));
  }
  if (be[0] > be[1])
    return hoist__fail(c->rt, HOIST_BAD_OFFSETS,
                      "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                      "] begin after their end",
                      c->path, show(name, b), be[0], be[1]);
  e->info.begin = be[0];
  e->info.end = be[1];
  e->info.nbytes = be[1] - be[0];
  return HOIST_OK;
}

/* The element count and byte size of a parsed entry, folded left to right
 * like the reference so that overflow is reported for the same shapes, and
 * checked against the span its data_offsets give. */
static int check_tensor_size(st_ctx *c, const char *name, st_entry *e) {
  char b[160];
  uint64_t count = 1;
  for (uint32_t i = 0; i < e->info.ndim; i++)
    if (!hoist__mul_u64(count, c->dims[e->dim_off + i], &count))
      return hoist__fail(c->rt, HOIST_OVERFLOW,
                        "%s: tensor '%s': element count of its shape overflows 64 bits", c->path,
                        show(name, b));
  unsigned bits = hoist_dtype_bits(e->info.dtype);
  uint64_t nbits;
  if (!hoist__mul_u64(count, bits, &nbits))
    return hoist__fail(c->rt, HOIST_OVERFLOW,
                      "%s: tensor '%s': %" PRIu64 " elements of %s overflow 64 bits", c->path,
                      show(name, b), count, hoist_dtype_name(e->info.dtype));
  if (nbits % 8 != 0)
    return hoist__fail(c->rt, HOIST_MISALIGNED,
                      "%s: tensor '%s': %" PRIu64 " elements of %s are %" PRIu64
                      " bits, not a whole number of bytes",
                      c->path, show(name, b), count, hoist_dtype_name(e->info.dtype), nbits);
  if (nbits / 8 != e->info.nbytes)
    return hoist__fail(c->rt, HOIST_SIZE_MISMATCH,
                      "%s: tensor '%s': %" PRIu64 " elements of %s need %" PRIu64
                      " bytes but data_offsets span %" PRIu64,
                      c->path, show(name, b), count, hoist_dtype_name(e->info.dtype), nbits / 8,
                      e->info.nbytes);
  e->info.nelements = count;
  return HOIST_OK;
}

/* One tensor entry: its members in document order (the lexer's tokens are
 * consumed in that order), each known member once, then its size. */
static int parse_tensor(st_ctx *c, const cJSON *v, const char *name, st_entry *e) {
  char b[160];
  uint8_t flags;
  if (!cJSON_IsObject(v))
    return hoist__fail(c->rt, HOIST_BAD_TENSOR, "%s: tensor '%s': entry is not an object",
                      c->path, show(name, b));
  bool have_dtype = false, have_shape = false, have_offsets = false;
  for (const cJSON *m = v->child; m != NULL; m = m->next) {
    if (!next_string(c, &flags)) return desync(c);
    if (flags & HOIST_JSON_STR_HAS_NUL)
      return hoist__fail(c->rt, HOIST_BAD_TENSOR,
                        "%s: tensor '%s': a key contains U+0000, which hoist does not support",
                        c->path, show(name, b));
    int rc;
    if (strcmp(m->string, "dtype") == 0) {
      rc = parse_dtype(c, m, name, e);
      have_dtype = true;
    } else if (strcmp(m->string, "shape") == 0) {
      rc = parse_shape(c, m, name, e);
      have_shape = true;
    } else if (strcmp(m->string, "data_offsets") == 0) {
      rc = parse_offsets(c, m, name, e);
      have_offsets = true;
    } else {
      rc = skip_value(c, m, name);
    }
    if (rc != HOIST_OK) return rc;
  }
  int rc = check_unique_keys(c, v, name);
  if (rc != HOIST_OK) return rc;
  if (!have_dtype || !have_shape || !have_offsets)
    return hoist__fail(c->rt, HOIST_BAD_TENSOR, "%s: tensor '%s': entry has no '%s'", c->path,
                      show(name, b),
                      !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
  rc = check_tensor_size(c, name, e);
  if (rc != HOIST_OK) return rc;
  e->hash = hoist__hash_str(name);
  return HOIST_OK;
}

/* ------------------------------------------------------------------------ */
/* The whole header */

static int cmp_entry(const void *a, const void *b) {
  const hoist_tensor_info *x = &((const st_entry *)a)->info, *y = &((const st_entry *)b)->info;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* Decodes the key of a top-level member into the arena: copied as is when
 * it has no escape, else decoded by cJSON. */
static int member_key(st_ctx *c, const char *header, const hoist__json_member *m, size_t *off) {
  const char *k = header + m->key_begin + 1;
  size_t klen = m->key_end - m->key_begin - 2;
  if (memchr(k, '\\', klen) == NULL)
    return arena_add_n(c, k, klen, off) ? HOIST_OK : oom(c);
  const char *end = NULL;
  cJSON *s = cJSON_ParseWithLengthOpts(header + m->key_begin, m->key_end - m->key_begin, &end, 0);
  int rc = s != NULL && cJSON_IsString(s) && arena_add_n(c, s->valuestring, strlen(s->valuestring), off)
               ? HOIST_OK
               : oom(c);
  cJSON_Delete(s);
  return rc;
}

/* Walks the top-level object member by member: cJSON parses one entry's
 * value at a time (the lexer recorded the spans), which keeps the number
 * of live cJSON nodes small however many tensors the header has. */
static int parse_header(st_ctx *c, const char *header) {
  char b[160];
  uint8_t flags;
  if (c->tok.top != '{')
    return hoist__fail(c->rt, HOIST_HEADER_NOT_OBJECT, "%s: header is JSON but not an object",
                      c->path);
  size_t k = c->tok.member_count;
  c->entries = calloc(k != 0 ? k : 1, sizeof *c->entries);
  if (c->entries == NULL) return oom(c);
  int seen_metadata = 0;
  for (size_t i = 0; i < k; i++) {
    const hoist__json_member *m = &c->tok.members[i];
    if (!next_string(c, &flags)) return desync(c);
    size_t name_off;
    int rc = member_key(c, header, m, &name_off);
    if (rc != HOIST_OK) return rc;
    const char *name = c->arena + name_off;
    if (flags & HOIST_JSON_STR_HAS_NUL)
      return hoist__fail(c->rt, HOIST_BAD_TENSOR,
                        "%s: tensor '%s': its name contains U+0000, which hoist does not support",
                        c->path, show(name, b));
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(header + m->value_begin, m->value_end - m->value_begin,
                                         &end, 0);
    if (v == NULL) return oom(c); /* the validator accepted it: only memory can fail */
    if (strcmp(name, "__metadata__") == 0) {
      if (seen_metadata++)
        rc = hoist__fail(c->rt, HOIST_DUPLICATE_KEY, "%s: duplicate key '__metadata__'", c->path);
      else
        rc = parse_metadata(c, v);
    } else {
      st_entry *e = &c->entries[c->entry_count];
      e->name_off = name_off;
      rc = parse_tensor(c, v, name, e);
      if (rc == HOIST_OK) c->entry_count++;
    }
    cJSON_Delete(v);
    if (rc != HOIST_OK) return rc;
  }
  /* Duplicate tensor names are found while building the lookup index. */
  return HOIST_OK;
}

/* Builds the name -> sorted position index (open addressing, linear
 * probing), rejecting duplicate tensor names on the way. */
static int build_index(st_ctx *c, uint32_t **out, size_t *mask) {
  size_t cap = 16;
  while (cap < 2 * c->entry_count) cap *= 2;
  uint32_t *index = calloc(cap, sizeof *index);
  if (index == NULL) return oom(c);
  for (size_t i = 0; i < c->entry_count; i++) {
    const st_entry *e = &c->entries[i];
    size_t h = e->hash & (cap - 1);
    for (; index[h] != 0; h = (h + 1) & (cap - 1)) {
      const st_entry *o = &c->entries[index[h] - 1];
      if (o->hash == e->hash && strcmp(o->info.name, e->info.name) == 0) {
        char b[160];
        free(index);
        return hoist__fail(c->rt, HOIST_DUPLICATE_KEY, "%s: duplicate tensor name '%s'", c->path,
                          show(e->info.name, b));
      }
    }
    index[h] = (uint32_t)(i + 1);
  }
  *out = index;
  *mask = cap - 1;
  return HOIST_OK;
}

/* Resolves names and shapes, sorts, and checks the layout and the data
 * length. */
static int check_layout(st_ctx *c, uint64_t data_bytes) {
  char b[160];
  for (size_t i = 0; i < c->entry_count; i++) {
    st_entry *e = &c->entries[i];
    e->info.name = c->arena + e->name_off;
    e->info.shape = e->info.ndim != 0 ? c->dims + e->dim_off : NULL;
  }
  /* Writers usually list tensors in offset order already; sort otherwise. */
  bool sorted = true;
  for (size_t i = 1; i < c->entry_count && sorted; i++)
    sorted = cmp_entry(&c->entries[i - 1], &c->entries[i]) < 0;
  if (!sorted) qsort(c->entries, c->entry_count, sizeof *c->entries, cmp_entry);
  int rc = build_index(c, &c->index, &c->index_mask);
  if (rc != HOIST_OK) return rc;
  uint64_t at = 0;
  for (size_t i = 0; i < c->entry_count; i++) {
    const hoist_tensor_info *t = &c->entries[i].info;
    if (t->begin != at) {
      if (i == 0)
        return hoist__fail(c->rt, HOIST_LAYOUT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                          "] but the first tensor must start at 0",
                          c->path, show(t->name, b), t->begin, t->end);
      return hoist__fail(c->rt, HOIST_LAYOUT,
                        "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                        "] leave a %s of %" PRIu64 " bytes after the previous tensor's end %" PRIu64,
                        c->path, show(t->name, b), t->begin, t->end, t->begin > at ? "gap" : "overlap",
                        t->begin > at ? t->begin - at : at - t->begin, at);
    }
    at = t->end;
  }
  if (at != data_bytes)
    return hoist__fail(c->rt, HOIST_DATA_LENGTH,
                      "%s: tensors end at %" PRIu64 " but the data section holds %" PRIu64
                      " bytes (%s)",
                      c->path, at, data_bytes, at < data_bytes ? "trailing bytes" : "truncated");
  return HOIST_OK;
}


/* ------------------------------------------------------------------------ */
/* Opening files */

int hoist__path_status(int err) {
  switch (err) {
  case ENOENT:
  case ENOTDIR:
    return HOIST_NOT_FOUND;
  case ELOOP:
  case ENAMETOOLONG:
  case EACCES:
  case EPERM:
  case ENXIO:
  case ENODEV:
  case EISDIR:
    return HOIST_BAD_PATH;
  case ENOMEM:
    return HOIST_NO_MEMORY;
  default:
    return HOIST_IO;
  }
}

const char *hoist__file_type_name(mode_t mode) {
  return S_ISREG(mode)    ? "a regular file"
         : S_ISDIR(mode)  ? "a folder"
         : S_ISFIFO(mode) ? "a FIFO"
         : S_ISSOCK(mode) ? "a socket"
         : S_ISCHR(mode)  ? "a character device"
         : S_ISBLK(mode)  ? "a block device"
                          : "not a regular file";
}

int hoist__open_regular(hoist_runtime *rt, const char *path, int type_status, int *fd_out,
                       struct stat *st) {
  char pb[HOIST_SHOW_PATH];
  *fd_out = -1;
  /* stat first, so that a device is never opened at all (opening some has
   * effects); fstat again after the open for the file really opened. */
  if (stat(path, st) != 0) {
    int e = errno;
    return hoist__fail(rt, hoist__path_status(e), "%s: cannot open: %s", hoist__show(path, pb, sizeof pb),
                      strerror(e));
  }
  if (!S_ISREG(st->st_mode))
    return hoist__fail(rt, type_status, "%s: %s, not a regular file",
                      hoist__show(path, pb, sizeof pb), hoist__file_type_name(st->st_mode));
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    return hoist__fail(rt, hoist__path_status(e), "%s: cannot open: %s", hoist__show(path, pb, sizeof pb),
                      strerror(e));
  }
  if (fstat(fd, st) != 0) {
    int e = errno;
    close(fd);
    return hoist__fail(rt, HOIST_IO, "%s: cannot stat: %s", hoist__show(path, pb, sizeof pb),
                      strerror(e));
  }
  if (!S_ISREG(st->st_mode)) {
    close(fd);
    return hoist__fail(rt, type_status, "%s: %s, not a regular file",
                      hoist__show(path, pb, sizeof pb), hoist__file_type_name(st->st_mode));
  }
  *fd_out = fd;
  return HOIST_OK;
}

/* A header read that came back short (err 0: the file shrank after its
 * size was taken) or failed. */
static int header_read_failed(st_ctx *c, int err) {
  if (err == 0)
    return hoist__fail(c->rt, HOIST_FILE_CHANGED, "%s: file shrank while its header was read",
                      c->path);
  return hoist__fail(c->rt, HOIST_IO, "%s: read failed: %s", c->path, strerror(err));
}

/* The header length N from the file's first 8 bytes, checked against the
 * limit and against the file's size before anything is allocated for it. */
static int read_header_length(st_ctx *c, int fd, uint64_t size, uint64_t *n_out) {
  if (size < 8)
    return hoist__fail(c->rt, HOIST_HEADER_TOO_SMALL,
                      "%s: file of %" PRIu64 " bytes is smaller than the 8-byte header length",
                      c->path, size);
  unsigned char len8[8];
  int err = 0;
  if (!read_full(fd, 0, len8, 8, &err)) return header_read_failed(c, err);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
  if (n > HOIST_MAX_HEADER_BYTES)
    return hoist__fail(c->rt, HOIST_HEADER_TOO_LARGE,
                      "%s: header length %" PRIu64 " exceeds the limit of 100000000 bytes",
                      c->path, n);
  if (n > size - 8)
    return hoist__fail(c->rt, HOIST_HEADER_LENGTH,
                      "%s: header length %" PRIu64 " runs past the end of the file (8 + %" PRIu64
                      " > %" PRIu64 " bytes)",
                      c->path, n, n, size);
  *n_out = n;
  return HOIST_OK;
}

/* The n header bytes after the length, in a buffer the caller frees. */
static int read_header(st_ctx *c, int fd, uint64_t n, char **out) {
  char *header = malloc(n != 0 ? (size_t)n : 1);
  if (header == NULL) return oom(c);
  int err = 0;
  if (!read_full(fd, 8, header, (size_t)n, &err)) {
    free(header);
    return header_read_failed(c, err);
  }
  *out = header;
  return HOIST_OK;
}

/* Checks the header text token by token, then parses it into c's entries
 * and metadata; the tokens are c's until ctx_free. */
static int parse_header_text(st_ctx *c, const char *header, size_t n) {
  hoist__json_error jerr;
  int rc = hoist__json_lex(header, n, &c->tok, &jerr);
  if (rc == HOIST_HEADER_UTF8)
    return hoist__fail(c->rt, rc,
                      "%s: header is not valid UTF-8: byte 0x%02x at header offset %zu", c->path,
                      jerr.byte, jerr.offset);
  if (rc == HOIST_HEADER_JSON) {
    if (jerr.byte != 0 || jerr.what == NULL)
      return hoist__fail(c->rt, rc,
                        "%s: header is not valid JSON: %s (byte 0x%02x at header offset %zu)",
                        c->path, jerr.what, jerr.byte, jerr.offset);
    return hoist__fail(c->rt, rc, "%s: header is not valid JSON: %s at header offset %zu",
                      c->path, jerr.what, jerr.offset);
  }
  if (rc != HOIST_OK) return oom(c);
  c->header = header;
  c->header_len = n;
  rc = parse_header(c, header);
  if (rc == HOIST_OK && (c->si != c->tok.string_count || c->ni != c->tok.number_count))
    rc = desync(c);
  c->header = NULL;
  return rc;
}

/* The open file, made of what c parsed (its tables move into the file) and
 * of *fd (the file's from then on: *fd becomes -1), mapped whole. */
static int file_create(st_ctx *c, const char *raw_path, int *fd, uint64_t size, uint64_t n,
                       hoist_file **out) {
  hoist_file *f = calloc(1, sizeof *f);
  if (f != NULL) f->fd = -1;
  if (f == NULL || (f->path = hoist__strdup(raw_path)) == NULL) {
    hoist_file_close(f);
    return oom(c);
  }
  f->fd = *fd;
  *fd = -1;
  f->size = size;
  f->header_bytes = n;
  f->tensors = c->entries;
  f->tensor_count = c->entry_count;
  f->dims = c->dims;
  f->arena = c->arena;
  f->index = c->index;
  f->index_mask = c->index_mask;
  c->index = NULL;
  c->entries = NULL;
  c->dims = NULL;
  c->arena = NULL;
  f->has_metadata = c->has_metadata;
  f->metadata_count = c->meta_count;
  int rc = HOIST_OK;
  if (c->meta_count != 0) {
    f->metadata = malloc(2 * c->meta_count * sizeof *f->metadata);
    if (f->metadata == NULL) {
      rc = oom(c);
      goto fail;
    }
    for (size_t i = 0; i < 2 * c->meta_count; i++) f->metadata[i] = f->arena + c->meta_offs[i];
  }
  f->map_len = (size_t)size;
  f->map = mmap(NULL, f->map_len, PROT_READ, MAP_SHARED, f->fd, 0);
  if (f->map == MAP_FAILED) {
    f->map = NULL;
    rc = hoist__fail(c->rt, HOIST_IO, "%s: cannot map %" PRIu64 " bytes: %s", c->path, size,
                    strerror(errno));
    goto fail;
  }
  *out = f;
  return HOIST_OK;

fail:
  hoist_file_close(f);
  return rc;
}

/* Frees what c still holds. */
static void ctx_free(st_ctx *c) {
  hoist__json_tokens_free(&c->tok);
  free(c->arena);
  free(c->dims);
  free(c->entries);
  free(c->meta_offs);
  free(c->index);
}

int hoist_file_open(hoist_runtime *rt, const char *path, hoist_file **out) {
  assert(out != NULL);
  *out = NULL;
  if (path == NULL) return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "hoist_file_open: path is NULL");

  /* Messages name the file as it can be shown on one line; the handle
   * keeps the path as given. */
  char shown_path[HOIST_SHOW_PATH];
  st_ctx c;
  memset(&c, 0, sizeof c);
  c.rt = rt;
  c.path = hoist__show(path, shown_path, sizeof shown_path);
  char *header = NULL;
  uint64_t n = 0;
  struct stat st;
  int fd = -1;
  int rc = hoist__open_regular(rt, path, HOIST_BAD_PATH, &fd, &st);
  if (rc != HOIST_OK) goto fail;
  uint64_t size = (uint64_t)st.st_size;
  rc = read_header_length(&c, fd, size, &n);
  if (rc != HOIST_OK) goto fail;
  rc = read_header(&c, fd, n, &header);
  if (rc != HOIST_OK) goto fail;
  rc = parse_header_text(&c, header, (size_t)n);
  if (rc != HOIST_OK) goto fail;
  free(header);
  header = NULL;
  hoist__json_tokens_free(&c.tok);
  rc = check_layout(&c, size - 8 - n);
  if (rc != HOIST_OK) goto fail;
  rc = file_create(&c, path, &fd, size, n, out);

fail:
  if (fd >= 0) close(fd);
  free(header);
  ctx_free(&c);
  return rc;
}

void hoist_file_close(hoist_file *f) {
  if (f == NULL) return;
  if (f->map != NULL) munmap(f->map, f->map_len);
  if (f->fd >= 0) close(f->fd);
  free(f->path);
  free(f->tensors);
  free(f->dims);
  free(f->arena);
  free(f->index);
  free(f->metadata);
  free(f);
}

/* ------------------------------------------------------------------------ */
/* Accessors: read-only on an immutable object, hence thread-safe. */

const char *hoist_file_path(const hoist_file *f) { return f->path; }
uint64_t hoist_file_size(const hoist_file *f) { return f->size; }
uint64_t hoist_file_header_bytes(const hoist_file *f) { return f->header_bytes; }
uint64_t hoist_file_data_offset(const hoist_file *f) { return 8 + f->header_bytes; }
uint64_t hoist_file_data_bytes(const hoist_file *f) { return f->size - 8 - f->header_bytes; }
size_t hoist_file_tensor_count(const hoist_file *f) { return f->tensor_count; }
int hoist__file_fd(const hoist_file *f) { return f->fd; }
const void *hoist_file_mapping(const hoist_file *f) { return f->map; }

const hoist_tensor_info *hoist_file_tensor(const hoist_file *f, size_t i) {
  return i < f->tensor_count ? &f->tensors[i].info : NULL;
}

const hoist_tensor_info *hoist_file_find(const hoist_file *f, const char *name) {
  if (name == NULL) return NULL;
  size_t hash = hoist__hash_str(name);
  for (size_t h = hash & f->index_mask; f->index[h] != 0; h = (h + 1) & f->index_mask) {
    const st_entry *e = &f->tensors[f->index[h] - 1];
    if (e->hash == hash && strcmp(e->info.name, name) == 0) return &e->info;
  }
  return NULL;
}

int hoist_file_has_metadata(const hoist_file *f) { return f->has_metadata; }
size_t hoist_file_metadata_count(const hoist_file *f) { return f->metadata_count; }
const char *hoist_file_metadata_key(const hoist_file *f, size_t i) {
  return i < f->metadata_count ? f->metadata[2 * i] : NULL;
}
const char *hoist_file_metadata_value(const hoist_file *f, size_t i) {
  return i < f->metadata_count ? f->metadata[2 * i + 1] : NULL;
}

int hoist_file_read(const hoist_file *f, uint64_t off, void *dst, size_t len) {
  char pb[HOIST_SHOW_PATH];
  uint64_t stop;
  if (!hoist__add_u64(off, len, &stop) || stop > f->size)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                      "%s: read of %zu bytes at %" PRIu64 " runs past the file's %" PRIu64
                      " bytes",
                      hoist__show(f->path, pb, sizeof pb), len, off, f->size);
  int err = 0;
  if (!read_full(f->fd, off, dst, len, &err)) {
    if (err == 0)
      return hoist__fail(NULL, HOIST_FILE_CHANGED,
                        "%s: short read of %zu bytes at %" PRIu64 ": the file shrank since it "
                        "was opened",
                        hoist__show(f->path, pb, sizeof pb), len, off);
    return hoist__fail(NULL, HOIST_IO, "%s: read of %zu bytes at %" PRIu64 " failed: %s",
                      hoist__show(f->path, pb, sizeof pb), len, off, strerror(err));
  }
  return HOIST_OK;
}
