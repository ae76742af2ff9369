/* hoist_tools.h — the part of libhoist's internals that the hoist CLI, its
 * benchmarks and its tests use beyond hoist.h.
 *
 * Not installed and not part of the public API: every name here is
 * internal, carries the internal prefix hoist__ (public names have hoist_),
 * may change with any release, is not exported by the shared library, and
 * is reached by linking the static archive hoist_internal.  Anything a program needs to load a pipeline is
 * in hoist.h; what is here serves measuring and testing the library: a load
 * in a chosen order with a model of another framework's transient memory,
 * the rules the OOM simulator shares with the loader, the device behind a
 * runtime, the host backend's capacity and fault-injection hooks, and the
 * upload engine's knobs.
 *
 * Conventions are hoist.h's: statuses from HOIST_STATUS_MAP with a detail
 * in hoist_last_error(); the library never prints or exits; ownership and
 * threading are stated per function.  The runtime's own modules include
 * this header through runtime/internal.h. */
#ifndef HOIST_TOOLS_H
#define HOIST_TOOLS_H

#include "hoist.h"
#include "hoist_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HOIST_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define HOIST_PRINTF(a, b)
#endif

/* ------------------------------------------------------------------------ */
/* Errors and sizes */

/* The longest detail message, with its NUL. */
#define HOIST_ERROR_MAX 1024

/* Records a detail message as the calling thread's last error (what
 * hoist_last_error returns on this thread) and returns status, so that call
 * sites read `return hoist__fail(...)`.  rt, when given, only routes the
 * message to its debug log.  Thread-safe. */
int hoist__fail(hoist_runtime *rt, int status, const char *fmt, ...) HOIST_PRINTF(3, 4);

/* Names and paths in messages.  Every string that comes from a file or a
 * command line (tensor and component names, index entries, file names from
 * a folder listing, paths built from them) goes through hoist__show before
 * it is put in a message, so that a message is always one harmless line.
 * Buffer sizes for a name and for a path: */
#define HOIST_SHOW_NAME 160
#define HOIST_SHOW_PATH 512

/* Renders s into buf (size >= 8) for a message: valid UTF-8 is kept, C0
 * and C1 control characters, DEL and bytes that are not valid UTF-8
 * become \xHH; what does not fit is cut at a character boundary and
 * ends in "...".  Returns buf.  Thread-safe. */
const char *hoist__show(const char *s, char *buf, size_t size);

/* The status for an errno of open, stat or opendir on a path given as
 * input: HOIST_NOT_FOUND (ENOENT, ENOTDIR), HOIST_BAD_PATH (a symbolic
 * link loop, a name too long, no permission, a special file), else
 * HOIST_IO (HOIST_NO_MEMORY for ENOMEM). */
int hoist__path_status(int err);

/* Duplicates a string with malloc; NULL on NULL or allocation failure. */
char *hoist__strdup(const char *s);

/* Checked arithmetic: false on overflow, *out untouched then. */
static inline bool hoist__add_u64(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_add_overflow(a, b, out);
}
static inline bool hoist__mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
/* Whether a cancel flag (hoist_load_options.cancel) is raised: a relaxed
 * atomic load, the reading side of the rule hoist.h states for its
 * writers (the flag carries no data, so no stronger order is needed).
 * NULL is never raised.  Thread-safe. */
static inline bool hoist__cancel_requested(const volatile int *cancel) {
  return cancel != NULL && __atomic_load_n(cancel, __ATOMIC_RELAXED) != 0;
}

/* Round x up to a multiple of align (a power of two); false on overflow. */
static inline bool hoist__round_up_u64(uint64_t x, uint64_t align, uint64_t *out) {
  uint64_t t;
  if (!hoist__add_u64(x, align - 1, &t)) return false;
  *out = t & ~(align - 1);
  return true;
}

/* ------------------------------------------------------------------------ */
/* A load in a chosen order, with a transient model (`hoist bench oom`) */

typedef struct hoist__load_ext {
  /* n index-order slots (as hoist_pipeline_component takes them) in load
   * order, a permutation of 0..n-1; NULL: the planned order. */
  const size_t *order;
  /* Transient device bytes a component needs during its own load besides
   * its arenas (a framework that materializes then casts, a scratch
   * buffer): admitted together with the arenas, allocated right after them,
   * freed when the component's upload ends; not taken for components placed
   * in host memory.  Called on the loading thread; NULL: none. */
  uint64_t (*transient)(void *user, const hoist_component_info *c, uint64_t tensor_bytes);
  void *transient_user;
  /* Test hook: called after the upload of the component at load-order
   * position `position`, before it is verified (so a test can damage
   * device bytes the way a fault would).  NULL: none. */
  void (*after_upload)(void *user, hoist_loaded *l, size_t position);
  void *after_upload_user;
} hoist__load_ext;

/* hoist_load_pipeline with an order and a transient model; ext NULL is
 * exactly hoist_load_pipeline.  A bad order is HOIST_INVALID_ARGUMENT. */
