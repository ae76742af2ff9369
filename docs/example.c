/* example.c — the README's library example: load a pipeline, find one
 * tensor's device address, release everything.  Built and run by ctest
 * (readme_example) against the public header and the shared library only.
 *
 *   example PIPELINE COMPONENT TENSOR [DEVICE]      DEVICE: cuda:0 (default) or host */
#include <hoist.h>

#include <inttypes.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PIPELINE COMPONENT TENSOR [DEVICE]\n", argv[0]);
    return 2;
  }
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.device = argc > 4 ? argv[4] : "cuda:0";
  hoist_runtime *rt = NULL;
  if (hoist_runtime_create(&cfg, &rt) != HOIST_OK) {
    fprintf(stderr, "%s\n", hoist_last_error(NULL));
    return 1;
  }

  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  hoist_load_options opts = HOIST_LOAD_OPTIONS_INIT;
  opts.verify = 1; /* check every chunk on the device against the file */
  int rc = hoist_pipeline_open(rt, argv[1], NULL, &p);
  if (rc == HOIST_OK) rc = hoist_load_pipeline(rt, p, &opts, &l);

  uint64_t addr = 0;
  const hoist_tensor_info *t = NULL;
  if (rc == HOIST_OK) rc = hoist_loaded_tensor(l, argv[2], argv[3], &addr, &t);
  if (rc == HOIST_OK)
    printf("%s/%s: %s, %" PRIu64 " bytes at device address 0x%" PRIx64 "\n", argv[2], argv[3],
           hoist_dtype_name(t->dtype), t->nbytes, addr);
  else
    fprintf(stderr, "%s: %s\n", hoist_status_name(rc), hoist_last_error(rt));

  hoist_loaded_close(l); /* frees every arena and host copy; NULL is fine */
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
  return rc == HOIST_OK ? 0 : 1;
}
