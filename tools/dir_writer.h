/* dir_writer.h — writes files into a folder without ever following a
 * symbolic link, so that nothing outside the folder can be modified.
 *
 * The folder (the root) is opened once with O_DIRECTORY|O_NOFOLLOW; its
 * subfolders are made and opened with mkdirat/openat relative to it, also
 * O_NOFOLLOW; every file is written as a temporary beside its final name
 * (O_CREAT|O_EXCL|O_NOFOLLOW) and renamed into place by hoist__dirw_commit
 * once every file is complete.  So:
 *   - a link that is already there where a file or folder is to be written
 *     is refused (HOIST_INVALID_ARGUMENT, one line naming it), before
 *     anything is written when the caller checks every name first with
 *     hoist__dirw_check;
 *   - a link planted while the files are written cannot redirect a write:
 *     folders are reached through their open descriptors, a temporary is
 *     never a link, and a rename replaces the directory entry of the final
 *     name, whatever it is, without opening it;
 *   - a hard link at a final name keeps its old bytes under its other
 *     names: the rename gives the name a new file;
 *   - a failed run (a full disk, a read-only folder) removes its
 *     temporaries, the files it added and the folders it created, and
 *     leaves every file that was there before with its old bytes (only a
 *     failure of one of the final renames themselves, which do not write
 *     data, leaves the files renamed before it in their new state).
 * Only the root's own path is resolved by name: the links among its
 * parents are followed (that path is the caller's choice), a root whose
 * last component is a link is refused ("DIR/" or "DIR/." names the folder
 * it points to).  Not crash-safe: files are not fsync'd, so after a power
 * loss a renamed file may lack its last bytes; temporaries of a killed run
 * stay behind as hidden ".NAME.hoist-*" files.
 *
 * Errors are recorded with hoist__fail(NULL, ...): HOIST_INVALID_ARGUMENT for
 * a refusal (a link, something that is not a folder, a root that cannot be
 * opened), HOIST_IO for a failed create, write, close or rename (naming the
 * file), HOIST_NO_MEMORY.  One writer is used by one thread at a time,
 * except that the descriptors it returns may be written from any thread. */
#ifndef HOIST_DIR_WRITER_H
#define HOIST_DIR_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct hoist__dirw hoist__dirw;

/* The root folder's index for hoist__dirw_create and friends. */
#define HOIST_DIRW_ROOT 0

/* Opens path as the root (creating it and its missing parents, as mkdir
 * -p, when absent).  On failure *out is NULL and what this call created is
 * removed again. */
int hoist__dirw_open(const char *path, hoist__dirw **out);

/* The root's descriptor (for fstatvfs and the like); owned by dw. */
int hoist__dirw_root_fd(const hoist__dirw *dw);
/* The root path as given, quoted for a one-line message (hoist__show). */
const char *hoist__dirw_shown_root(const hoist__dirw *dw);
/* Whether the root holds no entry.  HOIST_OK or HOIST_IO. */
int hoist__dirw_is_empty(hoist__dirw *dw, int *empty);

/* Refuses (HOIST_INVALID_ARGUMENT) when writing rel (relative to the root,
 * components joined by '/') would have to go through something that is
 * there now: a symbolic link at any component (dangling or not, to a file
 * or a folder), a component before the last that is not a folder, a last
 * component that is a folder when want_folder is 0 or is not one when it
 * is 1.  Names that do not exist yet are fine. */
int hoist__dirw_check(hoist__dirw *dw, const char *rel, int want_folder);

/* Makes (when absent) and opens the subfolder name of the root; *folder is
 * its index.  A link or a non-folder there is refused as hoist__dirw_check
 * does. */
int hoist__dirw_folder(hoist__dirw *dw, const char *name, int *folder);

/* Creates a temporary for name in folder and returns its descriptor in *fd
 * (owned by dw: closed by hoist__dirw_commit or hoist__dirw_abort) and its
 * index in *file.  A link at name is refused. */
int hoist__dirw_create(hoist__dirw *dw, int folder, const char *name, size_t *file, int *fd);
/* hoist__dirw_create, then len bytes of data written and the file closed. */
int hoist__dirw_write(hoist__dirw *dw, int folder, const char *name, const void *data, size_t len);
/* "ROOT/folder/name" of a file, quoted, for messages. */
const char *hoist__dirw_shown(const hoist__dirw *dw, size_t file);

/* Closes every file (a failed close is a failed write) and renames each
 * into place, the last created first.  On failure the caller aborts. */
int hoist__dirw_commit(hoist__dirw *dw);
/* Undoes the run: removes the temporaries, the files renamed into place
 * where nothing was before, and the folders (and root) it created. */
void hoist__dirw_abort(hoist__dirw *dw);
/* Closes and frees; NULL is fine.  Without a commit, call abort first. */
void hoist__dirw_free(hoist__dirw *dw);

/* pwrite until len bytes are written; 0 or the errno of the failure. */
int hoist__pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

#endif /* HOIST_DIR_WRITER_H */
