/* test_safetensors.c — the strict safetensors reader: the test vectors
 * against expect.json (sha256 of every tensor's bytes included), a table of
 * corrupt and edge-case files generated here with the status each must get,
 * a 100 MB garbage header, the 100,000-tensor parse time, hoist_file_read on
 * a file truncated behind the reader's back, and concurrent accessors. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  ck_assert(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) == 1);
  ck_assert_uint_eq(n, 32);
  for (unsigned i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ------------------------------------------------------------------------ */
/* (a) test vectors vs expect.json */

static cJSON *load_expect(const char *dir) {
  char path[4200];
  size_t len;
  snprintf(path, sizeof path, "%s/expect.json", dir);
  char *text = tu_read_file(path, &len);
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  ck_assert_msg(root != NULL && cJSON_IsObject(root), "expect.json does not parse");
  return root;
}

static uint64_t num_u64(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  ck_assert_msg(cJSON_IsNumber(v), "expect.json: '%s' is not a number", key);
  return (uint64_t)v->valuedouble;
}

static void check_vector(const char *dir, const char *rel, const cJSON *exp) {
  char path[4700];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  hoist_file *f = NULL;
  int rc = hoist_file_open(NULL, path, &f);
  ck_assert_msg(rc == HOIST_OK, "%s: %s", rel, hoist_last_error(NULL));
  ck_assert_str_eq(hoist_file_path(f), path);
  ck_assert_uint_eq(hoist_file_size(f), num_u64(exp, "file_size"));
  ck_assert_uint_eq(hoist_file_header_bytes(f), num_u64(exp, "header_len"));
  ck_assert_uint_eq(hoist_file_data_offset(f), 8 + num_u64(exp, "header_len"));
  ck_assert_uint_eq(hoist_file_data_bytes(f), num_u64(exp, "payload_bytes"));

  const cJSON *meta = cJSON_GetObjectItemCaseSensitive(exp, "metadata");
  if (meta == NULL || cJSON_IsNull(meta)) {
    ck_assert_int_eq(hoist_file_has_metadata(f), 0);
    ck_assert_uint_eq(hoist_file_metadata_count(f), 0);
  } else {
    ck_assert_int_eq(hoist_file_has_metadata(f), 1);
    ck_assert_uint_eq(hoist_file_metadata_count(f), (size_t)cJSON_GetArraySize(meta));
    for (size_t i = 0; i < hoist_file_metadata_count(f); i++) {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, hoist_file_metadata_key(f, i));
      ck_assert_msg(cJSON_IsString(v), "%s: metadata key '%s' unexpected", rel,
                    hoist_file_metadata_key(f, i));
      ck_assert_str_eq(hoist_file_metadata_value(f, i), v->valuestring);
    }
  }

  const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(exp, "tensors");
  ck_assert(cJSON_IsObject(tensors));
  ck_assert_uint_eq(hoist_file_tensor_count(f), (size_t)cJSON_GetArraySize(tensors));
  const unsigned char *map = hoist_file_mapping(f);
  ck_assert(map != NULL);
  const cJSON *t;
  cJSON_ArrayForEach(t, tensors) {
    const hoist_tensor_info *ti = hoist_file_find(f, t->string);
    ck_assert_msg(ti != NULL, "%s: tensor '%s' not found", rel, t->string);
    ck_assert_str_eq(ti->name, t->string);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    ck_assert_str_eq(hoist_dtype_name(ti->dtype), dt->valuestring);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
    ck_assert_uint_eq(ti->ndim, (unsigned)cJSON_GetArraySize(shape));
    uint64_t count = 1;
    for (uint32_t d = 0; d < ti->ndim; d++) {
      ck_assert_uint_eq(ti->shape[d], (uint64_t)cJSON_GetArrayItem(shape, (int)d)->valuedouble);
      count *= ti->shape[d];
    }
    ck_assert_uint_eq(ti->nelements, count);
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    ck_assert_uint_eq(ti->begin, (uint64_t)cJSON_GetArrayItem(off, 0)->valuedouble);
    ck_assert_uint_eq(ti->end, (uint64_t)cJSON_GetArrayItem(off, 1)->valuedouble);
    ck_assert_uint_eq(ti->nbytes, ti->end - ti->begin);
    ck_assert_uint_eq(ti->nbytes * 8, ti->nelements * hoist_dtype_bits(ti->dtype));

    /* The bytes, through pread and through the mapping. */
    unsigned char *buf = malloc(ti->nbytes + 1);
    ck_assert(buf != NULL);
    ck_assert_int_eq(hoist_file_read(f, hoist_file_data_offset(f) + ti->begin, buf, ti->nbytes),
                     HOIST_OK);
    char hex[65], hex_map[65];
    sha256_hex(buf, ti->nbytes, hex);
    sha256_hex(map + hoist_file_data_offset(f) + ti->begin, ti->nbytes, hex_map);
    free(buf);
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(t, "sha256");
    ck_assert_msg(strcmp(hex, sha->valuestring) == 0, "%s: tensor '%s': sha256 %s, expected %s",
                  rel, t->string, hex, sha->valuestring);
    ck_assert_str_eq(hex_map, hex);
  }

  /* File-offset order, ties by name. */
  for (size_t i = 1; i < hoist_file_tensor_count(f); i++) {
    const hoist_tensor_info *a = hoist_file_tensor(f, i - 1), *b = hoist_file_tensor(f, i);
    ck_assert(a->begin < b->begin || (a->begin == b->begin && a->end < b->end) ||
              (a->begin == b->begin && a->end == b->end && strcmp(a->name, b->name) < 0));
    ck_assert_uint_eq(a->end, b->begin);
  }
  ck_assert_ptr_null(hoist_file_tensor(f, hoist_file_tensor_count(f)));
  ck_assert_ptr_null(hoist_file_find(f, "no such tensor"));
  hoist_file_close(f);
}

