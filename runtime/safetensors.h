/* safetensors.h — internals of the strict safetensors reader that other
 * runtime modules (upload engine, loader) may use beyond hoist.h. */
#ifndef HOIST_SAFETENSORS_H
#define HOIST_SAFETENSORS_H

#include "internal.h"

/* The largest header the reader accepts, as in the reference reader. */
#define HOIST_MAX_HEADER_BYTES UINT64_C(100000000)

/* The read-only descriptor of an open file (O_RDONLY|O_CLOEXEC), owned by
 * f: do not close it.  Usable for pread/O_DIRECT reopen decisions from any
 * thread while f is open. */
int hoist__file_fd(const hoist_file *f);

/* s made fit for a one-line message in buf of size bytes (size >= 4):
 * control characters become '?', a longer text is cut with "...".
 * Returns buf.  For every name or text that comes from a file or from
 * another process. */
const char *hoist__show_text(const char *s, char *buf, size_t size);

#endif /* HOIST_SAFETENSORS_H */
