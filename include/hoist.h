/* hoist.h — the one public header of libhoist.
 *
 * hoist loads multi-component model pipelines (diffusers layouts such as
 * FLUX.1 or Wan2.2, or a single transformers model) from safetensors files
 * into device memory, heavy components first, under admission control.
 *
 * Conventions
 *   - Every fallible call returns an int status: HOIST_OK (0) or a negative
 *     code from HOIST_STATUS_MAP.  hoist_strerror() gives a sentence,
 *     hoist_status_name() the code's name, hoist_last_error() the detail of
 *     the last failure (file, tensor, rule, numbers).  A detail about an
 *     option names its field in backquotes ("`dtype_for`: 'x' is not
 *     NAME=DTYPE"), so a front end can say its own spelling of the option.
 *   - Handles are opaque.  Who frees what is stated per function; every
 *     *_close(NULL) is a no-op.
 *   - Config structs are filled from an initializer
 *     (hoist_config cfg = HOIST_CONFIG_INIT;); passing NULL means defaults.
 *   - Bad input (a malformed file, a missing shard) returns an error; API
 *     misuse (a NULL handle where one is required) asserts.
 *   - The library never prints and never exits: it logs through the
 *     callback set in hoist_config or with hoist_log_set().
 *   - No CUDA type appears here; device addresses are plain integers.
 *   - Public names start with hoist_ or HOIST_.  The library's internal
 *     functions and types start with hoist__ (as libuv's uv__), and none
 *     of them is exported.
 *
 * Threading
 *   - A hoist_runtime may be shared by threads; calls that load or unload
 *     on the same runtime serialize internally.
 *   - Error details are per thread, as errno is.  Every failing call records
 *     its detail in the calling thread's own slot, whether it was given a
 *     runtime, another one or none, and hoist_last_error() returns that slot
 *     whatever its argument: right after a call returned an error on this
 *     thread, it is that call's detail, even while other threads fail on
 *     the same runtime.  A load whose reader thread fails hands the reader's
 *     detail to the thread that called it.  A detail is never visible on
 *     another thread: read it on the thread that made the call.  A later
 *     failing call on the thread replaces it, and so may a call that
 *     succeeds (some recover from an inner failure), as with errno.
 *   - An open hoist_file and a hoist_pipeline are immutable: every accessor
 *     may be called from several threads at once.
 *   - A hoist_loaded may be shared by threads too: see "Threading of a
 *     loaded pipeline" below.
 */
#ifndef HOIST_H
#define HOIST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(HOIST_BUILDING) && defined(__GNUC__)
#define HOIST_EXPORT __attribute__((visibility("default")))
#else
#define HOIST_EXPORT
#endif

#define HOIST_VERSION_MAJOR 0
#define HOIST_VERSION_MINOR 1
#define HOIST_VERSION_PATCH 0
HOIST_EXPORT const char *hoist_version(void);

/* ------------------------------------------------------------------------ */
/* Status codes.  Ranges: -1..-19 general, -20..-49 safetensors format rules,
 * -50..-69 pipeline layout and content (manifests), -70..-89 device and
 * memory, -90..-99 sharing a loaded pipeline between processes (hoist serve,
 * hoist_attach), -100..-109 the ranks of a group loading together
 * (hoist_group). */

#define HOIST_STATUS_MAP(X)                                                        \
  X(OK, 0, "success")                                                              \
  X(INVALID_ARGUMENT, -1, "invalid argument")                                      \
  X(NO_MEMORY, -2, "out of host memory")                                           \
  X(IO, -3, "input/output error")                                                  \
  X(NOT_FOUND, -4, "no such file or directory")                                    \
  X(CANCELLED, -5, "operation cancelled")                                          \
  X(UNSUPPORTED, -6, "operation not supported")                                    \
  X(BUSY, -7, "resource in use")                                                   \
  X(BAD_PATH, -8, "not a readable regular file or folder")                         \
  X(HEADER_TOO_SMALL, -20, "file too small to hold a safetensors header")          \
  X(HEADER_TOO_LARGE, -21, "header length above 100,000,000 bytes")                \
  X(HEADER_LENGTH, -22, "header length runs past the end of the file")            \
  X(HEADER_UTF8, -23, "header is not valid UTF-8")                                 \
  X(HEADER_JSON, -24, "header is not valid JSON")                                  \
  X(HEADER_NOT_OBJECT, -25, "header is not a JSON object")                         \
  X(DUPLICATE_KEY, -26, "duplicate key in header")                                 \
  X(BAD_METADATA, -27, "__metadata__ is not null or an object of strings")        \
  X(BAD_TENSOR, -28, "tensor entry is not an object with dtype, shape, data_offsets") \
  X(BAD_DTYPE, -29, "unknown dtype")                                               \
  X(BAD_NUMBER, -30, "shape or offset is not a plain integer in [0, 2^53]")        \
  X(BAD_OFFSETS, -31, "data_offsets is not a pair [begin, end] with begin <= end") \
  X(LAYOUT, -32, "tensors are not contiguous from offset 0")                       \
  X(SIZE_MISMATCH, -33, "tensor byte size differs from its shape and dtype")       \
  X(MISALIGNED, -34, "tensor size is not a whole number of bytes")                 \
  X(OVERFLOW, -35, "size arithmetic overflows")                                    \
  X(DATA_LENGTH, -36, "data section length differs from the tensors' extent")     \
  X(FILE_CHANGED, -37, "file was truncated or replaced while in use")              \
  X(BAD_PIPELINE, -50, "malformed pipeline (model_index.json)")                    \
  X(BAD_INDEX, -51, "malformed shard index (*.safetensors.index.json)")            \
  X(MISSING_SHARD, -52, "a shard named by the index is missing")                   \
  X(NO_WEIGHTS, -53, "no weights found")                                           \
  X(MANIFEST_MISMATCH, -54, "the pipeline's files differ from the manifest")       \
  X(BAD_MANIFEST, -55, "malformed manifest file")                                  \
  X(NO_DEVICE, -70, "no such device, or no driver")                                \
  X(DEVICE, -71, "device or driver error")                                         \
  X(DEVICE_OOM, -72, "out of device memory")                                       \
  X(ADMISSION, -73, "does not fit in device memory")                               \
  X(VERIFY_MISMATCH, -74, "device bytes differ from the file")                   \
  X(NOT_READY, -90, "the server is still loading the pipeline")                    \
  X(PROTOCOL, -91, "the peer broke the wire protocol")                             \
  X(DENIED, -92, "the server refused this client")                                 \
  X(CLOSED, -93, "the server closed the connection or is shutting down")               \
  X(GROUP_MISMATCH, -100, "the ranks of the group disagree on the load")              \
  X(GROUP_LOST, -101, "a rank of the group failed or stopped answering")             \
  X(NO_NCCL, -102, "NCCL is not available (several GPUs need it)")

typedef enum hoist_status {
#define HOIST_STATUS_ENUM_(name, code, text) HOIST_##name = (code),
  HOIST_STATUS_MAP(HOIST_STATUS_ENUM_)
#undef HOIST_STATUS_ENUM_
} hoist_status;

