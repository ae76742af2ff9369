/* test_gpu_serve.c — hoist serve on a GPU (label gpu; a SKIP line and a
 * pass where no CUDA device is usable): a server process loads onto
 * cuda:0 and this process attaches (descriptors of CUDA virtual-memory
 * allocations, or CUDA IPC handles with HOIST_CUDA_SHARE=ipc); every tensor
 * must be bit-identical to the files (read back with cudaMemcpy through the
 * backend); a client process killed with SIGKILL is dropped while the
 * server keeps serving; a reload keeps the old arenas until their last
 * client detaches; verify runs the device checksums; SIGTERM drains.
 *
 * CUDA does not survive fork: clients in other processes are this binary
 * started again with exec (--client SOCKET), never a bare fork. */
#include "testutil.h"

#include "device.h"
#include "pipeline_fixture.h"
#include "serve_fixture.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char pipe_dir[1024];
static hoist_runtime *reader; /* this process's view of cuda:0, for reading back */

static int cuda_read(void *user, void *dst, uint64_t addr, size_t n) {
  hoist__device *d = reader->dev;
  return d->ops->copy_d2h(d, dst, addr, n) == HOIST_OK ? 0 : -1;
}

/* The scratch folder name with the fixture pipeline of seed in it, this
 * process's reader of cuda:0, and the server's token file in tok. */
static void set_up(const char *name, uint64_t seed, char *tok, size_t tok_size) {
  tu_scratch_dir(name, pipe_dir, sizeof pipe_dir);
  fixture_write_pipeline(pipe_dir, seed);
  reader = tu_cuda_runtime();
  snprintf(tok, tok_size, "%s.token", pipe_dir);
  tu_write_file(tok, "gpu-token\n", 10);
  chmod(tok, 0600);
}

static void start_ready(srv *s, const char *name, const char *const *extra) {
  const char *args[16] = {"--device", "cuda:0"};
  int n = 2;
  for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) args[n++] = extra[i];
  args[n] = NULL;
  srv_start(s, name, pipe_dir, args);
  char *ev = srv_event(s, "ready", 120);
  ck_assert_msg(ev != NULL, "no ready event");
  free(ev);
}

static hoist_attached *attach_ok(const srv *s) {
  hoist_attached *a = NULL;
  int rc = hoist_attach(s->sock, &a);
  ck_assert_msg(rc == HOIST_OK, "attach: %s: %s", hoist_status_name(rc), hoist_last_error(NULL));
  return a;
}

/* A server on cuda:0 serves the fixture pipeline (with --verify and a
 * token); this process attaches twice and compares every tensor with the
 * files.  legacy: the server shares CUDA IPC handles (HOIST_CUDA_SHARE=ipc)
 * instead of descriptors. */
static void share_and_compare(const char *name, bool legacy) {
  unsetenv("HOIST_CUDA_SHARE");
  char tok[1100];
  set_up(name, 61, tok, sizeof tok);
  srv s;
  const char *extra[] = {"--verify", "--token-file", tok, NULL};
  if (legacy) setenv("HOIST_CUDA_SHARE", "ipc", 1); /* the server inherits it */
  start_ready(&s, "gpu", extra);
  unsetenv("HOIST_CUDA_SHARE");
  hoist_attached *a = attach_ok(&s);
  ck_assert_msg(strncmp(hoist_attached_device(a), "cuda:", 5) == 0, "%s", hoist_attached_device(a));
  size_t n = compare_with_files(a, pipe_dir, cuda_read, NULL);
  printf("gpu serve: %zu tensors bit-identical through %s\n", n,
         legacy ? "CUDA IPC handles" : "descriptors");
  ck_assert_uint_gt(n, 100);
  /* A second attach of this process to the same generation outlives the
   * first one's detach.  CUDA IPC opens a handle once per process, so the
   * two share the mappings; a descriptor is mapped again, elsewhere. */
  hoist_attached *a2 = attach_ok(&s);
  uint64_t p1 = 0, p2 = 0;
  ck_assert_int_eq(hoist_attached_tensor(a, "vae", "decoder.0", &p1, NULL), HOIST_OK);
  ck_assert_int_eq(hoist_attached_tensor(a2, "vae", "decoder.0", &p2, NULL), HOIST_OK);
  if (legacy) ck_assert_uint_eq(p1, p2);
  else ck_assert_uint_ne(p1, p2);
  hoist_detach(a);
  ck_assert_uint_eq(compare_with_files(a2, pipe_dir, cuda_read, NULL), n);
  a = a2;
  char *body = NULL;
  ck_assert_int_eq(http_post(s.port, "/v1/verify", "gpu-token", &body), 200);
  ck_assert_msg(strstr(body, "\"ok\":true") != NULL, "%s", body);
  free(body);
  hoist_detach(a);
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 30), 0);
  srv_kill(&s);
  hoist_runtime_close(reader);
}