/* Collects every *.safetensors under dir (recursively) relative to base. */
static size_t list_vectors(const char *dir, const char *prefix, char names[][512], size_t max,
                           size_t n) {
  DIR *d = opendir(dir);
  ck_assert_msg(d != NULL, "cannot list %s", dir);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    char full[4096], rel[1024];
    snprintf(full, sizeof full, "%s/%s", dir, de->d_name);
    snprintf(rel, sizeof rel, "%s%s", prefix, de->d_name);
    ck_assert(strlen(rel) < 400);
    struct stat st;
    ck_assert(stat(full, &st) == 0);
    if (S_ISDIR(st.st_mode)) {
      char sub[1100];
      snprintf(sub, sizeof sub, "%s/", rel);
      n = list_vectors(full, sub, names, max, n);
    } else {
      size_t len = strlen(de->d_name);
      if (len > 12 && strcmp(de->d_name + len - 12, ".safetensors") == 0) {
        ck_assert(n < max);
        snprintf(names[n++], 512, "%s", rel);
      }
    }
  }
  closedir(d);
  return n;
}

/* Every vector set: the generated one, and the extra one when present. */
START_TEST(test_vectors) {
  char dir[4096];
  for (size_t set = 0; tu_vector_dir(set, dir, sizeof dir) != NULL; set++) {
    cJSON *expect = load_expect(dir);
    static char names[256][512];
    size_t n = list_vectors(dir, "", names, 256, 0);
    ck_assert_uint_ge(n, 4);
    for (size_t i = 0; i < n; i++) {
      const cJSON *exp = cJSON_GetObjectItemCaseSensitive(expect, names[i]);
      ck_assert_msg(exp != NULL, "vector %s is not in %s/expect.json", names[i], dir);
      check_vector(dir, names[i], exp);
    }
    /* And every entry of expect.json names a file that was checked. */
    ck_assert_uint_eq((size_t)cJSON_GetArraySize(expect), n);
    printf("vectors %s: %zu files match expect.json\n", dir, n);
    cJSON_Delete(expect);
  }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (b) the corruption table */

#define NO_N UINT64_MAX

typedef struct st_case {
  const char *name;
  const char *header;  /* JSON text; NULL: raw bytes below */
  size_t header_len;   /* 0: strlen(header) */
  uint64_t n;          /* header length written; NO_N: the real one */
  size_t data_len;     /* bytes of data after the header */
  int expect;
} st_case;

#define T_U8_2 "\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}"
#define F32_23 "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}"

static const st_case cases[] = {
    {"valid F32", F32_23, 0, NO_N, 24, HOIST_OK},
    {"empty header {} with no data", "{}", 0, NO_N, 0, HOIST_OK},
    {"empty header {} with trailing data", "{}", 0, NO_N, 4, HOIST_DATA_LENGTH},
    {"leading and trailing JSON whitespace", " \t\r\n{ \"w\" : {\"dtype\":\"U8\" ,\"shape\":[ 2 ],"
     "\"data_offsets\":[0,2]} }\n \t\r", 0, NO_N, 2, HOIST_OK},
    {"NUL pad after the object", "{}\0\0\0", 5, NO_N, 0, HOIST_HEADER_JSON},
    {"vertical tab as whitespace", "{}\v", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"form feed between tokens", "{\f}", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"UTF-8 BOM", "\xEF\xBB\xBF{}", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"invalid UTF-8 byte", "{\"w\xFF\":{}}", 0, NO_N, 0, HOIST_HEADER_UTF8},
    {"overlong UTF-8", "{\"\xC0\xAF\":{}}", 0, NO_N, 0, HOIST_HEADER_UTF8},
    {"overlong three-byte UTF-8", "{\"\xE0\x80\xAF\":{}}", 0, NO_N, 0, HOIST_HEADER_UTF8},
    {"surrogate encoded in UTF-8", "{\"\xED\xA0\x80\":{}}", 0, NO_N, 0, HOIST_HEADER_UTF8},
    {"code point above U+10FFFF", "{\"\xF4\x90\x80\x80\":{}}", 0, NO_N, 0, HOIST_HEADER_UTF8},
    {"UTF-8 cut at the end", "{}\xE2\x82", 0, NO_N, 0, HOIST_HEADER_UTF8},
    {"non-ASCII names", "{\"w\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\\u00e9\\ud83d\\ude00\":"
     "{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NO_N, 2, HOIST_OK},
    {"number 1.0", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}", 0, NO_N, 1,
     HOIST_BAD_NUMBER},
    {"number 1e2", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1e2],\"data_offsets\":[0,100]}}", 0, NO_N,
     100, HOIST_BAD_NUMBER},
    {"number -0", "{\"w\":{\"dtype\":\"U8\",\"shape\":[-0],\"data_offsets\":[0,0]}}", 0, NO_N, 0,
     HOIST_BAD_NUMBER},
    {"negative offset", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[-1,0]}}", 0, NO_N,
     0, HOIST_BAD_NUMBER},
    {"number 01", "{\"w\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}", 0, NO_N, 1,
     HOIST_HEADER_JSON},
    {"number 1.", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1.],\"data_offsets\":[0,1]}}", 0, NO_N, 1,
     HOIST_HEADER_JSON},
    {"number +1", "{\"w\":{\"dtype\":\"U8\",\"shape\":[+1],\"data_offsets\":[0,1]}}", 0, NO_N, 1,
     HOIST_HEADER_JSON},
    {"lone minus", "{\"w\":{\"dtype\":\"U8\",\"shape\":[-],\"data_offsets\":[0,1]}}", 0, NO_N, 1,
     HOIST_HEADER_JSON},
    {"2^53+1 in a zero-size shape", "{\"w\":{\"dtype\":\"U8\",\"shape\":[9007199254740993,0],"
     "\"data_offsets\":[0,0]}}", 0, NO_N, 0, HOIST_BAD_NUMBER},
    {"2^64 in offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,"
     "18446744073709551616]}}", 0, NO_N, 0, HOIST_BAD_NUMBER},
    {"2^53 in a zero-size shape", "{\"w\":{\"dtype\":\"U8\",\"shape\":[9007199254740992,0],"
     "\"data_offsets\":[0,0]}}", 0, NO_N, 0, HOIST_OK},
    {"2^53 x 2^53 overflows elements", "{\"w\":{\"dtype\":\"U8\",\"shape\":[9007199254740992,"
     "9007199254740992,0],\"data_offsets\":[0,0]}}", 0, NO_N, 0, HOIST_OVERFLOW},
    {"2^53 x 32 F64 overflows bits", "{\"w\":{\"dtype\":\"F64\",\"shape\":[9007199254740992,32],"
     "\"data_offsets\":[0,0]}}", 0, NO_N, 0, HOIST_OVERFLOW},
    {"duplicate tensor key", "{" T_U8_2 "," T_U8_2 "}", 0, NO_N, 2, HOIST_DUPLICATE_KEY},
    {"duplicate tensor key via escape", "{" T_U8_2 ",\"\\u0077\":{\"dtype\":\"U8\",\"shape\":[2],"
     "\"data_offsets\":[0,2]}}", 0, NO_N, 2, HOIST_DUPLICATE_KEY},
    {"duplicate key inside an entry", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"dtype\":\"U8\","
     "\"data_offsets\":[0,2]}}", 0, NO_N, 2, HOIST_DUPLICATE_KEY},
    {"duplicate key in metadata", "{\"__metadata__\":{\"a\":\"1\",\"a\":\"1\"}}", 0, NO_N, 0,
     HOIST_DUPLICATE_KEY},
    {"duplicate __metadata__", "{\"__metadata__\":null,\"__metadata__\":null}", 0, NO_N, 0,
     HOIST_DUPLICATE_KEY},
    {"duplicate key nested in an unknown field", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],"
     "\"data_offsets\":[0,2],\"x\":[{\"k\":1,\"k\":2}]}}", 0, NO_N, 2, HOIST_DUPLICATE_KEY},
    {"metadata non-string value", "{\"__metadata__\":{\"a\":1}}", 0, NO_N, 0, HOIST_BAD_METADATA},
    {"metadata null", "{\"__metadata__\":null," T_U8_2 "}", 0, NO_N, 2, HOIST_OK},
    {"metadata strings", "{\"__metadata__\":{\"format\":\"pt\",\"x\":\"\"}," T_U8_2 "}", 0, NO_N,
     2, HOIST_OK},
    {"metadata array", "{\"__metadata__\":[]}", 0, NO_N, 0, HOIST_BAD_METADATA},
    {"metadata string", "{\"__metadata__\":\"pt\"}", 0, NO_N, 0, HOIST_BAD_METADATA},
    {"metadata value with U+0000", "{\"__metadata__\":{\"a\":\"x\\u0000y\"}}", 0, NO_N, 0,
     HOIST_BAD_METADATA},
    {"missing dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NO_N, 2,
     HOIST_BAD_TENSOR},
    {"missing shape", "{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,2]}}", 0, NO_N, 2,
     HOIST_BAD_TENSOR},
    {"missing data_offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2]}}", 0, NO_N, 2,
     HOIST_BAD_TENSOR},
    {"lowercase dtype", "{\"w\":{\"dtype\":\"u8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NO_N,
     2, HOIST_BAD_DTYPE},
    {"unknown dtype", "{\"w\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NO_N,
     2, HOIST_BAD_DTYPE},
    {"dtype with U+0000", "{\"w\":{\"dtype\":\"U8\\u0000\",\"shape\":[2],\"data_offsets\":[0,2]}}",
     0, NO_N, 2, HOIST_BAD_DTYPE},
    {"dtype not a string", "{\"w\":{\"dtype\":8,\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NO_N, 2,
     HOIST_BAD_TENSOR},
    {"entry not an object", "{\"w\":[1]}", 0, NO_N, 0, HOIST_BAD_TENSOR},
    {"shape not a list", "{\"w\":{\"dtype\":\"U8\",\"shape\":2,\"data_offsets\":[0,2]}}", 0, NO_N,
     2, HOIST_BAD_TENSOR},
    {"shape holds a string", "{\"w\":{\"dtype\":\"U8\",\"shape\":[\"2\"],\"data_offsets\":[0,2]}}",
     0, NO_N, 2, HOIST_BAD_TENSOR},
    {"name with U+0000", "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
     0, NO_N, 2, HOIST_BAD_TENSOR},
    {"F4 with an odd element count", "{\"w\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}",
     0, NO_N, 2, HOIST_MISALIGNED},
    {"F4 with an even element count", "{\"w\":{\"dtype\":\"F4\",\"shape\":[2,2],"
     "\"data_offsets\":[0,2]}}", 0, NO_N, 2, HOIST_OK},
    {"F6_E2M3 of 4 elements is 3 bytes", "{\"w\":{\"dtype\":\"F6_E2M3\",\"shape\":[4],"
     "\"data_offsets\":[0,3]}}", 0, NO_N, 3, HOIST_OK},
    {"F6_E3M2 of 2 elements", "{\"w\":{\"dtype\":\"F6_E3M2\",\"shape\":[2],\"data_offsets\":[0,2]}}",
     0, NO_N, 2, HOIST_MISALIGNED},
    {"size mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,40]}}", 0,
     NO_N, 40, HOIST_SIZE_MISMATCH},
    {"zero-size tensors share offsets", "{\"z2\":{\"dtype\":\"F32\",\"shape\":[0,3],"
     "\"data_offsets\":[8,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"z1\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},\"z0\":{\"dtype\":\"BF16\","
     "\"shape\":[4,0],\"data_offsets\":[8,8]}}", 0, NO_N, 8, HOIST_OK},
    {"gap between tensors", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
     "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]}}", 0, NO_N, 5, HOIST_LAYOUT},
    {"overlapping tensors", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
     "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}", 0, NO_N, 3, HOIST_LAYOUT},
    {"not starting at 0", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}", 0,
     NO_N, 3, HOIST_LAYOUT},
    {"trailing bytes", F32_23, 0, NO_N, 25, HOIST_DATA_LENGTH},
    {"truncated data", F32_23, 0, NO_N, 23, HOIST_DATA_LENGTH},
    {"header length 0", "", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"header length past the file", "{}", 0, 3, 0, HOIST_HEADER_LENGTH},
    {"header length 100,000,001", "{}", 0, 100000001, 0, HOIST_HEADER_TOO_LARGE},
    {"header length 2^64-1", "{}", 0, UINT64_MAX - 1, 0, HOIST_HEADER_TOO_LARGE},
    {"top-level array", "[]", 0, NO_N, 0, HOIST_HEADER_NOT_OBJECT},
    {"top-level string", "\"{}\"", 0, NO_N, 0, HOIST_HEADER_NOT_OBJECT},
    {"top-level null", "null", 0, NO_N, 0, HOIST_HEADER_NOT_OBJECT},
    {"3-element data_offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2,2]}}",
     0, NO_N, 2, HOIST_BAD_OFFSETS},
    {"1-element data_offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2]}}", 0,
     NO_N, 2, HOIST_BAD_OFFSETS},
    {"data_offsets with null", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,null]}}",
     0, NO_N, 2, HOIST_BAD_OFFSETS},
    {"begin > end", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,0]}}", 0, NO_N, 2,
     HOIST_BAD_OFFSETS},
    {"unknown fields in an entry", "{\"w\":{\"dtype\":\"U8\",\"note\":\"x\\u0000y\",\"shape\":[2],"
     "\"f\":1.5e-3,\"n\":-0,\"o\":{\"a\":[1,{\"b\":null}],\"t\":true},\"data_offsets\":[0,2]}}",
     0, NO_N, 2, HOIST_OK},
    {"scalar shape []", "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 0, NO_N,
     4, HOIST_OK},
    {"raw control character in a string", "{\"a\tb\":{}}", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"invalid escape", "{\"a\\x\":{}}", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"lone high surrogate escape", "{\"\\ud800\":{}}", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"lone low surrogate escape", "{\"\\udc00x\":{}}", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"trailing comma", "{" T_U8_2 ",}", 0, NO_N, 2, HOIST_HEADER_JSON},
    {"trailing garbage", "{}x", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"two objects", "{}{}", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"unterminated object", "{\"a\":", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"single quotes", "{'a':{}}", 0, NO_N, 0, HOIST_HEADER_JSON},
    {"NaN literal", "{\"w\":{\"dtype\":\"U8\",\"shape\":[NaN],\"data_offsets\":[0,0]}}", 0, NO_N, 0,
     HOIST_HEADER_JSON},
    {"70-digit number in an unknown field", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],"
     "\"data_offsets\":[0,2],\"x\":1234567890123456789012345678901234567890123456789012345678901234567890}}",
     0, NO_N, 2, HOIST_HEADER_JSON},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* Writes a file of an 8-byte length n, the header bytes and data_len
 * pattern bytes. */
