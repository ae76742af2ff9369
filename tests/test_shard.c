/* test_shard.c — the arithmetic of per-rank loading (shard.c): FSDP2's
 * torch.chunk split on dim 0 (remainders, empty last ranks, one row, an
 * empty dimension), tensor-parallel equal parts, the file runs of a part
 * on dims 0, 1 and 2, sub-byte dtypes, the replicated span split, the
 * tensor-parallel plan's syntax, and the plan's errors on a written
 * pipeline (a dimension that does not divide, past a tensor's rank, a rule
 * naming no tensor, FSDP and a plan on one component, a scalar kept whole).
 * tests/differential/diff_shard.py checks the same rules byte for byte
 * against a numpy reference of torch.chunk. */
#include "testutil.h"

#include "shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* torch.chunk's contract, written the long way: chunks of ceil(n / w)
 * rows cut from the front until the rows run out. */
static void chunk_by_walking(uint64_t n, uint32_t w, uint32_t r, uint64_t *off, uint64_t *len) {
  const uint64_t size = n == 0 ? 0 : (n + w - 1) / w;
  uint64_t at = 0;
  for (uint32_t k = 0; k < r; k++) at += size < n - at ? size : n - at;
  *off = at;
  *len = size < n - at ? size : n - at;
}

START_TEST(fsdp_rows_are_torch_chunk) {
  /* Known cases: 5 rows on 4 ranks are 2, 2, 1 and an empty chunk. */
  const uint64_t want[4][2] = {{0, 2}, {2, 2}, {4, 1}, {5, 0}};
  for (uint32_t r = 0; r < 4; r++) {
    uint64_t off = 9, len = 9, padded = 9;
    hoist__shard_fsdp_rows(5, 4, r, &off, &len, &padded);
    ck_assert_uint_eq(off, want[r][0]);
    ck_assert_uint_eq(len, want[r][1]);
    ck_assert_uint_eq(padded, 2);
  }
  /* Every n up to 70 on every world up to 9: covering, in order, each
   * rank's rows as the walk gives them. */
  for (uint64_t n = 0; n <= 70; n++)
    for (uint32_t w = 1; w <= 9; w++) {
      uint64_t next = 0;
      for (uint32_t r = 0; r < w; r++) {
        uint64_t off, len, padded, woff, wlen;
        hoist__shard_fsdp_rows(n, w, r, &off, &len, &padded);
        chunk_by_walking(n, w, r, &woff, &wlen);
        ck_assert_msg(off == woff && len == wlen, "n %llu w %u r %u: [%llu,+%llu) not [%llu,+%llu)",
                      (unsigned long long)n, w, r, (unsigned long long)off,
                      (unsigned long long)len, (unsigned long long)woff, (unsigned long long)wlen);
        ck_assert_uint_eq(off, next);
        ck_assert_uint_le(len, padded);
        next += len;
      }
      ck_assert_uint_eq(next, n);
    }
  /* Shapes as large as the format allows do not overflow. */
  uint64_t off, len, padded;
  hoist__shard_fsdp_rows(UINT64_C(1) << 53, 4096, 4095, &off, &len, &padded);
  ck_assert_uint_eq(off + len, UINT64_C(1) << 53);
}
END_TEST

START_TEST(tp_rows_need_equal_parts) {
  uint64_t off = 0, len = 0;
  ck_assert(hoist__shard_even_rows(12, 4, 3, &off, &len));
  ck_assert_uint_eq(off, 9);
  ck_assert_uint_eq(len, 3);
  ck_assert(!hoist__shard_even_rows(10, 4, 0, &off, &len));
  ck_assert(hoist__shard_even_rows(0, 3, 2, &off, &len));
  ck_assert_uint_eq(len, 0);
}
END_TEST

