/* test_serve_attach.c — hoist serve and hoist_attach on the host backend
 * (memfd arenas passed over the control socket), from other processes:
 * bit-identical tensors against the files, read-only mappings, attach
 * while loading (waits; fails fast with no_wait), a client killed with
 * SIGKILL, reload with the old weights kept until the last detach, a
 * reload refused by admission, prepare/release of offloaded components,
 * drain on SIGTERM, 1,000 attach/detach cycles with flat memory, another
 * uid refused, garbage on the control socket, and verify catching a byte
 * changed in the server's memory. */
#include "testutil.h"

#include "pipeline_fixture.h"
#include "serve_fixture.h"
#include "hoist_wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char pipe_dir[1024];

static void write_pipe(const char *name, uint64_t seed) {
  tu_scratch_dir(name, pipe_dir, sizeof pipe_dir);
  fixture_write_pipeline(pipe_dir, seed);
}

static hoist_attached *attach_ok(const srv *s) {
  hoist_attached *a = NULL;
  int rc = hoist_attach(s->sock, &a);
  ck_assert_msg(rc == HOIST_OK, "attach: %s: %s", hoist_status_name(rc), hoist_last_error(NULL));
  return a;
}

static void start_ready(srv *s, const char *name, const char *const *extra) {
  srv_start(s, name, pipe_dir, extra);
  char *ev = srv_event(s, "ready", 60);
  ck_assert_msg(ev != NULL, "no ready event");
  free(ev);
}

static size_t component_index(hoist_attached *a, const char *name) {
  for (size_t i = 0; i < hoist_attached_component_count(a); i++)
    if (strcmp(hoist_attached_component(a, i)->name, name) == 0) return i;
  ck_abort_msg("no component %s", name);
  return 0;
}

/* Polls a until one of the bits in want shows up or timeout seconds pass;
 * returns every bit seen. */
static unsigned poll_for(hoist_attached *a, unsigned want, double timeout) {
  unsigned seen = 0, ev = 0;
  double end = now_s() + timeout;
  while (!(seen & want) && now_s() < end) {
    ck_assert_int_eq(hoist_attached_poll(a, &ev), HOIST_OK);
    seen |= ev;
    if (!(seen & want)) usleep(5000);
  }
  return seen;
}

static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  while (d != NULL && readdir(d) != NULL) n++;
  if (d != NULL) closedir(d);
  return n;
}

