/* test_serve.c — hoist serve's HTTP side and its process contract, on the
 * host backend: the endpoints and their formats (JSON, Prometheus text),
 * /readyz 503 with progress while a load runs, the bearer token (401, 403,
 * 200), malformed and oversized requests (400, 413, 414, 431, then a
 * closed connection, the load undisturbed), a slow client cut off by the
 * read timeout (408), the connection cap (503), a load test of 200
 * keep-alive clients on loopback bounded in time, the exit codes of a
 * failed load (exit and --on-failure stay), and --help and usage errors. */
#include "testutil.h"

#include "pipeline_fixture.h"
#include "serve_fixture.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char pipe_dir[1024];

static void write_pipe(const char *name, uint64_t seed) {
  tu_scratch_dir(name, pipe_dir, sizeof pipe_dir);
  fixture_write_pipeline(pipe_dir, seed);
}

static void start_ready(srv *s, const char *name, const char *const *extra) {
  srv_start(s, name, pipe_dir, extra);
  char *ev = srv_event(s, "ready", 60);
  ck_assert_msg(ev != NULL, "no ready event");
  free(ev);
}

static void stop(srv *s) {
  ck_assert_int_eq(srv_wait(s, SIGTERM, 10), 0);
  srv_kill(s);
}

/* Whether the peer closes fd within timeout seconds (reading what is left). */
static int closed_within(int fd, double timeout) {
  char buf[4096];
  double end = now_s() + timeout;
  while (now_s() < end) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r <= 0) return 1;
  }
  return 0;
}

/* Checks the Prometheus text format: HELP and TYPE before each family's
 * samples, sample lines "name{labels} value". */
static void check_metrics(const char *text) {
  regex_t sample, help, type;
  ck_assert(regcomp(&sample,
                    "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\",?)*\\})? "
                    "-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$",
                    REG_EXTENDED) == 0);
  ck_assert(regcomp(&help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$", REG_EXTENDED) == 0);
  ck_assert(regcomp(&type, "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter)$", REG_EXTENDED) == 0);
  char family[128] = "";
  int samples = 0;
  const char *p = text;
  while (*p != '\0') {
    size_t n = strcspn(p, "\n");
    char line[1024];
    ck_assert_uint_lt(n, sizeof line);
    memcpy(line, p, n);
    line[n] = '\0';
    regmatch_t m[3];
    if (strncmp(line, "# HELP", 6) == 0) {
      ck_assert_msg(regexec(&help, line, 0, NULL, 0) == 0, "bad HELP: %s", line);
    } else if (strncmp(line, "# TYPE", 6) == 0) {
      ck_assert_msg(regexec(&type, line, 3, m, 0) == 0, "bad TYPE: %s", line);
      snprintf(family, sizeof family, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
    } else {
      ck_assert_msg(regexec(&sample, line, 2, m, 0) == 0, "bad sample: '%s'", line);
      ck_assert_msg((size_t)(m[1].rm_eo - m[1].rm_so) == strlen(family) &&
                        strncmp(line, family, strlen(family)) == 0,
                    "sample '%s' outside its family %s", line, family);
      samples++;
    }
    p += n + (p[n] == '\n');
  }
  ck_assert_int_gt(samples, 20);
  regfree(&sample);
  regfree(&help);
  regfree(&type);
}

START_TEST(endpoints_answer_in_their_formats) {
  write_pipe("serve_http", 41);
  srv s;
  start_ready(&s, "http", NULL);
  char *body = NULL;
  ck_assert_int_eq(http_get(s.port, "/healthz", &body), 200);
  ck_assert_str_eq(body, "ok\n");
  free(body);
  ck_assert_int_eq(http_get(s.port, "/readyz", &body), 200);
  cJSON *j = cJSON_Parse(body);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ready")));
  cJSON_Delete(j);
  free(body);
  ck_assert_int_eq(http_get(s.port, "/v1/status?verbose=1", &body), 200);
  j = cJSON_Parse(body);
  ck_assert_msg(j != NULL, "%s", body);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "state")->valuestring, "ready");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "device")->valuestring, "host");
  const cJSON *comps = cJSON_GetObjectItem(j, "components");
  ck_assert_int_eq(cJSON_GetArraySize(comps), 6);
  double sum = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, comps) {
    double done = cJSON_GetObjectItem(c, "bytes_done")->valuedouble;
    ck_assert_double_eq(done, cJSON_GetObjectItem(c, "bytes_total")->valuedouble);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(c, "residency")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(c, "GBps")));
    sum += done;
  }
  const cJSON *load = cJSON_GetObjectItem(j, "load");
  ck_assert_double_eq(sum, cJSON_GetObjectItem(load, "bytes_done")->valuedouble);
  ck_assert_double_gt(cJSON_GetObjectItem(load, "GBps")->valuedouble, 0);
  const cJSON *mem = cJSON_GetObjectItem(j, "device_memory");
  ck_assert_double_gt(cJSON_GetObjectItem(mem, "used")->valuedouble, sum);
  ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(mem, "free")));
  ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(j, "clients"), "attached")));
  cJSON_Delete(j);
  free(body);
  ck_assert_int_eq(http_get(s.port, "/metrics", &body), 200);
  check_metrics(body);
  ck_assert_msg(strstr(body, "hoist_component_state{component=\"transformer\",state=\"resident\"} 1") != NULL,
                "%s", body);
  ck_assert(strstr(body, "hoist_ready 1\n") != NULL);
  free(body);
  ck_assert_int_eq(http_get(s.port, "/nope", &body), 404);
  free(body);
  ck_assert_int_eq(http_post(s.port, "/healthz", NULL, &body), 405);
  free(body);
  ck_assert_int_eq(http_get(s.port, "/v1/reload", &body), 405);
  free(body);
  /* Keep-alive: three requests on one connection, pipelined. */
  const char *three = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  int fd = tcp_connect(s.port);
  ck_assert_int_eq(send(fd, three, strlen(three), 0), (ssize_t)strlen(three));
  char buf[8192];
  size_t got = 0;
  ssize_t r;
  while ((r = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0) got += (size_t)r;
  buf[got] = '\0';
  int answers = 0;
  for (char *p = buf; (p = strstr(p, "HTTP/1.1 200 OK")) != NULL; p++) answers++;
  ck_assert_int_eq(answers, 3);
  close(fd);
  stop(&s);
}
END_TEST

