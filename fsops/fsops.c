#include "fsops.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#define DELETE_MAX_DEPTH 512
#define COPY_CHUNK (256u << 10)

/* ---- paths ---- */

const char *ra_fs_type_name(ra_fs_type t)
{
	static const char *const names[] = {"file", "dir", "symlink", "other"};
	return names[t];
}

/* Appends one component, or pops one for "..". */
static int push_component(char *out, size_t *n, size_t cap, const char *c, size_t clen)
{
	if (clen == 0 || (clen == 1 && c[0] == '.'))
		return 0;
	if (clen == 2 && c[0] == '.' && c[1] == '.') {
		while (*n > 1 && out[*n - 1] != '/')
			(*n)--;
		if (*n > 1)
			(*n)--; /* the slash before it, unless that is the root */
		out[*n] = '\0';
		return 0;
	}
	if (*n + (*n > 1) + clen + 1 > cap)
		return -ENAMETOOLONG;
	if (*n > 1)
		out[(*n)++] = '/';
	memcpy(out + *n, c, clen);
	*n += clen;
	out[*n] = '\0';
	return 0;
}

static int push_path(char *out, size_t *n, size_t cap, const char *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && p[j] != '/')
			j++;
		int rc = push_component(out, n, cap, p + i, j - i);
		if (rc)
			return rc;
		i = j + 1;
	}
	return 0;
}

int ra_fs_resolve(const char *base, const char *in, size_t len, char *out, size_t cap)
{
	if (len == 0 || memchr(in, 0, len) || cap < 2)
		return -EINVAL;
	if (len >= RA_FS_PATH_MAX)
		return -ENAMETOOLONG;
	size_t n = 1;
	out[0] = '/';
	out[1] = '\0';
	int rc = in[0] == '/' ? 0 : push_path(out, &n, cap, base, strlen(base));
	return rc ? rc : push_path(out, &n, cap, in, len);
}

/* ---- stat ---- */

ra_fs_type fsops_type_of(mode_t m)
{
	return S_ISREG(m) ? RA_FS_FILE : S_ISDIR(m) ? RA_FS_DIR : S_ISLNK(m) ? RA_FS_SYMLINK : RA_FS_OTHER;
}

void fsops_fill_stat(ra_fs_stat *st, const struct stat *s)
{
	st->type = fsops_type_of(s->st_mode);
	st->size = (uint64_t)s->st_size;
	st->mode = (uint32_t)(s->st_mode & 07777);
	st->mtime_ms = (int64_t)s->st_mtim.tv_sec * 1000 + s->st_mtim.tv_nsec / 1000000;
	st->uid = s->st_uid;
	st->gid = s->st_gid;
	st->target = NULL;
}

void ra_fs_stat_free(ra_fs_stat *st)
{
	free(st->target);
	st->target = NULL;
}

void fsops_read_target(int dirfd, const char *name, ra_fs_stat *st)
{
	char buf[RA_FS_PATH_MAX];
	ssize_t n = readlinkat(dirfd, name, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	st->target = strdup(buf); /* NULL on no memory: reported as an empty target */
}

DIR *fsops_opendir(const char *path, bool nofollow)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		errno = e; /* the caller reports fdopendir's error, not close's */
	}
	return d;
}

int ra_fs_stat_path(const char *path, bool follow, ra_fs_stat *st)
{
	st->target = NULL; /* freeable whatever happens */
	struct stat s;
	if ((follow ? stat(path, &s) : lstat(path, &s)) != 0)
		return -errno;
	fsops_fill_stat(st, &s);
	if (st->type == RA_FS_SYMLINK)
		fsops_read_target(AT_FDCWD, path, st);
	return 0;
}

/* ---- mkdir, chmod ---- */

