// Probe (scratch): legacy CUDA IPC vs VMM POSIX-fd sharing between two
// unrelated processes (the client is started separately, not forked).
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); exit(1);} } while (0)
#define CD(x) do { CUresult r_ = (x); if (r_ != CUDA_SUCCESS) { const char *s_ = "?"; cuGetErrorString(r_, &s_); fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, s_); exit(1);} } while (0)
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
#define N 4
typedef struct { size_t bytes[N]; size_t vbytes[N]; cudaIpcMemHandle_t h[N]; } msg;
static const size_t M = 1ull << 20;
static int sock_at(const char *path, int listen_) {
  struct sockaddr_un a; memset(&a, 0, sizeof a); a.sun_family = AF_UNIX; strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (listen_) { unlink(path); if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1)) { perror("bind"); exit(1); } return s; }
  for (int i = 0; i < 600; i++) { if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) return s; usleep(100000); }
  perror("connect"); exit(1);
}
static CUmemAllocationProp prop_for(void) {
  CUmemAllocationProp p; memset(&p, 0, sizeof p);
  p.type = CU_MEM_ALLOCATION_TYPE_PINNED; p.location.type = CU_MEM_LOCATION_TYPE_DEVICE; p.location.id = 0;
  p.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  return p;
}
static void server(const char *path) {
  CK(cudaSetDevice(0)); CK(cudaFree(0));
  size_t sizes[N] = {23802 * M, 9524 * M, 246 * M, 168 * M};
  msg m; memset(&m, 0, sizeof m);
  CUmemAllocationProp p = prop_for(); size_t gran = 0;
  CD(cuMemGetAllocationGranularity(&gran, &p, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
  int fds[N];
  for (int i = 0; i < N; i++) {
    void *d; CK(cudaMalloc(&d, sizes[i])); CK(cudaMemset(d, 1, sizes[i])); CK(cudaIpcGetMemHandle(&m.h[i], d)); m.bytes[i] = sizes[i];
    size_t vb = (sizes[i] + gran - 1) / gran * gran; m.vbytes[i] = vb;
    double t0 = now();
    CUmemGenericAllocationHandle h; CD(cuMemCreate(&h, vb, &p, 0));
    CUdeviceptr va; CD(cuMemAddressReserve(&va, vb, 0, 0, 0)); CD(cuMemMap(va, vb, 0, h, 0));
    CUmemAccessDesc ad; memset(&ad, 0, sizeof ad); ad.location = p.location; ad.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    CD(cuMemSetAccess(va, vb, &ad, 1));
    double t1 = now();
    CK(cudaMemset((void *)va, 2, vb));
    CD(cuMemExportToShareableHandle(&fds[i], h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0));
    printf("server: arena %d %zu MiB: vmm create+map+access %.3f ms (granularity %zu)\n", i, vb / M, (t1 - t0) * 1e3, gran);
  }
  CK(cudaDeviceSynchronize());
  fflush(stdout);
  int ls = sock_at(path, 1); int c = accept(ls, NULL, NULL);
  struct iovec iov = {&m, sizeof m}; struct msghdr mh; memset(&mh, 0, sizeof mh);
  union { struct cmsghdr h; char b[CMSG_SPACE(sizeof fds)]; } ctl; memset(&ctl, 0, sizeof ctl);
  mh.msg_iov = &iov; mh.msg_iovlen = 1; mh.msg_control = ctl.b; mh.msg_controllen = sizeof ctl.b;
  struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm->cmsg_level = SOL_SOCKET; cm->cmsg_type = SCM_RIGHTS; cm->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(cm), fds, sizeof fds);
  if (sendmsg(c, &mh, 0) != (ssize_t)sizeof m) { perror("sendmsg"); exit(1); }
  char ok; if (read(c, &ok, 1) != 1) fprintf(stderr, "server: client gone\n");
}
static void client(const char *path) {
  double t0 = now(); CK(cudaSetDevice(0)); CK(cudaFree(0)); printf("client context %.1f ms\n", (now() - t0) * 1e3);
  int s = sock_at(path, 0);
  msg m; int fds[N];
  struct iovec iov = {&m, sizeof m}; struct msghdr mh; memset(&mh, 0, sizeof mh);
  union { struct cmsghdr h; char b[CMSG_SPACE(sizeof fds)]; } ctl;
  mh.msg_iov = &iov; mh.msg_iovlen = 1; mh.msg_control = ctl.b; mh.msg_controllen = sizeof ctl.b;
  if (recvmsg(s, &mh, MSG_WAITALL) != (ssize_t)sizeof m) { perror("recvmsg"); exit(1); }
  memcpy(fds, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof fds);
  for (int rep = 0; rep < 3; rep++) {
    void *p[N]; double a = now(), slow = 0;
    for (int i = 0; i < N; i++) { double b = now(); CK(cudaIpcOpenMemHandle(&p[i], m.h[i], cudaIpcMemLazyEnablePeerAccess)); if (now() - b > slow) slow = now() - b; }
    double b = now();
    for (int i = 0; i < N; i++) CK(cudaIpcCloseMemHandle(p[i]));
    double c = now();
    printf("legacy IPC, unrelated process, rep %d: open %.3f ms (slowest %.3f), close %.3f ms\n", rep, (b - a) * 1e3, slow * 1e3, (c - b) * 1e3);
  }
  CUmemAllocationProp p = prop_for();
  for (int rep = 0; rep < 3; rep++) {
    CUdeviceptr va[N]; CUmemGenericAllocationHandle h[N]; double a = now();
    for (int i = 0; i < N; i++) {
      CD(cuMemImportFromShareableHandle(&h[i], (void *)(uintptr_t)fds[i], CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR));
      CD(cuMemAddressReserve(&va[i], m.vbytes[i], 0, 0, 0)); CD(cuMemMap(va[i], m.vbytes[i], 0, h[i], 0));
      CUmemAccessDesc ad; memset(&ad, 0, sizeof ad); ad.location = p.location; ad.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
      CD(cuMemSetAccess(va[i], m.vbytes[i], &ad, 1));
    }
    double b = now();
    unsigned char x = 0; CK(cudaMemcpy(&x, (void *)va[0], 1, cudaMemcpyDeviceToHost));
    double c = now();
    for (int i = 0; i < N; i++) { CD(cuMemUnmap(va[i], m.vbytes[i])); CD(cuMemAddressFree(va[i], m.vbytes[i])); CD(cuMemRelease(h[i])); }
    double d = now();
    printf("VMM fd, unrelated process, rep %d: import+map %.3f ms, first read %.3f ms (byte %u), unmap+release %.3f ms\n", rep, (b - a) * 1e3, (c - b) * 1e3, x, (d - c) * 1e3);
  }
  char ok = 1; if (write(s, &ok, 1) != 1) exit(1);
}
int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "server")) server(argv[2]);
  else if (argc == 3 && !strcmp(argv[1], "client")) client(argv[2]);
  else { fprintf(stderr, "usage: vmm_probe server|client SOCK\n"); return 2; }
  return 0;
}
