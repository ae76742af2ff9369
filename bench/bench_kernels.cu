/* bench_kernels.cu — bandwidth of the conversion and checksum kernels
 * against the device's own copy bandwidth (issue 7's target: every
 * conversion >= 80 % of a device-to-device cudaMemcpy).
 *
 * Bandwidth is bytes read + bytes written over the time between two CUDA
 * events around one operation, the median of --runs runs after warm-up, on
 * --bytes of source (default 1 GiB, several times any L2) filled with
 * weight-like random values (|x| spread over 2^-14 .. 4, random signs:
 * realistic exponents, not raw bit patterns that are mostly huge or NaN).
 * The checksum counts the bytes it reads; the host checksum (all cores) is
 * measured too, as --verify pays it.  Prints a table and one JSON line.
 *
 *   bench_kernels [--bytes N] [--runs R] [--device I] */
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "convert_ref.h"
#include "kernels.h"

#define BENCH_CU(call)                                                                   \
  do {                                                                                   \
    cudaError_t e_ = (call);                                                             \
    if (e_ != cudaSuccess) {                                                             \
      std::fprintf(stderr, "bench_kernels: %s: %s\n", #call, cudaGetErrorString(e_));    \
      std::exit(5);                                                                      \
    }                                                                                    \
  } while (0)

#define BENCH_OK(call)                                                                   \
  do {                                                                                   \
    int rc_ = (call);                                                                    \
    if (rc_ != HOIST_OK) {                                                               \
      std::fprintf(stderr, "bench_kernels: %s: %s\n", #call, hoist_last_error(NULL));    \
      std::exit(5);                                                                      \
    }                                                                                    \
  } while (0)

/* ------------------------------------------------------------------------ */
/* Kernels */

__device__ __forceinline__ uint64_t bench_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* n elements of size bytes: weight-like F32 values, stored in dtype
 * (F32 as is, F16/BF16 via the reference narrowing, FP8 as random bytes
 * whose exponent field is kept away from NaN-heavy extremes). */
__global__ void bench_fill_kernel(void *dst, uint64_t n, int dtype, uint64_t seed) {
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n;
       i += (uint64_t)gridDim.x * blockDim.x) {
    uint64_t r = bench_mix(i ^ seed);
    /* sign | exponent 113..129 (2^-14 .. 4) | random mantissa */
    uint32_t f = (uint32_t)(r & 0x807fffffu) | ((113u + (uint32_t)((r >> 32) % 17)) << 23);
    switch (dtype) {
    case HOIST_DTYPE_F32:
      static_cast<uint32_t *>(dst)[i] = f;
      break;
    case HOIST_DTYPE_F16:
      static_cast<uint16_t *>(dst)[i] = (uint16_t)hoist_cvt_f32_to_f16(f);
      break;
    case HOIST_DTYPE_BF16:
      static_cast<uint16_t *>(dst)[i] = (uint16_t)hoist_cvt_f32_to_bf16(f);
      break;
    default:
      static_cast<uint8_t *>(dst)[i] = (uint8_t)((r & 0x83u) | ((2u + (r >> 40) % 12u) << 3));
      break;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Host */

struct bench_result {
  const char *what;
  double gbps;
  double ms;
};

template <class F> static double median_ms(F &&op, int runs, cudaStream_t stream) {
  cudaEvent_t a, b;
  BENCH_CU(cudaEventCreate(&a));
  BENCH_CU(cudaEventCreate(&b));
  for (int i = 0; i < 3; i++) op();
  BENCH_CU(cudaStreamSynchronize(stream));
  std::vector<float> t;
  for (int i = 0; i < runs; i++) {
    BENCH_CU(cudaEventRecord(a, stream));
    op();
    BENCH_CU(cudaEventRecord(b, stream));
    BENCH_CU(cudaEventSynchronize(b));
    float ms = 0;
    BENCH_CU(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  BENCH_CU(cudaEventDestroy(a));
  BENCH_CU(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t.size() % 2 ? t[t.size() / 2] : 0.5 * (t[t.size() / 2 - 1] + t[t.size() / 2]);
}

int main(int argc, char **argv) {
  uint64_t bytes = 1ull << 30;
  int runs = 30, device = 0;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--bytes") && i + 1 < argc)
      bytes = std::strtoull(argv[++i], NULL, 0);
    else if (!std::strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc)
      device = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_kernels [--bytes N] [--runs R] [--device I]\n");
      return 2;
    }
  }
  if (runs < 20) runs = 20;
  bytes &= ~uint64_t(63);
  if (bytes == 0) bytes = 64;

  BENCH_CU(cudaSetDevice(device));
  cudaDeviceProp prop;
  BENCH_CU(cudaGetDeviceProperties(&prop, device));
  cudaStream_t stream;
  BENCH_CU(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  /* Source: `bytes`; destination: up to 4x (FP8 -> F32). */
  void *src = NULL, *dst = NULL;
  uint64_t *dhash = NULL;
  BENCH_CU(cudaMalloc(&src, bytes));
  BENCH_CU(cudaMalloc(&dst, bytes * 4));
  BENCH_CU(cudaMalloc(&dhash, 8));

  std::vector<bench_result> res;
  char names[16][48];
  int n_names = 0;

  /* Device-to-device copy of the source size: read + write. */
  bench_fill_kernel<<<prop.multiProcessorCount * 8, 256, 0, stream>>>(src, bytes / 4,
                                                                      HOIST_DTYPE_F32, 1);
  BENCH_CU(cudaGetLastError());
  double copy_ms = median_ms(
      [&] { BENCH_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream)); }, runs,
      stream);
  double copy_gbps = 2.0 * bytes / (copy_ms * 1e6);
  res.push_back({"D2D copy", copy_gbps, copy_ms});

  static const hoist_dtype pairs[][2] = {
      {HOIST_DTYPE_F32, HOIST_DTYPE_BF16},     {HOIST_DTYPE_F32, HOIST_DTYPE_F16},
      {HOIST_DTYPE_F16, HOIST_DTYPE_BF16},     {HOIST_DTYPE_BF16, HOIST_DTYPE_F16},
      {HOIST_DTYPE_BF16, HOIST_DTYPE_F32},     {HOIST_DTYPE_F16, HOIST_DTYPE_F32},
      {HOIST_DTYPE_F8_E4M3, HOIST_DTYPE_BF16}, {HOIST_DTYPE_F8_E4M3, HOIST_DTYPE_F16},
      {HOIST_DTYPE_F8_E4M3, HOIST_DTYPE_F32},  {HOIST_DTYPE_F8_E5M2, HOIST_DTYPE_BF16},
      {HOIST_DTYPE_F8_E5M2, HOIST_DTYPE_F16},  {HOIST_DTYPE_F8_E5M2, HOIST_DTYPE_F32},
  };
  for (const auto &p : pairs) {
    const uint64_t ss = hoist_dtype_bits(p[0]) / 8, ds = hoist_dtype_bits(p[1]) / 8;
    const uint64_t n = bytes / ss;
    bench_fill_kernel<<<prop.multiProcessorCount * 8, 256, 0, stream>>>(src, n, p[0],
                                                                        (uint64_t)p[0] * 7 + 3);
    BENCH_CU(cudaGetLastError());
    double ms = median_ms([&] { BENCH_OK(hoist_convert_launch(dst, p[1], src, p[0], n, stream)); },
                          runs, stream);
    std::snprintf(names[n_names], sizeof names[0], "%s->%s", hoist_dtype_name(p[0]),
                  hoist_dtype_name(p[1]));
    res.push_back({names[n_names++], (double)n * (ss + ds) / (ms * 1e6), ms});
  }

  double ck_ms = median_ms([&] { BENCH_OK(hoist_checksum_launch(src, bytes, dhash, stream)); },
                           runs, stream);
  res.push_back({"checksum (device)", bytes / (ck_ms * 1e6), ck_ms});

  /* Host checksum over a host copy, all cores; median of 5. */
  std::vector<unsigned char> host(bytes);
  BENCH_CU(cudaMemcpy(host.data(), src, bytes, cudaMemcpyDeviceToHost));
  uint64_t dev_hash = 0, host_hash = 0;
  BENCH_CU(cudaMemcpy(&dev_hash, dhash, 8, cudaMemcpyDeviceToHost));
  std::vector<double> ht;
  for (int i = 0; i < 5; i++) {
    auto t0 = std::chrono::steady_clock::now();
    host_hash = hoist_checksum_host(host.data(), bytes, 0);
    ht.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count());
  }
  std::sort(ht.begin(), ht.end());
  res.push_back({"checksum (host)", bytes / (ht[2] * 1e6), ht[2]});

  std::printf("device: %s (%d SMs, L2 %d MiB), source %.2f GiB, median of %d runs\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, bytes / 1073741824.0, runs);
  std::printf("%-20s %10s %10s %8s\n", "operation", "ms", "GB/s", "vs copy");
  for (const auto &r : res)
    std::printf("%-20s %10.3f %10.1f %7.1f%%\n", r.what, r.ms, r.gbps, 100.0 * r.gbps / copy_gbps);
  std::printf("checksum device == host: %s\n", dev_hash == host_hash ? "yes" : "NO");

  int below = 0;
  std::printf("{\"bench\":\"kernels\",\"device\":\"%s\",\"source_bytes\":%llu,\"runs\":%d,"
              "\"d2d_copy_gbps\":%.1f,\"conversions\":[",
              prop.name, (unsigned long long)bytes, runs, copy_gbps);
  for (size_t i = 1; i < res.size() - 2; i++) {
    double ratio = res[i].gbps / copy_gbps;
    below += ratio < 0.8;
    std::printf("%s{\"pair\":\"%s\",\"gbps\":%.1f,\"ratio\":%.3f}", i > 1 ? "," : "", res[i].what,
                res[i].gbps, ratio);
  }
  std::printf("],\"checksum_device_gbps\":%.1f,\"checksum_host_gbps\":%.2f,"
              "\"checksum_match\":%s,\"conversions_below_80pct\":%d}\n",
              res[res.size() - 2].gbps, res.back().gbps, dev_hash == host_hash ? "true" : "false",
              below);

  BENCH_CU(cudaFree(src));
  BENCH_CU(cudaFree(dst));
  BENCH_CU(cudaFree(dhash));
  BENCH_CU(cudaStreamDestroy(stream));
  return dev_hash == host_hash ? 0 : 1;
}
