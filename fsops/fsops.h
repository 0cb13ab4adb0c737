/* fsops: file operations on paths, for the file ops of the protocol. Knows nothing of the protocol or of
 * WebSockets: every function returns 0 or -errno, and the agent maps errno to protocol codes.
 *
 * Paths reaching these functions are absolute and normalized (ra_fs_resolve). Deleting never follows a
 * symbolic link out of the tree it deletes (openat/unlinkat with O_NOFOLLOW). Writes are atomic by
 * default: a temporary file in the target's directory, fsync, rename; a failure leaves the old content. */
#ifndef RA_FSOPS_H
#define RA_FSOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RA_FS_PATH_MAX 4096
/* The names of the temporary files of atomic writes (".NAME.runra-PID-HEX.tmp"), as a glob. */
#define RA_FS_TEMP_PATTERN ".*.runra-*.tmp"

typedef enum { RA_FS_FILE, RA_FS_DIR, RA_FS_SYMLINK, RA_FS_OTHER } ra_fs_type;

typedef struct {
	ra_fs_type type;
	uint64_t size;
	uint32_t mode;      /* permission bits (07777) */
	int64_t mtime_ms;
	uint32_t uid, gid;
	char *target; /* a symlink's target (malloc'd), NULL otherwise: release with ra_fs_stat_free */
} ra_fs_stat;

void ra_fs_stat_free(ra_fs_stat *st);

typedef struct {
	char *path;  /* relative to the listed directory */
	char *name;
	ra_fs_stat st;
} ra_fs_entry;

typedef struct {
	ra_fs_entry *entries;
	size_t count;
	bool more; /* entries past the page remain */
} ra_fs_listing;

/* An absolute, normalized path from `in` (absolute, or relative to base): "//", "." and ".." resolved
 * lexically (".." never climbs above "/"). -EINVAL for an empty path or a NUL byte, -ENAMETOOLONG. */
int ra_fs_resolve(const char *base, const char *in, size_t len, char *out, size_t cap);
const char *ra_fs_type_name(ra_fs_type t);

/* lstat (follow false) or stat, with the link's target when it is a symlink. */
int ra_fs_stat_path(const char *path, bool follow, ra_fs_stat *st);
/* Who a new file belongs to. */
typedef struct {
	uid_t uid;
	gid_t gid;
} ra_fs_owner;

/* mkdir (with parents: those missing too, 0755); a directory it makes gets mode exactly and, given owner,
 * that owner (set through its descriptor). *created (may be NULL): whether path was made here. */
int ra_fs_mkdir(const char *path, mode_t mode, bool parents, const ra_fs_owner *owner, bool *created);
/* A file or a symlink (the link itself), or a directory: empty, or with `recursive` everything under it. */
int ra_fs_delete(const char *path, bool recursive);
/* rename; across filesystems a regular file is copied (atomically) and the source removed. Without
 * overwrite an existing target is -EEXIST. */
int ra_fs_move(const char *from, const char *to, bool overwrite);
int ra_fs_chmod(const char *path, mode_t mode);
/* Deletes everything in dir (never following a symlink out of it) except the paths in keep (absolute, and
 * the directories leading to them); removed() hears each path deleted whole. The first error, or 0. */
typedef void (*ra_fs_removed_fn)(const char *path, void *ctx);
int ra_fs_clear_dir(const char *dir, const char *const *keep, unsigned nkeep, ra_fs_removed_fn removed, void *ctx);

/* Entries under dir down to `depth` levels (1: the directory itself), sorted by path, those after `after`
 * (NULL: from the start), at most `limit`. Free with ra_fs_listing_free. -E2BIG past max_scan entries. */
int ra_fs_list(const char *dir, unsigned depth, const char *after, size_t limit, size_t max_scan,
	       ra_fs_listing *out);
void ra_fs_listing_free(ra_fs_listing *l);

/* ---- streamed writes: a temporary file beside the target, renamed over it at commit ---- */

/* Creates the temporary file for path (its name in tmp); returns its fd or -errno. */
int ra_fs_temp_create(const char *path, mode_t mode, char *tmp, size_t cap);
int ra_fs_write_all(int fd, const void *data, size_t len);
/* Starts writing back what arrived so far (non-blocking), so that the final fsync has little left. */
void ra_fs_start_writeback(int fd, uint64_t offset, uint64_t len);
/* fchmod, fsync, close, rename over path (without overwrite: -EEXIST if path exists). The temporary file is
 * gone afterwards, whether this succeeded or not. */
int ra_fs_temp_commit(int fd, const char *tmp, const char *path, mode_t mode, bool overwrite);
/* Gives the temporary file the owner of the file it will replace; 0, or -errno (EPERM counts as done: an
 * agent that is not root keeps the file its own). */
int ra_fs_temp_owner(int fd, uid_t uid, gid_t gid);
void ra_fs_temp_discard(int fd, const char *tmp);
/* The parent directory of path must exist (or is created with mkdirs) and path must not be a directory. */
int ra_fs_prepare_target(const char *path, bool mkdirs, bool *exists, mode_t *existing_mode, uid_t *uid,
			 gid_t *gid);

/* Opens a regular file for reading (never blocks on a FIFO): fd, -EISDIR, -EINVAL (not a regular file). */
int ra_fs_open_regular(const char *path);
/* Up to len bytes from offset into dst (fewer only at the end); *got is what was read. */
int ra_fs_pread(int fd, uint64_t offset, size_t len, uint8_t *dst, size_t *got);

/* Writes data as the whole content (atomic: old content or new, never half), or appended. mode applies to
 * a new file (an existing one keeps its mode unless set_mode); mkdirs creates missing parents. A replaced
 * file keeps its owner; a new one gets new_owner (NULL: the agent's). The owner is set before the mode,
 * and before the file appears under its name. */
int ra_fs_write(const char *path, const void *data, size_t len, mode_t mode, bool set_mode, bool append,
		bool mkdirs, const ra_fs_owner *new_owner, bool *created);

#endif