static void write_case(const char *path, const char *header, size_t hlen, uint64_t n,
                       size_t data_len) {
  size_t total = 8 + hlen + data_len;
  unsigned char *buf = malloc(total);
  ck_assert(buf != NULL);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
  memcpy(buf + 8, header, hlen);
  for (size_t i = 0; i < data_len; i++) buf[8 + hlen + i] = (unsigned char)(i * 37 + 11);
  tu_write_file(path, buf, total);
  free(buf);
}

static void expect_status(const char *path, const char *what, int expect) {
  hoist_file *f = NULL;
  int rc = hoist_file_open(NULL, path, &f);
  const char *detail = hoist_last_error(NULL);
  ck_assert_msg(rc == expect, "%s: got %s (%s), expected %s", what, hoist_status_name(rc),
                rc != HOIST_OK ? detail : "", hoist_status_name(expect));
  if (rc == HOIST_OK) {
    ck_assert_ptr_nonnull(f);
    hoist_file_close(f);
  } else {
    ck_assert_ptr_null(f);
    /* One line naming the file. */
    ck_assert_msg(strstr(detail, path) == detail, "%s: message does not start with the path: %s",
                  what, detail);
    ck_assert_msg(strchr(detail, '\n') == NULL, "%s: message is not one line", what);
  }
}

