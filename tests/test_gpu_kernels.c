/* test_gpu_kernels.c — the device kernels (kernels/convert.cu,
 * kernels/checksum.cu) against their CPU references, bit for bit:
 * every 8- and 16-bit source pattern, >= 10^7 F32 values rich in special
 * and boundary values, odd sizes and misaligned pointers (the vector
 * heads and tails), argument checks, and the checksum of sizes around the
 * block size up to 100 MB, one range at a time and in batches.  Label gpu; prints a SKIP line and passes where
 * there is no CUDA device or no CUDA build. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if HOIST_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "convert_ref.h"
#include "kernels.h"

#define CU(call)                                                                       \
  do {                                                                                 \
    cudaError_t e_ = (call);                                                           \
    ck_assert_msg(e_ == cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));         \
  } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

static const hoist_dtype pairs[][2] = {
    {HOIST_DTYPE_F32, HOIST_DTYPE_BF16},     {HOIST_DTYPE_F32, HOIST_DTYPE_F16},
    {HOIST_DTYPE_F16, HOIST_DTYPE_BF16},     {HOIST_DTYPE_BF16, HOIST_DTYPE_F16},
    {HOIST_DTYPE_BF16, HOIST_DTYPE_F32},     {HOIST_DTYPE_F16, HOIST_DTYPE_F32},
    {HOIST_DTYPE_F8_E4M3, HOIST_DTYPE_BF16}, {HOIST_DTYPE_F8_E4M3, HOIST_DTYPE_F16},
    {HOIST_DTYPE_F8_E4M3, HOIST_DTYPE_F32},  {HOIST_DTYPE_F8_E5M2, HOIST_DTYPE_BF16},
    {HOIST_DTYPE_F8_E5M2, HOIST_DTYPE_F16},  {HOIST_DTYPE_F8_E5M2, HOIST_DTYPE_F32},
};
#define N_PAIRS (sizeof pairs / sizeof pairs[0])

static size_t esize(hoist_dtype t) { return hoist_dtype_bits(t) / 8; }

static uint32_t load_elem(const unsigned char *p, size_t size, size_t i) {
  uint32_t v = 0;
  memcpy(&v, p + i * size, size); /* little-endian host */
  return v;
}

/* Converts n elements of host_src on the device (source at byte offset
 * soff, destination at doff of fresh allocations) and checks the result
 * against the CPU reference, and that the bytes around the destination are
 * untouched. */