static hoist_tensor_info info(hoist_dtype dt, uint32_t ndim, const uint64_t *shape) {
  hoist_tensor_info t = {.name = "w", .dtype = dt, .ndim = ndim, .shape = shape, .begin = 1000};
  t.nelements = 1;
  for (uint32_t k = 0; k < ndim; k++) t.nelements *= shape[k];
  t.nbytes = t.nelements * hoist_dtype_bits(dt) / 8;
  t.end = t.begin + t.nbytes;
  return t;
}

START_TEST(cuts_on_every_dim) {
  const uint64_t shape[3] = {4, 6, 10};
  const hoist_tensor_info t = info(HOIST_DTYPE_BF16, 3, shape);
  hoist__shard_cut c;
  /* dim 0, rows 1..3: one run of 2 x 6 x 10 x 2 bytes from row 1. */
  ck_assert_int_eq(hoist__shard_cut_tensor(NULL, "c", &t, 0, 1, 2, &c), HOIST_OK);
  ck_assert_uint_eq(c.pieces, 1);
  ck_assert_uint_eq(c.piece_bytes, 240);
  ck_assert_uint_eq(c.first, 120);
  /* dim 1, indices 2..5: one run per index of dim 0, 3 x 10 x 2 bytes. */
  ck_assert_int_eq(hoist__shard_cut_tensor(NULL, "c", &t, 1, 2, 3, &c), HOIST_OK);
  ck_assert_uint_eq(c.pieces, 4);
  ck_assert_uint_eq(c.piece_bytes, 60);
  ck_assert_uint_eq(c.first, 40);
  ck_assert_uint_eq(c.stride, 120);
  /* dim 2, the last: one run per (i, j), 5 elements each. */
  ck_assert_int_eq(hoist__shard_cut_tensor(NULL, "c", &t, 2, 5, 5, &c), HOIST_OK);
  ck_assert_uint_eq(c.pieces, 24);
  ck_assert_uint_eq(c.piece_bytes, 10);
  ck_assert_uint_eq(c.first, 10);
  ck_assert_uint_eq(c.stride, 20);
  /* The whole dimension is the whole tensor, one run; an empty part none. */
  ck_assert_int_eq(hoist__shard_cut_tensor(NULL, "c", &t, 1, 0, 6, &c), HOIST_OK);
  ck_assert_uint_eq(c.pieces, 1);
  ck_assert_uint_eq(c.piece_bytes, t.nbytes);
  ck_assert_int_eq(hoist__shard_cut_tensor(NULL, "c", &t, 1, 6, 0, &c), HOIST_OK);
  ck_assert_uint_eq(c.pieces, 0);
}
END_TEST

START_TEST(sub_byte_rows_must_end_on_a_byte) {
  const uint64_t odd[2] = {4, 3}, even[2] = {4, 6};
  const hoist_tensor_info a = info(HOIST_DTYPE_F4, 2, odd), b = info(HOIST_DTYPE_F4, 2, even);
  hoist__shard_cut c;
  ck_assert_int_eq(hoist__shard_cut_tensor(NULL, "c", &a, 0, 1, 2, &c), HOIST_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "does not end on a byte"));
  ck_assert_int_eq(hoist__shard_cut_tensor(NULL, "c", &b, 0, 1, 2, &c), HOIST_OK);
  ck_assert_uint_eq(c.piece_bytes, 6); /* 2 rows of 6 four-bit values */
  ck_assert_uint_eq(c.first, 3);
  /* The whole tensor needs no cut, whatever its rows. */
  ck_assert_int_eq(hoist__shard_cut_tensor(NULL, "c", &a, 0, 0, 4, &c), HOIST_OK);
}
END_TEST