START_TEST(readyz_is_503_with_progress_while_loading) {
  write_pipe("serve_ready", 42);
  srv s;
  const char *extra[] = {"--rate", "2M", NULL};
  srv_start(&s, "ready", pipe_dir, extra);
  char *body = NULL;
  ck_assert_int_eq(http_get(s.port, "/healthz", &body), 200); /* at once */
  free(body);
  double last = -1;
  int seen_503 = 0, status = 0;
  double t0 = now_s();
  while ((status = http_get(s.port, "/readyz", &body)) == 503 && now_s() - t0 < 30) {
    cJSON *j = cJSON_Parse(body);
    ck_assert_msg(j != NULL, "%s", body);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "ready")));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "state")->valuestring, "loading");
    double done = cJSON_GetObjectItem(j, "bytes_done")->valuedouble;
    double progress = cJSON_GetObjectItem(j, "progress")->valuedouble;
    ck_assert_double_ge(done, last);
    ck_assert(progress >= 0 && progress <= 1);
    last = done;
    seen_503++;
    cJSON_Delete(j);
    free(body);
    if (seen_503 == 3) { /* the status shows the same load in progress */
      ck_assert_int_eq(http_get(s.port, "/v1/status", &body), 200);
      ck_assert(strstr(body, "\"state\":\"loading\"") != NULL);
      free(body);
    }
    usleep(100000);
  }
  ck_assert_int_eq(status, 200);
  free(body);
  ck_assert_int_ge(seen_503, 5);
  ck_assert_double_gt(last, 0);
  stop(&s);
}
END_TEST