/* 1 if made, 0 if a directory was there already (exist_ok), or -errno. */
static int mkdir_one(const char *path, mode_t mode, bool exist_ok)
{
	if (mkdir(path, mode) == 0)
		return 1;
	if (errno != EEXIST || !exist_ok)
		return -errno;
	struct stat s;
	if (stat(path, &s))
		return -errno;
	return S_ISDIR(s.st_mode) ? 0 : -ENOTDIR;
}

/* The new directory's owner and exact mode (the umask must not narrow what was asked for), set through a
 * descriptor of the directory itself: had something put a symlink in its place since the mkdir, a chmod
 * by path would change whatever the link points to. */
static int settle_new_dir(const char *path, mode_t mode, const ra_fs_owner *owner)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = owner ? ra_fs_temp_owner(fd, owner->uid, owner->gid) : 0;
	if (!rc && fchmod(fd, mode & 07777)) /* after the chown, which clears set-id bits */
		rc = -errno;
	close(fd);
	return rc;
}

int ra_fs_mkdir(const char *path, mode_t mode, bool parents, const ra_fs_owner *owner, bool *created)
{
	bool made_here = false;
	if (!created)
		created = &made_here;
	*created = false;
	char buf[RA_FS_PATH_MAX];
	size_t n = strlen(path);
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; parents && *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir_one(buf, 0755, true);
		*p = '/';
		if (rc < 0)
			return rc;
	}
	int rc = mkdir_one(buf, mode, parents);
	if (rc <= 0)
		return rc;
	*created = true;
	return settle_new_dir(buf, mode, owner);
}

int ra_fs_chmod(const char *path, mode_t mode) { return chmod(path, mode & 07777) ? -errno : 0; }

/* ---- delete ---- */

/* Empties the directory open at dfd: never follows a symlink (it is unlinked, not entered) and never enters
 * another filesystem mounted inside (-EXDEV). Takes dfd. */
static int empty_dir(int dfd, unsigned depth, dev_t dev)
{
	if (depth > DELETE_MAX_DEPTH) {
		close(dfd);
		return -ELOOP;
	}
	DIR *d = fdopendir(dfd);
	if (!d) {
		int err = -errno;
		close(dfd);
		return err;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (errno = 0, e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		struct stat s;
		if (fstatat(dirfd(d), e->d_name, &s, AT_SYMLINK_NOFOLLOW))
			rc = errno == ENOENT ? 0 : -errno;
		else if (S_ISDIR(s.st_mode) && s.st_dev != dev)
			rc = -EXDEV;
		else if (S_ISDIR(s.st_mode)) {
			int child = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			rc = child < 0 ? -errno : empty_dir(child, depth + 1, dev);
			if (rc == 0 && unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR))
				rc = -errno;
		} else if (unlinkat(dirfd(d), e->d_name, 0) && errno != ENOENT) {
			rc = -errno;
		}
	}
	if (rc == 0 && errno && !e)
		rc = -errno;
	closedir(d);
	return rc;
}

int ra_fs_delete(const char *path, bool recursive)
{
	struct stat s;
	if (lstat(path, &s))
		return -errno;
	if (!S_ISDIR(s.st_mode))
		return unlink(path) ? -errno : 0;
	if (recursive) {
		int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return -errno;
		int rc = empty_dir(dfd, 0, s.st_dev);
		if (rc)
			return rc;
	}
	return rmdir(path) ? -errno : 0;
}

static bool is_kept(const char *path, const char *const *keep, unsigned nkeep, bool *above)
{
	size_t n = strlen(path);
	*above = false;
	for (unsigned i = 0; i < nkeep; i++) {
		if (strcmp(keep[i], path) == 0)
			return true;
		if (strncmp(keep[i], path, n) == 0 && keep[i][n] == '/')
			*above = true;
	}
	return false;
}

/* Below the top, a directory is entered only if it still is one, not a symlink put in its place since the
 * lstat (which would lead the reset out of the workdir). */