START_TEST(attach_is_bit_identical_and_read_only) {
  write_pipe("serve_attach", 21);
  srv s;
  start_ready(&s, "attach", NULL);
  hoist_attached *a = attach_ok(&s);
  ck_assert_str_eq(hoist_attached_device(a), "host");
  ck_assert_uint_eq(hoist_attached_generation(a), 1);
  size_t n = compare_with_files(a, pipe_dir, NULL, NULL);
  ck_assert_uint_gt(n, 100);
  size_t t = component_index(a, "transformer");
  ck_assert_uint_gt(hoist_attached_component(a, t)->bytes, 3000000);
  ck_assert_uint_gt(hoist_attached_component(a, t)->device_bytes, 0);
  uint64_t addr = 0;
  const hoist_tensor_info *info = NULL;
  ck_assert_int_eq(hoist_attached_tensor(a, "transformer", "blocks.a.0", &addr, &info), HOIST_OK);
  ck_assert_uint_eq(info->nbytes, 2500000);
  /* Enumeration (for whole state dicts) finds what the lookup does. */
  size_t listed = 0;
  for (size_t i = 0; i < hoist_attached_component_count(a); i++)
    for (size_t j = 0; j < hoist_attached_component(a, i)->tensor_count; j++) {
      uint64_t at = 0, by_name = 0;
      const hoist_tensor_info *ti = NULL;
      ck_assert_int_eq(hoist_attached_tensor_at(a, i, j, &at, &ti), HOIST_OK);
      ck_assert_int_eq(hoist_attached_tensor(a, hoist_attached_component(a, i)->name, ti->name,
                                             &by_name, NULL), HOIST_OK);
      ck_assert_uint_eq(at, by_name);
      listed++;
    }
  ck_assert_uint_eq(listed, n);
  ck_assert_int_eq(hoist_attached_tensor_at(a, t, 100000, &addr, &info), HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(hoist_attached_tensor(a, "transformer", "nope", &addr, &info), HOIST_NOT_FOUND);
  ck_assert_int_eq(hoist_attached_tensor(a, "nope", "x", &addr, &info), HOIST_NOT_FOUND);
  ck_assert(status_wait(s.port, "clients.attached", 1, 5));
  /* Shared weights are read-only: a write through the mapping faults. */
  pid_t child = fork();
  ck_assert(child >= 0);
  if (child == 0) {
    hoist_attached *c = NULL;
    uint64_t at = 0;
    if (hoist_attach(s.sock, &c) != HOIST_OK ||
        hoist_attached_tensor(c, "transformer", "blocks.a.0", &at, NULL) != HOIST_OK)
      _exit(2);
    signal(SIGSEGV, SIG_DFL); /* not a sanitizer's report: the fault itself */
    *(volatile unsigned char *)(uintptr_t)at = 1;
    _exit(0);
  }
  int st = 0;
  ck_assert(waitpid(child, &st, 0) == child);
  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "the write did not fault (status %d)", st);
  ck_assert(status_wait(s.port, "clients.attached", 1, 5)); /* the child's reference went */
  ck_assert_uint_eq(compare_with_files(a, pipe_dir, NULL, NULL), n);
  hoist_detach(a);
  ck_assert(status_wait(s.port, "clients.attached", 0, 5));
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
}
END_TEST

START_TEST(attach_while_loading_waits_or_fails_fast) {
  write_pipe("serve_wait", 22);
  srv s;
  const char *extra[] = {"--rate", "2M", NULL}; /* about 2.5 s for the 5 MB fixture */
  srv_start(&s, "wait", pipe_dir, extra);
  hoist_attach_options o = HOIST_ATTACH_OPTIONS_INIT;
  o.no_wait = 1;
  hoist_attached *a = NULL;
  double t0 = now_s();
  ck_assert_int_eq(hoist_attach_ex(s.sock, &o, &a), HOIST_NOT_READY);
  ck_assert(a == NULL);
  ck_assert_double_lt(now_s() - t0, 1.0);
  ck_assert_msg(strstr(hoist_last_error(NULL), "still loading") != NULL, "%s", hoist_last_error(NULL));
  /* A bounded wait that is too short. */
  o.no_wait = 0;
  o.timeout_seconds = 0.3;
  ck_assert_int_eq(hoist_attach_ex(s.sock, &o, &a), HOIST_NOT_READY);
  /* Waiting: returns once the load is done, with every tensor there. */
  t0 = now_s();
  a = attach_ok(&s);
  ck_assert_double_gt(now_s() - t0, 0.3);
  ck_assert_uint_gt(compare_with_files(a, pipe_dir, NULL, NULL), 100);
  char *ev = srv_event(&s, "ready", 5);
  ck_assert(ev != NULL);
  free(ev);
  hoist_detach(a);
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
}
END_TEST

START_TEST(sigkill_of_a_client_drops_its_references) {
  write_pipe("serve_kill", 23);
  srv s;
  start_ready(&s, "kill", NULL);
  int p[2];
  ck_assert(pipe(p) == 0);
  pid_t child = fork();
  ck_assert(child >= 0);
  if (child == 0) {
    hoist_attached *c = NULL;
    if (hoist_attach(s.sock, &c) != HOIST_OK) _exit(2);
    (void)!write(p[1], "x", 1);
    pause();
    _exit(0);
  }
  char x;
  ck_assert_int_eq(read(p[0], &x, 1), 1);
  ck_assert(status_wait(s.port, "clients.attached", 1, 5));
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  ck_assert(status_wait(s.port, "clients.attached", 0, 5));
  ck_assert_double_eq(status_number(s.port, "clients.lost_total"), 1);
  hoist_attached *a = attach_ok(&s); /* still serving */
  ck_assert_uint_gt(compare_with_files(a, pipe_dir, NULL, NULL), 100);
  hoist_detach(a);
  close(p[0]);
  close(p[1]);
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
}
END_TEST

