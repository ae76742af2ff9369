/* test_gpu_multi.c — loads with ranks on several GPUs (ctest label
 * gpu-multi; a SKIP line and a pass where fewer than 2 are usable).
 *
 * Every rank is a process of its own, forked before anything here touches
 * CUDA (which does not survive a fork), joined by a file rendezvous, one
 * GPU each: replicated components (read once across the ranks, completed
 * by NCCL broadcasts) and FSDP and tensor-parallel parts must be the
 * files' bytes on every rank; a refusal on one rank (a ballast on its
 * card) stops every rank with nothing left allocated; a rank killed in the
 * middle of its upload makes the others fail within the timeout.  The
 * --devices path (one process, ncclCommInitAll) runs through the CLI. */
#include "testutil.h"

#include "device.h"
#include "hoist_tools.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_GPUS 8
#define TP_PLAN "text_encoder_2:*SelfAttention.q.weight=0,text_encoder_2:*SelfAttention.o.weight=1"

static char dir[1024];
static int gpus = -1;

/* GPUs usable, counted in a child so that this process never starts CUDA. */
static int count_gpus(void) {
  if (gpus >= 0) return gpus;
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int n = 0;
    for (; n < MAX_GPUS; n++) {
      char spec[24];
      snprintf(spec, sizeof spec, "cuda:%d", n);
      hoist_config cfg = HOIST_CONFIG_INIT;
      cfg.device = spec;
      hoist_runtime *rt = NULL;
      if (hoist_runtime_create(&cfg, &rt) != HOIST_OK) break;
      hoist_runtime_close(rt);
    }
    (void)!write(fds[1], &n, sizeof n);
    _exit(0);
  }
  close(fds[1]);
  if (read(fds[0], &gpus, sizeof gpus) != sizeof gpus) gpus = 0;
  close(fds[0]);
  waitpid(pid, NULL, 0);
  return gpus;
}

static bool enough_gpus(void) {
  if (count_gpus() >= 2) return true;
  printf("SKIP: %d usable GPU%s; loads with ranks on GPUs need at least 2\n", gpus,
         gpus == 1 ? "" : "s");
  return false;
}

/* A FLUX.1-dev-shaped pipeline written by the CLI (realistic 2-D shapes). */
static void write_flux(const char *name) {
  tu_scratch_dir(name, dir, sizeof dir);
  char cmd[2400];
  snprintf(cmd, sizeof cmd, "'%s' make-pipeline --preset flux1-dev --scale 0.01 '%s/pipe' >/dev/null",
           HOIST_CLI_PATH, dir);
  ck_assert_int_eq(system(cmd), 0);
}

typedef struct rank_plan {
  int world;
  const char *fsdp, *shard;
  int ballast_rank; /* its card keeps almost nothing free */
  int kill_rank;    /* kills itself at its first chunk */
  double timeout;
} rank_plan;

static int killer;
static void on_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  if (killer && done > 0) raise(SIGKILL);
}

/* The bytes of tensor t this rank should hold: the whole tensor, or its
 * part on the shard's dimension. */
static unsigned char *expected_bytes(hoist_file *f, const hoist_tensor_info *t,
                                     const hoist_shard_info *sh, uint64_t *n) {
  unsigned char *whole = malloc(t->nbytes + 1);
  ck_assert_int_eq(hoist_file_read(f, hoist_file_data_offset(f) + t->begin, whole, t->nbytes),
                   HOIST_OK);
  if (!sh->sharded) {
    *n = t->nbytes;
    return whole;
  }
  uint64_t outer = 1;
  for (uint32_t k = 0; k < sh->dim; k++) outer *= t->shape[k];
  const uint64_t dimlen = t->shape[sh->dim], row = dimlen > 0 ? t->nbytes / outer / dimlen : 0;
  unsigned char *part = malloc(outer * sh->length * row + 1);
  for (uint64_t o = 0; o < outer; o++)
    memcpy(part + o * sh->length * row, whole + (o * dimlen + sh->offset) * row, sh->length * row);
  free(whole);
  *n = outer * sh->length * row;
  return part;
}

/* Every tensor of every resident or FSDP component of l, read back from
 * the card, against the files: 0 when all agree. */