int hoist__load_pipeline_ext(hoist_runtime *rt, const hoist_pipeline *p,
                            const hoist_load_options *opts, const hoist__load_ext *ext,
                            hoist_loaded **out);

/* ------------------------------------------------------------------------ */
/* The loader's rules, for a model of a load (`hoist bench oom --simulate`).
 * Pure functions; thread-safe. */

/* Admission: need bytes may be taken from free_bytes when headroom bytes
 * stay free afterwards.  Exact for every value. */
bool hoist__admits(uint64_t need, uint64_t headroom, uint64_t free_bytes);

/* Placement: every tensor starts at a multiple of this in its component's
 * span, and the span is a multiple of it. */
#define HOIST_TENSOR_ALIGN 256u

/* Selection (hoist_load_options.offload, fsdp, dtype_for): whether one item
 * picks the component named name, whose classifiers see load_name: the item
 * is its name, or a group (dit, text_encoder, image_encoder, vae, all) it
 * belongs to. */
bool hoist__component_selected_by(const char *item, const char *name, const char *load_name);

/* Order: sorts infos[0..n) into load order in place (a stable sort), as
 * hoist_pipeline_open orders a pipeline's components. */
void hoist__component_sort(const hoist_component_info **infos, size_t n);

/* The opened safetensors files of p's component at slot (0-based place in
 * index order, as hoist_pipeline_component takes it); returns their count
 * and points *files at an array owned by p (valid until
 * hoist_pipeline_close).  0 with *files NULL for a component without
 * safetensors. */
size_t hoist__pipeline_safetensors(const hoist_pipeline *p, size_t slot,
                                  hoist_file *const **files);

/* Conversion targets: "bf16", "f16", "f32" or "keep" in any case (len
 * bytes), looked up in the dtype table as hoist_dtype_from_name does;
 * *out is the dtype, or HOIST_DTYPE_KEEP.  False for any other name. */
#define HOIST_DTYPE_KEEP HOIST_DTYPE_COUNT_
bool hoist__dtype_target_lookup(const char *s, size_t len, hoist_dtype *out);

/* ------------------------------------------------------------------------ */
/* Loads with ranks: what each rank reads (`hoist shards`, the tests).  The
 * same rules as a load with a group (hoist.h "Groups"); pure functions of
 * the files and options; thread-safe. */

/* One tensor as rank reads it.  split 0: the whole tensor (a scalar, or
 * not named by fsdp or the plan, or world 1); else kind 1 (FSDP) or 2
 * (tensor parallel), the indices [offset, offset + length) of dimension
 * dim (padded: FSDP2's per-rank length), the local shape, and where its
 * bytes lie: `pieces` runs of piece_bytes, the first `first` bytes into
 * the tensor's data, each `stride` bytes after the one before. */
typedef struct hoist__shard_view {
  const char *component;
  const hoist_tensor_info *tensor; /* as in the file */
  int split, kind;
  uint32_t dim;
  uint64_t offset, length, padded;
  const uint64_t *local_shape;     /* tensor->ndim entries */
  uint64_t pieces, piece_bytes, first, stride;
} hoist__shard_view;

typedef void (*hoist__shard_visit_fn)(void *user, const hoist__shard_view *v);

/* Calls fn for every tensor of p's components, in load order and file
 * order, as rank of world would load it with hoist_load_options.fsdp and
 * shard set to fsdp and shard.  Errors are the load's (a bad plan entry,
 * a dimension that does not divide, an entry that names no tensor). */
int hoist__shard_describe(hoist_runtime *rt, const hoist_pipeline *p, const char *fsdp,
                          const char *shard, uint32_t rank, uint32_t world,
                          hoist__shard_visit_fn fn, void *user);

/* ------------------------------------------------------------------------ */
/* The device behind a runtime.  Thread-safe. */

/* "host" or "cuda". */
const char *hoist__device_kind(const hoist_runtime *rt);
/* "host" or the GPU's name ("NVIDIA H100 80GB HBM3"). */
const char *hoist__device_name(const hoist_runtime *rt);
/* Bytes an allocation may be rounded up to (cuda: 2 MiB, host: 256). */
uint64_t hoist__device_granularity(const hoist_runtime *rt);
/* Free and total device memory as the device sees it now. */
int hoist__device_mem_info(hoist_runtime *rt, uint64_t *free_bytes, uint64_t *total_bytes);
/* Raw device memory outside any load (a ballast, another tenant); free
 * with hoist__device_free before the runtime closes. */
int hoist__device_alloc(hoist_runtime *rt, uint64_t bytes, uint64_t *addr);
void hoist__device_free(hoist_runtime *rt, uint64_t addr);
/* The pinned host-to-device copy rate: the median GB/s of `reps` copies of
 * `bytes` of random contents after two warm-up copies.  Allocates and
 * frees its buffers; the device must be idle for a fair figure. */
int hoist__device_h2d_rate(hoist_runtime *rt, size_t bytes, int reps, double *gbps);

/* ------------------------------------------------------------------------ */
/* The host backend's hooks (rt's device must be "host"; another asserts).
 * Thread-safe. */