START_TEST(replicated_span_splits_at_tensor_boundaries) {
  const uint64_t offs[6] = {0, 4096, 6144, 7168, 7424, 7680};
  const uint64_t span = 7936;
  for (uint32_t w = 1; w <= 8; w++) {
    uint64_t next = 0;
    for (uint32_t r = 0; r < w; r++) {
      uint64_t b = 0, e = 0;
      hoist__shard_split_span(offs, 6, span, w, r, &b, &e);
      ck_assert_uint_eq(b, next);
      ck_assert_uint_le(b, e);
      bool boundary = b == span;
      for (int i = 0; i < 6; i++) boundary |= offs[i] == b;
      ck_assert_msg(boundary, "w %u r %u starts at %llu, inside a tensor", w, r,
                    (unsigned long long)b);
      next = e;
    }
    ck_assert_uint_eq(next, span);
  }
  /* Two ranks: the cut is the first boundary at or past half the span. */
  uint64_t b = 0, e = 0;
  hoist__shard_split_span(offs, 6, span, 2, 0, &b, &e);
  ck_assert_uint_eq(e, 4096);
}
END_TEST

START_TEST(plan_syntax) {
  hoist__shard_plan p;
  ck_assert_int_eq(hoist__shard_plan_parse(NULL, "transformer:*.qkv.weight=0,te:x=-1", 1, 4, &p),
                   HOIST_OK);
  ck_assert_uint_eq(p.n, 2);
  ck_assert_str_eq(p.rules[0].component, "transformer");
  ck_assert_str_eq(p.rules[0].glob, "*.qkv.weight");
  ck_assert_int_eq(p.rules[1].dim, -1);
  hoist__shard_plan_free(&p);
  static const char *const bad[] = {"transformer", ":x=0", "a:=0", "a:x=", "a:x=1.5",
                                    "a:x=99", "a:x=0,", "a:x=0,,b:y=1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(hoist__shard_plan_parse(NULL, bad[i], 0, 2, &p) == HOIST_INVALID_ARGUMENT,
                  "'%s' accepted", bad[i]);
    ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "`shard`"));
    hoist__shard_plan_free(&p);
  }
  ck_assert_int_eq(hoist__shard_plan_parse(NULL, NULL, 0, 2, &p), HOIST_OK);
  ck_assert_uint_eq(p.n, 0);
}
END_TEST

/* A pipeline of one component "te" with a 2-D F32 [6, 4], a 1-D [5], a
 * scalar, and a component "dit" with [3, 2]. */
static char pipe_dir[1024];

static void write_pipe(void) {
  char path[1200];
  tu_scratch_dir("shard_plan", pipe_dir, sizeof pipe_dir);
  snprintf(path, sizeof path, "%s/model_index.json", pipe_dir);
  const char *index = "{\"_class_name\":\"P\",\"te\":[\"transformers\",\"T5EncoderModel\"],"
                      "\"transformer\":[\"diffusers\",\"FluxTransformer2DModel\"]}";
  tu_write_file(path, index, strlen(index));
  snprintf(path, sizeof path, "%s/te", pipe_dir);
  ck_assert_int_eq(mkdir(path, 0755), 0);
  snprintf(path, sizeof path, "%s/te/model.safetensors", pipe_dir);
  tu_write_safetensors(path,
                       "{\"m\":{\"dtype\":\"F32\",\"shape\":[6,4],\"data_offsets\":[0,96]},"
                       "\"v\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[96,116]},"
                       "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[116,120]}}",
                       NULL, 120);
  snprintf(path, sizeof path, "%s/transformer", pipe_dir);
  ck_assert_int_eq(mkdir(path, 0755), 0);
  snprintf(path, sizeof path, "%s/transformer/model.safetensors", pipe_dir);
  tu_write_safetensors(path, "{\"w\":{\"dtype\":\"U8\",\"shape\":[3,2],\"data_offsets\":[0,6]}}",
                       NULL, 6);
}

typedef struct seen {
  int split[8];
  uint64_t len[8];
  int n;
} seen;

static void count(void *user, const hoist__shard_view *v) {
  seen *s = user;
  if (s->n < 8) {
    s->split[s->n] = v->split;
    s->len[s->n] = v->length;
  }
  s->n++;
}