/* Writes the token file of a test; returns the token. */
static const char *token_in(const srv *s, char *path, size_t size) {
  snprintf(path, size, "%s.token", pipe_dir);
  tu_write_file(path, "s3cret-token\n", 13);
  chmod(path, 0600);
  return "s3cret-token";
}

START_TEST(reload_keeps_old_weights_until_detach) {
  write_pipe("serve_reload", 24);
  char old_dir[1100], tok[1200];
  srv s;
  const char *token = token_in(&s, tok, sizeof tok);
  const char *extra[] = {"--token-file", tok, NULL};
  start_ready(&s, "reload", extra);
  double used1 = status_number(s.port, "device_memory.used");
  hoist_attached *a = attach_ok(&s);
  replace_pipeline(pipe_dir, 99, old_dir, sizeof old_dir);
  char *body = NULL;
  ck_assert_int_eq(http_post(s.port, "/v1/reload", token, &body), 200);
  ck_assert_msg(strstr(body, "\"generation\":2") != NULL, "%s", body);
  free(body);
  ck_assert_double_eq(status_number(s.port, "generation"), 2);
  ck_assert_double_eq(status_number(s.port, "device_memory.used"), 2 * used1);
  ck_assert(poll_for(a, HOIST_ATTACHED_RELOADED, 5) & HOIST_ATTACHED_RELOADED);
  /* The old client still sees the old bytes; a new one gets the new. */
  ck_assert_uint_gt(compare_with_files(a, old_dir, NULL, NULL), 100);
  hoist_attached *b = attach_ok(&s);
  ck_assert_uint_eq(hoist_attached_generation(b), 2);
  ck_assert_uint_gt(compare_with_files(b, pipe_dir, NULL, NULL), 100);
  hoist_detach(a);
  /* The last client of generation 1 left: it is freed. */
  ck_assert(status_wait(s.port, "device_memory.used", used1, 5));
  ck_assert_uint_gt(compare_with_files(b, pipe_dir, NULL, NULL), 100);
  hoist_detach(b);
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
}
END_TEST

START_TEST(reload_refused_by_admission_keeps_serving) {
  write_pipe("serve_admit", 25);
  srv s;
  start_ready(&s, "admit0", NULL);
  double used = status_number(s.port, "device_memory.used");
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
  char cap[64], tok[1200];
  snprintf(cap, sizeof cap, "%.0f", used * 1.5);
  const char *token = token_in(&s, tok, sizeof tok);
  const char *extra[] = {"--capacity", cap, "--token-file", tok, NULL};
  start_ready(&s, "admit", extra);
  char *body = NULL;
  ck_assert_int_eq(http_post(s.port, "/v1/reload", token, &body), 507);
  ck_assert_msg(strstr(body, "ADMISSION") != NULL && strstr(body, "free") != NULL, "%s", body);
  free(body);
  char *ev = srv_event(&s, "reload_failed", 5);
  ck_assert(ev != NULL && strstr(ev, "need_bytes") != NULL);
  free(ev);
  ck_assert_double_eq(status_number(s.port, "generation"), 1);
  ck_assert_double_eq(status_number(s.port, "device_memory.used"), used);
  hoist_attached *a = attach_ok(&s);
  ck_assert_uint_eq(hoist_attached_generation(a), 1);
  hoist_detach(a);
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
}
END_TEST