/* A sentence for a status ("header is not valid JSON"); never NULL. */
HOIST_EXPORT const char *hoist_strerror(int status);
/* The code's name without prefix ("HEADER_JSON"); "UNKNOWN" for others. */
HOIST_EXPORT const char *hoist_status_name(int status);

/* ------------------------------------------------------------------------ */
/* Logging */

typedef enum hoist_log_level {
  HOIST_LOG_ERROR = 0,
  HOIST_LOG_WARN = 1,
  HOIST_LOG_INFO = 2,
  HOIST_LOG_DEBUG = 3
} hoist_log_level;

/* Called with a complete message line (no trailing newline).  May be called
 * from the library's worker threads; it must be thread-safe. */
typedef void (*hoist_log_fn)(void *user, hoist_log_level level, const char *message);

/* ------------------------------------------------------------------------ */
/* Data types of safetensors, with their bit sizes. */

#define HOIST_DTYPE_MAP(X)                                                         \
  X(BOOL, 8) X(U8, 8) X(I8, 8) X(I16, 16) X(U16, 16) X(I32, 32) X(U32, 32)         \
  X(I64, 64) X(U64, 64) X(F16, 16) X(BF16, 16) X(F32, 32) X(F64, 64) X(C64, 64)    \
  X(F8_E4M3, 8) X(F8_E5M2, 8) X(F8_E8M0, 8) X(F8_E4M3FNUZ, 8) X(F8_E5M2FNUZ, 8)  \
  X(F4, 4) X(F6_E2M3, 6) X(F6_E3M2, 6)

typedef enum hoist_dtype {
#define HOIST_DTYPE_ENUM_(name, bits) HOIST_DTYPE_##name,
  HOIST_DTYPE_MAP(HOIST_DTYPE_ENUM_)
#undef HOIST_DTYPE_ENUM_
  HOIST_DTYPE_COUNT_
} hoist_dtype;

/* "BF16" etc.; NULL for an out-of-range value. */
HOIST_EXPORT const char *hoist_dtype_name(hoist_dtype dtype);
/* Bits per element; 0 for an out-of-range value. */
HOIST_EXPORT unsigned hoist_dtype_bits(hoist_dtype dtype);
/* Exact, case-sensitive lookup of a name of length len; HOIST_OK or
 * HOIST_BAD_DTYPE. */
HOIST_EXPORT int hoist_dtype_from_name(const char *name, size_t len, hoist_dtype *out);

/* ------------------------------------------------------------------------ */
/* Runtime: the device backend, worker threads and pinned staging ring. */

typedef struct hoist_runtime hoist_runtime;

typedef struct hoist_config {
  uint32_t struct_size;      /* sizeof(hoist_config), set by the initializer */
  const char *device;        /* "host" (default) or "cuda:N"; copied */
  uint64_t capacity;         /* host backend: device capacity in bytes; 0 = host RAM */
  uint32_t threads;          /* upload reader threads; 0 = default */
  uint64_t chunk_bytes;      /* upload chunk size; 0 = default */
  uint64_t ring_bytes;       /* pinned staging ring; 0 = default (<= 256 MiB) */
  hoist_log_fn log_fn;       /* NULL: no logging */
  void *log_user;
  hoist_log_level log_level; /* messages above this level are dropped */
} hoist_config;

#define HOIST_CONFIG_INIT \
  { sizeof(hoist_config), NULL, 0, 0, 0, 0, NULL, NULL, HOIST_LOG_WARN }

/* Creates a runtime for cfg->device (NULL cfg: host, defaults).  On failure
 * *out is NULL and hoist_last_error(NULL) explains (for example "cuda:0: no
 * CUDA driver found", status HOIST_NO_DEVICE).  Free with
 * hoist_runtime_close(), after every pipeline load made with it is closed. */
HOIST_EXPORT int hoist_runtime_create(const hoist_config *cfg, hoist_runtime **out);
HOIST_EXPORT void hoist_runtime_close(hoist_runtime *rt);

/* Replaces the log callback (NULL disables logging).  Thread-safe: every
 * message goes to one (callback, user) pair as set together, but a message
 * that another thread was already delivering may still reach the previous
 * callback after this returns, so keep its user data valid until
 * hoist_runtime_close(). */
HOIST_EXPORT void hoist_log_set(hoist_runtime *rt, hoist_log_fn fn, void *user,
                                hoist_log_level level);

/* The detail of the calling thread's most recent failure (see "Threading"
 * above), "" when it has none.  rt is not read: NULL, a runtime or one
 * already closed all give the same string, so the detail of a failed
 * hoist_runtime_create() or of a call made before hoist_runtime_close() is
 * still there.  The string is owned by the library; it stays unchanged
 * until the calling thread's next hoist call that records a failure, and
 * is valid until that thread exits.  Thread-safe: no other thread writes
 * it. */
HOIST_EXPORT const char *hoist_last_error(const hoist_runtime *rt);

/* The free and total memory of rt's device now, as admission reads it just
 * before each component (cuda: cudaMemGetInfo, which counts every process
 * on the card; host: the capacity, and the capacity minus what this
 * runtime's device holds).  Either pointer may be NULL.  For capacity
 * planning; the value is stale as soon as anything allocates.
 * Thread-safe. */
HOIST_EXPORT int hoist_runtime_mem_info(hoist_runtime *rt, uint64_t *free_bytes,
                                        uint64_t *total_bytes);

/* ------------------------------------------------------------------------ */
/* Safetensors files (strict reader). */

typedef struct hoist_file hoist_file;

typedef struct hoist_tensor_info {
  const char *name;       /* UTF-8, NUL-terminated */
  hoist_dtype dtype;
  uint32_t ndim;          /* 0 for a scalar */
  const uint64_t *shape;  /* ndim entries */
  uint64_t begin, end;    /* data_offsets, relative to the data section */
  uint64_t nbytes;        /* end - begin */
  uint64_t nelements;     /* product of shape (1 for a scalar) */
} hoist_tensor_info;

/* Opens path read-only, reads and validates its header and maps the file.
 * Only a regular file is opened (symbolic links followed): a FIFO, socket,
 * device or folder, a link loop, a name too long or a file without read
 * permission is HOIST_BAD_PATH, a missing one HOIST_NOT_FOUND.
 * rt may be NULL (errors then go to hoist_last_error(NULL)).  On success
 * *out owns the mapping and the tensor table; free with hoist_file_close().
 * Nothing is ever written to the file. */
HOIST_EXPORT int hoist_file_open(hoist_runtime *rt, const char *path, hoist_file **out);
HOIST_EXPORT void hoist_file_close(hoist_file *f);

HOIST_EXPORT const char *hoist_file_path(const hoist_file *f);
HOIST_EXPORT uint64_t hoist_file_size(const hoist_file *f);
HOIST_EXPORT uint64_t hoist_file_header_bytes(const hoist_file *f); /* N */
HOIST_EXPORT uint64_t hoist_file_data_offset(const hoist_file *f);  /* 8 + N */
HOIST_EXPORT uint64_t hoist_file_data_bytes(const hoist_file *f);   /* size - 8 - N */

