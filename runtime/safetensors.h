/* safetensors.h — internals of the strict safetensors reader that other
 * runtime modules (upload engine, loader) may use beyond hoist.h. */
#ifndef HOIST_SAFETENSORS_H
#define HOIST_SAFETENSORS_H

#include "internal.h"

/* The largest header the reader accepts, as in the reference reader. */
#define HOIST_MAX_HEADER_BYTES UINT64_C(100000000)

#include <sys/stat.h>

/* The read-only descriptor of an open file (O_RDONLY|O_CLOEXEC|O_NONBLOCK,
 * a regular file), owned by f: do not close it.  Usable for pread/O_DIRECT
 * reopen decisions from any thread while f is open. */
int hoist__file_fd(const hoist_file *f);

/* The hash of a name the reader's lookup index uses (well spread in its
 * low bits, so good for open addressing with a power-of-two table). */
size_t hoist__hash_str(const char *s);

/* ---- Opening files.  Every file hoist reads (safetensors files and the
 * JSON side files of discovery) is opened through hoist__open_regular. */

/* "a FIFO", "a socket", "a character device", "a folder", ... for
 * messages. */
const char *hoist__file_type_name(mode_t mode);

/* Opens path read-only (O_CLOEXEC | O_NONBLOCK | O_NOCTTY: a FIFO cannot
 * block the open, nor a terminal become the controlling one) after
 * checking with stat, and again with fstat, that it is a regular file
 * (symbolic links followed).  On success *fd is the open descriptor
 * (the caller closes it) and *st its fstat; on failure *fd is -1 and the
 * message names the path (shown) and why: type_status for a FIFO,
 * socket, device or folder (HOIST_BAD_PATH, or the caller's "bad input"
 * status), else hoist__path_status of the errno. */
int hoist__open_regular(hoist_runtime *rt, const char *path, int type_status, int *fd,
                       struct stat *st);

#endif /* HOIST_SAFETENSORS_H */