START_TEST(test_case_table) {
  const st_case *c = &cases[_i];
  char dir[4096], path[4200];
  tu_scratch_dir("st_case", dir, sizeof dir);
  snprintf(path, sizeof path, "%s/case.safetensors", dir);
  size_t hlen = c->header_len != 0 ? c->header_len : strlen(c->header);
  write_case(path, c->header, hlen, c->n == NO_N ? hlen : c->n, c->data_len);
  expect_status(path, c->name, c->expect);
}
END_TEST

START_TEST(test_accepted_table_contents) {
  char dir[4096], path[4200];
  tu_scratch_dir("st_contents", dir, sizeof dir);
  snprintf(path, sizeof path, "%s/z.safetensors", dir);
  /* The zero-size case: sorted by (begin, end), ties by name. */
  const st_case *c = NULL;
  for (size_t i = 0; i < NCASES; i++)
    if (strcmp(cases[i].name, "zero-size tensors share offsets") == 0) c = &cases[i];
  ck_assert_ptr_nonnull(c);
  write_case(path, c->header, strlen(c->header), strlen(c->header), c->data_len);
  hoist_file *f = NULL;
  ck_assert_int_eq(hoist_file_open(NULL, path, &f), HOIST_OK);
  const char *order[] = {"z1", "a", "z0", "z2"};
  ck_assert_uint_eq(hoist_file_tensor_count(f), 4);
  for (size_t i = 0; i < 4; i++) ck_assert_str_eq(hoist_file_tensor(f, i)->name, order[i]);
  const hoist_tensor_info *z2 = hoist_file_find(f, "z2");
  ck_assert_int_eq(z2->dtype, HOIST_DTYPE_F32);
  ck_assert_uint_eq(z2->ndim, 2);
  ck_assert_uint_eq(z2->shape[0], 0);
  ck_assert_uint_eq(z2->shape[1], 3);
  ck_assert_uint_eq(z2->nelements, 0);
  ck_assert_uint_eq(z2->begin, 8);
  ck_assert_int_eq(hoist_file_has_metadata(f), 0);
  hoist_file_close(f);

  /* Scalar and metadata order. */
  tu_write_safetensors(path,
                       "{\"__metadata__\":{\"z\":\"1\",\"a\":\"\\u00e9\\n\"},"
                       "\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}",
                       NULL, 8);
  ck_assert_int_eq(hoist_file_open(NULL, path, &f), HOIST_OK);
  ck_assert_int_eq(hoist_file_has_metadata(f), 1);
  ck_assert_uint_eq(hoist_file_metadata_count(f), 2);
  ck_assert_str_eq(hoist_file_metadata_key(f, 0), "z");
  ck_assert_str_eq(hoist_file_metadata_value(f, 1), "\xC3\xA9\n");
  const hoist_tensor_info *s = hoist_file_find(f, "s");
  ck_assert_uint_eq(s->ndim, 0);
  ck_assert_uint_eq(s->nelements, 1);
  ck_assert_uint_eq(s->nbytes, 8);
  hoist_file_close(f);

  /* Every dtype with its bit size, 8 elements each. */
  char header[8192];
  size_t o = (size_t)snprintf(header, sizeof header, "{");
  uint64_t at = 0;
  for (int d = 0; d < HOIST_DTYPE_COUNT_; d++) {
    uint64_t nb = 8ull * hoist_dtype_bits((hoist_dtype)d) / 8;
    o += (size_t)snprintf(header + o, sizeof header - o,
                          "%s\"t%d\":{\"dtype\":\"%s\",\"shape\":[2,4],\"data_offsets\":[%" PRIu64
                          ",%" PRIu64 "]}",
                          d ? "," : "", d, hoist_dtype_name((hoist_dtype)d), at, at + nb);
    at += nb;
  }
  snprintf(header + o, sizeof header - o, "}");
  tu_write_safetensors(path, header, NULL, at);
  ck_assert_msg(hoist_file_open(NULL, path, &f) == HOIST_OK, "%s", hoist_last_error(NULL));
  ck_assert_uint_eq(hoist_file_tensor_count(f), HOIST_DTYPE_COUNT_);
  for (int d = 0; d < HOIST_DTYPE_COUNT_; d++) {
    char name[16];
    snprintf(name, sizeof name, "t%d", d);
    ck_assert_int_eq(hoist_file_find(f, name)->dtype, d);
  }
  hoist_file_close(f);
}
END_TEST