static int clear_dir(const char *dir, bool top, const char *const *keep, unsigned nkeep, ra_fs_removed_fn removed,
		     void *ctx)
{
	DIR *d = fsops_opendir(dir, !top);
	if (!d)
		return -errno;
	int first_err = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
			continue;
		char path[RA_FS_PATH_MAX];
		if (snprintf(path, sizeof(path), "%s/%s", strcmp(dir, "/") ? dir : "", name) >= (int)sizeof(path))
			continue;
		bool above;
		if (is_kept(path, keep, nkeep, &above))
			continue;
		struct stat st;
		int rc = above && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)
				 ? clear_dir(path, false, keep, nkeep, removed, ctx)
				 : ra_fs_delete(path, true);
		if (rc && !first_err)
			first_err = rc;
		if (!rc && !above && removed)
			removed(path, ctx);
	}
	closedir(d);
	return first_err;
}

int ra_fs_clear_dir(const char *dir, const char *const *keep, unsigned nkeep, ra_fs_removed_fn removed, void *ctx)
{
	return clear_dir(dir, true, keep, nkeep, removed, ctx);
}

/* ---- writing ---- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A temporary name beside the target, so that rename() stays within one filesystem. */
static int temp_beside(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* ".NAME.runra-PID-HEX.tmp": NAME is cut so that the whole stays within NAME_MAX (255) */
	int n = snprintf(out, cap, "%.*s/.%.200s.runra-%d-%lx.tmp", (int)(slash - path), path, slash + 1, (int)getpid(),
			 (unsigned long)ts.tv_nsec ^ (unsigned long)ts.tv_sec);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int parent_dir(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(out, path, n);
	out[n] = '\0';
	return 0;
}

/* The rename itself is durable only once the directory is synced. */
static void sync_parent(const char *path)
{
	char dir[RA_FS_PATH_MAX];
	if (parent_dir(path, dir, sizeof(dir)))
		return;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* ---- streamed writes ---- */

int ra_fs_temp_create(const char *path, mode_t mode, char *tmp, size_t cap)
{
	int rc = temp_beside(path, tmp, cap);
	if (rc)
		return rc;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
	return fd < 0 ? -errno : fd;
}

int ra_fs_write_all(int fd, const void *data, size_t len) { return write_all(fd, data, len); }

void ra_fs_start_writeback(int fd, uint64_t offset, uint64_t len)
{
	sync_file_range(fd, (off_t)offset, (off_t)len, SYNC_FILE_RANGE_WRITE); /* a hint: failure is harmless */
}

int ra_fs_temp_owner(int fd, uid_t uid, gid_t gid)
{
	if (fchown(fd, uid, gid) && errno != EPERM) /* EPERM: an agent that is not root keeps it its own */
		return -errno;
	return 0;
}

void ra_fs_temp_discard(int fd, const char *tmp)
{
	if (fd >= 0)
		close(fd);
	unlink(tmp);
}

/* Without overwrite, nothing at `to` is ever replaced, not even what appeared after the check. */
static int rename_into_place(const char *tmp, const char *to, bool overwrite)
{
	if (syscall(SYS_renameat2, AT_FDCWD, tmp, AT_FDCWD, to, overwrite ? 0 : RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL || overwrite)
		return -errno;
	if (link(tmp, to)) /* no RENAME_NOREPLACE on this filesystem: link() never replaces */
		return -errno;
	unlink(tmp);
	return 0;
}

int ra_fs_temp_commit(int fd, const char *tmp, const char *path, mode_t mode, bool overwrite)
{
	int rc = fchmod(fd, mode & 07777) ? -errno : 0;
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc)
		rc = rename_into_place(tmp, path, overwrite);
	if (rc)
		unlink(tmp);
	else
		sync_parent(path);
	return rc;
}

int ra_fs_prepare_target(const char *path, bool mkdirs, bool *exists, mode_t *existing_mode, uid_t *uid,
			 gid_t *gid)
{
	char dir[RA_FS_PATH_MAX];
	int rc = parent_dir(path, dir, sizeof(dir));
	if (!rc && mkdirs)
		rc = ra_fs_mkdir(dir, 0755, true, NULL, NULL);
	if (rc)
		return rc;
	struct stat s;
	if (stat(dir, &s))
		return -errno;
	if (!S_ISDIR(s.st_mode))
		return -ENOTDIR;
	*exists = stat(path, &s) == 0;
	if (*exists && S_ISDIR(s.st_mode))
		return -EISDIR;
	*existing_mode = *exists ? (s.st_mode & 07777) : 0;
	*uid = *exists ? s.st_uid : 0;
	*gid = *exists ? s.st_gid : 0;
	return 0;
}

/* ---- whole writes ---- */

/* A temporary file, synced and renamed over path (ra_fs_temp_*): readers see the old content or the new,
 * never half; a failure leaves the old one. A file it replaces keeps its owner. */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode, const ra_fs_owner *owner)
{
	char tmp[RA_FS_PATH_MAX + 64];
	int fd = ra_fs_temp_create(path, mode, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	int rc = write_all(fd, data, len);
	if (!rc && owner)
		rc = ra_fs_temp_owner(fd, owner->uid, owner->gid);
	if (rc) {
		ra_fs_temp_discard(fd, tmp);
		return rc;
	}
	return ra_fs_temp_commit(fd, tmp, path, mode, true); /* sets the exact mode (the fchown cleared set-id) */
}

/* Opens path for appending. A file made here is new: only then is it given the owner and the mode, through
 * its descriptor. O_NONBLOCK meanwhile: opening a FIFO that took the file's place must not wait. */
static int open_for_append(const char *path, mode_t mode, bool exists, const ra_fs_owner *new_owner)
{
	const int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK;
	struct stat s;
	bool dangling = !exists && lstat(path, &s) == 0 && S_ISLNK(s.st_mode);
	int fd = exists ? open(path, flags)
		 : dangling ? open(path, flags | O_CREAT, mode) /* the file it points to is made */
			    : open(path, flags | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
	bool made = !exists && fd >= 0;
	if (fd < 0 && errno == EEXIST && !exists) { /* something appeared since: append to it as it is */
		fd = open(path, flags);
		made = false;
	}
	if (fd < 0)
		return -errno;
	int rc = fstat(fd, &s) ? -errno : !S_ISREG(s.st_mode) ? -EINVAL : 0;
	if (!rc && made && new_owner) /* the link, not what it points to, is given away (§10) */
		rc = dangling ? (lchown(path, new_owner->uid, new_owner->gid) && errno != EPERM ? -errno : 0)
			      : ra_fs_temp_owner(fd, new_owner->uid, new_owner->gid);
	if (!rc && made && fchmod(fd, mode)) /* the umask must not narrow what was asked for */
		rc = -errno;
	if (!rc && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK))
		rc = -errno;
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

static int append_to(const char *path, const void *data, size_t len, mode_t mode, bool exists,
		     const ra_fs_owner *new_owner)
{
	/* Only a regular file takes appended bytes. Asked before opening, since opening a FIFO for writing can
	 * fail (ENXIO) or wait. */
	struct stat s;
	if (exists && stat(path, &s) == 0 && !S_ISREG(s.st_mode))
		return -EINVAL;
	int fd = open_for_append(path, mode, exists, new_owner);
	if (fd < 0)
		return fd;
	int rc = write_all(fd, data, len);
	if (close(fd) && !rc)
		rc = -errno;
	return rc;
}

int ra_fs_write(const char *path, const void *data, size_t len, mode_t mode, bool set_mode, bool append,
		bool mkdirs, const ra_fs_owner *new_owner, bool *created)
{
	bool exists;
	mode_t existing;
	uid_t uid;
	gid_t gid;
	int rc = ra_fs_prepare_target(path, mkdirs, &exists, &existing, &uid, &gid);
	if (rc)
		return rc;
	*created = !exists;
	mode_t m = set_mode || !exists ? (mode & 07777) : existing;
	ra_fs_owner replaced = {uid, gid};
	if (append)
		return append_to(path, data, len, m, exists, new_owner);
	return write_atomic(path, data, len, m, exists ? &replaced : new_owner);
}

/* ---- move ---- */

/* The source, opened as the regular file it must be: a FIFO put in its place since the lstat would make a
 * plain open wait for a writer, with the agent's whole loop. */
static int open_source(const char *from, struct stat *s)
{
	int fd = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ELOOP ? -EXDEV : -errno; /* a symlink now: not copied across filesystems */
	int rc = fstat(fd, s) ? -errno : !S_ISREG(s->st_mode) ? -EXDEV : 0;
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

/* The copy is owned as the source was (as mv does); where the agent cannot give it away, set-id bits are
 * dropped, so that a move never makes a set-id file of the agent's. */
static int copy_owner_and_mode(int out, const struct stat *s)
{
	mode_t mode = s->st_mode & 07777;
	if (fchown(out, s->st_uid, s->st_gid))
		mode &= ~(mode_t)06000;
	return fchmod(out, mode) ? -errno : 0;
}

static int copy_file(const char *from, const char *to, bool overwrite, struct stat *s)
{
	int in = open_source(from, s);
	if (in < 0)
		return in;
	char tmp[RA_FS_PATH_MAX + 64];
	int rc = temp_beside(to, tmp, sizeof(tmp));
	int out = rc ? -1 : open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (!rc && out < 0)
		rc = -errno;
	if (!rc)
		rc = copy_owner_and_mode(out, s);
	uint8_t *buf = rc ? NULL : malloc(COPY_CHUNK);
	if (!rc && !buf)
		rc = -ENOMEM;
	for (ssize_t n; !rc && (n = read(in, buf, COPY_CHUNK)) != 0;)
		rc = n < 0 ? (errno == EINTR ? 0 : -errno) : write_all(out, buf, (size_t)n);
	free(buf);
	close(in);
	if (out >= 0) {
		if (!rc && fsync(out))
			rc = -errno;
		close(out);
		if (!rc)
			rc = rename_into_place(tmp, to, overwrite);
		if (rc)
			unlink(tmp);
		else
			sync_parent(to);
	}
	return rc;
}

/* Something that does not exist, not even as a dangling symlink. */
static bool nothing_at(const char *path)
{
	struct stat s;
	return lstat(path, &s) != 0 && errno == ENOENT;
}

int ra_fs_move(const char *from, const char *to, bool overwrite)
{
	if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, overwrite ? 0 : RENAME_NOREPLACE) == 0)
		return 0;
	int err = errno;
	if (err == EINVAL && !overwrite && access(from, F_OK) == 0) { /* maybe no RENAME_NOREPLACE here */
		if (!nothing_at(to))
			return -EEXIST;
		if (rename(from, to) == 0)
			return 0;
		err = errno;
	}
	if (err != EXDEV)
		return -err;
	struct stat s, copied;
	if (lstat(from, &s))
		return -errno;
	if (!S_ISREG(s.st_mode))
		return -EXDEV; /* across filesystems only files are copied */
	if (!overwrite && !nothing_at(to))
		return -EEXIST;
	int rc = copy_file(from, to, overwrite, &copied);
	if (rc)
		return rc;
	/* The source goes only if it is still the file copied (not one put in its place meanwhile). */
	if (lstat(from, &s) || s.st_dev != copied.st_dev || s.st_ino != copied.st_ino)
		return 0;
	return unlink(from) ? -errno : 0;
}

/* ---- read ---- */

int ra_fs_open_regular(const char *path)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct stat s;
	int rc = fstat(fd, &s) ? -errno : S_ISDIR(s.st_mode) ? -EISDIR : !S_ISREG(s.st_mode) ? -EINVAL : 0;
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int ra_fs_pread(int fd, uint64_t offset, size_t len, uint8_t *dst, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = pread(fd, dst + *got, len - *got, (off_t)(offset + *got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}