/* Tensors in file-offset order (ties by name). */
HOIST_EXPORT size_t hoist_file_tensor_count(const hoist_file *f);
HOIST_EXPORT const hoist_tensor_info *hoist_file_tensor(const hoist_file *f, size_t i);
/* Lookup by exact name; NULL when absent. */
HOIST_EXPORT const hoist_tensor_info *hoist_file_find(const hoist_file *f, const char *name);

/* __metadata__: has_metadata is 0 when it is absent or null. Entries in the
 * header's order. */
HOIST_EXPORT int hoist_file_has_metadata(const hoist_file *f);
HOIST_EXPORT size_t hoist_file_metadata_count(const hoist_file *f);
HOIST_EXPORT const char *hoist_file_metadata_key(const hoist_file *f, size_t i);
HOIST_EXPORT const char *hoist_file_metadata_value(const hoist_file *f, size_t i);

/* Copies len bytes at absolute file offset off into dst with pread.  A short
 * read (the file shrank) is HOIST_FILE_CHANGED, never a signal. */
HOIST_EXPORT int hoist_file_read(const hoist_file *f, uint64_t off, void *dst, size_t len);

/* The read-only mapping of the whole file (NULL for an empty data section on
 * some systems).  Valid until hoist_file_close().  Touching it after another
 * process truncated the file raises SIGBUS: prefer hoist_file_read() for
 * untrusted files. */
HOIST_EXPORT const void *hoist_file_mapping(const hoist_file *f);

/* ------------------------------------------------------------------------ */
/* Pipelines: discovery and memory-aware load order.
 *
 * A pipeline's components have two orders.  Index order is the order of
 * their keys in model_index.json; a component's slot is its 0-based place
 * in it.  Load order is the order hoist loads them in (heavy first); a
 * component's position is its 0-based place in that. */

typedef struct hoist_pipeline hoist_pipeline;

typedef struct hoist_component_info {
  const char *name;          /* key in model_index.json (or the folder name) */
  const char *load_name;     /* name used by the ordering classifiers */
  const char *library;       /* "diffusers", "transformers", ...; may be NULL */
  const char *class_name;    /* may be NULL */
  uint32_t index;            /* place of its key among all of model_index.json's
                                keys (metadata keys counted): orders as the slot */
  const char *path;          /* component folder (may not exist), or the file of a
                                single-file pipeline */
  int folder_missing;        /* 1 when path does not exist */
  int has_size;              /* 0: inferred size unknown (orders like 0) */
  uint64_t inferred_bytes;   /* bytes that will land on the device */
  int risk_rank;             /* 0 DiT, 1 text encoder, 2 image encoder, 3 VAE, 10 other */
  int64_t variant_priority;  /* -N for a trailing _N, else 0; saturates at INT64_MIN */
  const char *variant_priority_text; /* the exact value in decimal ("-2", "0") */
  size_t position;           /* place in the load order, 0-based */
  size_t file_count;         /* weight files, sorted */
  const char *const *files;
  size_t tensor_count;       /* tensors over its safetensors files */
} hoist_component_info;

typedef struct hoist_pipeline_options {
  uint32_t struct_size;
  const char *variant;       /* NULL: the non-variant files; "fp16": that variant */
  /* Target dtype as in hoist_load_options.dtype ("bf16", "f16", "f32"; NULL:
   * none): inferred_bytes, and so the order, count floating tensors in that
   * dtype; a floating dtype with no conversion to it is HOIST_UNSUPPORTED. */
  const char *dtype;
} hoist_pipeline_options;

#define HOIST_PIPELINE_OPTIONS_INIT { sizeof(hoist_pipeline_options), NULL, NULL }

/* Discovers the pipeline at path (a dir with model_index.json, a dir of
 * weights that is a one-component pipeline, or a single .safetensors file:
 * a one-component pipeline whose component is named after the file without
 * ".safetensors" ("model" for model.safetensors), with library and class
 * NULL, path the file itself and the file its only weight file; any other
 * regular file is HOIST_BAD_PIPELINE), reads every safetensors
 * header (no tensor data) and computes the load order.  opts may be NULL.
 * What it refuses (docs/cli.md, "What discovery refuses"): JSON side files
 * above their size cap or nesting cap, non-regular files, ambiguous or
 * disagreeing shards (HOIST_BAD_INDEX / HOIST_BAD_PIPELINE naming the
 * tensor and both files); out of memory is always HOIST_NO_MEMORY.
 * Free with hoist_pipeline_close(). */
HOIST_EXPORT int hoist_pipeline_open(hoist_runtime *rt, const char *path,
                                     const hoist_pipeline_options *opts,
                                     hoist_pipeline **out);
HOIST_EXPORT void hoist_pipeline_close(hoist_pipeline *p);

HOIST_EXPORT const char *hoist_pipeline_path(const hoist_pipeline *p);
HOIST_EXPORT size_t hoist_pipeline_component_count(const hoist_pipeline *p);
/* The component at slot (index order); NULL past the end. */
HOIST_EXPORT const hoist_component_info *hoist_pipeline_component(const hoist_pipeline *p,
                                                                  size_t slot);
/* The component at position (load order: position 0 loads first). */
HOIST_EXPORT const hoist_component_info *hoist_pipeline_ordered(const hoist_pipeline *p,
                                                                size_t position);


/* ------------------------------------------------------------------------ */
/* Groups: ranks that load one pipeline together.
 *
 * A group is W ranks (processes, or threads of one process each with its
 * own runtime and device) joined through a rendezvous.  A load given a
 * group (hoist_load_options.group) runs on every rank at once:
 *   - before anything moves, the ranks compare their plans (components,
 *     files, tensor tables, dtype, residency and shard options) and all
 *     fail with HOIST_GROUP_MISMATCH naming the first difference;
 *   - before each component the ranks exchange their admission decisions:
 *     a refusal on any rank stops every rank before anything is allocated
 *     for that component (HOIST_ADMISSION on all, naming the rank), or,
 *     with on_oom offload, makes the component offloaded on every rank;
 *   - a failure on one rank (a cancel, a bad file, a verify mismatch) stops
 *     the others with its status and a message naming the rank; a rank
 *     that dies or stops answering for timeout_seconds makes the others
 *     fail with HOIST_GROUP_LOST within that time, never hang;
 *   - components marked FSDP, and the tensors a tensor-parallel plan names
 *     (hoist_load_options.shard), are loaded as this rank's shard only
 *     (see hoist_loaded_tensor_shard);
 *   - other components are replicated: on a CUDA device with W > 1 each rank
 *     reads and uploads about 1/W of the component's bytes and NCCL
 *     completes every rank's copy (NCCL is loaded at run time; without it
 *     such a load fails with HOIST_NO_NCCL); on the host backend the ranks
 *     complete it over the rendezvous connections.
 * The ranks talk over TCP: rank 0 listens, the others connect to it; a
 * thread per group keeps every connection alive with heartbeats.  A group
 * that lost a rank or saw a failure stays failed: close it and make a new
 * one (a refusal by admission does not fail the group).
 *
 * Threading: a group serves one load at a time; its accessors are
 * thread-safe. */

typedef struct hoist_group hoist_group;

