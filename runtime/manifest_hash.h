/* manifest_hash.h — reading whole files once to hash them, several files at
 * a time (manifest_hash.c): the SHA-256 of every file and, for a
 * safetensors file being recorded, the XXH3 of its header and of every
 * piece of its tensors in the same pass.  hoist_manifest_create and
 * hoist_manifest_check use it.  Not installed; nothing here is exported. */
#ifndef HOIST_MANIFEST_HASH_H
#define HOIST_MANIFEST_HASH_H

#include "internal.h"

/* One file to hash. */
typedef struct hoist__hash_item {
  const char *path;       /* opened read-only; a regular file (links followed) */
  const char *label;      /* for progress: the path relative to the pipeline */
  /* Record: the file as discovery opened it.  The file hashed must be that
   * very file (same inode and size), and its header and tensor pieces are
   * hashed too.  NULL: SHA-256 only. */
  const hoist_file *st;
  /* Check: the size the file must have, or UINT64_MAX.  A file of another
   * size is not read (size is set, status HOIST_OK, sized_out 1). */
  uint64_t want_size;
  /* Out. */
  int status;             /* HOIST_OK, or why this file could not be hashed */
  char detail[HOIST_ERROR_MAX]; /* the message of a failed status */
  int sized_out;          /* want_size differed: not hashed */
  uint64_t size;
  unsigned char sha256[32];
  uint64_t header_xxh3;   /* st only */
  uint64_t *pieces;       /* st only: every tensor's pieces in tensor order (malloc'd) */
  size_t npieces;
} hoist__hash_item;

typedef struct hoist__hash_opts {
  uint64_t piece_bytes;        /* for st items */
  unsigned threads;            /* 0: one per core, at most 16 */
  hoist_progress_fn progress;  /* (user, label, done, total) over all items */
  void *progress_user;
  const volatile int *cancel;
} hoist__hash_opts;

/* Hashes items[0, n), largest first, on up to o->threads threads.  Each
 * item gets its own status; the call returns HOIST_OK when every item ran
 * (whatever its status), HOIST_CANCELLED when cancelled, HOIST_NO_MEMORY
 * when no thread could start. */
int hoist__hash_files(hoist_runtime *rt, hoist__hash_item *items, size_t n,
                      const hoist__hash_opts *o);
/* Frees what the items hold (their pieces). */
void hoist__hash_items_free(hoist__hash_item *items, size_t n);

#endif /* HOIST_MANIFEST_HASH_H */