START_TEST(state_changes_need_the_token) {
  write_pipe("serve_token", 43);
  srv s;
  start_ready(&s, "notoken", NULL);
  char *body = NULL;
  ck_assert_int_eq(http_post(s.port, "/v1/verify", "anything", &body), 403);
  free(body);
  ck_assert_int_eq(http_post(s.port, "/v1/reload", NULL, &body), 403);
  free(body);
  stop(&s);
  char tok[1100];
  snprintf(tok, sizeof tok, "%s.token", pipe_dir);
  tu_write_file(tok, "Zq7-secret\n", 11);
  chmod(tok, 0600);
  const char *extra[] = {"--token-file", tok, NULL};
  start_ready(&s, "token", extra);
  const char *wrong[] = {NULL, "Zq7-secreT", "Zq7-secre", "Zq7-secret2", ""};
  for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
    ck_assert_int_eq(http_post(s.port, "/v1/reload", wrong[i], &body), 401);
    free(body);
    ck_assert_int_eq(http_post(s.port, "/v1/verify", wrong[i], &body), 401);
    free(body);
  }
  ck_assert_double_eq(status_number(s.port, "generation"), 1);
  ck_assert_int_eq(http_post(s.port, "/v1/verify", "Zq7-secret", &body), 200);
  ck_assert(strstr(body, "\"ok\":true") != NULL);
  free(body);
  ck_assert_int_eq(http_post(s.port, "/v1/reload", "Zq7-secret", &body), 200);
  ck_assert_msg(strstr(body, "\"generation\":2") != NULL, "%s", body);
  free(body);
  ck_assert_double_eq(status_number(s.port, "generation"), 2);
  /* The old generation had no client: it is gone. */
  ck_assert(status_wait(s.port, "reload.total", 1, 5));
  stop(&s);
}
END_TEST

