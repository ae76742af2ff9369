/* testutil.h — what the Check suites share: paths of the test
 * vectors and a scratch folder, file writing, running a suite, and the GPU
 * skip line.  Paths are found from the test binary's own location
 * (<build>/tests/NAME), so a build folder copied to another machine still
 * runs its suites. */
#ifndef HOIST_TESTUTIL_H
#define HOIST_TESTUTIL_H

#include "hoist.h"

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* The folders of test vectors, each a tree of safetensors files with an
 * expect.json describing every tensor.  Set 0 is the one the build makes
 * (tests/vectors/make_vectors.py, run by the ctest fixture make_vectors):
 * $HOIST_VECTORS_DIR, else <build>/vectors; the test aborts with a line
 * saying so when it is missing.  Set 1 is optional, extra cases:
 * $HOIST_SHARED_DIR/vectors (default: the HOIST_SHARED_DIR the build was
 * configured with) when that folder exists.  Writes the folder's path into
 * buf and returns it, or returns NULL when set i does not exist. */
const char *tu_vector_dir(size_t i, char *buf, size_t size);
/* "<set 0>/<rel>" in the caller's buffer. */
const char *tu_vector_path(const char *rel, char *buf, size_t size);
/* A fresh empty scratch folder for one test: <build>/test-tmp/<name>.<pid>
 * ($HOIST_TEST_TMP instead of <build>/test-tmp when set). */
const char *tu_scratch_dir(const char *name, char *buf, size_t size);
/* Writes len bytes to path (truncating); aborts the test on failure. */
void tu_write_file(const char *path, const void *data, size_t len);
/* Writes a safetensors file: the header JSON text as given (no padding
 * added) followed by data_len bytes of data (pattern-filled when data is
 * NULL). */
void tu_write_safetensors(const char *path, const char *header_json, const void *data,
                          size_t data_len);
/* Reads a whole file into malloc'd memory; *len gets its size. */
void *tu_read_file(const char *path, size_t *len);
/* Runs the Check suite and returns the process exit code. */
int tu_run_suite(Suite *s);
/* Creates a host runtime with the given capacity (0: RAM); aborts on failure. */
hoist_runtime *tu_host_runtime(uint64_t capacity);
/* A runtime on cuda:0; aborts the test on failure (call tu_gpu_available
 * first). */
hoist_runtime *tu_cuda_runtime(void);
/* Whether a CUDA device is usable; prints "SKIP: <why>" once when not. */
int tu_gpu_available(void);

#endif
