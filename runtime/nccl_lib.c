/* nccl_lib.c — NCCL loaded at run time (nccl_lib.h).
 *
 * The functions hoist uses are resolved with dlsym into a table whose
 * types come from the toolkit's nccl.h (__typeof__ of each declaration), so
 * nothing of NCCL's interface is written down twice.  Communicators made
 * per rank are non-blocking (ncclConfig_t.blocking = 0): their creation
 * and every group of collectives return at once and are polled together
 * with NCCL's asynchronous error, the group's stop flag and a timeout, and
 * a failure aborts the communicator (ncclCommAbort) instead of leaving a
 * rank waiting for a peer that is gone.  Besides device_cuda.c and
 * kernels/, this is the one runtime file that sees CUDA (nccl.h includes
 * cuda_runtime.h), and only in a build that has the toolkit's nccl.h. */
#include "nccl_lib.h"

#if defined(HOIST_HAVE_NCCL)

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <glob.h>
#include <link.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define NCCL_FUNCS(X)                                                                          \
  X(ncclGetVersion) X(ncclGetUniqueId) X(ncclCommInitRankConfig) X(ncclCommInitRank)           \
  X(ncclCommInitAll) X(ncclBroadcast) X(ncclAllGather) X(ncclAllReduce) X(ncclGroupStart)      \
  X(ncclGroupEnd) X(ncclCommAbort) X(ncclCommGetAsyncError) X(ncclCommDestroy)                 \
  X(ncclGetErrorString)

static struct {
  uv_once_t once;
  int status;
  char detail[HOIST_ERROR_MAX];
  char path[1024];
  int version;
  void *handle;
#define NCCL_FIELD_(name) __typeof__(&name) name;
  NCCL_FUNCS(NCCL_FIELD_)
#undef NCCL_FIELD_
} nc = {.once = UV_ONCE_INIT};

struct hoist__nccl {
  ncclComm_t comm;
  int device;
  int failed;
};

/* ---- Finding the library */

typedef struct candidates {
  char tried[HOIST_ERROR_MAX];
} candidates;

