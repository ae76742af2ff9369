/* dir_writer.c — writes files into a folder without following a symbolic
 * link (see dir_writer.h): every operation below the root is relative to a
 * descriptor opened O_DIRECTORY|O_NOFOLLOW, every file is a temporary
 * made O_EXCL|O_NOFOLLOW and renamed into place at the end, and what a run
 * made is remembered so that a failed run can take it back. */
#include "dir_writer.h"

#include "hoist_tools.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct dw_folder {
  int fd;        /* O_DIRECTORY|O_NOFOLLOW */
  char *name;    /* "" for the root */
  int created;   /* made by this run */
} dw_folder;

enum { FILE_TEMP, FILE_PLACED, FILE_GONE };

typedef struct dw_file {
  int folder;
  char *name;    /* final name in its folder */
  char *tmp;     /* temporary name in the same folder */
  char *shown;   /* "ROOT/folder/name", quoted */
  int fd;        /* open on the temporary until closed; -1 */
  int existed;   /* the final name was there when the temporary was made */
  int state;
} dw_file;

struct hoist__dirw {
  char *path;
  char shown[HOIST_SHOW_PATH];
  int root_created;
  char **parents;          /* ancestors of the root this run made, outermost first */
  size_t nparents;
  dw_folder *folders;      /* [0] is the root */
  size_t nfolders;
  dw_file *files;
  size_t nfiles;
};

/* Temporaries of concurrent writers in one process never share a name. */
static atomic_uint temp_counter;

int hoist__pwrite_all(int fd, const void *buf, size_t len, uint64_t off) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t k = pwrite(fd, p, len, (off_t)off);
    if (k < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (k == 0) return EIO;
    p += k;
    len -= (size_t)k;
    off += (uint64_t)k;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Refusals */

/* rel (relative to the root, reached from dirfd as at) is a link. */
static int refuse_link(const hoist__dirw *dw, int dirfd, const char *at, const char *rel) {
  char target[PATH_MAX], rb[HOIST_SHOW_PATH], tb[HOIST_SHOW_PATH], to[HOIST_SHOW_PATH + 8] = "";
  ssize_t n = readlinkat(dirfd, at, target, sizeof target - 1);
  if (n >= 0) {
    target[n] = '\0';
    snprintf(to, sizeof to, " (to %s)", hoist__show(target, tb, sizeof tb));
  }
  return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                    "%s: %s is a symbolic link%s; hoist never writes through links: remove it "
                    "or choose another folder",
                    dw->shown, hoist__show(rel, rb, sizeof rb), to);
}

static int refuse_kind(const hoist__dirw *dw, const char *rel, const char *what) {
  char rb[HOIST_SHOW_PATH];
  return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "%s: %s %s", dw->shown,
                     hoist__show(rel, rb, sizeof rb), what);
}

/* ------------------------------------------------------------------------ */
/* The root */

static int remember_parent(hoist__dirw *dw, char *path) {
  char **p = realloc(dw->parents, (dw->nparents + 1) * sizeof *p);
  if (p == NULL) return -1;
  dw->parents = p;
  dw->parents[dw->nparents++] = path;
  return 0;
}

/* mkdir -p of path's missing ancestors, by name: they are above the root,
 * where the caller's path is followed as given. */
static int make_parents(hoist__dirw *dw, const char *path) {
  const char *slash = strrchr(path, '/');
  while (slash != NULL && slash > path && slash[-1] == '/') slash--;
  if (slash == NULL || slash == path) return HOIST_OK;
  char *parent = strndup(path, (size_t)(slash - path));
  if (parent == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  struct stat st;
  int rc = HOIST_OK;
  if (stat(parent, &st) == 0 || errno != ENOENT) goto done;
  if ((rc = make_parents(dw, parent)) != HOIST_OK) goto done;
  if (mkdir(parent, 0755) == 0) {
    if (remember_parent(dw, parent) == 0) return HOIST_OK; /* owned by dw now */
    rmdir(parent);
    rc = hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  } else if (errno != EEXIST) {
    char pb[HOIST_SHOW_PATH];
    rc = hoist__fail(NULL, HOIST_IO, "%s: cannot create folder: %s",
                     hoist__show(parent, pb, sizeof pb), strerror(errno));
  }
done:
  free(parent);
  return rc;
}

static int refuse_root(hoist__dirw *dw, int err) {
  struct stat st;
  if (lstat(dw->path, &st) == 0 && S_ISLNK(st.st_mode)) {
    char target[PATH_MAX], tb[HOIST_SHOW_PATH];
    ssize_t n = readlink(dw->path, target, sizeof target - 1);
    target[n >= 0 ? n : 0] = '\0';
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                      "%s: is a symbolic link (to %s); hoist never writes through links: name "
                      "the folder it points to (a trailing '/' does)",
                      dw->shown, n >= 0 ? hoist__show(target, tb, sizeof tb) : "?");
  }
  if (err == ENOTDIR && lstat(dw->path, &st) == 0)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "%s: exists and is not a folder", dw->shown);
  return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "%s: %s", dw->shown, strerror(err));
}