START_TEST(two_processes_share_bit_identical_tensors) {
  if (!tu_gpu_available()) return;
  share_and_compare("gpu_serve", false);
}
END_TEST

START_TEST(cuda_ipc_handles_where_descriptors_are_not_used) {
  if (!tu_gpu_available()) return;
  share_and_compare("gpu_serve_ipc", true);
}
END_TEST

/* A worker's writes through shared weights fail on the card (the mapping
 * is read-only) and change nothing the server holds. */
START_TEST(a_worker_cannot_write_shared_weights) {
  if (!tu_gpu_available()) return;
  char tok[1100];
  set_up("gpu_serve_ro", 63, tok, sizeof tok);
  srv s;
  const char *extra[] = {"--token-file", tok, NULL};
  unsetenv("HOIST_CUDA_SHARE");
  start_ready(&s, "gpu_ro", extra);
  /* One process per way of writing: after a fault the context is lost, and
   * every later call would fail whatever it tried. */
  const char *ways[] = {"copy", "kernel"};
  for (size_t w = 0; w < 2; w++) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
      execl("/proc/self/exe", "test_gpu_serve", "--write", ways[w], s.sock, (char *)NULL);
      _exit(127);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the client writing by %s: status %#x",
                  ways[w], st);
  }
  char *body = NULL;
  ck_assert_int_eq(http_post(s.port, "/v1/verify", "gpu-token", &body), 200);
  ck_assert_msg(strstr(body, "\"ok\":true") != NULL, "%s", body);
  free(body);
  hoist_attached *a = attach_ok(&s);
  ck_assert_uint_gt(compare_with_files(a, pipe_dir, cuda_read, NULL), 100);
  hoist_detach(a);
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 30), 0);
  srv_kill(&s);
  hoist_runtime_close(reader);
}
END_TEST

/* Starts this binary as an attached client; returns its pid once it has
 * attached. */
