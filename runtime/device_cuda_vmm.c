/* device_cuda_vmm.c — device memory shareable by descriptor (see
 * device_cuda_vmm.h): the driver entry points, the process-wide table of
 * allocations and mappings, and the steps create → reserve → map → set
 * access (and back) that each allocation and each import takes. */
#include "device_cuda_vmm.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ------------------------------------------------------------------------ */
/* The driver's functions, found once through the runtime */

static struct {
  PFN_cuDeviceGet_v2000 device_get;
  PFN_cuDeviceGetAttribute_v2000 device_attribute;
  PFN_cuMemGetAllocationGranularity_v10020 granularity;
  PFN_cuMemCreate_v10020 create;
  PFN_cuMemRelease_v10020 release;
  PFN_cuMemAddressReserve_v10020 reserve;
  PFN_cuMemAddressFree_v10020 address_free;
  PFN_cuMemMap_v10020 map;
  PFN_cuMemUnmap_v10020 unmap;
  PFN_cuMemSetAccess_v10020 set_access;
  PFN_cuMemExportToShareableHandle_v10020 export_fd;
  PFN_cuMemImportFromShareableHandle_v10020 import_fd;
  PFN_cuGetErrorString_v6000 error_string;
} drv;
static bool drv_found;

/* The driver function symbol of CUDA 11.0's ABI, or false.  Toolkits
 * before 12.5 lack the lookup: descriptor sharing is then unsupported. */
static bool find(const char *symbol, void **fn) {
#if CUDART_VERSION >= 12050
  enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
  if (cudaGetDriverEntryPointByVersion(symbol, fn, 11000, cudaEnableDefault, &q) != cudaSuccess ||
      q != cudaDriverEntryPointSuccess || *fn == NULL) {
    (void)cudaGetLastError();
    return false;
  }
  return true;
#else
  (void)symbol;
  *fn = NULL;
  return false;
#endif
}

/* The table of this process's allocations (imported false) and mappings of
 * other processes' allocations (imported true). */
typedef struct block {
  uint64_t addr, bytes;
  int ordinal;
  CUmemGenericAllocationHandle handle;
  int fd; /* the export, made at the first hoist__vmm_export; -1 before */
  bool imported;
  struct block *next;
} block;

static block *blocks;
static uv_mutex_t lock;
static uv_once_t once = UV_ONCE_INIT;

static void init(void) {
  uv_mutex_init(&lock);
  drv_found = find("cuDeviceGet", (void **)&drv.device_get) &&
              find("cuDeviceGetAttribute", (void **)&drv.device_attribute) &&
              find("cuMemGetAllocationGranularity", (void **)&drv.granularity) &&
              find("cuMemCreate", (void **)&drv.create) &&
              find("cuMemRelease", (void **)&drv.release) &&
              find("cuMemAddressReserve", (void **)&drv.reserve) &&
              find("cuMemAddressFree", (void **)&drv.address_free) &&
              find("cuMemMap", (void **)&drv.map) && find("cuMemUnmap", (void **)&drv.unmap) &&
              find("cuMemSetAccess", (void **)&drv.set_access) &&
              find("cuMemExportToShareableHandle", (void **)&drv.export_fd) &&
              find("cuMemImportFromShareableHandle", (void **)&drv.import_fd) &&
              find("cuGetErrorString", (void **)&drv.error_string);
}

/* Records the failing driver call for rt and returns its status. */
static int fail(hoist_runtime *rt, CUresult r, const char *what, int ordinal) {
  const char *msg = NULL;
  if (drv.error_string == NULL || drv.error_string(r, &msg) != CUDA_SUCCESS || msg == NULL)
    msg = "unknown error";
  return hoist__fail(rt, r == CUDA_ERROR_OUT_OF_MEMORY ? HOIST_DEVICE_OOM : HOIST_DEVICE,
                    "cuda:%d: %s failed: %s (CUresult %d)", ordinal, what, msg, (int)r);
}

static CUmemAllocationProp prop_for(int ordinal) {
  CUmemAllocationProp p;
  memset(&p, 0, sizeof p);
  p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  p.location.id = ordinal;
  p.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  return p;
}