static int open_root(hoist__dirw *dw) {
  const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int fd = open(dw->path, flags);
  if (fd < 0 && errno == ENOENT) {
    int rc = make_parents(dw, dw->path);
    if (rc != HOIST_OK) return rc;
    if (mkdir(dw->path, 0755) == 0)
      dw->root_created = 1;
    else if (errno != EEXIST)
      return hoist__fail(NULL, HOIST_IO, "%s: cannot create folder: %s", dw->shown, strerror(errno));
    fd = open(dw->path, flags);
  }
  if (fd < 0) return refuse_root(dw, errno);
  dw->folders[0] = (dw_folder){fd, NULL, dw->root_created};
  dw->nfolders = 1;
  return HOIST_OK;
}

int hoist__dirw_open(const char *path, hoist__dirw **out) {
  *out = NULL;
  hoist__dirw *dw = calloc(1, sizeof *dw);
  if (dw != NULL) {
    dw->path = hoist__strdup(path);
    dw->folders = calloc(1, sizeof *dw->folders);
  }
  if (dw == NULL || dw->path == NULL || dw->folders == NULL) {
    hoist__dirw_free(dw);
    return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  }
  hoist__show(path, dw->shown, sizeof dw->shown);
  int rc = open_root(dw);
  if (rc != HOIST_OK) {
    hoist__dirw_abort(dw);
    hoist__dirw_free(dw);
    return rc;
  }
  *out = dw;
  return HOIST_OK;
}

int hoist__dirw_root_fd(const hoist__dirw *dw) { return dw->folders[0].fd; }

const char *hoist__dirw_shown_root(const hoist__dirw *dw) { return dw->shown; }

