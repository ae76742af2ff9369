/* file_read.h — how bytes leave a file during a load.  Each file of a
 * component is reopened, checked to be the very file whose header was read
 * (same inode, same size), and given a read mode: pread, a copy from its
 * mapping under the SIGBUS guard, O_DIRECT into aligned staging, or the
 * mapping itself page-locked for the copy engine.  The upload engine reads
 * chunks through it and verification reads bytes back through it.  Not
 * installed; nothing here is exported. */
#ifndef HOIST_FILE_READ_H
#define HOIST_FILE_READ_H

#include "device.h"

/* O_DIRECT's alignment of offsets, lengths and buffers. */
#define HOIST_DIRECT_ALIGN 4096u

/* One file of a job, with the read strategy chosen for it. */
typedef struct upload_file {
  const hoist_file *file;
  int fd;                /* buffered read descriptor */
  int fd_direct;         /* O_DIRECT descriptor, -1 when unused */
  hoist_read_mode mode;  /* resolved: PREAD, MMAP, DIRECT or REGISTER */
  const unsigned char *map; /* the file's mapping */
  int registered;        /* REGISTER: the mapping is page-locked */
} upload_file;

/* Opens descriptors and picks each file's read mode (AUTO: a file whose
 * pages are mostly cached is copied from its mapping, others are read with
 * O_DIRECT).  Close with hoist__upload_files_close. */
int hoist__upload_files_open(hoist_runtime *rt, const hoist_file *const *files, size_t n,
                      hoist_read_mode mode, upload_file **out);
void hoist__upload_files_close(hoist_runtime *rt, upload_file *files, size_t n);

/* Copies len bytes of f at absolute offset off into dst; truncation of the
 * file is HOIST_FILE_CHANGED (a SIGBUS on the mapping is caught). */
int hoist__upload_read(hoist_runtime *rt, const upload_file *uf, uint64_t off, void *dst, size_t len);

/* O_DIRECT read of [off, off + len) into slot (HOIST_DIRECT_ALIGN-aligned,
 * with room for the aligned superset: len + 2 * HOIST_DIRECT_ALIGN); *data
 * points at the wanted bytes inside it. */
int hoist__upload_read_direct(hoist_runtime *rt, const upload_file *uf, uint64_t off, size_t len,
                       unsigned char *slot, unsigned char **data);

/* SIGBUS-guarded copy from a file mapping (sigbus_guard.c): HOIST_OK, or
 * HOIST_FILE_CHANGED when the mapping lost pages under it (the file was
 * truncated).  With hash non-NULL the bytes are hashed in the same pass and
 * *hash is hoist__upload_chunk_hash(src, n).  A load holds the guard (acquire,
 * release) while it copies from mappings. */
int hoist__guarded_copy(void *dst, const void *src, size_t n, uint64_t *hash);
void hoist__sigbus_guard_acquire(void);
void hoist__sigbus_guard_release(void);

#endif /* HOIST_FILE_READ_H */