START_TEST(test_raw_sizes) {
  char dir[4096], path[4200];
  tu_scratch_dir("st_raw", dir, sizeof dir);
  snprintf(path, sizeof path, "%s/small.safetensors", dir);
  tu_write_file(path, "", 0);
  expect_status(path, "empty file", HOIST_HEADER_TOO_SMALL);
  tu_write_file(path, "\x02\0\0\0\0\0\0", 7);
  expect_status(path, "7-byte file", HOIST_HEADER_TOO_SMALL);
  tu_write_file(path, "\0\0\0\0\0\0\0\0", 8);
  expect_status(path, "only a zero length", HOIST_HEADER_JSON);
  snprintf(path, sizeof path, "%s/missing.safetensors", dir);
  hoist_file *f = NULL;
  ck_assert_int_eq(hoist_file_open(NULL, path, &f), HOIST_NOT_FOUND);
  ck_assert_int_eq(hoist_file_open(NULL, dir, &f), HOIST_BAD_PATH); /* a directory */
  ck_assert_ptr_null(f);
}
END_TEST

/* Nesting: 127 levels pass (like serde_json), 128 fail, and a deep bomb
 * fails without recursion. */
static void nest_case(const char *dir, size_t extra_depth, int expect) {
  size_t cap = 2 * extra_depth + 256;
  char *h = malloc(cap);
  ck_assert(h != NULL);
  size_t o = (size_t)snprintf(h, cap, "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],"
                                      "\"data_offsets\":[0,2],\"x\":");
  for (size_t i = 0; i < extra_depth; i++) h[o++] = '[';
  for (size_t i = 0; i < extra_depth; i++) h[o++] = ']';
  memcpy(h + o, "}}", 3);
  char path[4200], what[64];
  snprintf(path, sizeof path, "%s/nest.safetensors", dir);
  snprintf(what, sizeof what, "nesting %zu", extra_depth + 2);
  tu_write_safetensors(path, h, NULL, 2);
  free(h);
  expect_status(path, what, expect);
}