static void convert_and_compare(hoist_dtype from, hoist_dtype to, const void *host_src, size_t n,
                                size_t soff, size_t doff, cudaStream_t stream) {
  const size_t ss = esize(from), ds = esize(to), guard = 64;
  const size_t sbytes = n * ss, dbytes = n * ds, dalloc = doff + dbytes + guard;
  unsigned char *want = malloc(dbytes + 1), *got = malloc(dalloc);
  ck_assert(want && got);
  ck_assert_int_eq(hoist__convert_ref(want, to, host_src, from, n), HOIST_OK);
  void *dsrc = NULL, *ddst = NULL;
  CU(cudaMalloc(&dsrc, soff + sbytes + 1));
  CU(cudaMalloc(&ddst, dalloc));
  CU(cudaMemcpy((char *)dsrc + soff, host_src, sbytes, cudaMemcpyHostToDevice));
  CU(cudaMemset(ddst, 0xa5, dalloc));
  int rc = hoist__convert_launch((char *)ddst + doff, to, (char *)dsrc + soff, from, n, stream);
  ck_assert_msg(rc == HOIST_OK, "%s -> %s: %s", hoist_dtype_name(from), hoist_dtype_name(to),
                hoist_last_error(NULL));
  CU(cudaStreamSynchronize(stream));
  CU(cudaMemcpy(got, ddst, dalloc, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < doff; i++) ck_assert_msg(got[i] == 0xa5, "byte %zu before dst written", i);
  for (size_t i = doff + dbytes; i < dalloc; i++)
    ck_assert_msg(got[i] == 0xa5, "byte %zu after dst written", i - doff - dbytes);
  if (memcmp(got + doff, want, dbytes) != 0) {
    for (size_t i = 0; i < n; i++) {
      uint32_t g = load_elem(got + doff, ds, i), w = load_elem(want, ds, i);
      ck_assert_msg(g == w, "%s -> %s n=%zu soff=%zu doff=%zu: element %zu in 0x%x: device 0x%x, "
                            "reference 0x%x",
                    hoist_dtype_name(from), hoist_dtype_name(to), n, soff, doff, i,
                    load_elem(host_src, ss, i), g, w);
    }
  }
  CU(cudaFree(dsrc));
  CU(cudaFree(ddst));
  free(want);
  free(got);
}

/* Every 16-bit and 8-bit source pattern, to every target. */
START_TEST(exhaustive_small_sources) {
  if (!tu_gpu_available()) return;
  uint16_t *all16 = malloc(65536 * 2);
  uint8_t all8[256];
  ck_assert_ptr_nonnull(all16);
  for (uint32_t i = 0; i < 65536; i++) all16[i] = (uint16_t)i;
  for (uint32_t i = 0; i < 256; i++) all8[i] = (uint8_t)i;
  for (size_t p = 0; p < N_PAIRS; p++) {
    if (esize(pairs[p][0]) == 2) convert_and_compare(pairs[p][0], pairs[p][1], all16, 65536, 0, 0, 0);
    if (esize(pairs[p][0]) == 1) convert_and_compare(pairs[p][0], pairs[p][1], all8, 256, 0, 0, 0);
  }
  free(all16);
}
END_TEST

/* A random F32 pattern, often replaced by a special or boundary value. */
static uint32_t f32_sample(void) {
  uint64_t r = rng_next();
  uint32_t x = (uint32_t)r, sign = (uint32_t)(r >> 32) & 0x80000000u;
  int d = (int)((r >> 40) & 0xff) - 128;
  switch ((r >> 56) & 15) {
  case 0: { /* exact specials */
    static const uint32_t sp[] = {0x00000000u, 0x7f800000u, 0x7fc00000u, 0x7f800001u,
                                  0x7fffffffu, 0x7f7fffffu, 0x00000001u, 0x007fffffu,
                                  0x00800000u, 0x477fe000u, 0x477ff000u, 0x33000000u,
                                  0x33800000u, 0x387fe000u, 0x38800000u, 0x3f800000u};
    return sign | sp[(r >> 44) & 15];
  }
  case 1: /* NaN with a random payload */
    return sign | 0x7f800000u | ((x & 0x7fffffu) ? (x & 0x7fffffu) : 1u);
  case 2: /* F32 subnormal */
    return sign | (x & 0x7fffffu);
  case 3: /* around the F16 overflow edge 65520 */
    return sign | (0x477ff000u + (uint32_t)d);
  case 4: /* around the F16 subnormal / normal range */
    return sign | ((0x33000000u + (x & 0x07ffffffu)) & 0x7fffffffu);
  case 5: /* a BF16 tie or neighbour */
    return (x & 0xffff0000u) | (uint32_t)(0x8000 + (d & 3) - 1);
  case 6: /* an F16 tie or neighbour, in F16 range */
    return sign | ((0x38800000u + (x & 0x0effe000u)) & ~0x1fffu) | (uint32_t)(0x1000 + (d & 3) - 1);
  default:
    return x;
  }
}

START_TEST(random_f32) {
  if (!tu_gpu_available()) return;
  const size_t n = 16u * 1024 * 1024 + 5; /* >= 10^7, not a multiple of the pack */
  uint32_t *src = malloc(n * 4);
  ck_assert_ptr_nonnull(src);
  for (size_t i = 0; i < n; i++) src[i] = f32_sample();
  cudaStream_t stream;
  CU(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  convert_and_compare(HOIST_DTYPE_F32, HOIST_DTYPE_BF16, src, n, 0, 0, stream);
  convert_and_compare(HOIST_DTYPE_F32, HOIST_DTYPE_F16, src, n, 0, 0, stream);
  CU(cudaStreamDestroy(stream));
  free(src);
}
END_TEST

/* Odd sizes and every combination of element-aligned offsets, so both the
 * vector path (with heads and tails) and the element-by-element path run. */
START_TEST(odd_sizes_and_offsets) {
  if (!tu_gpu_available()) return;
  static const size_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 4097, (1u << 20) + 3};
  static const size_t offsets[] = {0, 1, 2, 3, 4, 6, 12};
  const size_t max_n = (1u << 20) + 3;
  unsigned char *src = malloc(max_n * 4);
  ck_assert_ptr_nonnull(src);
  for (size_t i = 0; i < max_n * 4; i++) src[i] = (unsigned char)(rng_next() >> 56);
  for (size_t p = 0; p < N_PAIRS; p++) {
    const size_t ss = esize(pairs[p][0]), ds = esize(pairs[p][1]);
    for (size_t a = 0; a < sizeof offsets / sizeof offsets[0]; a++)
      for (size_t b = 0; b < sizeof offsets / sizeof offsets[0]; b++) {
        if (offsets[a] % ss || offsets[b] % ds) continue;
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
          /* The large size only for a few offset pairs, to bound the time. */
          if (sizes[k] > 5000 && a + b > 3) continue;
          convert_and_compare(pairs[p][0], pairs[p][1], src, sizes[k], offsets[a], offsets[b], 0);
        }
      }
  }
  free(src);
}
END_TEST

