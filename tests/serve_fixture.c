/* serve_fixture.c — what the hoist serve suites share (serve_fixture.h). */
#include "serve_fixture.h"

#include "pipeline.h"
#include "pipeline_fixture.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* The server process */

void srv_start(srv *s, const char *name, const char *pipeline, const char *const *extra) {
  memset(s, 0, sizeof *s);
  s->pid = -1;
  /* Socket paths must stay short: a folder under /tmp, not the build tree. */
  snprintf(s->dir, sizeof s->dir, "/tmp/hoist-%s.XXXXXX", name);
  ck_assert_msg(mkdtemp(s->dir) != NULL, "mkdtemp: %s", strerror(errno));
  ck_assert(chmod(s->dir, 0755) == 0);
  snprintf(s->sock, sizeof s->sock, "%s/s.sock", s->dir);
  const char *argv[64];
  int n = 0, has_unix = 0, has_listen = 0;
  argv[n++] = HOIST_CLI_PATH;
  argv[n++] = "serve";
  argv[n++] = "--json";
  for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
    if (strcmp(extra[i], "--unix") == 0) {
      has_unix = 1;
      snprintf(s->sock, sizeof s->sock, "%s", extra[i + 1]);
    }
    has_listen |= strcmp(extra[i], "--listen") == 0;
    argv[n++] = extra[i];
  }
  if (!has_unix) {
    argv[n++] = "--unix";
    argv[n++] = s->sock;
  }
  if (!has_listen) {
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
  }
  argv[n++] = pipeline;
  argv[n] = NULL;
  int fds[2];
  ck_assert(pipe2(fds, O_CLOEXEC) == 0);
  pid_t pid = fork();
  ck_assert(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(fds[1]);
  s->pid = pid;
  s->out = fds[0];
  char *ev = srv_event(s, "listening", 20);
  ck_assert_msg(ev != NULL, "hoist serve did not start");
  cJSON *j = cJSON_Parse(ev);
  ck_assert(j != NULL);
  const cJSON *http = cJSON_GetObjectItem(j, "http");
  if (cJSON_IsString(http)) s->port = atoi(strrchr(http->valuestring, ':') + 1);
  cJSON_Delete(j);
  free(ev);
}

char *srv_event(srv *s, const char *event, double timeout) {
  char want[128];
  snprintf(want, sizeof want, "{\"event\":\"%s\"", event);
  double end = now_s() + timeout;
  for (;;) {
    char *nl;
    while ((nl = memchr(s->buf, '\n', s->len)) != NULL) {
      size_t n = (size_t)(nl - s->buf);
      char *line = strndup(s->buf, n);
      memmove(s->buf, nl + 1, s->len - n - 1);
      s->len -= n + 1;
      if (strncmp(line, want, strlen(want)) == 0) return line;
      free(line);
    }
    double left = end - now_s();
    if (left <= 0 || s->len == sizeof s->buf) return NULL;
    struct pollfd p = {s->out, POLLIN, 0};
    if (poll(&p, 1, (int)(left * 1000) + 1) <= 0) continue;
    ssize_t r = read(s->out, s->buf + s->len, sizeof s->buf - s->len);
    if (r <= 0) return NULL;
    s->len += (size_t)r;
  }
}

int srv_wait(srv *s, int sig, double timeout) {
  if (s->pid <= 0) return -1;
  if (sig != 0) kill(s->pid, sig);
  double end = now_s() + timeout;
  for (;;) {
    int st = 0;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid) {
      s->pid = -1;
      close(s->out);
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    if (now_s() > end) return -1;
    usleep(5000);
  }
}

void srv_kill(srv *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    close(s->out);
    s->pid = -1;
  }
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
  if (s->dir[0] != '\0' && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", s->dir);
}

/* ------------------------------------------------------------------------ */
/* HTTP */

int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert(fd >= 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s", strerror(errno));
  return fd;
}

int http_raw(int port, const char *raw, size_t len, char **body, double timeout) {
  int fd = tcp_connect(port);
  if (body != NULL) *body = NULL;
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(fd, raw + off, len - off, MSG_NOSIGNAL);
    if (w <= 0) break; /* the server may answer and close before reading it all */
    off += (size_t)w;
  }
  char *buf = malloc(1 << 20);
  size_t got = 0;
  double end = now_s() + timeout;
  int status = 0;
  for (;;) {
    char *hdr_end = got > 0 ? strstr(buf, "\r\n\r\n") : NULL;
    if (hdr_end != NULL) {
      const char *cl = strcasestr(buf, "Content-Length:");
      size_t want = cl != NULL && cl < hdr_end ? (size_t)atol(cl + 15) : 0;
      if (got >= (size_t)(hdr_end + 4 - buf) + want) break;
    }
    double left = end - now_s();
    struct pollfd p = {fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0) break;
    ssize_t r = recv(fd, buf + got, (1 << 20) - 1 - got, 0);
    if (r <= 0) break;
    got += (size_t)r;
    buf[got] = '\0';
  }
  buf[got] = '\0';
  if (got > 12 && strncmp(buf, "HTTP/1.1 ", 9) == 0) status = atoi(buf + 9);
  char *b = strstr(buf, "\r\n\r\n");
  if (body != NULL && b != NULL) *body = strdup(b + 4);
  free(buf);
  close(fd);
  return status;
}