/* Makes `count` allocations fail (HOIST_DEVICE_OOM, "injected") starting
 * with the k-th from now (1: the next; k = 0 disables; count = UINT64_MAX:
 * every one from then on). */
void hoist__device_host_fail_alloc_at(hoist_runtime *rt, uint64_t k, uint64_t count);
/* Changes the capacity at once, as another tenant would. */
void hoist__device_host_set_capacity(hoist_runtime *rt, uint64_t capacity);
/* Device bytes allocated now, and pinned (staging) bytes. */
uint64_t hoist__device_host_allocated(hoist_runtime *rt);
uint64_t hoist__device_host_pinned(hoist_runtime *rt);
/* Host-to-device copies, conversions and successful device allocations
 * since the device opened (tests count transfers with them). */
void hoist__device_host_counts(hoist_runtime *rt, uint64_t *copies, uint64_t *converts,
                              uint64_t *allocs);

/* ------------------------------------------------------------------------ */
/* The upload engine */

/* Reader threads used when hoist_config.threads is 0. */
unsigned hoist__engine_default_threads(void);
/* Makes rt's upload engine now (its streams and pinned ring) rather than
 * at the first load, so device memory read afterwards is what loads see.
 * Serialized with loads. */
int hoist__engine_prepare(hoist_runtime *rt);

/* ------------------------------------------------------------------------ */
/* Sharing a loaded pipeline with other processes (`hoist serve`; the wire
 * format both ends speak is hoist_wire.h).  The view functions read state
 * that only a load, a close, hoist_prepare_for_use and
 * hoist_release_after_use change; a caller serializes them with those on
 * the same hoist_loaded. */

/* The runtime a pipeline was loaded with (its device: l's arenas). */
hoist_runtime *hoist__loaded_runtime(const hoist_loaded *l);
/* Where another process finds rt's device beside hoist__device_kind: the
 * card's PCI bus id on cuda, "" on host. */
const char *hoist__device_locator(const hoist_runtime *rt);
/* Makes rt's later device allocations shareable by descriptor where the
 * device can (runtime/device.h, share_by_default): for hoist serve, before
 * its first load. */
void hoist__device_share_by_default(hoist_runtime *rt);

/* Arenas of component i (load order) now: 0 for an offloaded component that
 * is not prepared, or one without tensors. */
size_t hoist__loaded_arena_count(const hoist_loaded *l, size_t i);
/* Arena k of component i: its device address, bytes, and the placement
 * offset its first byte holds (arenas cover the placement span in order,
 * each starting where the one before it ends). */
void hoist__loaded_arena(const hoist_loaded *l, size_t i, size_t k, uint64_t *addr, uint64_t *bytes,
                         uint64_t *span_begin);
/* What another process needs to map arena k of component i: a descriptor
 * in *fd, borrowed until the arena is freed, blob zeroed (host: the
 * allocation's memfd, sealed against writable mappings; cuda: the POSIX
 * handle of its virtual-memory allocation); or, on cuda without descriptor
 * sharing, its CUDA IPC handle in blob (HOIST_WIRE_HANDLE_BYTES) and *fd
 * -1. */
int hoist__loaded_arena_export(const hoist_loaded *l, size_t i, size_t k, int *fd,
                               unsigned char *blob);
/* hoist_prepare_for_use on a stream of its own, synchronized: when it
 * returns, the arena holds the bytes (another process may be told where). */
int hoist__loaded_prepare_synced(hoist_loaded *l, size_t i, int *moved);
/* Tensor j (0 <= j < tensor_count) of component i in placement order: its
 * info as on the device, and in *span_off its offset in the placement span
 * (the tensor lies in the arena whose range holds it). */
const hoist_tensor_info *hoist__loaded_placed(const hoist_loaded *l, size_t i, size_t j,
                                              uint64_t *span_off);
/* The pinned host copy of offloaded component i (laid out as the span), or
 * NULL when it has none. */
const void *hoist__loaded_host_copy(const hoist_loaded *l, size_t i);

/* A fingerprint: the block checksum (kernels.h) of every tensor's bytes,
 * component by component in load order, tensors in placement order, hashed
 * where they lie: in the arenas, or in the host copy of an offloaded
 * component (a prepared one's arena holds the same bytes).  A component
 * with neither has no entries.  *out is malloc'd (free it); *n its count. */
int hoist__loaded_fingerprint(const hoist_loaded *l, uint64_t **out, size_t *n);
/* Takes the fingerprint again and compares it with base (from
 * hoist__loaded_fingerprint of the same l): HOIST_OK when every tensor
 * agrees, HOIST_VERIFY_MISMATCH naming the first component and tensor that
 * differ.  *tensors and *bytes (optional) count what was checked. */
int hoist__loaded_check(const hoist_loaded *l, const uint64_t *base, size_t n, uint64_t *tensors,
                        uint64_t *bytes);

#ifdef __cplusplus
}
#endif
#endif /* HOIST_TOOLS_H */