typedef struct hoist_group_options {
  uint32_t struct_size;
  int rank;                 /* 0 .. world_size-1; -1: $RANK */
  int world_size;           /* >= 1; 0: $WORLD_SIZE */
  /* Where the ranks meet:
   *   "tcp://HOST:PORT": rank 0 listens on HOST:PORT, the others connect;
   *   "file:PATH": rank 0 listens on an ephemeral loopback port and writes
   *     its address and a random token into PATH (atomically); the others
   *     wait for PATH, connect and present the token;
   *   NULL: $HOIST_RENDEZVOUS when set, else torchrun's variables:
   *     tcp://$MASTER_ADDR:($MASTER_PORT + 1) (MASTER_PORT itself is
   *     torch.distributed's store). */
  const char *rendezvous;
  double timeout_seconds;   /* the rendezvous, and a silent rank: 0 = 60 s */
  int local_rank;           /* this rank's device on its host; -1: $LOCAL_RANK, else
                               rank */
} hoist_group_options;

#define HOIST_GROUP_OPTIONS_INIT { sizeof(hoist_group_options), -1, 0, NULL, 0.0, -1 }

/* Joins the group: blocks until every rank is connected (or the timeout,
 * HOIST_GROUP_LOST naming the ranks missing).  A bad rank, world size or
 * rendezvous is HOIST_INVALID_ARGUMENT; two ranks claiming one number, or
 * ranks disagreeing on the world size, fail with HOIST_GROUP_MISMATCH.  A
 * world size of 1 needs no rendezvous.  Free with hoist_group_close(),
 * after every load made with it is closed. */
HOIST_EXPORT int hoist_group_create(const hoist_group_options *opts, hoist_group **out);
/* n ranks in this process (rank i is groups[i]), for one process driving n
 * devices: each rank's load runs on its own thread with its own runtime;
 * on CUDA their NCCL communicators are made together (ncclCommInitAll). */
HOIST_EXPORT int hoist_group_create_local(int n, hoist_group **groups);
/* Leaves the group (the others see this rank gone if they still load).
 * NULL is a no-op. */
HOIST_EXPORT void hoist_group_close(hoist_group *g);
HOIST_EXPORT int hoist_group_rank(const hoist_group *g);
HOIST_EXPORT int hoist_group_world_size(const hoist_group *g);
HOIST_EXPORT int hoist_group_local_rank(const hoist_group *g);
/* Progress of long calls (loads, manifests): bytes of the component (or
 * the whole) done and its total.  Called from the calling thread or a
 * worker; must be cheap and thread-safe. */
typedef void (*hoist_progress_fn)(void *user, const char *component, uint64_t done,
                                  uint64_t total);

/* ------------------------------------------------------------------------ */
/* Content manifests: the pinned hashes of a pipeline's files.
 *
 * A manifest records every weight file discovery selects (its path relative
 * to the pipeline folder, its size, the SHA-256 of the whole file, which is
 * the digest Hugging Face publishes for LFS files), and for a safetensors
 * file the XXH3-64 of its header and of every piece of every tensor (pieces
 * of piece_bytes from each tensor's first byte); and the size and SHA-256
 * of the JSON side files (model_index.json, config.json, shard indexes).
 * The file format (JSON, versioned) is documented in runtime/manifest.h.
 *
 * A load given a manifest (hoist_load_options.manifest) compares, before
 * anything is allocated, every weight file's name, size and header hash
 * with it, and its reader threads hash every piece they read, right after
 * reading it and before it is copied or converted: a difference fails the
 * load with HOIST_MANIFEST_MISMATCH naming the file (and the tensor), with
 * nothing left allocated.  hoist_manifest_check compares the whole-file
 * SHA-256s of the weight and side files.
 *
 * A hoist_manifest is immutable: it may be used by any number of loads and
 * threads at once, and must outlive the calls given it. */

typedef struct hoist_manifest hoist_manifest;

/* What hoist_manifest_check found for one file. */
typedef enum hoist_manifest_verdict {
  HOIST_MANIFEST_MATCH = 0,   /* size and SHA-256 as recorded */
  HOIST_MANIFEST_SIZE = 1,    /* its size differs (it was not hashed) */
  HOIST_MANIFEST_SHA256 = 2,  /* same size, another SHA-256 */
  HOIST_MANIFEST_MISSING = 3, /* recorded, but absent or unreadable (detail says) */
  HOIST_MANIFEST_EXTRA = 4    /* the pipeline's file, not in the manifest */
} hoist_manifest_verdict;

/* "match", "size", "sha256", "missing", "extra"; "unknown" for others. */
HOIST_EXPORT const char *hoist_manifest_verdict_name(hoist_manifest_verdict v);

typedef struct hoist_manifest_result {
  const char *path;            /* relative to the pipeline folder */
  int side_file;               /* 1: a JSON side file, 0: a weight file */
  hoist_manifest_verdict verdict;
  uint64_t size;               /* bytes found (0 when missing) */
  uint64_t expected_size;      /* bytes recorded (0 when extra) */
  const char *sha256;          /* 64 hex digits found; "" when not hashed */
  const char *expected_sha256; /* recorded; "" when extra */
  const char *detail;          /* one line saying why, for missing; else "" */
} hoist_manifest_result;

/* Called by hoist_manifest_check once per file, on the calling thread, in
 * the manifest's order (weight files, then side files), then for the extra
 * files.  r and its strings are valid during the call. */
typedef void (*hoist_manifest_result_fn)(void *user, const hoist_manifest_result *r);

typedef struct hoist_manifest_options {
  uint32_t struct_size;
  /* The pipeline's files as hoist_pipeline_options.variant selects them
   * (create; check: NULL takes the manifest's own variant). */
  const char *variant;
  uint32_t threads;            /* files hashed at once; 0: one per core, at most 16 */
  /* create: bytes each piece hash covers, a power of two from 64 KiB to
   * 1 GiB; 0: 1 MiB.  A load with the manifest needs its upload chunk
   * (hoist_config.chunk_bytes) and, when it converts, its conversion
   * slots to be multiples of it (the defaults are, for every piece size
   * up to 4 MiB). */
  uint64_t piece_bytes;
  /* Bytes hashed so far over all files and their total; component is the
   * file being read (relative path).  Called from the hashing threads, one
   * call at a time. */
  hoist_progress_fn progress;
  void *progress_user;
  const volatile int *cancel;  /* set non-zero: stops within a block, HOIST_CANCELLED */
  hoist_manifest_result_fn result; /* check: each file's verdict; NULL: none */
  void *result_user;
} hoist_manifest_options;

#define HOIST_MANIFEST_OPTIONS_INIT \
  { sizeof(hoist_manifest_options), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL }

/* Makes the manifest of the pipeline at path (any form hoist_pipeline_open
 * takes; its files as discovery selects them with opts->variant): reads
 * every weight file and side file once, several files at a time, with
 * large sequential reads (SHA-256, header and piece hashes in one pass).
 * opts may be NULL.  A file that changes while it is read is
 * HOIST_FILE_CHANGED; discovery's statuses as hoist_pipeline_open's.  On
 * success free *out with hoist_manifest_close(). */
HOIST_EXPORT int hoist_manifest_create(hoist_runtime *rt, const char *path,
                                       const hoist_manifest_options *opts, hoist_manifest **out);