START_TEST(prepare_and_release_offloaded_component) {
  write_pipe("serve_prep", 26);
  srv s;
  const char *extra[] = {"--offload", "text_encoder_2", NULL};
  start_ready(&s, "prep", extra);
  double used0 = status_number(s.port, "device_memory.used");
  hoist_attached *a = attach_ok(&s), *b = attach_ok(&s);
  size_t te = component_index(a, "text_encoder_2");
  ck_assert_int_eq(hoist_attached_component(a, te)->residency, HOIST_OFFLOAD);
  uint64_t addr = 0;
  const hoist_tensor_info *info = NULL;
  ck_assert_int_eq(hoist_attached_tensor(a, "text_encoder_2", "encoder.0", &addr, &info), HOIST_UNSUPPORTED);
  size_t before = compare_with_files(a, pipe_dir, NULL, NULL);
  ck_assert_int_eq(hoist_attached_prepare(a, te), HOIST_OK);
  ck_assert_uint_gt(compare_with_files(a, pipe_dir, NULL, NULL), before);
  ck_assert_uint_gt(hoist_attached_component(a, te)->device_bytes, 0);
  ck_assert_double_gt(status_number(s.port, "device_memory.used"), used0);
  double used1 = status_number(s.port, "device_memory.used");
  ck_assert_int_eq(hoist_attached_prepare(b, te), HOIST_OK); /* shared, not uploaded twice */
  ck_assert_double_eq(status_number(s.port, "device_memory.used"), used1);
  ck_assert_uint_gt(compare_with_files(b, pipe_dir, NULL, NULL), before);
  ck_assert_int_eq(hoist_attached_release(a, te), HOIST_OK);
  ck_assert_int_eq(hoist_attached_tensor(a, "text_encoder_2", "encoder.0", &addr, &info), HOIST_UNSUPPORTED);
  ck_assert_double_eq(status_number(s.port, "device_memory.used"), used1);
  ck_assert_int_eq(hoist_attached_release(b, te), HOIST_OK);
  ck_assert(status_wait(s.port, "device_memory.used", used0, 5));
  /* A resident component needs no prepare. */
  ck_assert_int_eq(hoist_attached_prepare(a, component_index(a, "transformer")), HOIST_OK);
  /* A client that dies holding a prepared component releases it. */
  pid_t child = fork();
  if (child == 0) {
    hoist_attached *c = NULL;
    if (hoist_attach(s.sock, &c) != HOIST_OK || hoist_attached_prepare(c, te) != HOIST_OK) _exit(2);
    _exit(0); /* no detach: the socket closes with the process */
  }
  int st = 0;
  waitpid(child, &st, 0);
  ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  ck_assert(status_wait(s.port, "device_memory.used", used0, 5));
  hoist_detach(a);
  hoist_detach(b);
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
}
END_TEST

START_TEST(sigterm_drains_attached_clients) {
  write_pipe("serve_drain", 27);
  srv s;
  start_ready(&s, "drain", NULL);
  hoist_attached *a = attach_ok(&s);
  kill(s.pid, SIGTERM);
  ck_assert(poll_for(a, HOIST_ATTACHED_SHUTDOWN, 5) & HOIST_ATTACHED_SHUTDOWN);
  char *stopping = srv_event(&s, "stopping", 5);
  ck_assert(stopping != NULL && strstr(stopping, "\"attached\":1") != NULL);
  free(stopping);
  /* It waits for the client... */
  ck_assert_int_eq(srv_wait(&s, 0, 0.5), -1);
  ck_assert_int_eq(hoist_attach(s.sock, &(hoist_attached *){NULL}), HOIST_NOT_FOUND); /* not accepting */
  ck_assert_uint_gt(compare_with_files(a, pipe_dir, NULL, NULL), 100);
  /* ...and exits 0 once it detached. */
  double t0 = now_s();
  hoist_detach(a);
  ck_assert_int_eq(srv_wait(&s, 0, 10), 0);
  ck_assert_double_lt(now_s() - t0, 2);
  srv_kill(&s);
}
END_TEST