/* Sends raw and expects status, then a closed connection. */
static void expect_refusal(int port, const char *raw, size_t len, int status) {
  int fd = tcp_connect(port);
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(fd, raw + off, len - off, MSG_NOSIGNAL);
    if (w <= 0) break;
    off += (size_t)w;
  }
  char buf[2048];
  ssize_t r = 0;
  size_t got = 0;
  double end = now_s() + 5;
  while (got < 12 && now_s() < end && (r = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
    got += (size_t)r;
  buf[got] = '\0';
  char want[32];
  snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
  ck_assert_msg(strncmp(buf, want, strlen(want)) == 0, "wanted %d, got '%.60s'", status, buf);
  ck_assert_msg(closed_within(fd, 5), "connection left open after %d", status);
  close(fd);
}

START_TEST(malformed_and_oversized_requests_are_refused) {
  write_pipe("serve_bad", 44);
  srv s;
  const char *extra[] = {"--rate", "4M", NULL}; /* refusals land while the load runs */
  srv_start(&s, "bad", pipe_dir, extra);
  const char *garbage = "HELLO THERE\r\n\r\n";
  expect_refusal(s.port, garbage, strlen(garbage), 400);
  const char *bad_version = "GET / HTTP/9.9.9\r\n\r\n";
  expect_refusal(s.port, bad_version, strlen(bad_version), 400);
  const char *upgrade = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  expect_refusal(s.port, upgrade, strlen(upgrade), 400);
  char *big = malloc(20000);
  int n = snprintf(big, 20000, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ");
  memset(big + n, 'a', 9000);
  n += 9000;
  n += snprintf(big + n, 20000 - (size_t)n, "\r\n\r\n");
  expect_refusal(s.port, big, (size_t)n, 431);
  n = snprintf(big, 20000, "GET /");
  memset(big + n, 'b', 3000);
  n += 3000;
  n += snprintf(big + n, 20000 - (size_t)n, " HTTP/1.1\r\nHost: x\r\n\r\n");
  expect_refusal(s.port, big, (size_t)n, 414);
  const char *huge_body = "POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
  expect_refusal(s.port, huge_body, strlen(huge_body), 413);
  n = snprintf(big, 20000, "POST /v1/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "1388\r\n");
  memset(big + n, 'c', 5000);
  n += 5000;
  expect_refusal(s.port, big, (size_t)n, 413);
  free(big);
  char *ev = srv_event(&s, "ready", 60); /* the load went on undisturbed */
  ck_assert(ev != NULL);
  free(ev);
  char *body = NULL;
  ck_assert_int_eq(http_get(s.port, "/readyz", &body), 200);
  free(body);
  ck_assert_double_eq(status_number(s.port, "clients.http_connections"), 1);
  stop(&s);
}
END_TEST

START_TEST(a_slow_client_cannot_hold_a_slot) {
  write_pipe("serve_slow", 45);
  srv s;
  const char *extra[] = {"--read-timeout", "1", "--idle-timeout", "1", NULL};
  start_ready(&s, "slow", extra);
  /* One byte every 200 ms never completes a request in time. */
  int fd = tcp_connect(s.port);
  const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  double t0 = now_s();
  char buf[512];
  size_t got = 0;
  for (size_t i = 0; i < strlen(req) && now_s() - t0 < 5; i++) {
    if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1) break;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 200) == 1) break;
  }
  ssize_t r;
  while ((r = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0) got += (size_t)r;
  buf[got] = '\0';
  double took = now_s() - t0;
  ck_assert_msg(strncmp(buf, "HTTP/1.1 408 ", 13) == 0, "%s", buf);
  ck_assert_double_lt(took, 3);
  ck_assert_double_gt(took, 0.9);
  close(fd);
  /* A connection that says nothing is closed too. */
  fd = tcp_connect(s.port);
  ck_assert(closed_within(fd, 3));
  close(fd);
  ck_assert(status_wait(s.port, "clients.http_connections", 1, 3));
  stop(&s);
}
END_TEST

START_TEST(connections_are_capped) {
  write_pipe("serve_cap", 46);
  srv s;
  const char *extra[] = {"--max-connections", "4", NULL};
  start_ready(&s, "cap", extra);
  int fds[4];
  for (int i = 0; i < 4; i++) fds[i] = tcp_connect(s.port);
  usleep(100000);
  char *body = NULL;
  ck_assert_int_eq(http_get(s.port, "/healthz", &body), 503);
  ck_assert(strstr(body, "too many") != NULL);
  free(body);
  close(fds[0]);
  double t0 = now_s();
  int st = 0;
  while ((st = http_get(s.port, "/healthz", &body)) != 200 && now_s() - t0 < 3) {
    free(body);
    usleep(20000);
  }
  ck_assert_int_eq(st, 200);
  free(body);
  for (int i = 1; i < 4; i++) close(fds[i]);
  stop(&s);
}
END_TEST

/* 200 keep-alive clients each poll /v1/status 10 times while a throttled
 * load runs; every answer must be 200, all within a bounded time. */
START_TEST(two_hundred_clients_poll_during_a_load) {
  enum { CLIENTS = 200, ROUNDS = 10 };
  write_pipe("serve_many", 47);
  srv s;
  const char *extra[] = {"--rate", "4M", NULL};
  srv_start(&s, "many", pipe_dir, extra);
  struct client {
    int fd;
    int done;
    size_t got;
    char buf[8192];
  } *cl = calloc(CLIENTS, sizeof *cl);
  const char *req = "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < CLIENTS; i++) {
    cl[i].fd = tcp_connect(s.port);
    ck_assert_int_eq(send(cl[i].fd, req, strlen(req), 0), (ssize_t)strlen(req));
  }
  struct pollfd *pf = calloc(CLIENTS, sizeof *pf);
  int answered = 0, ok = 0;
  double t0 = now_s();
  while (answered < CLIENTS * ROUNDS && now_s() - t0 < 30) {
    for (int i = 0; i < CLIENTS; i++) pf[i] = (struct pollfd){cl[i].fd, cl[i].done < ROUNDS ? POLLIN : 0, 0};
    if (poll(pf, CLIENTS, 1000) <= 0) continue;
    for (int i = 0; i < CLIENTS; i++) {
      if (!(pf[i].revents & (POLLIN | POLLHUP))) continue;
      struct client *c = &cl[i];
      ssize_t r = recv(c->fd, c->buf + c->got, sizeof c->buf - 1 - c->got, 0);
      ck_assert_msg(r > 0, "client %d: connection closed after %d answers", i, c->done);
      c->got += (size_t)r;
      c->buf[c->got] = '\0';
      char *end = strstr(c->buf, "\r\n\r\n");
      const char *cl_hdr = strcasestr(c->buf, "Content-Length:");
      if (end == NULL || cl_hdr == NULL) continue;
      size_t total = (size_t)(end + 4 - c->buf) + (size_t)atol(cl_hdr + 15);
      if (c->got < total) continue;
      ok += strncmp(c->buf, "HTTP/1.1 200 ", 13) == 0;
      answered++;
      memmove(c->buf, c->buf + total, c->got - total);
      c->got -= total;
      if (++c->done < ROUNDS) ck_assert_int_eq(send(c->fd, req, strlen(req), 0), (ssize_t)strlen(req));
    }
  }
  double took = now_s() - t0;
  printf("serve load test: %d answers to %d clients in %.3f s\n", answered, CLIENTS, took);
  ck_assert_int_eq(answered, CLIENTS * ROUNDS);
  ck_assert_int_eq(ok, CLIENTS * ROUNDS);
  for (int i = 0; i < CLIENTS; i++) close(cl[i].fd);
  free(cl);
  free(pf);
  char *ev = srv_event(&s, "ready", 60);
  ck_assert(ev != NULL);
  free(ev);
  stop(&s);
}
END_TEST