static pid_t start_client(const char *sock) {
  int p[2];
  ck_assert(pipe(p) == 0);
  pid_t pid = fork();
  ck_assert(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 1);
    execl("/proc/self/exe", "test_gpu_serve", "--client", sock, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  char c = 0;
  ck_assert_int_eq(read(p[0], &c, 1), 1);
  ck_assert_int_eq(c, 'A');
  close(p[0]);
  return pid;
}

START_TEST(a_killed_client_is_dropped_and_reload_keeps_old_arenas) {
  if (!tu_gpu_available()) return;
  char tok[1100], old_dir[1100];
  set_up("gpu_serve2", 62, tok, sizeof tok);
  srv s;
  const char *extra[] = {"--token-file", tok, NULL};
  start_ready(&s, "gpu2", extra);
  /* SIGKILL of an attached client process. */
  pid_t victim = start_client(s.sock);
  ck_assert(status_wait(s.port, "clients.attached", 1, 10));
  kill(victim, SIGKILL);
  waitpid(victim, NULL, 0);
  ck_assert(status_wait(s.port, "clients.attached", 0, 10));
  ck_assert_double_eq(status_number(s.port, "clients.lost_total"), 1);
  /* Reload beside an attached client. */
  hoist_attached *a = attach_ok(&s);
  replace_pipeline(pipe_dir, 63, old_dir, sizeof old_dir);
  char *body = NULL;
  ck_assert_int_eq(http_post(s.port, "/v1/reload", "gpu-token", &body), 200);
  free(body);
  hoist_attached *b = attach_ok(&s);
  ck_assert_uint_eq(hoist_attached_generation(b), 2);
  ck_assert_uint_gt(compare_with_files(a, old_dir, cuda_read, NULL), 100);
  ck_assert_uint_gt(compare_with_files(b, pipe_dir, cuda_read, NULL), 100);
  double used2 = status_number(s.port, "device_memory.used");
  hoist_detach(a);
  /* Generation 1 goes with its last client: the card gets its bytes back. */
  double t0 = now_s();
  while (status_number(s.port, "device_memory.used") >= used2 - 3e6 && now_s() - t0 < 10) usleep(20000);
  ck_assert_double_lt(status_number(s.port, "device_memory.used"), used2 - 3e6);
  ck_assert_uint_gt(compare_with_files(b, pipe_dir, cuda_read, NULL), 100);
  /* Drain: the server waits for b, then exits 0. */
  kill(s.pid, SIGTERM);
  unsigned ev = 0, seen = 0;
  t0 = now_s();
  while (!(seen & HOIST_ATTACHED_SHUTDOWN) && now_s() - t0 < 10) {
    ck_assert_int_eq(hoist_attached_poll(b, &ev), HOIST_OK);
    seen |= ev;
    usleep(10000);
  }
  ck_assert(seen & HOIST_ATTACHED_SHUTDOWN);
  ck_assert_int_eq(srv_wait(&s, 0, 0.5), -1);
  hoist_detach(b);
  ck_assert_int_eq(srv_wait(&s, 0, 30), 0);
  srv_kill(&s);
  hoist_runtime_close(reader);
}
END_TEST

/* --client SOCKET: attach, say so on stdout, wait to be killed. */
static int client_main(const char *sock) {
  hoist_attached *a = NULL;
  if (hoist_attach(sock, &a) != HOIST_OK) {
    fprintf(stderr, "client: %s\n", hoist_last_error(NULL));
    return 1;
  }
  (void)!write(1, "A", 1);
  pause();
  hoist_detach(a);
  return 0;
}

/* --write copy|kernel SOCKET: attach and try to overwrite a tensor with a
 * copy (the copy engine) or with a conversion kernel; exit 0 when the
 * write fails, 1 when it succeeded, 2 when anything before it failed. */
static int write_main(const char *way, const char *sock) {
  hoist_attached *a = NULL;
  uint64_t p = 0, src = 0;
  if (hoist_attach(sock, &a) != HOIST_OK ||
      hoist_attached_tensor(a, "vae", "decoder.0", &p, NULL) != HOIST_OK) {
    fprintf(stderr, "writer: %s\n", hoist_last_error(NULL));
    return 2;
  }
  hoist_config cfg = HOIST_CONFIG_INIT; /* no ck_* here: this process runs no test */
  cfg.device = "cuda:0";
  hoist_runtime *rt = NULL;
  if (hoist_runtime_create(&cfg, &rt) != HOIST_OK) {
    fprintf(stderr, "writer: %s\n", hoist_last_error(NULL));
    return 2;
  }
  hoist__device *d = rt->dev;
  void *stream = NULL;
  static unsigned char junk[256];
  memset(junk, 0xab, sizeof junk);
  if (d->ops->stream_create(d, &stream) != HOIST_OK || d->ops->alloc(d, 4096, &src) != HOIST_OK) {
    fprintf(stderr, "writer: %s\n", hoist_last_error(rt));
    return 2;
  }
  int rc = strcmp(way, "copy") == 0
               ? d->ops->copy_h2d_async(d, p, junk, sizeof junk, stream)
               : d->ops->convert(d, p, HOIST_DTYPE_BF16, src, HOIST_DTYPE_F32, 64, stream);
  if (rc == HOIST_OK) rc = d->ops->stream_sync(d, stream);
  fprintf(stderr, "writer: %s: %s %s\n", way, hoist_status_name(rc),
          rc != HOIST_OK ? hoist_last_error(rt) : "");
  /* The context is lost after a fault: leave without cleaning up through it. */
  return rc != HOIST_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--client") == 0) return client_main(argv[2]);
  if (argc == 4 && strcmp(argv[1], "--write") == 0) return write_main(argv[2], argv[3]);
  Suite *s = suite_create("gpu_serve");
  TCase *tc = tcase_create("gpu");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, two_processes_share_bit_identical_tensors);
  tcase_add_test(tc, cuda_ipc_handles_where_descriptors_are_not_used);
  tcase_add_test(tc, a_worker_cannot_write_shared_weights);
  tcase_add_test(tc, a_killed_client_is_dropped_and_reload_keeps_old_arenas);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