bool hoist__vmm_supported(int ordinal, uint64_t *granularity) {
  uv_once(&once, init);
  CUdevice dev;
  int vmm = 0, fd = 0;
  size_t g = 0;
  CUmemAllocationProp p = prop_for(ordinal);
  if (!drv_found || drv.device_get(&dev, ordinal) != CUDA_SUCCESS ||
      drv.device_attribute(&vmm, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev) !=
          CUDA_SUCCESS ||
      drv.device_attribute(&fd, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED,
                           dev) != CUDA_SUCCESS ||
      !vmm || !fd || drv.granularity(&g, &p, CU_MEM_ALLOC_GRANULARITY_MINIMUM) != CUDA_SUCCESS ||
      g == 0)
    return false;
  *granularity = g;
  return true;
}

/* ------------------------------------------------------------------------ */
/* Mapping and unmapping: the steps both an allocation and an import take */

/* Reserves addresses for bytes of handle h, maps it there and grants card
 * ordinal access (read-only when read_only). */
static int map_handle(hoist_runtime *rt, int ordinal, CUmemGenericAllocationHandle h,
                      uint64_t bytes, bool read_only, uint64_t *addr) {
  CUdeviceptr va = 0;
  CUresult r = drv.reserve(&va, (size_t)bytes, 0, 0, 0);
  if (r != CUDA_SUCCESS) return fail(rt, r, "cuMemAddressReserve", ordinal);
  if ((r = drv.map(va, (size_t)bytes, 0, h, 0)) != CUDA_SUCCESS) {
    drv.address_free(va, (size_t)bytes);
    return fail(rt, r, "cuMemMap", ordinal);
  }
  CUmemAccessDesc access;
  memset(&access, 0, sizeof access);
  access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  access.location.id = ordinal;
  access.flags = read_only ? CU_MEM_ACCESS_FLAGS_PROT_READ : CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  r = drv.set_access(va, (size_t)bytes, &access, 1);
  if (r != CUDA_SUCCESS && read_only) { /* a driver without read-only device mappings */
    hoist__log(rt, HOIST_LOG_WARN,
               "cuda:%d: read-only access to shared memory refused (CUresult %d): mapped "
               "read-write, read-only by contract only", ordinal, (int)r);
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    r = drv.set_access(va, (size_t)bytes, &access, 1);
  }
  if (r != CUDA_SUCCESS) {
    drv.unmap(va, (size_t)bytes);
    drv.address_free(va, (size_t)bytes);
    return fail(rt, r, "cuMemSetAccess", ordinal);
  }
  *addr = (uint64_t)va;
  return HOIST_OK;
}

/* Unmaps b, frees its addresses, releases its handle, closes its export.
 * First waits for the card's work, as cudaFree does: kernels and copies
 * still queued may read the memory (a component released right after the
 * call that used it, the last tensor of an attachment dropped right after
 * a launch), and an unmapped address faults.  The calling thread's current
 * device is left as it was.  A failure is logged for rt; addresses whose
 * unmapping failed stay reserved rather than handed out again. */
static void unmap_block(hoist_runtime *rt, block *b) {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess) current = -1;
  if (cudaSetDevice(b->ordinal) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess)
    (void)cudaGetLastError();
  CUresult r = drv.unmap((CUdeviceptr)b->addr, (size_t)b->bytes);
  if (r == CUDA_SUCCESS) r = drv.address_free((CUdeviceptr)b->addr, (size_t)b->bytes);
  CUresult rel = drv.release(b->handle);
  if (r != CUDA_SUCCESS || rel != CUDA_SUCCESS)
    hoist__log(rt, HOIST_LOG_ERROR, "cuda:%d: freeing %llu bytes at %#llx failed (CUresult %d, %d)",
               b->ordinal, (unsigned long long)b->bytes, (unsigned long long)b->addr, (int)r,
               (int)rel);
  if (b->fd >= 0) close(b->fd);
  if (current >= 0 && current != b->ordinal && cudaSetDevice(current) != cudaSuccess)
    (void)cudaGetLastError();
  free(b);
}

static void remember(block *b) {
  uv_mutex_lock(&lock);
  b->next = blocks;
  blocks = b;
  uv_mutex_unlock(&lock);
}