/* Writes m to path atomically: a temporary beside it, renamed over it once
 * complete and flushed to disk.  A symbolic link at path is refused
 * (HOIST_INVALID_ARGUMENT), never written through; a folder there too.
 * HOIST_IO for a failed write (nothing is left behind). */
HOIST_EXPORT int hoist_manifest_save(hoist_runtime *rt, const hoist_manifest *m, const char *path);

/* Reads a manifest file: a regular file of at most 128 MiB, checked (JSON
 * nesting and value caps as for side files) before it is parsed; anything
 * malformed is HOIST_BAD_MANIFEST naming the file and the rule.  Free *out
 * with hoist_manifest_close(). */
HOIST_EXPORT int hoist_manifest_load(hoist_runtime *rt, const char *path, hoist_manifest **out);
HOIST_EXPORT void hoist_manifest_close(hoist_manifest *m);

/* Checks the files of the pipeline at path against m: the whole-file
 * SHA-256 of every weight and side file it records (hashed in parallel),
 * and discovery's weight files and the side files it lacks.  Every file's
 * verdict goes to opts->result.  HOIST_OK when all match; else
 * HOIST_MANIFEST_MISMATCH naming the first file that differs (or a
 * discovery status, when discovery itself fails and nothing differed
 * before); HOIST_CANCELLED, HOIST_NO_MEMORY. */
HOIST_EXPORT int hoist_manifest_check(hoist_runtime *rt, const hoist_manifest *m,
                                      const char *path, const hoist_manifest_options *opts);

/* One file of a manifest. */
typedef struct hoist_manifest_file_info {
  const char *path;     /* relative to the pipeline folder */
  int side_file;        /* 1: a JSON side file */
  uint64_t size;
  const char *sha256;   /* 64 hex digits */
  size_t tensor_count;  /* safetensors: tensors recorded; else 0 */
} hoist_manifest_file_info;

/* Weight files (sorted by path), then side files (sorted). */
HOIST_EXPORT size_t hoist_manifest_file_count(const hoist_manifest *m);
/* File i; NULL past the end.  Valid while m is open. */
HOIST_EXPORT const hoist_manifest_file_info *hoist_manifest_file(const hoist_manifest *m,
                                                                 size_t i);
HOIST_EXPORT uint64_t hoist_manifest_piece_bytes(const hoist_manifest *m);
/* The variant its files were selected with; NULL for the default files. */
HOIST_EXPORT const char *hoist_manifest_variant(const hoist_manifest *m);

/* ------------------------------------------------------------------------ */
/* Loading: admission, arenas, upload, residency. */

typedef struct hoist_loaded hoist_loaded;

typedef enum hoist_residency {
  HOIST_RESIDENT = 0, /* lives in device memory after the load */
  HOIST_OFFLOAD = 1,  /* kept in pinned host memory; uploaded on prepare */
  HOIST_FSDP = 2      /* placed by its FSDP owner; never moved by hoist */
} hoist_residency;

/* "resident", "offload", "fsdp". */
HOIST_EXPORT const char *hoist_residency_name(hoist_residency r);

typedef enum hoist_on_oom {
  HOIST_ON_OOM_FAIL = 0,   /* stop before the component, release everything */
  HOIST_ON_OOM_OFFLOAD = 1 /* that component (and later misfits) becomes offload */
} hoist_on_oom;

/* How tensor bytes get from the file into the staging ring. */
typedef enum hoist_read_mode {
  HOIST_READ_AUTO = 0, /* per file: cached pages are copied from the mapping, others O_DIRECT */
  HOIST_READ_PREAD = 1,
  HOIST_READ_MMAP = 2,     /* memcpy from the mapping (truncation caught, no SIGBUS) */
  HOIST_READ_DIRECT = 3,   /* O_DIRECT reads into aligned staging */
  HOIST_READ_REGISTER = 4  /* page-lock the mapping itself and copy from it (cuda only) */
} hoist_read_mode;

/* Filled when a load is refused or fails on a component. */
typedef struct hoist_load_failure {
  char component[128];  /* "" when the failure is not about one component */
  uint64_t need_bytes;  /* what the component needed (arena + scratch + headroom) */
  uint64_t free_bytes;  /* device free memory when it was checked */
} hoist_load_failure;

/* Tensor filters: selective loading.  A load (hoist_load_options) or a
 * load into the caller's buffers (hoist_load_into_options) may read only
 * some tensors, chosen by either or both of
 *   - tensors: a NULL-terminated list of glob patterns (fnmatch(3), flags
 *     0: case-sensitive, '*' and '?' match any character, '.' and '/'
 *     included, [..] classes, a backslash quotes the next character); a
 *     tensor is selected when some pattern matches its whole name.  A
 *     pattern that matches no tensor of the load is HOIST_INVALID_ARGUMENT
 *     naming it (as an offload name that names no component), so a typo
 *     never loads nothing quietly.
 *   - tensor_filter: called with tensor_filter_user, the component's name
 *     and the tensor's, once for each tensor of the components the load
 *     reads that the patterns selected (every tensor when there are none),
 *     in file order; returns > 0 to select the tensor, 0 to leave it out,
 *     < 0 to stop the load with HOIST_CANCELLED before anything is
 *     allocated.  It runs on the calling thread before the load takes the
 *     runtime's lock, so it may call hoist itself (close another load,
 *     read a pipeline).
 * With both, a tensor is selected when a pattern matches it and the
 * callback selects it; with neither, every tensor is.  An empty pattern
 * list (its first entry NULL) is HOIST_INVALID_ARGUMENT.  Unselected tensors
 * do not exist for the load: admission, arenas, hoist_loaded_info's bytes
 * and tensor_count, progress totals and lookups count only the selected
 * ones, and a component with none selected loads nothing.  The load order
 * stays the pipeline's (hoist_pipeline_open sizes components by all their
 * tensors). */
typedef int (*hoist_tensor_filter_fn)(void *user, const char *component, const char *tensor);

