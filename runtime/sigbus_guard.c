/* sigbus_guard.c — lets copies from a file mapping fail cleanly instead of
 * killing the process when the file is truncated underneath them.
 *
 * While at least one load is copying from mappings, a SIGBUS handler is
 * installed.  A thread inside hoist__guarded_copy (a plain copy, or with
 * --verify the readers' fused copy and block checksum) has a jump buffer
 * armed; the handler jumps back there and the copy reports
 * HOIST_FILE_CHANGED.  A SIGBUS on any other thread or outside a guarded copy goes to the handler
 * that was installed before (or the default action), so the program's own
 * behaviour is unchanged.  The previous handler is restored when the last
 * load releases the guard. */
#include "upload.h"

#include "checksum_host.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned guard_users;
static struct sigaction previous;
/* initial-exec: the handler must not reach __tls_get_addr, which may
 * allocate, when libhoist was dlopen'ed. */
static _Thread_local sigjmp_buf *volatile armed __attribute__((tls_model("initial-exec")));

static void on_sigbus(int sig, siginfo_t *info, void *ctx) {
  sigjmp_buf *jb = armed;
  if (jb != NULL) siglongjmp(*jb, 1);
  /* Not ours: behave as the process would have without hoist. */
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction != NULL) {
      previous.sa_sigaction(sig, info, ctx);
      return;
    }
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
    return;
  }
  signal(SIGBUS, SIG_DFL);
  raise(SIGBUS);
}

void hoist__sigbus_guard_acquire(void) {
  pthread_mutex_lock(&guard_lock);
  if (guard_users++ == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &previous);
  }
  pthread_mutex_unlock(&guard_lock);
}

void hoist__sigbus_guard_release(void) {
  pthread_mutex_lock(&guard_lock);
  if (guard_users > 0 && --guard_users == 0) sigaction(SIGBUS, &previous, NULL);
  pthread_mutex_unlock(&guard_lock);
}

int hoist__guarded_copy(void *dst, const void *src, size_t n, uint64_t *hash) {
  sigjmp_buf jb;
  /* savemask = 1: the handler runs with SIGBUS blocked only under
   * SA_NODEFER's absence; restoring the mask keeps later faults catchable. */
  if (sigsetjmp(jb, 1) != 0) {
    armed = NULL;
    return HOIST_FILE_CHANGED;
  }
  armed = &jb;
  if (hash != NULL)
    *hash = hoist__ck_copy_hash(HOIST_CK_IMPL_BEST, dst, src, n);
  else
    memcpy(dst, src, n);
  armed = NULL;
  return HOIST_OK;
}
