/* internal.h — what every runtime module shares: hoist_tools.h (error
 * recording, checked size arithmetic, the internals the CLI uses) and
 * logging.  Not installed; nothing here is exported.
 *
 * Dependency order.  Each unit calls only units above it in this list, as
 * libuv's units build on uv-common.c, so no unit imports one that imports
 * it back (a header of plain types, like runtime.h's struct, may be read
 * from anywhere):
 *   text.c,           one-line names and paths in messages, UTF-8;
 *   status.c          status names, per-thread error details, logging
 *   dtype.c           the dtype table and its rules: names, floating dtypes,
 *                     conversion pairs, targets, a tensor's device dtype
 *   convert_ref.c,    the CPU definitions of conversion and of the block
 *   checksum_host.c   checksum (kernels/: the same on the device)
 *   json_lexer.c,     the strict safetensors reader
 *   safetensors.c
 *   order.c           component names: classifiers, load order, selection
 *   names.c           string lists, name sets, path joining for discovery
 *   side_file.c       JSON side files under caps
 *   shard_rules.c     shard indexes and the rules a component's files keep
 *   discover.c,       pipelines: components, files, sizes, order (a
 *   discover_file.c   folder, or one .safetensors file)
 *   filter.c          tensor filters: which tensors a load reads
 *   manifest.c,       content manifests: the format, making one (every file
 *   manifest_hash.c,  hashed once, several at a time), checking whole files
 *   manifest_make.c,  against one
 *   manifest_check.c
 *   shard.c,          what a rank of a group loads of each tensor: FSDP2 and
 *   shard_plan.c      tensor-parallel splits, their file runs, the plan
 *   group.c           ranks of a group: rendezvous, exchanges, stops, liveness
 *   host_maps.c,      the device backends, and the one that picks them
 *   device_host.c,    (host_maps.c: which host memory is writable)
 *   device_cuda.c,
 *   device.c
 *   nccl_lib.c,       NCCL loaded at run time, and a group's communicator
 *   nccl_group.c
 *   sigbus_guard.c,   how bytes leave a file
 *   file_read.c
 *   engine.c          the upload engine: readers, pinned ring, streams
 *   placement.c       a component's tensors in its span, and its arenas
 *   targets.c         a component placed at the caller's buffers
 *   admission.c       need + headroom <= free, and the preflight
 *   shard_job.c,      a component's upload as a chunk list (a split tensor's
 *   job.c             runs gathered; a replicated component's own range)
 *   group_load.c      a load's votes across the ranks, the broadcasts
 *   verify.c          checking an upload against what was read
 *   manifest_load.c   a load held to a manifest: files before allocation,
 *                     pieces in the readers' pass (the engine's check hook)
 *   loaded.c,         a loaded pipeline: accessors, lookups, holds, close,
 *   shard_view.c      and which part of a tensor a rank holds
 *   load.c            a load, phase by phase
 *   load_into.c       a load into the caller's buffers
 *   residency.c       moves after a load: prepare, release
 *   runtime.c         a runtime: its device and its engine
 *   loaded_view.c,    sharing a load with other processes: what a server
 *   share_wire.c,     exports of a load, the wire format's codecs, the
 *   share_verify.c,   fingerprint of shared weights, and the client,
 *   attach.c          hoist_attach
 * docs/design.md, "Dependency order", draws the same list by layer. */
#ifndef HOIST_INTERNAL_H
#define HOIST_INTERNAL_H

#include "hoist.h"
#include "hoist_tools.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

/* Records a detail message, as hoist__fail (hoist_tools.h) does. */
int hoist__failv(hoist_runtime *rt, int status, const char *fmt, va_list ap);

/* The calling thread's most recent hoist__fail message, whatever runtime it
 * went to ("" when none).  A worker thread that fails for a caller copies it
 * out before it ends: the slot is the thread's own and dies with it. */
const char *hoist__thread_last_error(void);

/* HOIST_OK when an options struct's struct_size (given) is this library's
 * sizeof (size), else HOIST_INVALID_ARGUMENT saying both: a program built
 * against another hoist.h is refused, never read past its struct.  type
 * names the struct ("hoist_load_options"). */
int hoist__check_struct_size(hoist_runtime *rt, const char *type, uint32_t given, size_t size);

/* Logs through rt's callback when level is enabled; rt may be NULL. */
void hoist__log(hoist_runtime *rt, hoist_log_level level, const char *fmt, ...)
    HOIST_PRINTF(3, 4);

#endif /* HOIST_INTERNAL_H */