/* dlopens path; true when it has every function (the table filled). */
static bool try_open(candidates *c, const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  const size_t used = strlen(c->tried);
  if (h == NULL) {
    if (used + strlen(path) + 3 < sizeof c->tried)
      snprintf(c->tried + used, sizeof c->tried - used, "%s%s", used > 0 ? ", " : "", path);
    return false;
  }
#define NCCL_RESOLVE_(name)                                                                    \
  if ((*(void **)&nc.name = dlsym(h, #name)) == NULL) {                                        \
    snprintf(c->tried + used, sizeof c->tried - used, "%s%s (no %s: too old)",                 \
             used > 0 ? ", " : "", path, #name);                                               \
    dlclose(h);                                                                                \
    return false;                                                                              \
  }
  NCCL_FUNCS(NCCL_RESOLVE_)
#undef NCCL_RESOLVE_
  nc.handle = h;
  /* The file the dynamic linker chose, when it searched for a bare name. */
  struct link_map *lm = NULL;
  const bool named = dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm != NULL && lm->l_name != NULL &&
                     lm->l_name[0] != '\0';
  snprintf(nc.path, sizeof nc.path, "%s", named ? lm->l_name : path);
  return true;
}

/* Tries <prefix>/lib/python3*\/{site,dist}-packages/nvidia/nccl/lib/. */
static bool try_wheel(candidates *c, const char *prefix) {
  static const char *const kinds[] = {"site-packages", "dist-packages"};
  bool found = false;
  for (int k = 0; k < 2 && !found; k++) {
    char pattern[1200];
    glob_t gl;
    if ((size_t)snprintf(pattern, sizeof pattern, "%s/lib/python3*/%s/nvidia/nccl/lib/libnccl.so.2",
                         prefix, kinds[k]) >= sizeof pattern ||
        glob(pattern, 0, NULL, &gl) != 0)
      continue;
    for (size_t i = 0; i < gl.gl_pathc && !found; i++) found = try_open(c, gl.gl_pathv[i]);
    globfree(&gl);
  }
  return found;
}

/* The prefix of the first python3 on PATH (its bin folder's parent: a
 * virtual environment's own prefix, not the interpreter it links to). */
static bool python_prefix(char *out, size_t size) {
  const char *path = getenv("PATH");
  while (path != NULL && *path != '\0') {
    const char *colon = strchr(path, ':');
    const size_t len = colon != NULL ? (size_t)(colon - path) : strlen(path);
    char exe[1024];
    struct stat st;
    if (len > 0 && len < 900) {
      if ((size_t)snprintf(exe, sizeof exe, "%.*s/python3", (int)len, path) < sizeof exe &&
          stat(exe, &st) == 0 && S_ISREG(st.st_mode)) {
        snprintf(out, size, "%.*s", (int)len, path);
        char *slash = strrchr(out, '/');
        if (slash != NULL) *slash = '\0';
        return true;
      }
    }
    path = colon != NULL ? colon + 1 : NULL;
  }
  return false;
}

static bool try_folder(candidates *c, const char *dir) {
  char p[1200];
  if (dir == NULL || dir[0] == '\0' ||
      (size_t)snprintf(p, sizeof p, "%s/libnccl.so.2", dir) >= sizeof p)
    return false;
  return try_open(c, p);
}

static void load_once(void) {
  candidates c = {""};
  const char *env = getenv("HOIST_NCCL_LIBRARY");
  struct stat st;
  bool ok = false;
  if (env != NULL && env[0] != '\0')
    ok = stat(env, &st) == 0 && S_ISDIR(st.st_mode) ? try_folder(&c, env) : try_open(&c, env);
  if (!ok) ok = try_open(&c, "libnccl.so.2");
  char dir[1100];
  static const char *const cuda_vars[] = {"CUDA_HOME", "CUDA_PATH"};
  for (int i = 0; i < 2 && !ok; i++)
    if (getenv(cuda_vars[i]) != NULL &&
        (size_t)snprintf(dir, sizeof dir, "%s/lib64", getenv(cuda_vars[i])) < sizeof dir)
      ok = try_folder(&c, dir);
#if defined(HOIST_CUDA_LIBDIR)
  if (!ok) ok = try_folder(&c, HOIST_CUDA_LIBDIR);
#endif
  if (!ok) ok = try_folder(&c, "/usr/local/cuda/lib64");
  const char *prefixes[] = {getenv("VIRTUAL_ENV"), getenv("CONDA_PREFIX"), NULL, NULL,
                            "/usr/local", "/usr"};
  char py[1024], home[1100];
  if (python_prefix(py, sizeof py)) prefixes[2] = py;
  if (getenv("HOME") != NULL &&
      (size_t)snprintf(home, sizeof home, "%s/.local", getenv("HOME")) < sizeof home)
    prefixes[3] = home;
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0] && !ok; i++)
    if (prefixes[i] != NULL && prefixes[i][0] != '\0') ok = try_wheel(&c, prefixes[i]);
  if (!ok) {
    nc.status = HOIST_NO_NCCL;
    snprintf(nc.detail, sizeof nc.detail,
             "NCCL (libnccl.so.2) not found; loading with several GPUs needs it: set "
             "HOIST_NCCL_LIBRARY, or install NCCL (the CUDA toolkit's, or torch's nvidia-nccl "
             "wheel); tried %s",
             c.tried);
    return;
  }
  if (nc.ncclGetVersion(&nc.version) != ncclSuccess) nc.version = 0;
  nc.status = HOIST_OK;
}

int hoist__nccl_load(const char **path, int *version) {
  uv_once(&nc.once, load_once);
  if (nc.status != HOIST_OK) return hoist__fail(NULL, nc.status, "%s", nc.detail);
  if (path != NULL) *path = nc.path;
  if (version != NULL) *version = nc.version;
  return HOIST_OK;
}

/* ---- Communicators */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int nccl_status(ncclResult_t r) {
  return r == ncclRemoteError || r == ncclSystemError ? HOIST_GROUP_LOST : HOIST_DEVICE;
}

/* Multicast off unless the user chose (it needs fabric support that NCCL
 * probes badly on some hosts). */
static void nvls_default(void) { setenv("NCCL_NVLS_ENABLE", "0", 0); }

int hoist__nccl_unique_id(unsigned char *id, size_t len) {
  int rc = hoist__nccl_load(NULL, NULL);
  if (rc != HOIST_OK) return rc;
  ncclUniqueId u;
  if (len != sizeof u.internal)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "nccl: a unique id is %zu bytes, not %zu",
                       sizeof u.internal, len);
  nvls_default();
  const ncclResult_t r = nc.ncclGetUniqueId(&u);
  if (r != ncclSuccess)
    return hoist__fail(NULL, nccl_status(r), "nccl: ncclGetUniqueId: %s", nc.ncclGetErrorString(r));
  memcpy(id, u.internal, len);
  return HOIST_OK;
}

