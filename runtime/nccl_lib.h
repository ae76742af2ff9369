/* nccl_lib.h — NCCL, loaded at run time (nccl_lib.c): hoist builds and runs
 * without it, and only loads with several GPUs need it.  The library is
 * dlopen'ed from, in order: $HOIST_NCCL_LIBRARY (a file, or a folder
 * holding libnccl.so.2); the dynamic linker's own search for libnccl.so.2
 * (LD_LIBRARY_PATH, the system's NCCL); the CUDA toolkit's lib64
 * ($CUDA_HOME, $CUDA_PATH, the toolkit hoist was built with,
 * /usr/local/cuda); the copy torch's nvidia-nccl wheel installs,
 * <site-packages>/nvidia/nccl/lib/libnccl.so.2, in the site-packages of
 * $VIRTUAL_ENV, $CONDA_PREFIX, the python3 found on PATH and the system's
 * (/usr/local/lib/python3.*, /usr/lib/python3.*, ~/.local).  NVLink
 * multicast stays off: NCCL_NVLS_ENABLE=0 is set before the first
 * communicator unless the environment sets it.  Not installed; nothing
 * here is exported. */
#ifndef HOIST_NCCL_LIB_H
#define HOIST_NCCL_LIB_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hoist__nccl hoist__nccl;

/* Loads NCCL once per process.  HOIST_NO_NCCL naming every place tried
 * when it is not found (or when this build has no NCCL support).  *path
 * (optional) the file loaded, *version NCCL's version code. */
int hoist__nccl_load(const char **path, int *version);

/* A unique id for a new communicator (rank 0 makes it, every rank gets it). */
int hoist__nccl_unique_id(unsigned char *id, size_t len);

/* This rank's communicator on CUDA device `device`: non-blocking, so a
 * rank that never joins (or dies) costs the others at most timeout
 * seconds (or until *stop is set), never a hang.  HOIST_GROUP_LOST then. */
int hoist__nccl_init_rank(int device, int world, int rank, const unsigned char *id, size_t len,
                          double timeout, const volatile int *stop, hoist__nccl **out);
/* n communicators of one process, one per device (ncclCommInitAll). */
int hoist__nccl_init_all(int n, const int *devices, hoist__nccl **out);

/* A broadcast of bytes at the device address addr from root, in place. */
typedef struct hoist__nccl_piece {
  uint64_t addr, bytes;
  int root;
} hoist__nccl_piece;

/* Enqueues the pieces as one NCCL group on stream and waits for them:
 * polling the stream, NCCL's asynchronous error, *stop and the timeout
 * (plus a second per GB of pieces); on
 * an error or a timeout the communicator is aborted (it is unusable
 * afterwards) and the status is HOIST_GROUP_LOST (a remote rank failed)
 * or HOIST_DEVICE. */
int hoist__nccl_broadcast_wait(hoist__nccl *c, const hoist__nccl_piece *pieces, size_t n,
                               void *stream, double timeout, const volatile int *stop);

/* Destroys c (aborts it when abort is set, or when it already failed). */
void hoist__nccl_free(hoist__nccl *c, int abort);

#endif /* HOIST_NCCL_LIB_H */