int hoist__dirw_is_empty(hoist__dirw *dw, int *empty) {
  /* A fresh description of the root, so that reading it moves no offset
   * of the one the writes are relative to. */
  int fd = openat(dw->folders[0].fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (d == NULL) {
    int e = errno;
    if (fd >= 0) close(fd);
    return hoist__fail(NULL, HOIST_IO, "%s: cannot list: %s", dw->shown, strerror(e));
  }
  *empty = 1;
  struct dirent *e;
  while (*empty && (e = readdir(d)) != NULL)
    *empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
  closedir(d);
  return HOIST_OK;
}

/* ------------------------------------------------------------------------ */
/* Checks and folders */

int hoist__dirw_check(hoist__dirw *dw, const char *rel, int want_folder) {
  char *at = hoist__strdup(rel);
  if (at == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  int rc = HOIST_OK;
  /* Each prefix of rel in turn, so that a link is named where it is. */
  for (char *p = at;;) {
    char *slash = strchr(p, '/');
    if (slash != NULL) *slash = '\0';
    struct stat st;
    if (fstatat(dw->folders[0].fd, at, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) {
        char rb[HOIST_SHOW_PATH];
        rc = hoist__fail(NULL, HOIST_IO, "%s: %s: %s", dw->shown, hoist__show(at, rb, sizeof rb),
                         strerror(errno));
      }
      break; /* nothing there yet: nothing to go through */
    }
    if (S_ISLNK(st.st_mode)) {
      rc = refuse_link(dw, dw->folders[0].fd, at, at);
      break;
    }
    if ((slash != NULL || want_folder) && !S_ISDIR(st.st_mode)) {
      rc = refuse_kind(dw, at, "is not a folder");
      break;
    }
    if (slash == NULL) {
      if (!want_folder && S_ISDIR(st.st_mode)) rc = refuse_kind(dw, at, "is a folder");
      break;
    }
    *slash = '/';
    p = slash + 1;
  }
  free(at);
  return rc;
}

int hoist__dirw_folder(hoist__dirw *dw, const char *name, int *folder) {
  assert(strchr(name, '/') == NULL);
  int root = dw->folders[0].fd;
  dw_folder *grown = realloc(dw->folders, (dw->nfolders + 1) * sizeof *grown);
  if (grown == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  dw->folders = grown;
  char *copy = hoist__strdup(name);
  if (copy == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  char nb[HOIST_SHOW_PATH];
  int created = mkdirat(root, name, 0755) == 0;
  if (!created && errno != EEXIST) {
    free(copy);
    return hoist__fail(NULL, HOIST_IO, "%s: %s: cannot create folder: %s", dw->shown,
                      hoist__show(name, nb, sizeof nb), strerror(errno));
  }
  int fd = openat(root, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    free(copy);
    if (created) unlinkat(root, name, AT_REMOVEDIR);
    /* A link or a file there (perhaps put there since the check). */
    int rc = hoist__dirw_check(dw, name, 1);
    if (rc != HOIST_OK) return rc;
    return hoist__fail(NULL, HOIST_IO, "%s: %s: cannot open folder: %s", dw->shown,
                      hoist__show(name, nb, sizeof nb), strerror(e));
  }
  dw->folders[dw->nfolders] = (dw_folder){fd, copy, created};
  *folder = (int)dw->nfolders++;
  return HOIST_OK;
}

/* ------------------------------------------------------------------------ */
/* Files */

/* "ROOT/folder/name" quoted, and the folder-relative name for checks. */
static char *file_rel(const dw_folder *d, const char *name) {
  size_t n = (d->name ? strlen(d->name) + 1 : 0) + strlen(name) + 1;
  char *rel = malloc(n);
  if (rel != NULL) snprintf(rel, n, "%s%s%s", d->name ? d->name : "", d->name ? "/" : "", name);
  return rel;
}

static int open_temp(dw_file *f, int dirfd) {
  size_t n = strlen(f->name) + 48;
  f->tmp = malloc(n);
  if (f->tmp == NULL) return ENOMEM;
  for (int tries = 0; tries < 100; tries++) {
    snprintf(f->tmp, n, ".%s.hoist-%ld-%u", f->name, (long)getpid(),
             atomic_fetch_add(&temp_counter, 1));
    f->fd = openat(dirfd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (f->fd >= 0) return 0;
    if (errno != EEXIST) return errno; /* a stale temporary of another run: next name */
  }
  return EEXIST;
}

int hoist__dirw_create(hoist__dirw *dw, int folder, const char *name, size_t *file, int *fd) {
  assert(folder >= 0 && (size_t)folder < dw->nfolders && strchr(name, '/') == NULL);
  const dw_folder *d = &dw->folders[folder];
  dw_file *grown = realloc(dw->files, (dw->nfiles + 1) * sizeof *grown);
  if (grown == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  dw->files = grown;
  dw_file f = {folder, hoist__strdup(name), NULL, NULL, -1, 0, FILE_GONE};
  char *rel = file_rel(d, name);
  char rb[HOIST_SHOW_PATH];
  if (rel != NULL && f.name != NULL) {
    size_t n = strlen(dw->shown) + HOIST_SHOW_PATH + 2;
    if ((f.shown = malloc(n)) != NULL)
      snprintf(f.shown, n, "%s/%s", dw->shown, hoist__show(rel, rb, sizeof rb));
  }
  int rc = HOIST_OK;
  if (rel == NULL || f.name == NULL || f.shown == NULL) {
    rc = hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
    goto fail;
  }
  struct stat st;
  f.existed = fstatat(d->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (f.existed && S_ISLNK(st.st_mode)) {
    rc = refuse_link(dw, d->fd, name, rel);
    goto fail;
  }
  int e = open_temp(&f, d->fd);
  if (e != 0) {
    rc = hoist__fail(NULL, e == ENOMEM ? HOIST_NO_MEMORY : HOIST_IO, "%s: cannot create: %s",
                    f.shown, strerror(e));
    goto fail;
  }
  f.state = FILE_TEMP;
  dw->files[dw->nfiles] = f;
  *file = dw->nfiles++;
  *fd = f.fd;
  free(rel);
  return HOIST_OK;
fail:
  free(rel);
  free(f.name);
  free(f.tmp);
  free(f.shown);
  return rc;
}

/* Closes file i; a failed close is a failed write (NFS reports there). */
static int close_file(hoist__dirw *dw, size_t i) {
  dw_file *f = &dw->files[i];
  if (f->fd < 0) return HOIST_OK;
  int rc = close(f->fd) == 0 ? HOIST_OK
                             : hoist__fail(NULL, HOIST_IO, "%s: write failed: %s", f->shown, strerror(errno));
  f->fd = -1;
  return rc;
}

int hoist__dirw_write(hoist__dirw *dw, int folder, const char *name, const void *data, size_t len) {
  size_t i;
  int fd;
  int rc = hoist__dirw_create(dw, folder, name, &i, &fd);
  if (rc != HOIST_OK) return rc;
  int e = hoist__pwrite_all(fd, data, len, 0);
  if (e != 0) return hoist__fail(NULL, HOIST_IO, "%s: write failed: %s", dw->files[i].shown, strerror(e));
  return close_file(dw, i);
}

const char *hoist__dirw_shown(const hoist__dirw *dw, size_t file) { return dw->files[file].shown; }

int hoist__dirw_commit(hoist__dirw *dw) {
  for (size_t i = 0; i < dw->nfiles; i++) {
    int rc = close_file(dw, i);
    if (rc != HOIST_OK) return rc;
  }
  /* The last created first: a caller that writes its table of contents
   * first (model_index.json) has it appear last, over complete files. */
  for (size_t i = dw->nfiles; i-- > 0;) {
    dw_file *f = &dw->files[i];
    if (f->state != FILE_TEMP) continue;
    int dirfd = dw->folders[f->folder].fd;
    if (renameat(dirfd, f->tmp, dirfd, f->name) != 0)
      return hoist__fail(NULL, HOIST_IO, "%s: cannot rename into place: %s", f->shown, strerror(errno));
    f->state = FILE_PLACED;
  }
  return HOIST_OK;
}

void hoist__dirw_abort(hoist__dirw *dw) {
  if (dw == NULL) return;
  for (size_t i = dw->nfiles; i-- > 0;) {
    dw_file *f = &dw->files[i];
    int dirfd = dw->folders[f->folder].fd;
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    if (f->state == FILE_TEMP) unlinkat(dirfd, f->tmp, 0);
    if (f->state == FILE_PLACED && !f->existed) unlinkat(dirfd, f->name, 0);
    f->state = FILE_GONE;
  }
  /* Folders only go when empty: what others put there stays. */
  for (size_t i = dw->nfolders; i-- > 1;)
    if (dw->folders[i].created) unlinkat(dw->folders[0].fd, dw->folders[i].name, AT_REMOVEDIR);
  if (dw->root_created) rmdir(dw->path);
  dw->root_created = 0;
  for (; dw->nparents > 0; dw->nparents--) {
    rmdir(dw->parents[dw->nparents - 1]);
    free(dw->parents[dw->nparents - 1]);
  }
}

void hoist__dirw_free(hoist__dirw *dw) {
  if (dw == NULL) return;
  for (size_t i = 0; i < dw->nfiles; i++) {
    if (dw->files[i].fd >= 0) close(dw->files[i].fd);
    free(dw->files[i].name);
    free(dw->files[i].tmp);
    free(dw->files[i].shown);
  }
  for (size_t i = 0; i < dw->nfolders; i++) {
    if (dw->folders[i].fd >= 0) close(dw->folders[i].fd);
    free(dw->folders[i].name);
  }
  for (size_t i = 0; i < dw->nparents; i++) free(dw->parents[i]);
  free(dw->parents);
  free(dw->files);
  free(dw->folders);
  free(dw->path);
  free(dw);
}