START_TEST(a_failed_load_exits_with_hoist_load_codes) {
  write_pipe("serve_fail", 48);
  srv s;
  const char *small[] = {"--capacity", "1M", NULL};
  srv_start(&s, "fail", pipe_dir, small);
  char *ev = srv_event(&s, "failed", 30);
  ck_assert_msg(ev != NULL && strstr(ev, "\"status\":\"ADMISSION\"") != NULL, "%s", ev);
  free(ev);
  ck_assert_int_eq(srv_wait(&s, 0, 10), 4);
  srv_kill(&s);
  /* --on-failure stay: the failure is served until a stop. */
  const char *stay[] = {"--capacity", "1M", "--on-failure", "stay", NULL};
  srv_start(&s, "stay", pipe_dir, stay);
  ev = srv_event(&s, "failed", 30);
  ck_assert(ev != NULL);
  free(ev);
  char *body = NULL;
  ck_assert_int_eq(http_get(s.port, "/readyz", &body), 500);
  ck_assert_msg(strstr(body, "ADMISSION") != NULL && strstr(body, "transformer") != NULL, "%s", body);
  free(body);
  hoist_attached *a = NULL;
  ck_assert_int_eq(hoist_attach(s.sock, &a), HOIST_ADMISSION);
  ck_assert_msg(strstr(hoist_last_error(NULL), "free") != NULL, "%s", hoist_last_error(NULL));
  ck_assert_int_eq(srv_wait(&s, SIGTERM, 10), 4);
  srv_kill(&s);
  /* Not a pipeline: exit 3. */
  char missing[1100];
  snprintf(missing, sizeof missing, "%s/no-such-folder", pipe_dir);
  srv_start(&s, "missing", missing, NULL);
  ck_assert_int_eq(srv_wait(&s, 0, 10), 3);
  srv_kill(&s);
}
END_TEST