/* Takes the block at addr of the given kind out of the table, or NULL. */
static block *forget(uint64_t addr, bool imported) {
  uv_once(&once, init);
  uv_mutex_lock(&lock);
  block **pp = &blocks;
  while (*pp != NULL && ((*pp)->addr != addr || (*pp)->imported != imported)) pp = &(*pp)->next;
  block *b = *pp;
  if (b != NULL) *pp = b->next;
  uv_mutex_unlock(&lock);
  return b;
}

/* ------------------------------------------------------------------------ */
/* Adding a block: an allocation or an import */

/* Adds a block of card ordinal: a new allocation of bytes (fd < 0) or the
 * import of another process's descriptor fd, rounded up to the
 * granularity, mapped (read-only for an import) and recorded. */
static int add_block(hoist_runtime *rt, int ordinal, uint64_t bytes, int fd, uint64_t *addr) {
  uint64_t g = 0;
  if (!hoist__vmm_supported(ordinal, &g))
    return hoist__fail(rt, HOIST_UNSUPPORTED, "cuda:%d: %s", ordinal,
                      fd < 0 ? "no shareable device memory"
                             : "the server shares memory by descriptor, which this card or "
                               "driver cannot map");
  block *b = calloc(1, sizeof *b);
  if (b == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  b->bytes = (bytes + g - 1) / g * g;
  b->ordinal = ordinal;
  b->fd = -1;
  b->imported = fd >= 0;
  CUmemAllocationProp p = prop_for(ordinal);
  CUresult r = b->imported ? drv.import_fd(&b->handle, (void *)(uintptr_t)fd,
                                           CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
                           : drv.create(&b->handle, (size_t)b->bytes, &p, 0);
  if (r != CUDA_SUCCESS) {
    free(b);
    return fail(rt, r, fd >= 0 ? "cuMemImportFromShareableHandle" : "cuMemCreate", ordinal);
  }
  int rc = map_handle(rt, ordinal, b->handle, b->bytes, b->imported, &b->addr);
  if (rc != HOIST_OK) {
    drv.release(b->handle);
    free(b);
    return rc;
  }
  remember(b);
  *addr = b->addr;
  return HOIST_OK;
}

/* ------------------------------------------------------------------------ */
/* Allocations of this process */

int hoist__vmm_alloc(hoist_runtime *rt, int ordinal, uint64_t bytes, uint64_t *addr) {
  return add_block(rt, ordinal, bytes, -1, addr);
}

bool hoist__vmm_free(hoist_runtime *rt, uint64_t addr) {
  block *b = forget(addr, false);
  if (b == NULL) return false;
  unmap_block(rt, b);
  return true;
}

int hoist__vmm_export(hoist_runtime *rt, uint64_t addr, int *fd) {
  uv_once(&once, init);
  uv_mutex_lock(&lock);
  block *b = blocks;
  while (b != NULL && (b->addr != addr || b->imported)) b = b->next;
  CUresult r = CUDA_SUCCESS;
  if (b != NULL && b->fd < 0 &&
      (r = drv.export_fd(&b->fd, b->handle, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0)) ==
          CUDA_SUCCESS)
    (void)fcntl(b->fd, F_SETFD, FD_CLOEXEC); /* never kept alive by a child */
  int out = b != NULL && r == CUDA_SUCCESS ? b->fd : -1;
  int ordinal = b != NULL ? b->ordinal : -1;
  if (r != CUDA_SUCCESS && b != NULL) b->fd = -1;
  uv_mutex_unlock(&lock);
  if (b == NULL) return HOIST_NOT_FOUND;
  if (r != CUDA_SUCCESS) return fail(rt, r, "cuMemExportToShareableHandle", ordinal);
  *fd = out;
  return HOIST_OK;
}

/* ------------------------------------------------------------------------ */
/* Mappings of other processes' allocations */

int hoist__vmm_import(hoist_runtime *rt, int ordinal, int fd, uint64_t bytes, uint64_t *addr) {
  return add_block(rt, ordinal, bytes, fd, addr);
}

bool hoist__vmm_unmap(hoist_runtime *rt, uint64_t addr) {
  block *b = forget(addr, true);
  if (b == NULL) return false;
  unmap_block(rt, b);
  return true;
}
