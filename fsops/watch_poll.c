/* watch, poll backend: for filesystems where inotify misses changes made elsewhere (NFS, SMB, 9p, FUSE and
 * virtiofs). Every poll_ms the root is walked into a snapshot sorted by path (type, size, mtime, inode) and
 * compared with the previous one: deletions deepest first, then creations and modifications in path order.
 * A move is seen as a deletion and a creation; changes undone within one interval are not seen. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "watch_internal.h"

typedef struct {
	char *rel;
	uint64_t ino;
	uint32_t fmt; /* S_IFMT bits */
	int64_t size;
	int64_t mtime_ns;
} pentry;

typedef struct {
	pentry *e;
	size_t n, cap;
	uint32_t dirs;
} snapshot;

struct poll_state {
	ev_timer timer;
	wroot *root;
	snapshot snap;
	int last_err; /* reported once, until a scan succeeds again */
};

static void snap_free(snapshot *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i].rel);
	free(s->e);
	*s = (snapshot){0};
}

static int snap_push(snapshot *s, const char *rel, const struct stat *st)
{
	if (s->n >= RA_WATCH_POLL_ENTRIES_MAX)
		return -E2BIG;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		pentry *e = realloc(s->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		s->e = e;
		s->cap = cap;
	}
	char *copy = strdup(rel);
	if (!copy)
		return -ENOMEM;
	s->e[s->n++] = (pentry){copy, st->st_ino, st->st_mode & S_IFMT, st->st_size,
				(int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec};
	return 0;
}

/* Walks path (rel_len bytes of it past the root's) into s. */
static int walk(wroot *r, snapshot *s, char *path, size_t len, bool top)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (top ? 0 : O_NOFOLLOW));
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return top ? -e : 0;
	}
	s->dirs++;
	int rc = 0;
	struct dirent *de;
	while (!rc && (de = readdir(d))) {
		const char *name = de->d_name;
		if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
			continue;
		size_t nl = strlen(name);
		bool slash = !(len == 1 && path[0] == '/');
		if (len + slash + nl + 1 > PATH_MAX)
			continue;
		if (slash)
			path[len] = '/';
		memcpy(path + len + slash, name, nl + 1);
		struct stat st;
		if (!watch_root_excludes(r, path, name) && fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			rc = snap_push(s, watch_rel(r, path), &st);
			if (!rc && S_ISDIR(st.st_mode) && r->recursive)
				rc = walk(r, s, path, len + slash + nl, false);
		}
		path[len] = '\0';
	}
	closedir(d);
	return rc;
}

static int cmp_entry(const void *a, const void *b) { return strcmp(((const pentry *)a)->rel, ((const pentry *)b)->rel); }

static int take_snapshot(wroot *r, snapshot *s)
{
	char path[PATH_MAX];
	if (r->path_len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, r->path, r->path_len + 1);
	*s = (snapshot){0};
	int rc = walk(r, s, path, r->path_len, true);
	if (rc) {
		snap_free(s);
		return rc;
	}
	if (s->n)
		qsort(s->e, s->n, sizeof(*s->e), cmp_entry);
	return 0;
}

static const pentry *snap_find(const snapshot *s, const char *rel)
{
	pentry key = {.rel = (char *)rel};
	return s->n ? bsearch(&key, s->e, s->n, sizeof(*s->e), cmp_entry) : NULL;
}

static ra_fs_type type_of(uint32_t fmt)
{
	return fmt == S_IFDIR ? RA_FS_DIR : fmt == S_IFLNK ? RA_FS_SYMLINK : fmt == S_IFREG ? RA_FS_FILE : RA_FS_OTHER;
}

static void emit(const wroot *r, ra_watch_event_kind kind, const pentry *e)
{
	char path[PATH_MAX];
	size_t len = r->path_len;
	memcpy(path, r->path, len);
	bool slash = !(len == 1);
	size_t rel_len = strlen(e->rel);
	if (len + slash + rel_len + 1 > sizeof(path))
		return;
	if (slash)
		path[len++] = '/';
	memcpy(path + len, e->rel, rel_len + 1);
	ra_watch_event ev = {.kind = kind, .watch = r->id, .path = path, .type = type_of(e->fmt),
			     .size = kind != RA_WEV_DELETED && e->fmt == S_IFREG ? e->size : -1};
	watch_emit(&ev);
}

static void diff(const wroot *r, const snapshot *old, const snapshot *now)
{
	for (size_t i = old->n; i-- > 0;) {
		const pentry *n = snap_find(now, old->e[i].rel);
		if (!n || n->fmt != old->e[i].fmt)
			emit(r, RA_WEV_DELETED, &old->e[i]);
	}
	for (size_t i = 0; i < now->n; i++) {
		const pentry *e = &now->e[i], *o = snap_find(old, e->rel);
		if (!o || o->fmt != e->fmt)
			emit(r, RA_WEV_CREATED, e);
		else if (e->fmt != S_IFDIR && (e->size != o->size || e->mtime_ns != o->mtime_ns || e->ino != o->ino))
			emit(r, RA_WEV_MODIFIED, e);
	}
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop, (void)revents;
	poll_state *ps = (poll_state *)w;
	wroot *r = ps->root;
	snapshot now;
	int rc = take_snapshot(r, &now);
	if (rc == -ENOENT || rc == -ENOTDIR) {
		watch_root_end(r, "deleted");
		return;
	}
	if (rc) {
		ra_watch_event ev = {.kind = RA_WEV_ERROR, .watch = r->id, .path = r->path, .type = RA_FS_DIR,
				     .size = -1, .err = -rc};
		if (ps->last_err != -rc)
			watch_emit(&ev);
		ps->last_err = -rc;
		if (rc == -E2BIG)
			watch_root_end(r, "error");
		return;
	}
	ps->last_err = 0;
	diff(r, &ps->snap, &now);
	snap_free(&ps->snap);
	ps->snap = now;
	r->dirs = now.dirs;
}

int poll_root_start(wroot *r)
{
	poll_state *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	int rc = take_snapshot(r, &ps->snap);
	if (rc) {
		free(ps);
		return rc;
	}
	ps->root = r;
	r->poll = ps;
	r->dirs = ps->snap.dirs;
	double every = r->poll_ms / 1000.0;
	ev_timer_init(&ps->timer, on_poll, every, every);
	ev_timer_start(ra_watch_g.loop, &ps->timer);
	return 0;
}

void poll_root_stop(wroot *r)
{
	if (!r->poll)
		return;
	ev_timer_stop(ra_watch_g.loop, &r->poll->timer);
	snap_free(&r->poll->snap);
	free(r->poll);
	r->poll = NULL;
}
