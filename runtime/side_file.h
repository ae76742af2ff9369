/* side_file.h — reading discovery's JSON side files (side_file.c):
 * model_index.json, config.json and *.safetensors.index.json, under caps
 * that real files never approach.  Not installed; nothing here is
 * exported. */
#ifndef HOIST_SIDE_FILE_H
#define HOIST_SIDE_FILE_H

#include "internal.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* A kind of side file: its name in messages, its size cap, and the status
 * of a file that breaks a rule. */
typedef struct hoist__side_kind {
  const char *name;
  uint64_t max_bytes;
  int status;
} hoist__side_kind;

/* model_index.json (1 MiB, HOIST_BAD_PIPELINE), config.json (1 MiB,
 * HOIST_BAD_PIPELINE), a *.safetensors.index.json (64 MiB,
 * HOIST_BAD_INDEX). */
extern const hoist__side_kind hoist__side_model_index;
extern const hoist__side_kind hoist__side_config;
extern const hoist__side_kind hoist__side_shard_index;

/* Reads and parses the side file at path under the rules of side_file.c.
 * A broken rule is kind->status, except that a file that is not there is
 * HOIST_NOT_FOUND, an unusable path HOIST_BAD_PATH, a read error HOIST_IO
 * and out of memory HOIST_NO_MEMORY.  *content_error (may be NULL) tells a
 * file whose text is wrong (not JSON, bad UTF-8, duplicate keys) from one
 * refused for what it is (type, caps) or an I/O or memory failure.  *out
 * is the caller's (cJSON_Delete). */
int hoist__side_json_read(hoist_runtime *rt, const char *path, const hoist__side_kind *kind,
                          cJSON **out, bool *content_error);

#endif /* HOIST_SIDE_FILE_H */