START_TEST(test_nesting) {
  char dir[4096];
  tu_scratch_dir("st_nest", dir, sizeof dir);
  nest_case(dir, 125, HOIST_OK);
  nest_case(dir, 126, HOIST_HEADER_JSON);
  nest_case(dir, 1000000, HOIST_HEADER_JSON);
}
END_TEST

/* A 100 MB header of garbage: zeros (a sparse file) and an unterminated
 * string of 100,000,000 bytes. */
START_TEST(test_huge_garbage_header) {
  char dir[4096], path[4200];
  tu_scratch_dir("st_huge", dir, sizeof dir);
  snprintf(path, sizeof path, "%s/huge.safetensors", dir);
  const uint64_t n = 100000000;
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(n >> (8 * i));

  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_assert(fd >= 0);
  ck_assert(write(fd, len8, 8) == 8);
  ck_assert(ftruncate(fd, (off_t)(8 + n)) == 0);
  close(fd);
  double t0 = now_ms();
  expect_status(path, "100 MB of zeros", HOIST_HEADER_JSON);
  double t1 = now_ms();

  char *buf = malloc(8 + n);
  ck_assert(buf != NULL);
  memcpy(buf, len8, 8);
  memset(buf + 8, 'x', n);
  memcpy(buf + 8, "{\"a\":\"", 6);
  tu_write_file(path, buf, 8 + n);
  free(buf);
  double t2 = now_ms();
  expect_status(path, "100 MB unterminated string", HOIST_HEADER_JSON);
  double t3 = now_ms();
  printf("100 MB garbage headers rejected in %.1f ms (zeros) and %.1f ms (string)\n", t1 - t0,
         t3 - t2);
  ck_assert(t1 - t0 < 10000 && t3 - t2 < 10000);
  unlink(path);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (c) 100,000 tensors, in linear time */

/* CPU time of the calling thread: what the parse itself costs, which other
 * processes on a busy machine do not inflate as they do wall time. */
static double thread_cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Writes dir/NAME.safetensors with count BF16 [2, 4] tensors named like a
 * large model's (16 bytes each); path receives its path. */
static void write_many_tensors(const char *dir, size_t count, char *path, size_t path_size) {
  size_t cap = count * 128 + 64;
  char *h = malloc(cap);
  ck_assert(h != NULL);
  size_t o = (size_t)snprintf(h, cap, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (size_t i = 0; i < count; i++)
    o += (size_t)snprintf(h + o, cap - o,
                          ",\"model.layers.%zu.self_attn.q_proj.weight\":{\"dtype\":\"BF16\","
                          "\"shape\":[2,4],\"data_offsets\":[%zu,%zu]}",
                          i, 16 * i, 16 * i + 16);
  memcpy(h + o, "}", 2);
  snprintf(path, path_size, "%s/t%zu.safetensors", dir, count);
  tu_write_safetensors(path, h, NULL, 16 * count);
  free(h);
}

/* Opens the file of write_many_tensors, checks its tensors (sampled) and
 * returns the thread CPU time the open took, in ms. */
static double open_many_tensors(const char *path, size_t count) {
  hoist_file *f = NULL;
  double t0 = thread_cpu_ms();
  int rc = hoist_file_open(NULL, path, &f);
  double t = thread_cpu_ms() - t0;
  ck_assert_msg(rc == HOIST_OK, "%s", hoist_last_error(NULL));
  ck_assert_uint_eq(hoist_file_tensor_count(f), count);
  for (size_t i = 0; i < count; i += 997) {
    char name[80];
    snprintf(name, sizeof name, "model.layers.%zu.self_attn.q_proj.weight", i);
    const hoist_tensor_info *t1 = hoist_file_find(f, name);
    ck_assert_ptr_nonnull(t1);
    ck_assert_uint_eq(t1->begin, 16 * i);
    ck_assert_ptr_eq(hoist_file_tensor(f, i), t1);
  }
  hoist_file_close(f);
  return t;
}

/* The parse is linear in the tensors: 100,000 cost at most 3x the linear
 * extrapolation of 10,000 measured in the same process (interleaved, best
 * of 5 each, in thread CPU time), where a quadratic step in the lexer,
 * the parse, the sort or the name index would cost 10x it.  A ratio of
 * two measurements of one run holds on a machine busy with parallel
 * tests and under sanitizers, where a wall-clock limit did not.  The
 * absolute bar (about 200 ms in an optimized build) is printed; a loose
 * ceiling on the CPU time catches only a disaster. */
START_TEST(test_100k_tensors) {
  char dir[4096], small[4200], big[4200];
  tu_scratch_dir("st_100k", dir, sizeof dir);
  write_many_tensors(dir, 10000, small, sizeof small);
  write_many_tensors(dir, 100000, big, sizeof big);
  double best_small = 1e9, best_big = 1e9;
  for (int run = 0; run < 5; run++) {
    double t = open_many_tensors(small, 10000);
    if (t < best_small) best_small = t;
    t = open_many_tensors(big, 100000);
    if (t < best_big) best_big = t;
  }
  /* A floor for the small one: a clock tick must not make the ratio. */
  const double ratio = best_big / (best_small > 0.5 ? best_small : 0.5);
  printf("100,000-tensor header: parsed in %.1f ms CPU, %.1fx the time of 10,000 (%.1f ms); "
         "best of 5\n",
         best_big, ratio, best_small);
  ck_assert_msg(ratio < 30.0, "100,000 tensors took %.1fx the time of 10,000 (%.1f / %.1f ms)",
                ratio, best_big, best_small);
  ck_assert_msg(best_big < 10000.0, "100,000-tensor header took %.1f ms of CPU", best_big);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (d) hoist_file_read and a file truncated behind the reader */

START_TEST(test_read_and_file_changed) {
  char src[4096], dir[4096], path[4200];
  size_t len;
  void *bytes = tu_read_file(tu_vector_path("all_dtypes.safetensors", src, sizeof src), &len);
  tu_scratch_dir("st_read", dir, sizeof dir);
  snprintf(path, sizeof path, "%s/copy.safetensors", dir);
  tu_write_file(path, bytes, len);

  hoist_file *f = NULL;
  ck_assert_int_eq(hoist_file_open(NULL, path, &f), HOIST_OK);
  const hoist_tensor_info *t = hoist_file_find(f, "vec_f32");
  ck_assert_ptr_nonnull(t);
  uint64_t off = hoist_file_data_offset(f) + t->begin;
  unsigned char *buf = malloc(t->nbytes);
  ck_assert_int_eq(hoist_file_read(f, off, buf, t->nbytes), HOIST_OK);
  ck_assert(memcmp(buf, (unsigned char *)bytes + off, t->nbytes) == 0);
  ck_assert(memcmp(buf, (const unsigned char *)hoist_file_mapping(f) + off, t->nbytes) == 0);
  /* Past the end it opened with: misuse, reported. */
  ck_assert_int_eq(hoist_file_read(f, hoist_file_size(f) - 1, buf, 2), HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(hoist_file_read(f, UINT64_MAX, buf, 2), HOIST_INVALID_ARGUMENT);

  /* Shrink the file under the open handle. */
  ck_assert(truncate(path, (off_t)(off + 10)) == 0);
  ck_assert_int_eq(hoist_file_read(f, off, buf, t->nbytes), HOIST_FILE_CHANGED);
  ck_assert_msg(strstr(hoist_last_error(NULL), "shrank") != NULL, "%s", hoist_last_error(NULL));
  ck_assert_int_eq(hoist_file_read(f, off, buf, 10), HOIST_OK);
  hoist_file_close(f);
  /* Reopened, the truncated file is rejected. */
  expect_status(path, "truncated copy", HOIST_DATA_LENGTH);
  free(buf);
  free(bytes);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (e) accessors from several threads */

typedef struct thread_arg {
  const hoist_file *f;
  int failures;
} thread_arg;

static void *hammer(void *p) {
  thread_arg *a = p;
  const hoist_file *f = a->f;
  unsigned char buf[4096];
  for (int round = 0; round < 200; round++) {
    for (size_t i = 0; i < hoist_file_tensor_count(f); i++) {
      const hoist_tensor_info *t = hoist_file_tensor(f, i);
      if (hoist_file_find(f, t->name) != t) a->failures++;
      size_t n = t->nbytes < sizeof buf ? (size_t)t->nbytes : sizeof buf;
      uint64_t off = hoist_file_data_offset(f) + t->begin;
      if (hoist_file_read(f, off, buf, n) != HOIST_OK) a->failures++;
      if (n != 0 && memcmp(buf, (const unsigned char *)hoist_file_mapping(f) + off, n) != 0)
        a->failures++;
    }
    for (size_t i = 0; i < hoist_file_metadata_count(f); i++)
      if (hoist_file_metadata_key(f, i) == NULL || hoist_file_metadata_value(f, i) == NULL)
        a->failures++;
    if (hoist_file_data_bytes(f) + hoist_file_data_offset(f) != hoist_file_size(f)) a->failures++;
  }
  return NULL;
}

START_TEST(test_threads) {
  char path[4096];
  hoist_file *f = NULL;
  ck_assert_int_eq(hoist_file_open(NULL, tu_vector_path("all_dtypes.safetensors", path, sizeof path), &f),
                   HOIST_OK);
  pthread_t th[6];
  thread_arg args[6];
  for (int i = 0; i < 6; i++) {
    args[i].f = f;
    args[i].failures = 0;
    ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
  }
  for (int i = 0; i < 6; i++) {
    ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    ck_assert_int_eq(args[i].failures, 0);
  }
  hoist_file_close(f);
  hoist_file_close(NULL);
}
END_TEST

/* Errors also land in a runtime's slot when one is given. */
START_TEST(test_runtime_error_slot) {
  hoist_runtime *rt = tu_host_runtime(0);
  char dir[4096], path[4200];
  tu_scratch_dir("st_rt", dir, sizeof dir);
  snprintf(path, sizeof path, "%s/m.safetensors", dir);
  tu_write_safetensors(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,40]}}",
                       NULL, 40);
  hoist_file *f = NULL;
  ck_assert_int_eq(hoist_file_open(rt, path, &f), HOIST_SIZE_MISMATCH);
  ck_assert_msg(strstr(hoist_last_error(rt),
                       "tensor 'w': 12 elements of F32 need 48 bytes but data_offsets span 40") !=
                    NULL,
                "%s", hoist_last_error(rt));
  hoist_runtime_close(rt);
}
END_TEST

static Suite *safetensors_suite(void) {
  Suite *s = suite_create("safetensors");
  TCase *tc = tcase_create("reader");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_vectors);
  tcase_add_loop_test(tc, test_case_table, 0, (int)NCASES);
  tcase_add_test(tc, test_accepted_table_contents);
  tcase_add_test(tc, test_raw_sizes);
  tcase_add_test(tc, test_nesting);
  tcase_add_test(tc, test_huge_garbage_header);
  tcase_add_test(tc, test_100k_tensors);
  tcase_add_test(tc, test_read_and_file_changed);
  tcase_add_test(tc, test_threads);
  tcase_add_test(tc, test_runtime_error_slot);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  printf("corruption table: %zu cases\n", NCASES);
  return tu_run_suite(safetensors_suite());
}