START_TEST(drain_time_ends_and_second_signal_exits_at_once) {
  write_pipe("serve_drain2", 28);
  srv s;
  const char *extra[] = {"--drain", "0.5", NULL};
  start_ready(&s, "drain2", extra);
  hoist_attached *a = attach_ok(&s);
  double t0 = now_s();
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  ck_assert_double_gt(now_s() - t0, 0.4);
  unsigned ev = 0;
  ck_assert_int_eq(hoist_attached_poll(a, &ev), HOIST_OK);
  ck_assert(ev & HOIST_ATTACHED_SHUTDOWN);
  ck_assert(ev & HOIST_ATTACHED_CLOSED);
  /* On the host backend the mapping outlives the server. */
  ck_assert_uint_gt(compare_with_files(a, pipe_dir, NULL, NULL), 100);
  hoist_detach(a); /* does not hang on a gone server */
  srv_kill(&s);

  start_ready(&s, "drain3", NULL);
  a = attach_ok(&s);
  kill(s.pid, SIGTERM);
  ck_assert_int_eq(srv_wait(&s, 0, 0.3), -1); /* draining */
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 5), 130);
  hoist_detach(a);
  srv_kill(&s);
}
END_TEST

START_TEST(thousand_attach_cycles_leave_memory_flat) {
  write_pipe("serve_cycles", 29);
  srv s;
  start_ready(&s, "cycles", NULL);
  for (int i = 0; i < 50; i++) hoist_detach(attach_ok(&s));
  long rss0 = rss_kib(s.pid);
  double used0 = status_number(s.port, "device_memory.used");
  int fds0 = open_fds();
  for (int i = 0; i < 1000; i++) {
    hoist_attached *a = attach_ok(&s);
    ck_assert_uint_eq(hoist_attached_component_count(a), 6);
    hoist_detach(a);
  }
  long rss1 = rss_kib(s.pid);
  printf("serve cycles: server RSS %ld KiB -> %ld KiB over 1000 attach/detach\n", rss0, rss1);
#if defined(__SANITIZE_ADDRESS__)
  /* ASan's quarantine keeps freed memory resident; LeakSanitizer checks
   * the server at its exit instead (the exit code below). */
  printf("serve cycles: RSS bound not checked under AddressSanitizer\n");
#else
  ck_assert_msg(rss1 - rss0 < 1024, "server RSS grew by %ld KiB", rss1 - rss0);
#endif
  ck_assert_double_eq(status_number(s.port, "device_memory.used"), used0);
  ck_assert_double_eq(status_number(s.port, "clients.attaches_total"), 1050);
  ck_assert_double_eq(status_number(s.port, "clients.attached"), 0);
  ck_assert_int_eq(open_fds(), fds0);
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
}
END_TEST

/* Attaches as uid 65534 in a child.  Returns 0 when the server refused it
 * by its uid (HOIST_DENIED naming the uid), 4 when the socket's file mode
 * refused the connect (HOIST_DENIED), other codes otherwise. */