/* Polls c's asynchronous state until it leaves ncclInProgress (or fails,
 * times out, or *stop): aborts c on anything but success. */
static int settle(hoist__nccl *c, const char *what, double deadline, const volatile int *stop) {
  ncclResult_t state = ncclInProgress;
  for (;;) {
    const ncclResult_t r = nc.ncclCommGetAsyncError(c->comm, &state);
    if (r != ncclSuccess) state = r;
    if (state != ncclInProgress) break;
    if ((stop != NULL && __atomic_load_n(stop, __ATOMIC_RELAXED)) || now_s() > deadline) break;
    usleep(200);
  }
  if (state == ncclSuccess) return HOIST_OK;
  c->failed = 1;
  const char *why = state == ncclInProgress
                        ? (stop != NULL && __atomic_load_n(stop, __ATOMIC_RELAXED)
                               ? "stopped by the group"
                               : "timed out")
                        : nc.ncclGetErrorString(state);
  (void)nc.ncclCommAbort(c->comm);
  c->comm = NULL;
  return hoist__fail(NULL, state == ncclInProgress ? HOIST_GROUP_LOST : nccl_status(state),
                     "nccl: %s on cuda:%d: %s", what, c->device, why);
}

int hoist__nccl_init_rank(int device, int world, int rank, const unsigned char *id, size_t len,
                          double timeout, const volatile int *stop, hoist__nccl **out) {
  *out = NULL;
  int rc = hoist__nccl_load(NULL, NULL);
  if (rc != HOIST_OK) return rc;
  ncclUniqueId u;
  if (len != sizeof u.internal)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "nccl: a unique id of %zu bytes", len);
  memcpy(u.internal, id, len);
  hoist__nccl *c = calloc(1, sizeof *c);
  if (c == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory for NCCL");
  c->device = device;
  nvls_default();
  if (cudaSetDevice(device) != cudaSuccess) {
    (void)cudaGetLastError();
    free(c);
    return hoist__fail(NULL, HOIST_DEVICE, "nccl: cannot make cuda:%d current", device);
  }
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const ncclResult_t r = nc.ncclCommInitRankConfig(&c->comm, world, u, rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    free(c);
    return hoist__fail(NULL, nccl_status(r), "nccl: rank %d of %d on cuda:%d: %s", rank, world,
                       device, nc.ncclGetErrorString(r));
  }
  if ((rc = settle(c, "making the communicator", now_s() + timeout, stop)) != HOIST_OK) {
    free(c);
    return rc;
  }
  *out = c;
  return HOIST_OK;
}

