/* fuzz_safetensors.c — libFuzzer entry for the strict safetensors reader.
 * Each input is a whole file: it is written to a memfd and opened through
 * /proc/self/fd, then, when accepted, its tensor table, lookup index,
 * metadata, pread path and mapping are walked and checked for consistency
 * before the file is closed (leaks are caught by ASan's leak checker). */
#include "hoist.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "fuzz_safetensors: invariant failed: %s\n", what);
    abort();
  }
}

static void walk(const hoist_file *f) {
  uint64_t at = 0;
  const unsigned char *map = hoist_file_mapping(f);
  check(hoist_file_data_offset(f) + hoist_file_data_bytes(f) == hoist_file_size(f), "sizes");
  for (size_t i = 0; i < hoist_file_tensor_count(f); i++) {
    const hoist_tensor_info *t = hoist_file_tensor(f, i);
    check(t != NULL && t->begin == at && t->end >= t->begin, "contiguous table");
    check(t->nbytes == t->end - t->begin, "nbytes");
    check(t->nbytes * 8 == t->nelements * hoist_dtype_bits(t->dtype), "size from shape");
    check(hoist_file_find(f, t->name) == t, "lookup");
    at = t->end;
    if (t->nbytes != 0) {
      unsigned char first, last;
      uint64_t off = hoist_file_data_offset(f) + t->begin;
      check(hoist_file_read(f, off, &first, 1) == HOIST_OK, "read first");
      check(hoist_file_read(f, off + t->nbytes - 1, &last, 1) == HOIST_OK, "read last");
      check(map[off] == first && map[off + t->nbytes - 1] == last, "mapping agrees");
    }
  }
  check(at == hoist_file_data_bytes(f), "data length");
  check(hoist_file_tensor(f, hoist_file_tensor_count(f)) == NULL, "past the end");
  for (size_t i = 0; i < hoist_file_metadata_count(f); i++)
    check(hoist_file_metadata_key(f, i) != NULL && hoist_file_metadata_value(f, i) != NULL,
          "metadata");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += (size_t)n;
  }
  if (done == size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    hoist_file *f = NULL;
    int rc = hoist_file_open(NULL, path, &f);
    check((rc == HOIST_OK) == (f != NULL), "status and handle agree");
    check(rc == HOIST_OK || strchr(hoist_last_error(NULL), '\n') == NULL, "one-line message");
    if (f != NULL) walk(f);
    hoist_file_close(f);
  }
  close(fd);
  return 0;
}