static int attach_as_nobody(const srv *s) {
  pid_t child = fork();
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    hoist_attached *a = NULL;
    int rc = hoist_attach(s->sock, &a);
    if (rc == HOIST_DENIED) _exit(strstr(hoist_last_error(NULL), "uid 65534") != NULL ? 0 : 4);
    _exit(rc == HOIST_OK ? 1 : 2);
  }
  int st = 0;
  waitpid(child, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(another_uid_is_refused) {
  if (geteuid() != 0) {
    printf("SKIP: another_uid_is_refused needs root to switch to uid 65534\n");
    return;
  }
  write_pipe("serve_uid", 30);
  chmod(pipe_dir, 0755);
  srv s;
  /* The socket open to all (another uid allowed): SO_PEERCRED refuses. */
  const char *extra[] = {"--allow-uid", "4242", NULL};
  start_ready(&s, "uid", extra);
  struct stat st;
  ck_assert(stat(s.sock, &st) == 0);
  ck_assert_int_eq(st.st_mode & 0777, 0666);
  ck_assert_int_eq(attach_as_nobody(&s), 0);
  hoist_detach(attach_ok(&s)); /* the server's own uid is welcome */
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
  /* The default socket is 0600: the connect itself is refused. */
  start_ready(&s, "uid2", NULL);
  ck_assert(stat(s.sock, &st) == 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(attach_as_nobody(&s), 4);
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
}
END_TEST

/* ---- Raw control socket */

static int raw_connect(const srv *s) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {0};
  sa.sun_family = AF_UNIX;
  ck_assert(strlen(s->sock) < sizeof sa.sun_path);
  memcpy(sa.sun_path, s->sock, strlen(s->sock) + 1);
  ck_assert(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  return fd;
}

/* Reads one reply; returns its type (0 at EOF) and, for ERROR, the status. */
static int raw_reply(int fd, int *status, char *msg, size_t msg_size, double timeout) {
  unsigned char buf[1 << 16];
  size_t got = 0;
  double end = now_s() + timeout;
  hoist__wire_header h;
  for (;;) {
    char why[200];
    if (got >= HOIST_WIRE_HEADER_BYTES) {
      ck_assert_int_eq(hoist__wire_header_parse(buf, 0, &h, why, sizeof why), HOIST_OK);
      if (got >= HOIST_WIRE_HEADER_BYTES + h.length) break;
    }
    struct pollfd p = {fd, POLLIN, 0};
    double left = end - now_s();
    if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0) return -1;
    ssize_t r = recv(fd, buf + got, sizeof buf - got, 0);
    if (r <= 0) return 0;
    got += (size_t)r;
  }
  if (h.type == HOIST_WIRE_ERROR)
    ck_assert_int_eq(hoist__wire_error_decode(buf + HOIST_WIRE_HEADER_BYTES, h.length, status, msg,
                                             msg_size), HOIST_OK);
  return h.type;
}

static int eof_within(int fd, double timeout) {
  char c;
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, (int)(timeout * 1000)) == 1 && recv(fd, &c, 1, 0) == 0;
}