typedef struct hoist_load_options {
  uint32_t struct_size;
  hoist_progress_fn progress;
  void *progress_user;
  int verify;                 /* after the load, check every chunk on the device
                                 against the bytes read for it: a block checksum
                                 (kernels.h) taken by the reader threads, and the
                                 device's checksum of the same bytes (the arena, or
                                 the source chunk in the scratch before a conversion);
                                 HOIST_VERIFY_MISMATCH names the first bad tensor */
  hoist_read_mode read_mode;
  const char *offload;        /* comma list of names or groups (dit, text_encoder,
                                 image_encoder, vae, all) to keep offloaded */
  const char *fsdp;           /* same syntax: components marked FSDP-sharded; with a
                                 group of W ranks, each rank loads its FSDP2 shard
                                 of every tensor (hoist_loaded_tensor_shard) */
  int64_t headroom;           /* bytes kept free; -1: default (cuda: max(256 MiB,
                                 2 % of total); host: 0) */
  hoist_on_oom on_oom;
  /* When non-NULL and set non-zero, the load stops at the next chunk
   * boundary with HOIST_CANCELLED.  The flag is read from the loading
   * thread and the reader threads while the load runs, with relaxed atomic
   * loads.  Set it from another thread with an atomic store, e.g.
   * __atomic_store_n(&flag, 1, __ATOMIC_RELAXED) (lock-free, so a signal
   * handler may use it too), or from a signal handler with a plain store
   * to a volatile int of sig_atomic_t's size; a plain store from another
   * thread is a data race.  Reset it the same way, before the next load. */
  const volatile int *cancel;
  hoist_load_failure *failure; /* optional out: details of a refusal */
  /* Dtype conversion during the upload.  dtype: target of every floating
   * tensor, "bf16", "f16" or "f32" (case-insensitive; NULL or "" keeps every
   * dtype).  dtype_for: per-component targets that override it,
   * "NAME=DTYPE[,NAME=DTYPE..]" with NAME a component name or group (as in
   * offload) and DTYPE as above or "keep".  Floating tensors are converted
   * when the pair is supported (kernels.h); same-dtype and non-floating
   * tensors (ints, bool) are copied unchanged; a floating tensor with no
   * conversion to its target (F64->BF16, F8_E8M0->..) fails the load with
   * HOIST_UNSUPPORTED before anything is allocated.  Arenas are sized in the
   * target dtype.  Strings are borrowed for the call. */
  const char *dtype;
  const char *dtype_for;
  /* Device scratch ring that converted chunks land in before the conversion
   * kernel writes the arena; counted by admission.  0: 64 MiB. */
  uint64_t scratch_bytes;
  /* The manifest the pipeline's files must match (see "Content manifests"
   * above); borrowed for the call.  NULL: none.  Its piece size must
   * divide the chunk size and, when converting, the scratch slots
   * (HOIST_INVALID_ARGUMENT otherwise, before anything is allocated). */
  const hoist_manifest *manifest;
  /* Selective loading: see "Tensor filters" above.  Borrowed for the call. */
  const char *const *tensors;
  hoist_tensor_filter_fn tensor_filter;
  void *tensor_filter_user;
  /* Loading with other ranks (see "Groups"); NULL: this process alone,
   * world size 1.  Borrowed for the call. */
  hoist_group *group;
  /* Tensor-parallel plan: "NAME:GLOB=DIM[,NAME:GLOB=DIM..]" splits every
   * tensor of component NAME (a name or group, as in offload) whose name
   * matches the fnmatch pattern GLOB into world-size equal parts on
   * dimension DIM (negative counts from the last); each rank loads its
   * part.  A dimension the world size does not divide, a DIM past a
   * tensor's rank, or an entry matching no tensor is HOIST_INVALID_ARGUMENT
   * before anything is allocated; a scalar is never split (replicated).  A
   * component cannot be both in the plan and FSDP.  NULL or "": none. */
  const char *shard;
} hoist_load_options;

/* Every load function checks struct_size against the library's own
 * sizeof: a program built against another hoist.h (an older one, with
 * fewer fields) is refused with HOIST_INVALID_ARGUMENT saying both sizes,
 * never read past its struct.  Fill the struct with the initializer and
 * set the fields you need. */
#define HOIST_LOAD_OPTIONS_INIT \
  { sizeof(hoist_load_options), NULL, NULL, 0, HOIST_READ_AUTO, NULL, NULL, -1, \
    HOIST_ON_OOM_FAIL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL }

typedef struct hoist_loaded_info {
  const char *name;
  hoist_residency residency;
  uint64_t bytes;         /* tensor bytes from the files */
  uint64_t device_bytes;  /* device memory taken (arenas), 0 when offloaded */
  uint64_t device_begin;  /* first arena's address range, 0 when none */
  uint64_t device_end;
  double seconds;         /* wall time of this component's load */
  size_t tensor_count;
} hoist_loaded_info;

/* Loads every component of p in its load order.  Before each component the
 * device's free memory is read again and compared with its need plus the
 * headroom.  On any failure everything this load allocated is released and
 * *out is NULL; opts->failure (when given) says which component and what was
 * short.  On success free with hoist_loaded_close(), which releases every
 * arena and host copy.  p must outlive the result.  Loads on one runtime
 * serialize. */
HOIST_EXPORT int hoist_load_pipeline(hoist_runtime *rt, const hoist_pipeline *p,
                                     const hoist_load_options *opts, hoist_loaded **out);
HOIST_EXPORT void hoist_loaded_close(hoist_loaded *l);

HOIST_EXPORT size_t hoist_loaded_component_count(const hoist_loaded *l);
/* The component at position (load order); NULL past the end. */
HOIST_EXPORT const hoist_loaded_info *hoist_loaded_component(const hoist_loaded *l,
                                                                 size_t position);
HOIST_EXPORT double hoist_loaded_seconds(const hoist_loaded *l);
HOIST_EXPORT uint64_t hoist_loaded_total_bytes(const hoist_loaded *l);
HOIST_EXPORT const char *hoist_loaded_device(const hoist_loaded *l);

/* Threading of a loaded pipeline
 *   - Every call below on one l may be made from several threads at once:
 *     the accessors, hoist_loaded_tensor, hoist_loaded_hold/unhold,
 *     hoist_prepare_for_use and hoist_release_after_use.  Moves serialize
 *     with each other and with loads on the runtime; lookups read a
 *     component's device memory under l's lock, so they never see it half
 *     made or half freed.  hoist_loaded_close must not overlap any of them.
 *   - An address from hoist_loaded_tensor is valid while the caller holds
 *     its component (hoist_loaded_hold); without a hold, until that
 *     component is released or l is closed, which the caller must then
 *     order itself.  The device_bytes/device_begin/device_end of an
 *     offloaded component's hoist_loaded_info change when it is prepared or
 *     released: read them under a hold, or from the thread that moves it.
 *   - The other fields of hoist_loaded_info, and *info from
 *     hoist_loaded_tensor, never change while l is open. */

/* Device address of a tensor of a resident (or prepared) component; 0 with
 * HOIST_NOT_FOUND when the name is unknown, or HOIST_UNSUPPORTED when the
 * component is offloaded and not prepared.  *info (optional) describes the
 * tensor as it lies on the device: with a dtype option, the target dtype
 * and its byte size (offsets stay the file's); after a load with a group,
 * a split tensor's local part (its local shape and bytes; begin and end the
 * file range from its first byte to its last, see
 * hoist_loaded_tensor_shard); valid while l is open. */
HOIST_EXPORT int hoist_loaded_tensor(const hoist_loaded *l, const char *component,
                                     const char *tensor, uint64_t *device_addr,
                                     const hoist_tensor_info **info);

/* Tensor j (0 <= j < tensor_count) of the component at position, in name
 * order (strcmp), as hoist_loaded_tensor would find it by name: for
 * listing a component's tensors without reading its files again.  The
 * statuses and *device_addr / *info are hoist_loaded_tensor's (info is set
 * for an offloaded, unprepared component too); a position or j past the
 * end is HOIST_INVALID_ARGUMENT. */
HOIST_EXPORT int hoist_loaded_tensor_at(const hoist_loaded *l, size_t position, size_t j,
                                        uint64_t *device_addr, const hoist_tensor_info **info);