/* Runs hoist serve with args and returns its exit code; stdout in out. */
static int run_cli(const char *const *args, char *out, size_t size) {
  int p[2];
  ck_assert(pipe(p) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    dup2(p[1], 2);
    const char *argv[16] = {HOIST_CLI_PATH, "serve"};
    int n = 2;
    for (size_t i = 0; args[i] != NULL; i++) argv[n++] = args[i];
    argv[n] = NULL;
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  size_t got = 0;
  ssize_t r;
  while (got < size - 1 && (r = read(p[0], out + got, size - 1 - got)) > 0) got += (size_t)r;
  out[got] = '\0';
  close(p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(help_usage_and_a_socket_already_served) {
  char out[16384];
  ck_assert_int_eq(run_cli((const char *[]){"--help", NULL}, out, sizeof out), 0);
  const char *need[] = {"--unix", "--listen", "--token-file", "--allow-uid", "--drain", "/readyz",
                        "/metrics", "POST /v1/reload", "--offload", "--verify", "exit codes"};
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
    ck_assert_msg(strstr(out, need[i]) != NULL, "--help lacks %s", need[i]);
  ck_assert_int_eq(run_cli((const char *[]){NULL}, out, sizeof out), 2);
  ck_assert_int_eq(run_cli((const char *[]){"--bogus", "x", "p", NULL}, out, sizeof out), 2);
  ck_assert_int_eq(run_cli((const char *[]){"--listen", "nowhere", "p", NULL}, out, sizeof out), 2);
  ck_assert_int_eq(run_cli((const char *[]){"--token-file", "/nonexistent", "p", NULL}, out, sizeof out), 2);
  write_pipe("serve_twice", 49);
  srv s;
  start_ready(&s, "twice", NULL);
  ck_assert_int_eq(run_cli((const char *[]){"--unix", s.sock, "--listen", "none", pipe_dir, NULL}, out,
                           sizeof out), 1);
  ck_assert_msg(strstr(out, "another server") != NULL, "%s", out);
  stop(&s);
  /* A socket file left by a killed server is replaced. */
  srv_start(&s, "stale", pipe_dir, NULL);
  char sock[600];
  snprintf(sock, sizeof sock, "%s", s.sock);
  ck_assert_int_eq(srv_wait(&s, SIGKILL, 10), 128 + SIGKILL);
  struct stat st;
  ck_assert(stat(sock, &st) == 0);
  srv again;
  const char *extra[] = {"--unix", sock, NULL};
  srv_start(&again, "stale2", pipe_dir, extra);
  char *ev = srv_event(&again, "ready", 30);
  ck_assert(ev != NULL);
  free(ev);
  stop(&again);
  srv_kill(&s);
}
END_TEST

START_TEST(the_default_socket_lives_under_xdg_runtime_dir) {
  write_pipe("serve_xdg", 50);
  char xdg[] = "/tmp/hoist-xdg.XXXXXX";
  ck_assert(mkdtemp(xdg) != NULL);
  setenv("XDG_RUNTIME_DIR", xdg, 1);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    execl(HOIST_CLI_PATH, "hoist", "serve", "--listen", "none", pipe_dir, (char *)NULL);
    _exit(127);
  }
  char sock[200], dir[160];
  snprintf(dir, sizeof dir, "%s/hoist", xdg);
  snprintf(sock, sizeof sock, "%s/host.sock", dir);
  hoist_attach_options o = HOIST_ATTACH_OPTIONS_INIT;
  o.timeout_seconds = 30;
  hoist_attached *a = NULL;
  int rc = HOIST_NOT_FOUND;
  for (double t0 = now_s(); (rc == HOIST_NOT_FOUND || rc == HOIST_CLOSED) && now_s() - t0 < 30;
       usleep(20000)) /* until it listens */
    rc = hoist_attach_ex(sock, &o, &a);
  ck_assert_msg(rc == HOIST_OK, "%s", hoist_last_error(NULL));
  struct stat st;
  ck_assert(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
  ck_assert(stat(sock, &st) == 0 && (st.st_mode & 0777) == 0600);
  hoist_detach(a);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ck_assert(stat(sock, &st) != 0); /* removed at the stop */
  rmdir(dir);
  rmdir(xdg);
}
END_TEST

int main(void) {
  Suite *s = suite_create("serve");
  TCase *tc = tcase_create("http");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, endpoints_answer_in_their_formats);
  tcase_add_test(tc, readyz_is_503_with_progress_while_loading);
  tcase_add_test(tc, state_changes_need_the_token);
  tcase_add_test(tc, malformed_and_oversized_requests_are_refused);
  tcase_add_test(tc, a_slow_client_cannot_hold_a_slot);
  tcase_add_test(tc, connections_are_capped);
  tcase_add_test(tc, two_hundred_clients_poll_during_a_load);
  tcase_add_test(tc, a_failed_load_exits_with_hoist_load_codes);
  tcase_add_test(tc, help_usage_and_a_socket_already_served);
  tcase_add_test(tc, the_default_socket_lives_under_xdg_runtime_dir);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