START_TEST(convert_arguments) {
  if (!tu_gpu_available()) return;
  char *d = NULL;
  CU(cudaMalloc((void **)&d, 4096));
  /* Unsupported pair, checked before anything else. */
  ck_assert_int_eq(hoist__convert_launch(d, HOIST_DTYPE_F8_E4M3, d + 2048, HOIST_DTYPE_F32, 16, NULL),
                   HOIST_UNSUPPORTED);
  ck_assert_int_eq(hoist__convert_launch(d, HOIST_DTYPE_I8, d + 2048, HOIST_DTYPE_F16, 16, NULL),
                   HOIST_UNSUPPORTED);
  /* NULL, misaligned, overlapping, overflowing. */
  ck_assert_int_eq(hoist__convert_launch(NULL, HOIST_DTYPE_F16, d, HOIST_DTYPE_F32, 16, NULL),
                   HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(hoist__convert_launch(d + 2, HOIST_DTYPE_F32, d + 2048, HOIST_DTYPE_F16, 16, NULL),
                   HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "aligned"));
  ck_assert_int_eq(hoist__convert_launch(d, HOIST_DTYPE_F16, d + 1, HOIST_DTYPE_F16, 16, NULL),
                   HOIST_INVALID_ARGUMENT); /* a copy onto an overlapping range */
  ck_assert_int_eq(hoist__convert_launch(d + 16, HOIST_DTYPE_BF16, d, HOIST_DTYPE_F32, 16, NULL),
                   HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "overlap"));
  ck_assert_int_eq(
      hoist__convert_launch(d, HOIST_DTYPE_F32, d + 2048, HOIST_DTYPE_F16, UINT64_MAX / 16, NULL),
      HOIST_INVALID_ARGUMENT);
  /* Nothing to do is fine, even with NULL pointers. */
  ck_assert_int_eq(hoist__convert_launch(NULL, HOIST_DTYPE_F16, NULL, HOIST_DTYPE_F32, 0, NULL),
                   HOIST_OK);
  /* Same type: a copy, also for dtypes without a conversion. */
  unsigned char in[1000], out[1000];
  for (size_t i = 0; i < sizeof in; i++) in[i] = (unsigned char)(i * 7 + 3);
  CU(cudaMemcpy(d + 2048, in, sizeof in, cudaMemcpyHostToDevice));
  ck_assert_int_eq(hoist__convert_launch(d + 1, HOIST_DTYPE_I64, d + 2048, HOIST_DTYPE_I64, 125, NULL),
                   HOIST_OK);
  CU(cudaDeviceSynchronize());
  CU(cudaMemcpy(out, d + 1, sizeof out, cudaMemcpyDeviceToHost));
  ck_assert_int_eq(memcmp(in, out, sizeof in), 0);
  CU(cudaFree(d));
}
END_TEST