static int check_loaded(hoist_runtime *rt, const hoist_pipeline *p, const hoist_loaded *l,
                        FILE *log) {
  for (size_t slot = 0; slot < hoist_pipeline_component_count(p); slot++) {
    const hoist_component_info *c = hoist_pipeline_component(p, slot);
    hoist_file *const *files = NULL;
    const size_t nf = hoist__pipeline_safetensors(p, slot, &files);
    for (size_t fi = 0; fi < nf; fi++)
      for (size_t i = 0; i < hoist_file_tensor_count(files[fi]); i++) {
        const hoist_tensor_info *t = hoist_file_tensor(files[fi], i), *info = NULL;
        hoist_shard_info sh;
        uint64_t addr = 0, n = 0;
        if (hoist_loaded_tensor(l, c->name, t->name, &addr, &info) != HOIST_OK ||
            hoist_loaded_tensor_shard(l, c->name, t->name, &sh) != HOIST_OK) {
          fprintf(log, "%s/%s: not found: %s\n", c->name, t->name, hoist_last_error(rt));
          return 1;
        }
        unsigned char *want = expected_bytes(files[fi], t, &sh, &n), *got = malloc(n + 1);
        int bad = info->nbytes != n ||
                  (n > 0 && rt->dev->ops->copy_d2h(rt->dev, got, addr, n) != HOIST_OK) ||
                  memcmp(got, want, n) != 0;
        if (bad) fprintf(log, "%s/%s: the card's bytes differ from the file\n", c->name, t->name);
        free(want);
        free(got);
        if (bad) return 1;
      }
  }
  return 0;
}