/* A tensor as this rank holds it after a load with a group: hoist_loaded_
 * tensor's *info has the local shape and bytes; this gives the rest.
 *   - FSDP (hoist_load_options.fsdp): split on dim 0 as
 *     torch.distributed.fsdp.fully_shard lays out parameters (torch.chunk):
 *     padded_length = ceil(global_shape[0] / world_size); rank r holds rows
 *     [r * padded_length, min((r + 1) * padded_length, global_shape[0])),
 *     which may be empty.  FSDP2 pads its own storage of a shard to
 *     padded_length rows; hoist does not allocate that padding: the local
 *     tensor is exactly its rows.
 *   - tensor parallel (hoist_load_options.shard): split on dim into
 *     world_size equal parts; padded_length = length.
 *   - not split (a scalar, a replicated tensor, world size 1): sharded 0,
 *     dim 0, offset 0, length and padded_length the whole of dim 0 (1 for
 *     a scalar).
 * global_shape has ndim entries and is valid while l is open.  Unknown
 * names are HOIST_NOT_FOUND, as for hoist_loaded_tensor. */
typedef struct hoist_shard_info {
  int sharded;                 /* 1: this rank holds a part of the tensor */
  uint32_t rank, world_size;
  uint32_t dim;                /* the dimension it is split on */
  uint64_t offset;             /* first index along dim this rank holds */
  uint64_t length;             /* indices along dim it holds (0: an empty shard) */
  uint64_t padded_length;      /* FSDP2's per-rank length of dim (see above) */
  uint32_t ndim;
  const uint64_t *global_shape;
} hoist_shard_info;

HOIST_EXPORT int hoist_loaded_tensor_shard(const hoist_loaded *l, const char *component,
                                           const char *tensor, hoist_shard_info *out);

/* Holds the device memory of the component at position: while a hold is
 * outstanding, hoist_release_after_use of that component refuses with
 * HOIST_BUSY, so addresses read from hoist_loaded_tensor stay valid (a
 * binding holds a component while it exports its tensors).  Holds count:
 * each hoist_loaded_hold needs its hoist_loaded_unhold.  A resident or FSDP
 * component may be held (nothing releases it anyway); an offloaded one only
 * while prepared, else HOIST_UNSUPPORTED.  A position past the end is
 * HOIST_INVALID_ARGUMENT.  hoist_loaded_unhold of a component not held, and
 * hoist_loaded_close with holds outstanding, are API misuse (they assert). */
HOIST_EXPORT int hoist_loaded_hold(hoist_loaded *l, size_t position);
HOIST_EXPORT void hoist_loaded_unhold(hoist_loaded *l, size_t position);

/* Residency moves.  prepare_for_use makes the component at position
 * resident on the local device (an offloaded one is uploaded into a fresh
 * arena on stream, which may be NULL for the default stream; a resident or
 * already prepared one returns at once).  release_after_use frees an
 * offloaded component's arena; HOIST_BUSY (nothing freed) while the
 * component is held.  For a resident or FSDP component both are no-ops
 * that return HOIST_OK and set *moved to 0 (an FSDP component's owner
 * places it).  *moved (optional) says whether bytes moved. */
HOIST_EXPORT int hoist_prepare_for_use(hoist_loaded *l, size_t position, void *stream,
                                       int *moved);
HOIST_EXPORT int hoist_release_after_use(hoist_loaded *l, size_t position, int *moved);

/* ------------------------------------------------------------------------ */
/* Loading into memory the caller owns.
 *
 * hoist_load_into streams one component's tensors straight into buffers
 * the caller allocated (the parameters of a model built empty on the
 * device, say): no arena, no hoist_loaded.  The upload is a load's: the
 * same reader threads, pinned ring, read modes, verification and device
 * conversion, each tensor's bytes landing at its target's address.  Device
 * memory beyond the destinations is only the conversion scratch (while a
 * tensor converts) and, with verify, the chunk hashes; both are admitted
 * against the free memory (with no headroom: the destinations are already
 * taken) and freed before the call returns.
 *
 * Why its own options struct: most of hoist_load_options says where a
 * load's tensors live and in which dtype (offload, fsdp, on_oom, headroom,
 * dtype, dtype_for), which here the destinations decide; sharing the
 * struct would leave those fields silently ignored or refused at run time.
 * hoist_load_into_options has only what applies, and every field it shares
 * with hoist_load_options has the same name, type and meaning. */

/* One destination: the tensor it receives and the memory it is. */
typedef struct hoist_load_target {
  const char *tensor;     /* the tensor's name in the component; borrowed */
  uint64_t addr;          /* its first byte: a device address of the runtime's
                             device (cuda: device memory this process can
                             reach on that card; host: a writable host pointer) */
  uint64_t nbytes;        /* the destination's size in bytes: exactly the
                             tensor's elements in dtype */
  hoist_dtype dtype;      /* the dtype the destination holds: the file's, or
                             another floating dtype the tensor converts to */
  uint32_t ndim;          /* with shape: the destination's shape ... */
  const uint64_t *shape;  /* ... which must equal the file's; NULL: not checked */
} hoist_load_target;

/* Called for a selected tensor of the component that no target names
 * (non-strict loads only), in name order, before any byte moves. */
typedef void (*hoist_missing_fn)(void *user, const char *tensor);

typedef struct hoist_load_into_options {
  uint32_t struct_size;
  /* 1 (default): every selected tensor of the component needs a target and
   * every target must name a selected tensor, else HOIST_INVALID_ARGUMENT
   * naming the first that does not.  0: tensors without a target are not
   * read (reported through missing) and targets naming no selected tensor
   * are left alone (reported through filled). */
  int strict;
  hoist_progress_fn progress; /* as in hoist_load_options */
  void *progress_user;
  int verify;                 /* as in hoist_load_options: every chunk checked
                                 where it landed (in the destinations) */
  hoist_read_mode read_mode;
  const volatile int *cancel;
  uint64_t scratch_bytes;     /* conversion scratch; 0: 64 MiB */
  /* Selective loading, as in hoist_load_options ("Tensor filters"). */
  const char *const *tensors;
  hoist_tensor_filter_fn tensor_filter;
  void *tensor_filter_user;
  /* Optional out: ntargets flags, filled[k] = 1 when targets[k] received its
   * tensor, 0 when it names no selected tensor (non-strict).  Written
   * before any byte moves, and kept on failure. */
  unsigned char *filled;
  hoist_missing_fn missing;   /* optional (see hoist_missing_fn) */
  void *missing_user;
  hoist_load_failure *failure; /* optional out: details of a refusal */
} hoist_load_into_options;

#define HOIST_LOAD_INTO_OPTIONS_INIT \
  { sizeof(hoist_load_into_options), 1, NULL, NULL, 0, HOIST_READ_AUTO, NULL, 0, NULL, NULL, \
    NULL, NULL, NULL, NULL, NULL }