/* Device checksum of n bytes (at byte offset off) against the host's. */
static void checksum_compare(const unsigned char *host, size_t n, size_t off) {
  unsigned char *d = NULL;
  uint64_t *dout = NULL, got = 0;
  CU(cudaMalloc((void **)&d, off + n + 1));
  CU(cudaMalloc((void **)&dout, 8));
  if (n) CU(cudaMemcpy(d + off, host, n, cudaMemcpyHostToDevice));
  ck_assert_int_eq(hoist__checksum_launch(n ? d + off : NULL, n, dout, NULL), HOIST_OK);
  CU(cudaMemcpy(&got, dout, 8, cudaMemcpyDeviceToHost));
  uint64_t want = hoist__checksum_host(host, n, 0);
  ck_assert_msg(got == want, "checksum n=%zu off=%zu: device %016llx, host %016llx", n, off,
                (unsigned long long)got, (unsigned long long)want);
  CU(cudaFree(d));
  CU(cudaFree(dout));
}

START_TEST(checksum_device_equals_host) {
  if (!tu_gpu_available()) return;
  const size_t big = 100u * 1000 * 1000;
  unsigned char *buf = malloc(big);
  ck_assert_ptr_nonnull(buf);
  for (size_t i = 0; i + 8 <= big; i += 8) {
    uint64_t r = rng_next();
    memcpy(buf + i, &r, 8);
  }
  static const size_t sizes[] = {0, 1, 7, 8, 9, 16, 17, 63, 65535, 65536, 65537, 3 * 65536 + 40};
  static const size_t offs[] = {0, 1, 8, 13};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) checksum_compare(buf, sizes[i], offs[k]);
  checksum_compare(buf, big, 0);
  checksum_compare(buf, big - 3, 5);
  /* A flipped bit on the device is seen. */
  uint64_t *dout = NULL, got = 0;
  unsigned char *d = NULL;
  CU(cudaMalloc((void **)&d, 1 << 20));
  CU(cudaMalloc((void **)&dout, 8));
  CU(cudaMemcpy(d, buf, 1 << 20, cudaMemcpyHostToDevice));
  buf[777777] ^= 0x10;
  ck_assert_int_eq(hoist__checksum_launch(d, 1 << 20, dout, NULL), HOIST_OK);
  CU(cudaMemcpy(&got, dout, 8, cudaMemcpyDeviceToHost));
  ck_assert_uint_ne(got, hoist__checksum_host(buf, 1 << 20, 0));
  buf[777777] ^= 0x10;
  ck_assert_uint_eq(got, hoist__checksum_host(buf, 1 << 20, 0));
  /* Arguments. */
  ck_assert_int_eq(hoist__checksum_launch(d, 16, NULL, NULL), HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(hoist__checksum_launch(d, 16, (uint64_t *)(d + 4), NULL), HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(hoist__checksum_launch(NULL, 16, dout, NULL), HOIST_INVALID_ARGUMENT);
  CU(cudaFree(d));
  CU(cudaFree(dout));
  free(buf);
}
END_TEST

/* The batch checksum equals the host's hash of every span: lengths around
 * the block size, zero-length and one-byte spans, unaligned addresses,
 * spans out of address order and overlapping, one span alone; a flipped
 * byte changes only its span's hash; bad arguments are refused. */
START_TEST(checksum_batch_equals_host) {
  if (!tu_gpu_available()) return;
  const size_t size = 24u << 20, nspans = 400;
  unsigned char *buf = malloc(size);
  hoist__checksum_span *spans = malloc(nspans * sizeof *spans);
  uint64_t *got = malloc(nspans * 8);
  ck_assert(buf != NULL && spans != NULL && got != NULL);
  for (size_t i = 0; i + 8 <= size; i += 8) {
    uint64_t r = rng_next();
    memcpy(buf + i, &r, 8);
  }
  unsigned char *d = NULL, *table = NULL;
  uint64_t *dout = NULL;
  CU(cudaMalloc((void **)&d, size));
  CU(cudaMalloc((void **)&dout, nspans * 8));
  CU(cudaMalloc((void **)&table, nspans * HOIST_CHECKSUM_BATCH_BYTES_PER_SPAN));
  CU(cudaMemcpy(d, buf, size, cudaMemcpyHostToDevice));
  static const size_t lens[] = {0, 1, 7, 8, 9, 65535, 65536, 65537, 4u << 20, (4u << 20) + 13};
  for (size_t i = 0; i < nspans; i++) {
    size_t len = i < 40 ? lens[i % 10] : (size_t)(rng_next() % (3u << 20));
    size_t off = (size_t)(rng_next() % (size - len + 1));
    if (i % 3 == 0) off &= ~(size_t)255; /* aligned ones too */
    spans[i] = (hoist__checksum_span){(uint64_t)(uintptr_t)(d + off), len,
                                     (uint64_t)(uintptr_t)(dout + i)};
  }
  uint64_t before = 0;
  for (int round = 0; round < 3; round++) {
    size_t n = round == 2 ? 1 : nspans;
    if (round == 1) { /* a byte flipped inside span 50 (and in the host copy) */
      uint64_t off = spans[50].addr - (uint64_t)(uintptr_t)d + spans[50].n / 2;
      buf[off] ^= 0x40;
      CU(cudaMemcpy(d + off, buf + off, 1, cudaMemcpyHostToDevice));
    }
    CU(cudaMemset(dout, 0, nspans * 8));
    ck_assert_int_eq(hoist__checksum_batch_launch(spans, n, table, NULL), HOIST_OK);
    CU(cudaMemcpy(got, dout, n * 8, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) {
      const unsigned char *h = buf + (spans[i].addr - (uint64_t)(uintptr_t)d);
      uint64_t want = hoist__checksum_host(h, spans[i].n, 1);
      if (round == 0 && i == 50) before = got[i];
      if (round == 1 && i == 50) ck_assert_uint_ne(got[i], before);
      ck_assert_msg(got[i] == want, "round %d span %zu (%llu bytes at +%llu): %016llx, host %016llx",
                    round, i, (unsigned long long)spans[i].n,
                    (unsigned long long)(spans[i].addr - (uint64_t)(uintptr_t)d),
                    (unsigned long long)got[i], (unsigned long long)want);
    }
  }
  /* Arguments. */
  ck_assert_int_eq(hoist__checksum_batch_launch(spans, 0, NULL, NULL), HOIST_OK);
  ck_assert_int_eq(hoist__checksum_batch_launch(spans, 2, NULL, NULL), HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(hoist__checksum_batch_launch(NULL, 2, table, NULL), HOIST_INVALID_ARGUMENT);
  spans[1].out += 4;
  ck_assert_int_eq(hoist__checksum_batch_launch(spans, 2, table, NULL), HOIST_INVALID_ARGUMENT);
  CU(cudaDeviceSynchronize());
  CU(cudaFree(d));
  CU(cudaFree(dout));
  CU(cudaFree(table));
  free(buf);
  free(spans);
  free(got);
}
END_TEST

#else /* no CUDA build */

START_TEST(no_cuda_build) { printf("SKIP: built without CUDA (HOIST_HAVE_CUDA off)\n"); }
END_TEST

#endif

static Suite *gpu_kernels_suite(void) {
  Suite *s = suite_create("gpu_kernels");
  TCase *tc = tcase_create("kernels");
  tcase_set_timeout(tc, 600);
#if HOIST_HAVE_CUDA
  tcase_add_test(tc, exhaustive_small_sources);
  tcase_add_test(tc, random_f32);
  tcase_add_test(tc, odd_sizes_and_offsets);
  tcase_add_test(tc, convert_arguments);
  tcase_add_test(tc, checksum_device_equals_host);
  tcase_add_test(tc, checksum_batch_equals_host);
#else
  tcase_add_test(tc, no_cuda_build);
#endif
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run_suite(gpu_kernels_suite()); }
