/* serve_fixture.h — what the hoist serve suites share: starting `hoist
 * serve` as a child process (its --json events read from a pipe), raw HTTP
 * requests over loopback, the pipeline bytes a tensor should have, and a
 * process's resident memory. */
#ifndef HOIST_SERVE_FIXTURE_H
#define HOIST_SERVE_FIXTURE_H

#include "hoist.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct srv {
  pid_t pid;
  int out;              /* the server's stdout (JSON events) */
  char buf[65536];      /* event bytes read but not yet taken */
  size_t len;
  char dir[512];        /* scratch folder: socket, token */
  char sock[600];
  int port;
} srv;

/* Starts the server on pipeline with the extra arguments (NULL-terminated
 * list, may be NULL) plus --json --unix DIR/s.sock --listen 127.0.0.1:0
 * (unless extra has --unix) and waits for its "listening" event. */
void srv_start(srv *s, const char *name, const char *pipeline, const char *const *extra);
/* The next event line called event (others are skipped), within timeout
 * seconds; malloc'd.  NULL when the server's stdout ended or time ran out. */
char *srv_event(srv *s, const char *event, double timeout);
/* Sends sig (0: none) and waits up to timeout seconds for the exit; returns
 * the exit code, or 128+N for a signal N; -1 when it did not exit. */
int srv_wait(srv *s, int sig, double timeout);
/* Kills and reaps the server when it still runs. */
void srv_kill(srv *s);

/* A TCP connection to 127.0.0.1:port (fails the test when refused). */
int tcp_connect(int port);
/* One HTTP exchange on a fresh connection: sends raw, reads until the peer
 * closes or a whole response (by Content-Length) arrived.  Returns the
 * status (0: none) and the body in *body (malloc'd, may be NULL). */
int http_raw(int port, const char *raw, size_t len, char **body, double timeout);
int http_get(int port, const char *path, char **body);
int http_post(int port, const char *path, const char *token, char **body);

/* Polls GET /v1/status until the number at the JSON path (dot-separated,
 * e.g. "clients.attached") equals want, within timeout seconds. */
int status_wait(int port, const char *path, double want, double timeout);
/* The number at a dot path of GET /v1/status. */
double status_number(int port, const char *path);

/* New weights replace a pipeline folder as a deploy would: a fixture
 * pipeline of seed is written beside dir, dir becomes old_dir
 * (DIR.old, returned) and the new folder takes its name. */
void replace_pipeline(const char *dir, uint64_t seed, char *old_dir, size_t size);

/* Resident set of a process in KiB (/proc/PID/status VmRSS). */
long rss_kib(pid_t pid);

/* Copies n bytes at the address addr of a's device into dst (a GPU test
 * passes a cudaMemcpy; NULL compares host-backend addresses directly). */
typedef int (*dev_read_fn)(void *user, void *dst, uint64_t addr, size_t n);

/* Compares every tensor of every mapped component of a (resident, and
 * offloaded ones once prepared) with the bytes of the pipeline's files;
 * fails the test on the first difference.  Returns the tensors compared. */
size_t compare_with_files(hoist_attached *a, const char *pipeline, dev_read_fn read, void *user);

double now_s(void);

#endif