/* Loads the selected tensors of p's component named component (NULL: p's
 * only component with safetensors weights, as a single .safetensors file
 * or a folder of weights has; HOIST_INVALID_ARGUMENT when p has several)
 * into targets[0..ntargets).  No component of that name is
 * HOIST_NOT_FOUND, one without safetensors weights HOIST_NO_WEIGHTS.  opts
 * NULL means the defaults (strict).
 *
 * Every check runs before any byte moves, and a failed one returns
 * HOIST_INVALID_ARGUMENT (unless said otherwise) naming the tensor:
 *   - names: a target naming no tensor of the component, or one the filter
 *     left out (strict), two targets naming one tensor, a selected tensor
 *     without a target (strict);
 *   - sizes and shapes: nbytes must be the tensor's element count in the
 *     target's dtype; a given shape must equal the file's;
 *   - dtypes: a target dtype other than the file's converts when both are
 *     floating and hoist converts that pair (hoist_load_options.dtype's
 *     pairs: F32, F16, BF16 among themselves, F8_E4M3/F8_E5M2 to those);
 *     any other pair is HOIST_UNSUPPORTED naming the tensor and both
 *     dtypes; a converting target's address must be aligned to its
 *     element size;
 *   - memory: destinations must not overlap, and each must be memory the
 *     device may write (cuda: device memory of the runtime's card in this
 *     process, as cudaPointerGetAttributes sees it: a pointer from another
 *     process, host memory or another card is refused; host: a writable
 *     mapping of this process);
 *   - admission: the scratch and hashes must fit in the free memory
 *     (HOIST_ADMISSION, with opts->failure filled).
 * A zero-size tensor is checked for its name and dtype only.
 *
 * Reading, cancelling (HOIST_CANCELLED at the next chunk) and verifying
 * (HOIST_VERIFY_MISMATCH naming the tensor) behave as in a load.  On any
 * failure, every byte hoist allocated is freed; the destinations may then
 * hold part of the bytes.  On CUDA the call returns after every copy and
 * conversion finished (its streams synchronized); work the caller queued
 * on the destinations must be finished before the call (hoist's streams
 * do not wait for the caller's).  Serializes with loads and residency
 * moves on rt. */
HOIST_EXPORT int hoist_load_into(hoist_runtime *rt, const hoist_pipeline *p,
                                 const char *component, const hoist_load_target *targets,
                                 size_t ntargets, const hoist_load_into_options *opts);

/* ------------------------------------------------------------------------ */
/* Attaching to a pipeline that `hoist serve` keeps resident in another
 * process.
 *
 * The server sends each arena's descriptor once (on a GPU the POSIX handle
 * of a CUDA virtual-memory allocation, on the host backend a memfd; a CUDA
 * IPC handle where the card cannot share by descriptor, or with
 * HOIST_CUDA_SHARE=ipc in the server's environment) and the tensor table;
 * the client maps every arena once and answers lookups from the table.
 * Shared weights are READ-ONLY: a client must never write through an
 * address it got here.  Descriptor mappings are read-only, so a write
 * faults in the client (on CUDA its context is lost) and the weights are
 * unchanged; with CUDA IPC handles nothing stops it, and every other
 * client would see the damage (the server's POST /v1/verify re-checks
 * every arena).  An arena
 * stays alive while any client holds it, so a reload on the server never
 * pulls weights from under an attached client.
 *
 * Errors: every call below records its detail for the calling thread,
 * read with hoist_last_error(NULL).  On CUDA the client's device is the
 * server's card (matched by PCI bus id), opened in this process's primary
 * context, which torch and cudart code of the process share. */

typedef struct hoist_attached hoist_attached;

typedef struct hoist_attach_options {
  uint32_t struct_size;
  int no_wait;            /* 1: fail at once with HOIST_NOT_READY while the server
                             still loads; 0: wait until it is ready */
  double timeout_seconds; /* longest wait for the server's answer; 0: no limit */
} hoist_attach_options;

#define HOIST_ATTACH_OPTIONS_INIT { sizeof(hoist_attach_options), 0, 0.0 }

/* Connects to the server's control socket (a Unix socket path), waits
 * until its pipeline is loaded and maps every resident component.  The
 * server's load failure comes back as its status (HOIST_ADMISSION, ...)
 * with its message; a refused uid is HOIST_DENIED; a server that stops is
 * HOIST_CLOSED.  On CUDA the server's card becomes the calling thread's
 * current device (as hoist_runtime_create makes it).  On success free with
 * hoist_detach().  hoist_attach is hoist_attach_ex with the defaults. */
HOIST_EXPORT int hoist_attach(const char *socket_path, hoist_attached **out);
HOIST_EXPORT int hoist_attach_ex(const char *socket_path, const hoist_attach_options *opts,
                                 hoist_attached **out);
/* Unmaps every arena, tells the server (which then drops this client's
 * references) and closes the connection.  NULL is a no-op.  Every address
 * and info pointer obtained from a is invalid afterwards. */
HOIST_EXPORT void hoist_detach(hoist_attached *a);

/* The same lookups as hoist_loaded_*: components in the server's load
 * order, with this process's addresses (device_begin/end: the first
 * arena's range here; seconds: the server's load time).  Thread-safe, but
 * not while hoist_attached_prepare/release run on the same component. */
HOIST_EXPORT size_t hoist_attached_component_count(const hoist_attached *a);
HOIST_EXPORT const hoist_loaded_info *hoist_attached_component(const hoist_attached *a, size_t i);
/* "host" or "cuda:N" as this process numbers the server's card. */
HOIST_EXPORT const char *hoist_attached_device(const hoist_attached *a);
/* The server's load this client holds: 1 for the first, +1 per reload. */
HOIST_EXPORT uint32_t hoist_attached_generation(const hoist_attached *a);
/* As hoist_loaded_tensor: the address in this process; HOIST_UNSUPPORTED
 * for an offloaded component not prepared by this client. */
HOIST_EXPORT int hoist_attached_tensor(const hoist_attached *a, const char *component,
                                       const char *tensor, uint64_t *device_addr,
                                       const hoist_tensor_info **info);

/* Tensor j (0 <= j < tensor_count of component i) in name order, as
 * hoist_attached_tensor would find it: for building a whole state dict. */
HOIST_EXPORT int hoist_attached_tensor_at(const hoist_attached *a, size_t i, size_t j,
                                          uint64_t *device_addr, const hoist_tensor_info **info);

/* Asks the server to make offloaded component i resident and maps it
 * (hoist_prepare_for_use on the server; it stays resident while any client
 * holds it prepared).  A resident or FSDP component returns HOIST_OK.
 * release unmaps it and drops this client's hold.  Not thread-safe with
 * other calls on a. */
HOIST_EXPORT int hoist_attached_prepare(hoist_attached *a, size_t i);
HOIST_EXPORT int hoist_attached_release(hoist_attached *a, size_t i);

/* What the server said since the last call, without blocking: a mask of
 * HOIST_ATTACHED_* bits.  The descriptor (for poll/epoll) becomes readable
 * when there is news. */
#define HOIST_ATTACHED_SHUTDOWN 1u /* the server is stopping: detach within its drain time */
#define HOIST_ATTACHED_RELOADED 2u /* a newer generation is ready: attach again to use it */
#define HOIST_ATTACHED_CLOSED 4u   /* the connection is gone */
HOIST_EXPORT int hoist_attached_poll(hoist_attached *a, unsigned *events);
HOIST_EXPORT int hoist_attached_fd(const hoist_attached *a);

#ifdef __cplusplus
}
#endif
#endif /* HOIST_H */