static void raw_send(int fd, const void *p, size_t n) {
  ck_assert_int_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

START_TEST(garbage_on_the_control_socket_closes_that_connection) {
  write_pipe("serve_garbage", 31);
  srv s;
  const char *extra[] = {"--read-timeout", "0.5", NULL};
  start_ready(&s, "garbage", extra);
  hoist_attached *a = attach_ok(&s);
  int status = 0;
  char msg[300];
  /* Not the protocol at all. */
  int fd = raw_connect(&s);
  raw_send(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
  ck_assert_int_eq(raw_reply(fd, &status, msg, sizeof msg, 5), HOIST_WIRE_ERROR);
  ck_assert_int_eq(status, HOIST_PROTOCOL);
  ck_assert(eof_within(fd, 5));
  close(fd);
  /* A length above the limit. */
  hoist__wbuf b = {0};
  hoist__wbuf_begin(&b, HOIST_WIRE_ATTACH, 7);
  hoist__wbuf_u32(&b, 0);
  ck_assert_int_eq(hoist__wbuf_end(&b), 0);
  b.data[8] = 0;
  b.data[9] = 0;
  b.data[10] = 0x10; /* 1 MiB */
  fd = raw_connect(&s);
  raw_send(fd, b.data, b.len);
  ck_assert_int_eq(raw_reply(fd, &status, msg, sizeof msg, 5), HOIST_WIRE_ERROR);
  ck_assert_msg(strstr(msg, "limit") != NULL, "%s", msg);
  ck_assert(eof_within(fd, 5));
  close(fd);
  /* Another version, a reply type from a client, bytes left over. */
  unsigned char bad[3][24];
  for (int k = 0; k < 3; k++) memcpy(bad[k], b.data, 20);
  bad[0][4] = HOIST_WIRE_VERSION + 1; /* another version */
  bad[1][6] = HOIST_WIRE_ATTACHED; /* not a request */
  bad[2][8] = 5;                 /* ATTACH with 5 payload bytes */
  bad[2][9] = bad[2][10] = 0;
  for (int k = 0; k < 3; k++) {
    fd = raw_connect(&s);
    bad[0][8] = 4;
    bad[0][9] = bad[0][10] = 0;
    bad[1][8] = 4;
    bad[1][9] = bad[1][10] = 0;
    raw_send(fd, bad[k], k == 2 ? 21 : 20);
    ck_assert_int_eq(raw_reply(fd, &status, msg, sizeof msg, 5), HOIST_WIRE_ERROR);
    ck_assert_int_eq(status, HOIST_PROTOCOL);
    ck_assert(eof_within(fd, 5));
    close(fd);
  }
  /* Half a frame, then silence: cut off after the read timeout. */
  fd = raw_connect(&s);
  raw_send(fd, b.data, 10);
  double t0 = now_s();
  ck_assert_int_eq(raw_reply(fd, &status, msg, sizeof msg, 5), HOIST_WIRE_ERROR);
  ck_assert_double_lt(now_s() - t0, 3);
  close(fd);
  /* A descriptor from a client. */
  fd = raw_connect(&s);
  int passed = open("/dev/null", O_RDONLY | O_CLOEXEC);
  union {
    struct cmsghdr h;
    unsigned char c[CMSG_SPACE(sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  b.data[10] = 0;
  b.data[8] = 4;
  struct iovec iov = {b.data, b.len};
  struct msghdr m = {0};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl.c;
  m.msg_controllen = sizeof ctl.c;
  struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &passed, sizeof passed);
  ck_assert_int_eq(sendmsg(fd, &m, MSG_NOSIGNAL), (ssize_t)b.len);
  ck_assert_int_eq(raw_reply(fd, &status, msg, sizeof msg, 5), HOIST_WIRE_ERROR);
  ck_assert_msg(strstr(msg, "descriptor") != NULL, "%s", msg);
  close(passed);
  close(fd);
  /* A client gone in the middle of its attach (it asked, then vanished
   * without reading the table): its reference is dropped. */
  for (int k = 0; k < 20; k++) {
    fd = raw_connect(&s);
    b.data[8] = 4;
    b.data[10] = 0;
    raw_send(fd, b.data, b.len);
    if (k % 2) usleep(2000);
    close(fd);
  }
  ck_assert(status_wait(s.port, "clients.attached", 1, 5));
  hoist__wbuf_free(&b);
  /* The attached client and new ones never noticed. */
  ck_assert_uint_gt(compare_with_files(a, pipe_dir, NULL, NULL), 100);
  hoist_detach(a);
  hoist_detach(attach_ok(&s));
  ck_assert(status_wait(s.port, "clients.control_connections", 0, 5));
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
}
END_TEST

/* ---- Verify */

/* The start of the mapping of inode ino in process pid (0: none). */
static uint64_t mapping_of(pid_t pid, unsigned long ino, uint64_t *start_out) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(path, "r");
  uint64_t found = 0;
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    unsigned long long lo, hi, off;
    unsigned long inode;
    char perms[8], dev[16];
    if (sscanf(line, "%llx-%llx %7s %llx %15s %lu", &lo, &hi, perms, &off, dev, &inode) == 6 &&
        inode == ino && strstr(line, "hoist-device") != NULL) {
      found = 1;
      *start_out = lo;
      break;
    }
  }
  if (f != NULL) fclose(f);
  return found;
}

/* Inode and start of this process's mapping that holds addr. */
static unsigned long own_mapping(uint64_t addr, uint64_t *start) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  unsigned long ino = 0;
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    unsigned long long lo, hi, off;
    unsigned long inode;
    char perms[8], dev[16];
    if (sscanf(line, "%llx-%llx %7s %llx %15s %lu", &lo, &hi, perms, &off, dev, &inode) == 6 &&
        addr >= lo && addr < hi) {
      ino = inode;
      *start = lo;
    }
  }
  if (f != NULL) fclose(f);
  return ino;
}

