/* verify.h — checking an uploaded job against what was read
 * (hoist_load_options.verify).  Not installed; nothing here is exported. */
#ifndef HOIST_VERIFY_H
#define HOIST_VERIFY_H

#include "engine.h"
#include "placement.h"

/* After hoist__engine_run of c's job with verify set: HOIST_OK when every
 * chunk on the device (or in the host copy) hashes as the readers hashed
 * its bytes, and every converted chunk's output as it did right after its
 * conversion; else HOIST_VERIFY_MISMATCH naming the first bad chunk's
 * tensor and, when reading it back finds it, the byte (plain) or element
 * (converted) and the file.  Other statuses: a device or file error while
 * checking. */
int hoist__upload_job_verify(hoist_runtime *rt, hoist__engine *e, const loaded_component *c,
                      const upload_job *job);

#endif /* HOIST_VERIFY_H */
