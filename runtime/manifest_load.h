/* manifest_load.h — a load held to a content manifest
 * (hoist_load_options.manifest; manifest_load.c): the checks before
 * anything is allocated, and the per-chunk check the upload engine's
 * reader threads run on the bytes they read.  Not installed; nothing here
 * is exported. */
#ifndef HOIST_MANIFEST_LOAD_H
#define HOIST_MANIFEST_LOAD_H

#include "engine.h"
#include "placement.h"

typedef struct hoist__manifest_run hoist__manifest_run;

/* Phase "manifest" of a load, before anything is allocated: the piece size
 * divides the chunk size and, when slot is not 0 (a component converts),
 * the conversion slot size (else HOIST_INVALID_ARGUMENT); every file of
 * the n components cs (load order) is a weight file the manifest records,
 * with its size, its header's hash and its tensor table, and every
 * safetensors file it records is among them (else
 * HOIST_MANIFEST_MISMATCH naming the file).  *out serves the jobs; close
 * it with hoist__manifest_run_close (NULL is fine). */
int hoist__manifest_run_open(hoist_runtime *rt, const hoist_manifest *m, const hoist_pipeline *p,
                             const loaded_component *cs, size_t n, uint64_t chunk, uint64_t slot,
                             hoist__manifest_run **out);
void hoist__manifest_run_close(hoist__manifest_run *run);

/* Sets job->check (and check_user) for the job of component position c,
 * built from c: the readers then hash every piece of every chunk they read
 * and fail the job with HOIST_MANIFEST_MISMATCH naming the file and the
 * tensor at the first piece that differs.  Undo with
 * hoist__manifest_job_close (a job without a check is fine). */
int hoist__manifest_job_open(hoist__manifest_run *run, size_t position, const loaded_component *c,
                             upload_job *job);
void hoist__manifest_job_close(upload_job *job);

#endif /* HOIST_MANIFEST_LOAD_H */