/* Sends VERIFY over the control socket; returns the reply type. */
static int raw_verify(const srv *s, int *status, char *msg, size_t size) {
  int fd = raw_connect(s);
  hoist__wbuf b = {0};
  hoist__wbuf_begin(&b, HOIST_WIRE_VERIFY, 3);
  ck_assert_int_eq(hoist__wbuf_end(&b), 0);
  raw_send(fd, b.data, b.len);
  hoist__wbuf_free(&b);
  int type = raw_reply(fd, status, msg, size, 30);
  close(fd);
  return type;
}

START_TEST(verify_names_a_tensor_changed_in_server_memory) {
  write_pipe("serve_verify", 32);
  srv s;
  char tok[1200];
  const char *token = token_in(&s, tok, sizeof tok);
  const char *extra[] = {"--token-file", tok, "--verify", NULL};
  start_ready(&s, "verify", extra);
  char *body = NULL;
  ck_assert_int_eq(http_post(s.port, "/v1/verify", token, &body), 200);
  ck_assert_msg(strstr(body, "\"ok\":true") != NULL, "%s", body);
  free(body);
  int status = 0;
  char msg[600];
  ck_assert_int_eq(raw_verify(&s, &status, msg, sizeof msg), HOIST_WIRE_VERIFIED);
  /* Change one byte of a tensor in the server's own mapping of the arena,
   * as a worker writing through a CUDA IPC mapping would. */
  hoist_attached *a = attach_ok(&s);
  uint64_t addr = 0, mine = 0, theirs = 0;
  ck_assert_int_eq(hoist_attached_tensor(a, "vae", "decoder.1", &addr, NULL), HOIST_OK);
  unsigned long ino = own_mapping(addr, &mine);
  ck_assert(ino != 0);
  ck_assert(mapping_of(s.pid, ino, &theirs));
  char mem[64];
  snprintf(mem, sizeof mem, "/proc/%d/mem", (int)s.pid);
  int fd = open(mem, O_RDWR | O_CLOEXEC);
  ck_assert_msg(fd >= 0, "%s: %s", mem, strerror(errno));
  unsigned char byte, flipped;
  off_t at = (off_t)(theirs + (addr - mine) + 3);
  ck_assert_int_eq(pread(fd, &byte, 1, at), 1);
  flipped = byte ^ 0x5a;
  ck_assert_int_eq(pwrite(fd, &flipped, 1, at), 1);
  ck_assert_int_eq(http_post(s.port, "/v1/verify", token, &body), 500);
  ck_assert_msg(strstr(body, "VERIFY_MISMATCH") != NULL && strstr(body, "decoder.1") != NULL, "%s", body);
  free(body);
  ck_assert_int_eq(raw_verify(&s, &status, msg, sizeof msg), HOIST_WIRE_ERROR);
  ck_assert_int_eq(status, HOIST_VERIFY_MISMATCH);
  ck_assert_int_eq(pwrite(fd, &byte, 1, at), 1);
  close(fd);
  ck_assert_int_eq(http_post(s.port, "/v1/verify", token, &body), 200);
  free(body);
  ck_assert_double_eq(status_number(s.port, "verify.failed"), 2);
  hoist_detach(a);
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 0);
  srv_kill(&s);
}
END_TEST

int main(void) {
  Suite *s = suite_create("serve_attach");
  TCase *tc = tcase_create("attach");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, attach_is_bit_identical_and_read_only);
  tcase_add_test(tc, attach_while_loading_waits_or_fails_fast);
  tcase_add_test(tc, sigkill_of_a_client_drops_its_references);
  tcase_add_test(tc, reload_keeps_old_weights_until_detach);
  tcase_add_test(tc, reload_refused_by_admission_keeps_serving);
  tcase_add_test(tc, prepare_and_release_offloaded_component);
  tcase_add_test(tc, sigterm_drains_attached_clients);
  tcase_add_test(tc, drain_time_ends_and_second_signal_exits_at_once);
  tcase_add_test(tc, thousand_attach_cycles_leave_memory_flat);
  tcase_add_test(tc, another_uid_is_refused);
  tcase_add_test(tc, garbage_on_the_control_socket_closes_that_connection);
  tcase_add_test(tc, verify_names_a_tensor_changed_in_server_memory);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
