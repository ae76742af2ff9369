/* test_single_file.c — one .safetensors file as a pipeline: a single
 * component named after the file (library and class unknown, path the
 * file), sized from its header like a folder's, loaded with every tensor
 * bit-identical; links are followed, other files and bad headers refused
 * with the reader's status naming the file; and the CLI's `hoist plan` /
 * `hoist load FILE`, with --tensors. */
#include "testutil.h"

#include "device.h"
#include "pipeline_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[1024];

static const uint64_t sizes[] = {70000, 1, 4096, 0, 333, 123457};

static void write_model(const char *name, char *path, size_t size) {
  tu_scratch_dir(name, dir, sizeof dir);
  snprintf(path, size, "%s/model.safetensors", dir);
  fixture_write_file(path, "layer", sizes, 6, 11);
}

START_TEST(a_file_is_a_one_component_pipeline) {
  char path[1200];
  write_model("single_open", path, sizeof path);
  hoist_runtime *rt = tu_host_runtime(0);
  hoist_pipeline *p = NULL;
  ck_assert_msg(hoist_pipeline_open(rt, path, NULL, &p) == HOIST_OK, "%s", hoist_last_error(rt));
  ck_assert_str_eq(hoist_pipeline_path(p), path);
  ck_assert_uint_eq(hoist_pipeline_component_count(p), 1);
  const hoist_component_info *c = hoist_pipeline_component(p, 0);
  ck_assert_ptr_eq(c, hoist_pipeline_ordered(p, 0));
  ck_assert_str_eq(c->name, "model");
  ck_assert_str_eq(c->load_name, "model");
  ck_assert_ptr_null(c->library);
  ck_assert_ptr_null(c->class_name);
  ck_assert_str_eq(c->path, path);
  ck_assert_int_eq(c->folder_missing, 0);
  ck_assert_uint_eq(c->file_count, 1);
  ck_assert_str_eq(c->files[0], path);
  ck_assert_int_eq(c->has_size, 1);
  ck_assert_uint_eq(c->inferred_bytes, 70000 + 1 + 4096 + 333 + 123457);
  ck_assert_uint_eq(c->tensor_count, 6);
  ck_assert_int_eq(c->risk_rank, 10);
  ck_assert_uint_eq(c->position, 0);

  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, NULL, &l), HOIST_OK);
  hoist_file *f = NULL;
  ck_assert_int_eq(hoist_file_open(rt, path, &f), HOIST_OK);
  for (size_t i = 0; i < hoist_file_tensor_count(f); i++) {
    const hoist_tensor_info *t = hoist_file_tensor(f, i);
    uint64_t addr = 0;
    ck_assert_int_eq(hoist_loaded_tensor(l, "model", t->name, &addr, NULL), HOIST_OK);
    unsigned char *want = malloc(t->nbytes + 1);
    ck_assert_int_eq(hoist_file_read(f, hoist_file_data_offset(f) + t->begin, want, t->nbytes),
                     HOIST_OK);
    ck_assert_msg(memcmp((const void *)(uintptr_t)addr, want, t->nbytes) == 0, "%s", t->name);
    free(want);
  }
  ck_assert_uint_eq(hoist_loaded_total_bytes(l), c->inferred_bytes);
  hoist_file_close(f);
  hoist_loaded_close(l);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(names_links_and_dtype) {
  char path[1200], other[1200], link[1200];
  write_model("single_names", path, sizeof path);
  hoist_runtime *rt = tu_host_runtime(0);
  hoist_pipeline *p = NULL;
  /* A variant-looking name keeps its dots; a link is named by itself. */
  snprintf(other, sizeof other, "%s/diffusion_pytorch_model.fp16.safetensors", dir);
  ck_assert_int_eq(rename(path, other), 0);
  ck_assert_int_eq(hoist_pipeline_open(rt, other, NULL, &p), HOIST_OK);
  ck_assert_str_eq(hoist_pipeline_component(p, 0)->name, "diffusion_pytorch_model.fp16");
  hoist_pipeline_close(p);
  snprintf(link, sizeof link, "%s/vae.safetensors", dir);
  ck_assert_int_eq(symlink(other, link), 0);
  ck_assert_int_eq(hoist_pipeline_open(rt, link, NULL, &p), HOIST_OK);
  ck_assert_str_eq(hoist_pipeline_component(p, 0)->name, "vae");
  ck_assert_int_eq(hoist_pipeline_component(p, 0)->risk_rank, 3);
  hoist_pipeline_close(p);
  /* A relative path. */
  char cwd[1200];
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  ck_assert_int_eq(chdir(dir), 0);
  ck_assert_int_eq(hoist_pipeline_open(rt, "vae.safetensors", NULL, &p), HOIST_OK);
  ck_assert_str_eq(hoist_pipeline_component(p, 0)->name, "vae");
  hoist_pipeline_close(p);
  ck_assert_int_eq(chdir(cwd), 0);
  /* U8 tensors keep their size under a target dtype; F32 ones halve. */
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.dtype = "bf16";
  snprintf(path, sizeof path, "%s/f32.safetensors", dir);
  tu_write_safetensors(path,
                       "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                       "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[12,14]}}",
                       NULL, 14);
  ck_assert_int_eq(hoist_pipeline_open(rt, path, &po, &p), HOIST_OK);
  ck_assert_uint_eq(hoist_pipeline_component(p, 0)->inferred_bytes, 6 + 2);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(other_files_are_refused) {
  char path[1200];
  write_model("single_refused", path, sizeof path);
  hoist_runtime *rt = tu_host_runtime(0);
  hoist_pipeline *p = NULL;
  struct {
    const char *name;
    const char *header; /* NULL: not a safetensors header */
    int status;
    const char *message;
  } cases[] = {
      {"weights.bin", NULL, HOIST_BAD_PIPELINE, "not a .safetensors file"},
      {".safetensors", NULL, HOIST_BAD_PIPELINE, "not a .safetensors file"},
      {"broken.safetensors", "{\"a\":{\"dtype\":\"F32\"", HOIST_HEADER_JSON, "broken.safetensors"},
      {"short.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
       HOIST_DATA_LENGTH, "short.safetensors: tensors end at 16"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    snprintf(path, sizeof path, "%s/%s", dir, cases[k].name);
    if (cases[k].header == NULL) tu_write_file(path, "weights", 7);
    else tu_write_safetensors(path, cases[k].header, NULL, 8);
    int rc = hoist_pipeline_open(rt, path, NULL, &p);
    ck_assert_msg(rc == cases[k].status, "%s: %s (%s)", cases[k].name, hoist_status_name(rc),
                  hoist_last_error(rt));
    ck_assert_msg(strstr(hoist_last_error(rt), cases[k].message) != NULL, "%s: %s", cases[k].name,
                  hoist_last_error(rt));
    ck_assert_ptr_null(p);
  }
  snprintf(path, sizeof path, "%s/missing.safetensors", dir);
  ck_assert_int_eq(hoist_pipeline_open(rt, path, NULL, &p), HOIST_NOT_FOUND);
  hoist_runtime_close(rt);
}
END_TEST

/* Runs the CLI with args; returns its exit code and its stdout in out. */
static int run_cli(const char *args, char *out, size_t size) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", HOIST_CLI_PATH, args);
  FILE *f = popen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  size_t n = fread(out, 1, size - 1, f);
  out[n] = '\0';
  int status = pclose(f);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(cli_plans_and_loads_a_file) {
  char path[1200], args[1400], out[8192];
  write_model("single_cli", path, sizeof path);
  snprintf(args, sizeof args, "plan --json '%s'", path);
  ck_assert_int_eq(run_cli(args, out, sizeof out), 0);
  ck_assert_ptr_nonnull(strstr(out, "\"order\":[\"model\"]"));
  ck_assert_ptr_nonnull(strstr(out, "\"inferred_bytes\":197887"));
  snprintf(args, sizeof args, "load --json --device host '%s'", path);
  ck_assert_int_eq(run_cli(args, out, sizeof out), 0);
  ck_assert_ptr_nonnull(strstr(out, "\"total_bytes\":197887"));
  /* layer.0 and layer.5 only (70000 + 123457 bytes). */
  snprintf(args, sizeof args, "load --json --tensors 'layer.0' --tensors 'layer.[5-9]' '%s'", path);
  ck_assert_int_eq(run_cli(args, out, sizeof out), 0);
  ck_assert_ptr_nonnull(strstr(out, "\"total_bytes\":193457"));
  snprintf(args, sizeof args, "load --tensors 'layer.0,nothing*' '%s'", path);
  ck_assert_int_eq(run_cli(args, out, sizeof out), 2);
  snprintf(args, sizeof args, "load --tensors 'layer.0,' '%s'", path);
  ck_assert_int_eq(run_cli(args, out, sizeof out), 2);
}
END_TEST

int main(void) {
  Suite *s = suite_create("single_file");
  TCase *tc = tcase_create("host");
  tcase_add_test(tc, a_file_is_a_one_component_pipeline);
  tcase_add_test(tc, names_links_and_dtype);
  tcase_add_test(tc, other_files_are_refused);
  tcase_add_test(tc, cli_plans_and_loads_a_file);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