int hoist__nccl_init_all(int n, const int *devices, hoist__nccl **out) {
  int rc = hoist__nccl_load(NULL, NULL);
  if (rc != HOIST_OK) return rc;
  ncclComm_t *comms = calloc((size_t)n, sizeof *comms);
  if (comms == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory for NCCL");
  nvls_default();
  const ncclResult_t r = nc.ncclCommInitAll(comms, n, devices);
  if (r != ncclSuccess) {
    free(comms);
    return hoist__fail(NULL, nccl_status(r), "nccl: ncclCommInitAll on %d devices: %s", n,
                       nc.ncclGetErrorString(r));
  }
  for (int i = 0; i < n && rc == HOIST_OK; i++) {
    if ((out[i] = calloc(1, sizeof *out[i])) == NULL) {
      rc = hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory for NCCL");
      break;
    }
    out[i]->comm = comms[i];
    out[i]->device = devices[i];
  }
  if (rc != HOIST_OK)
    for (int i = 0; i < n; i++) {
      (void)nc.ncclCommDestroy(comms[i]);
      free(out[i]);
      out[i] = NULL;
    }
  free(comms);
  return rc;
}

/* Queues the pieces as one NCCL group on stream; a non-blocking
 * communicator is settled before the stream's work is waited for. */
static int enqueue_broadcasts(hoist__nccl *c, const hoist__nccl_piece *pieces, size_t n,
                              void *stream, double deadline, const volatile int *stop) {
  ncclResult_t r = nc.ncclGroupStart();
  for (size_t i = 0; i < n && (r == ncclSuccess || r == ncclInProgress); i++) {
    void *p = (void *)(uintptr_t)pieces[i].addr;
    r = nc.ncclBroadcast(p, p, (size_t)pieces[i].bytes, ncclInt8, pieces[i].root, c->comm,
                         (cudaStream_t)stream);
  }
  const ncclResult_t end = nc.ncclGroupEnd();
  if (r == ncclSuccess || r == ncclInProgress) r = end;
  if (r == ncclSuccess || r == ncclInProgress)
    return settle(c, "queueing broadcasts", deadline, stop);
  c->failed = 1;
  return hoist__fail(NULL, nccl_status(r), "nccl: broadcasts on cuda:%d: %s", c->device,
                     nc.ncclGetErrorString(r));
}

/* Waits for stream, watching NCCL's asynchronous error, *stop and the
 * deadline; aborts the communicator on any of them. */
static int wait_broadcasts(hoist__nccl *c, void *stream, double deadline,
                           const volatile int *stop) {
  for (;;) {
    const cudaError_t q = cudaStreamQuery((cudaStream_t)stream);
    if (q == cudaSuccess) return HOIST_OK;
    if (q != cudaErrorNotReady) {
      (void)cudaGetLastError();
      c->failed = 1;
      return hoist__fail(NULL, HOIST_DEVICE, "nccl: broadcasts on cuda:%d: %s", c->device,
                         cudaGetErrorString(q));
    }
    ncclResult_t state = ncclSuccess;
    (void)nc.ncclCommGetAsyncError(c->comm, &state);
    const bool late = now_s() > deadline;
    const bool stopped = stop != NULL && __atomic_load_n(stop, __ATOMIC_RELAXED);
    if ((state != ncclSuccess && state != ncclInProgress) || late || stopped) {
      c->failed = 1;
      (void)nc.ncclCommAbort(c->comm);
      c->comm = NULL;
      return hoist__fail(NULL, late || stopped ? HOIST_GROUP_LOST : nccl_status(state),
                         "nccl: broadcasts on cuda:%d %s", c->device,
                         late      ? "timed out (a rank died or stalled)"
                         : stopped ? "stopped: another rank failed"
                                   : nc.ncclGetErrorString(state));
    }
    usleep(50);
  }
}

int hoist__nccl_broadcast_wait(hoist__nccl *c, const hoist__nccl_piece *pieces, size_t n,
                               void *stream, double timeout, const volatile int *stop) {
  if (c->failed || c->comm == NULL)
    return hoist__fail(NULL, HOIST_GROUP_LOST, "nccl: the communicator of cuda:%d failed before",
                       c->device);
  /* The timeout, plus a second per GB moved: a large component on a slow
   * link is no stalled rank. */
  double bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += (double)pieces[i].bytes;
  const double deadline = now_s() + timeout + bytes / 1e9;
  if (cudaSetDevice(c->device) != cudaSuccess) {
    (void)cudaGetLastError();
    return hoist__fail(NULL, HOIST_DEVICE, "nccl: cannot make cuda:%d current", c->device);
  }
  int rc = enqueue_broadcasts(c, pieces, n, stream, deadline, stop);
  return rc == HOIST_OK ? wait_broadcasts(c, stream, deadline, stop) : rc;
}

void hoist__nccl_free(hoist__nccl *c, int abort) {
  if (c == NULL) return;
  if (c->comm != NULL) (void)(abort || c->failed ? nc.ncclCommAbort(c->comm) : nc.ncclCommDestroy(c->comm));
  free(c);
}

#else /* no nccl.h at build time */

static int absent(void) {
  return hoist__fail(NULL, HOIST_NO_NCCL,
                     "this build of hoist has no NCCL support: loading with several GPUs needs "
                     "it (configure hoist with the CUDA toolkit, whose nccl.h it builds against)");
}

int hoist__nccl_load(const char **path, int *version) {
  (void)path;
  (void)version;
  return absent();
}
int hoist__nccl_unique_id(unsigned char *id, size_t len) {
  (void)id;
  (void)len;
  return absent();
}
int hoist__nccl_init_rank(int device, int world, int rank, const unsigned char *id, size_t len,
                          double timeout, const volatile int *stop, hoist__nccl **out) {
  *out = NULL;
  return absent();
}
int hoist__nccl_init_all(int n, const int *devices, hoist__nccl **out) { return absent(); }
int hoist__nccl_broadcast_wait(hoist__nccl *c, const hoist__nccl_piece *pieces, size_t n,
                               void *stream, double timeout, const volatile int *stop) {
  return absent();
}
void hoist__nccl_free(hoist__nccl *c, int abort) { (void)c; }

#endif