static int describe(const char *fsdp, const char *shard, uint32_t rank, uint32_t world, seen *s) {
  hoist_pipeline *p = NULL;
  ck_assert_int_eq(hoist_pipeline_open(NULL, pipe_dir, NULL, &p), HOIST_OK);
  memset(s, 0, sizeof *s);
  const int rc = hoist__shard_describe(NULL, p, fsdp, shard, rank, world, count, s);
  hoist_pipeline_close(p);
  return rc;
}

START_TEST(plan_errors_before_anything_moves) {
  write_pipe();
  seen s;
  /* m's 6 rows split in 3; a rule that also matches v fails: its 5 rows do
   * not split into 3 equal parts. */
  ck_assert_int_eq(describe(NULL, "te:m=0", 1, 3, &s), HOIST_OK);
  ck_assert_int_eq(describe(NULL, "te:*=0", 1, 3, &s), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "tensor 'v': dimension 0 (5) does not split"));
  /* Dimension 1 of a 1-D tensor. */
  ck_assert_int_eq(describe(NULL, "te:v=1", 0, 2, &s), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "has no dimension 1"));
  /* A rule naming no tensor, or no component. */
  ck_assert_int_eq(describe(NULL, "te:nothing.*=0", 0, 2, &s), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "names no tensor"));
  ck_assert_int_eq(describe(NULL, "vae:*=0", 0, 2, &s), HOIST_INVALID_ARGUMENT);
  /* FSDP and a plan on one component. */
  ck_assert_int_eq(describe("te", "te:m=0", 0, 2, &s), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "both FSDP-marked and named by `shard`"));
  /* A scalar is never split, even when a rule matches it; the same
   * errors at world size 1 (checked, nothing split). */
  ck_assert_int_eq(describe(NULL, "te:s=0,te:m=-1", 1, 2, &s), HOIST_OK);
  ck_assert_int_eq(describe(NULL, "te:v=1", 0, 1, &s), HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(describe("transformer", NULL, 0, 1, &s), HOIST_OK);
  for (int i = 0; i < s.n; i++) ck_assert_int_eq(s.split[i], 0);
}
END_TEST

START_TEST(fsdp_splits_every_tensor_but_scalars) {
  write_pipe();
  seen s;
  ck_assert_int_eq(describe("te", NULL, 1, 4, &s), HOIST_OK);
  /* te loads first (larger); its tensors in file order m, v, s. */
  ck_assert_int_eq(s.n, 4);
  ck_assert_int_eq(s.split[0], 1);
  ck_assert_uint_eq(s.len[0], 2); /* rows 2..4 of 6 */
  ck_assert_int_eq(s.split[1], 1);
  ck_assert_uint_eq(s.len[1], 2); /* rows 2..4 of 5 */
  ck_assert_int_eq(s.split[2], 0); /* the scalar */
  ck_assert_int_eq(s.split[3], 0); /* transformer: not FSDP */
}
END_TEST

int main(void) {
  Suite *s = suite_create("shard");
  TCase *tc = tcase_create("arithmetic");
  tcase_add_test(tc, fsdp_rows_are_torch_chunk);
  tcase_add_test(tc, tp_rows_need_equal_parts);
  tcase_add_test(tc, cuts_on_every_dim);
  tcase_add_test(tc, sub_byte_rows_must_end_on_a_byte);
  tcase_add_test(tc, replicated_span_splits_at_tensor_boundaries);
  tcase_add_test(tc, plan_syntax);
  suite_add_tcase(s, tc);
  TCase *plans = tcase_create("plans");
  tcase_add_test(plans, plan_errors_before_anything_moves);
  tcase_add_test(plans, fsdp_splits_every_tensor_but_scalars);
  tcase_set_timeout(plans, 60);
  suite_add_tcase(s, plans);
  return tu_run_suite(s);
}