static void rank_main(const rank_plan *rp, int rank) {
  char path[1200], rdv[1200], spec[24];
  snprintf(path, sizeof path, "%s/rank%d.log", dir, rank);
  FILE *log = fopen(path, "w");
  if (log == NULL) _exit(120);
  snprintf(rdv, sizeof rdv, "file:%s/rendezvous", dir);
  snprintf(spec, sizeof spec, "cuda:%d", rank);
  hoist_group_options go = HOIST_GROUP_OPTIONS_INIT;
  go.rank = rank;
  go.world_size = rp->world;
  go.rendezvous = rdv;
  go.timeout_seconds = rp->timeout;
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.device = spec;
  hoist_group *g = NULL;
  hoist_runtime *rt = NULL;
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  uint64_t ballast = 0, free0 = 0, total = 0, free1 = 0;
  killer = rank == rp->kill_rank;
  snprintf(path, sizeof path, "%s/pipe", dir);
  int rc = hoist_group_create(&go, &g);
  if (rc == HOIST_OK) rc = hoist_runtime_create(&cfg, &rt);
  if (rc == HOIST_OK) rc = hoist__engine_prepare(rt);
  if (rc == HOIST_OK && rank == rp->ballast_rank) {
    rc = hoist__device_mem_info(rt, &free0, &total);
    if (rc == HOIST_OK) rc = hoist__device_alloc(rt, free0 - (64u << 20), &ballast);
  }
  if (rc == HOIST_OK) rc = hoist__device_mem_info(rt, &free0, &total);
  if (rc == HOIST_OK) rc = hoist_pipeline_open(rt, path, NULL, &p);
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.group = g;
  o.fsdp = rp->fsdp;
  o.shard = rp->shard;
  o.verify = 1;
  o.progress = on_progress;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  if (rc == HOIST_OK) rc = hoist_load_pipeline(rt, p, &o, &l);
  clock_gettime(CLOCK_MONOTONIC, &b);
  fprintf(log, "status %d seconds %.3f\n", rc,
          (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9);
  if (rc != HOIST_OK) fprintf(log, "message %s\n", hoist_last_error(rt));
  int bad = rc == HOIST_OK ? check_loaded(rt, p, l, log) : 0;
  hoist_loaded_close(l);
  if (rc != HOIST_OK && rt != NULL && hoist__device_mem_info(rt, &free1, &total) == HOIST_OK &&
      free1 != free0) {
    fprintf(log, "free memory %llu after the failure, %llu before\n", (unsigned long long)free1,
            (unsigned long long)free0);
    bad = 1;
  }
  fclose(log);
  if (ballast != 0) hoist__device_free(rt, ballast);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
  hoist_group_close(g);
  _exit(bad ? 100 : -rc);
}

/* Runs the ranks; status[r] is the load's status (100: wrong bytes, 1000 +
 * signal: died); message[r] what its log says. */
static void run_ranks(const rank_plan *rp, int *status, char message[][1024]) {
  pid_t pids[MAX_GPUS];
  for (int r = 0; r < rp->world; r++) {
    pids[r] = fork();
    ck_assert_int_ge(pids[r], 0);
    if (pids[r] == 0) rank_main(rp, r);
  }
  for (int r = 0; r < rp->world; r++) {
    int st = 0;
    ck_assert_int_eq(waitpid(pids[r], &st, 0), pids[r]);
    status[r] = WIFEXITED(st) ? (WEXITSTATUS(st) == 100 ? 100 : -WEXITSTATUS(st))
                              : 1000 + WTERMSIG(st);
    char path[1200];
    snprintf(path, sizeof path, "%s/rank%d.log", dir, r);
    size_t len = 0;
    message[r][0] = '\0';
    if (access(path, R_OK) == 0) {
      char *text = tu_read_file(path, &len);
      snprintf(message[r], 1024, "%s", text);
      free(text);
    }
    printf("rank %d: %s", r, message[r]);
  }
}

START_TEST(replicated_and_sharded_bit_identical) {
  if (!enough_gpus()) return;
  write_flux("gpu_multi_bits");
  for (int world = 2; world <= gpus; world *= 2) {
    rank_plan rp = {world, "transformer", TP_PLAN, -1, -1, 60};
    int status[MAX_GPUS];
    char message[MAX_GPUS][1024];
    run_ranks(&rp, status, message);
    for (int r = 0; r < world; r++)
      ck_assert_msg(status[r] == HOIST_OK, "W=%d rank %d: %d %s", world, r, status[r], message[r]);
  }
}
END_TEST

START_TEST(a_refusal_on_one_rank) {
  if (!enough_gpus()) return;
  write_flux("gpu_multi_refusal");
  rank_plan rp = {2, "transformer", NULL, 1, -1, 60};
  int status[MAX_GPUS];
  char message[MAX_GPUS][1024];
  run_ranks(&rp, status, message);
  for (int r = 0; r < 2; r++) {
    ck_assert_msg(status[r] == HOIST_ADMISSION, "rank %d: %d %s", r, status[r], message[r]);
    ck_assert_ptr_nonnull(strstr(message[r], "preflight"));
  }
  ck_assert_ptr_nonnull(strstr(message[0], "rank 1"));
}
END_TEST

START_TEST(a_killed_rank) {
  if (!enough_gpus()) return;
  write_flux("gpu_multi_killed");
  rank_plan rp = {gpus < 4 ? gpus : 4, "transformer", NULL, -1, 1, 10};
  int status[MAX_GPUS];
  char message[MAX_GPUS][1024];
  run_ranks(&rp, status, message);
  ck_assert_int_eq(status[1], 1000 + SIGKILL);
  for (int r = 0; r < rp.world; r++) {
    if (r == 1) continue;
    ck_assert_msg(status[r] == HOIST_GROUP_LOST, "rank %d: %d %s", r, status[r], message[r]);
    double seconds = 0;
    ck_assert_int_eq(sscanf(strstr(message[r], "seconds"), "seconds %lf", &seconds), 1);
    ck_assert_double_lt(seconds, rp.timeout + 5);
  }
}
END_TEST

START_TEST(one_process_several_devices) {
  if (!enough_gpus()) return;
  write_flux("gpu_multi_devices");
  char devices[256] = "", cmd[2600];
  for (int i = 0; i < gpus; i++)
    snprintf(devices + strlen(devices), sizeof devices - strlen(devices), "%scuda:%d",
             i > 0 ? "," : "", i);
  snprintf(cmd, sizeof cmd, "'%s' load --json --verify --devices %s --fsdp transformer '%s/pipe'",
           HOIST_CLI_PATH, devices, dir);
  printf("%s\n", cmd);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("gpu_multi");
  TCase *tc = tcase_create("ranks");
  tcase_add_test(tc, replicated_and_sharded_bit_identical);
  tcase_add_test(tc, a_refusal_on_one_rank);
  tcase_add_test(tc, a_killed_rank);
  tcase_add_test(tc, one_process_several_devices);
  tcase_set_timeout(tc, 600);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