int http_get(int port, const char *path, char **body) {
  char req[512];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
  return http_raw(port, req, (size_t)n, body, 20);
}

int http_post(int port, const char *path, const char *token, char **body) {
  char req[1024], auth[600] = "";
  if (token != NULL) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  int n = snprintf(req, sizeof req,
                   "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n",
                   path, auth);
  return http_raw(port, req, (size_t)n, body, 60);
}

double status_number(int port, const char *path) {
  char *body = NULL;
  ck_assert_int_eq(http_get(port, "/v1/status", &body), 200);
  cJSON *root = cJSON_Parse(body);
  ck_assert_msg(root != NULL, "status is not JSON: %s", body);
  const cJSON *at = root;
  char key[128];
  for (const char *p = path; at != NULL && *p != '\0';) {
    size_t n = strcspn(p, ".");
    snprintf(key, sizeof key, "%.*s", (int)n, p);
    at = cJSON_GetObjectItem(at, key);
    p += n + (p[n] == '.');
  }
  ck_assert_msg(cJSON_IsNumber(at), "status has no number at %s: %s", path, body);
  double v = at->valuedouble;
  cJSON_Delete(root);
  free(body);
  return v;
}

int status_wait(int port, const char *path, double want, double timeout) {
  double end = now_s() + timeout;
  while (now_s() < end) {
    if (status_number(port, path) == want) return 1;
    usleep(10000);
  }
  return status_number(port, path) == want;
}

void replace_pipeline(const char *dir, uint64_t seed, char *old_dir, size_t size) {
  char new_dir[1100];
  snprintf(new_dir, sizeof new_dir, "%s.new", dir);
  snprintf(old_dir, size, "%s.old", dir);
  ck_assert(mkdir(new_dir, 0755) == 0);
  fixture_write_pipeline(new_dir, seed);
  ck_assert(rename(dir, old_dir) == 0);
  ck_assert(rename(new_dir, dir) == 0);
}

long rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kib = -1;
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmRSS:", 6) == 0) kib = atol(line + 6);
  if (f != NULL) fclose(f);
  return kib;
}

/* ------------------------------------------------------------------------ */
/* Bytes against the files */

size_t compare_with_files(hoist_attached *a, const char *pipeline, dev_read_fn read, void *user) {
  hoist_runtime *rt = tu_host_runtime(0);
  hoist_pipeline *p = NULL;
  ck_assert_msg(hoist_pipeline_open(rt, pipeline, NULL, &p) == HOIST_OK, "%s", hoist_last_error(rt));
  size_t compared = 0;
  for (size_t slot = 0; slot < hoist_pipeline_component_count(p); slot++) {
    const char *comp = hoist_pipeline_component(p, slot)->name;
    hoist_file *const *files = NULL;
    size_t nf = hoist__pipeline_safetensors(p, slot, &files);
    for (size_t f = 0; f < nf; f++)
      for (size_t t = 0; t < hoist_file_tensor_count(files[f]); t++) {
        const hoist_tensor_info *ft = hoist_file_tensor(files[f], t);
        uint64_t addr = 0;
        const hoist_tensor_info *info = NULL;
        int rc = hoist_attached_tensor(a, comp, ft->name, &addr, &info);
        if (rc == HOIST_UNSUPPORTED) continue; /* offloaded, not prepared */
        ck_assert_msg(rc == HOIST_OK, "%s/%s: %s", comp, ft->name, hoist_last_error(NULL));
        ck_assert_uint_eq(info->nbytes, ft->nbytes);
        ck_assert_int_eq(info->dtype, ft->dtype);
        ck_assert_uint_eq(info->ndim, ft->ndim);
        unsigned char *want = malloc(ft->nbytes + 1), *got = malloc(ft->nbytes + 1);
        ck_assert(hoist_file_read(files[f], hoist_file_data_offset(files[f]) + ft->begin, want,
                                  ft->nbytes) == HOIST_OK);
        if (read != NULL) ck_assert_int_eq(read(user, got, addr, ft->nbytes), 0);
        else memcpy(got, (const void *)(uintptr_t)addr, ft->nbytes);
        ck_assert_msg(memcmp(want, got, ft->nbytes) == 0, "%s/%s differs from the file", comp,
                      ft->name);
        free(want);
        free(got);
        compared++;
      }
  }
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
  return compared;
}
