/* watch, poll backend: for filesystems where inotify misses changes made elsewhere (NFS, SMB, 9p, FUSE and
 * virtiofs). Every poll_ms the root is walked into a snapshot sorted by path (type, size, mtime, inode) and
 * compared with the previous one: deletions deepest first, then creations and modifications in path order.
 * A move is seen as a deletion and a creation; changes undone within one interval are not seen. Only a
 * directory that is gone (ENOENT, ENOTDIR, ELOOP) loses its entries: one that cannot be read this time (EACCES,
 * EIO, ESTALE, EMFILE...) keeps those of the previous walk and is reported once with watch.error, so that a
 * passing error does not read as its whole tree deleted and then created again. */
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
	int last_err; /* reported once, while the same error lasts */
};

static void snap_free(snapshot *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i].rel);
	free(s->e);
	*s = (snapshot){0};
}

/* Drops the entries from n on (a directory's, read in part). */
static void snap_truncate(snapshot *s, size_t n)
{
	while (s->n > n)
		free(s->e[--s->n].rel);
}

static int snap_push(snapshot *s, const pentry *e)
{
	if (s->n >= RA_WATCH_POLL_ENTRIES_MAX)
		return -E2BIG;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		pentry *grown = realloc(s->e, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		s->e = grown;
		s->cap = cap;
	}
	char *copy = strdup(e->rel);
	if (!copy)
		return -ENOMEM;
	s->e[s->n] = *e;
	s->e[s->n++].rel = copy;
	return 0;
}

static int snap_push_stat(snapshot *s, const char *rel, const struct stat *st)
{
	pentry e = {(char *)rel, st->st_ino, st->st_mode & S_IFMT, st->st_size,
		    (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec};
	return snap_push(s, &e);
}

/* One walk of a root into a new snapshot. */
typedef struct {
	wroot *r;
	snapshot *now;
	const snapshot *old;    /* the previous walk's (sorted), NULL at the first */
	char path[PATH_MAX];    /* the directory being walked, extended in place */
	int err;                /* the first directory below the root that could not be read: errno, */
	char err_path[PATH_MAX]; /* and its path */
} walk_state;

/* Errors that mean a directory below the root is no longer there (deleted, or replaced by a file or a
 * symbolic link), not that it could not be read this time. */
static bool is_gone(int err) { return err == ENOENT || err == ENOTDIR || err == ELOOP; }

/* The first entry of the sorted snapshot at or after rel. */
static size_t snap_lower_bound(const snapshot *s, const char *rel)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(s->e[mid].rel, rel) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* What the previous walk saw below the directory rel, into the new snapshot: a directory that cannot be read
 * now (EACCES, EIO, ESTALE, EMFILE...) has not changed as far as anyone can tell, rather than been emptied. */
static int keep_old(walk_state *w, const char *rel)
{
	char prefix[PATH_MAX];
	size_t n = strlen(rel);
	if (!w->old || n + 2 > sizeof(prefix))
		return 0;
	memcpy(prefix, rel, n);
	memcpy(prefix + n, "/", 2);
	int rc = 0;
	for (size_t i = snap_lower_bound(w->old, prefix); !rc && i < w->old->n; i++) {
		const pentry *e = &w->old->e[i];
		if (strncmp(e->rel, prefix, n + 1) != 0)
			break;
		rc = snap_push(w->now, e);
		w->now->dirs += e->fmt == S_IFDIR;
	}
	return rc;
}

/* A directory that could not be read (or not whole): at the top the walk fails; below, one that is gone is
 * empty, any other keeps what the previous walk saw in it, and the error is reported (watch.error). */
static int dir_failed(walk_state *w, size_t first, uint32_t dirs, int err, bool top)
{
	snap_truncate(w->now, first);
	w->now->dirs = dirs;
	if (top)
		return -err;
	if (is_gone(err))
		return 0;
	if (!w->err) {
		w->err = err;
		memcpy(w->err_path, w->path, strlen(w->path) + 1);
	}
	return keep_old(w, watch_rel(w->r, w->path));
}

static int walk(walk_state *w, size_t len, bool top);

/* An entry of the directory open at dfd (its path in w->path); *err is set when it cannot be examined. */
static int walk_entry(walk_state *w, int dfd, const char *name, size_t len, int *err)
{
	struct stat st;
	if (watch_root_excludes(w->r, w->path, name))
		return 0;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT) /* ENOENT: deleted since readdir, it is not an entry */
			*err = errno;
		return 0;
	}
	int rc = snap_push_stat(w->now, watch_rel(w->r, w->path), &st);
	if (!rc && S_ISDIR(st.st_mode) && w->r->recursive)
		rc = walk(w, len, false);
	return rc;
}

/* Walks the directory at w->path (len bytes): only the top may be a symbolic link (§9.7). */
static int walk(walk_state *w, size_t len, bool top)
{
	size_t first = w->now->n;
	uint32_t dirs = w->now->dirs;
	DIR *d = fsops_opendir(w->path, !top);
	if (!d)
		return dir_failed(w, first, dirs, errno, top);
	w->now->dirs++;
	int rc = 0, err = 0;
	struct dirent *de;
	while (!rc && !err && (errno = 0, de = readdir(d))) {
		size_t clen = watch_is_dot(de->d_name) ? 0 : watch_path_join(w->path, len, de->d_name);
		if (clen)
			rc = walk_entry(w, dirfd(d), de->d_name, clen, &err);
		w->path[len] = '\0';
	}
	if (!rc && !err && errno) /* readdir failed: what was read of it is not all of it */
		err = errno;
	closedir(d);
	return !rc && err ? dir_failed(w, first, dirs, err, top) : rc;
}

static int cmp_entry(const void *a, const void *b) { return strcmp(((const pentry *)a)->rel, ((const pentry *)b)->rel); }

static int take_snapshot(walk_state *w, snapshot *s)
{
	if (w->r->path_len >= sizeof(w->path))
		return -ENAMETOOLONG;
	memcpy(w->path, w->r->path, w->r->path_len + 1);
	*s = (snapshot){0};
	w->now = s;
	int rc = walk(w, w->r->path_len, true);
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

static void emit(const wroot *r, ra_watch_event_kind kind, const pentry *e)
{
	char path[PATH_MAX];
	if (r->path_len >= sizeof(path))
		return;
	memcpy(path, r->path, r->path_len + 1);
	if (!watch_path_join(path, r->path_len, e->rel))
		return;
	ra_watch_event ev = {.kind = kind, .watch = r->id, .path = path, .type = fsops_type_of((mode_t)e->fmt),
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

/* An error is reported once while it lasts (err 0: it ended). */
static void report_error(poll_state *ps, const char *path, int err)
{
	if (err && err != ps->last_err)
		watch_emit_root(ps->root, RA_WEV_ERROR, path, err, NULL);
	ps->last_err = err;
}

static void on_poll(struct ev_loop *loop, ev_timer *timer, int revents)
{
	(void)loop, (void)revents;
	poll_state *ps = (poll_state *)timer;
	wroot *r = ps->root;
	walk_state w = {.r = r, .old = &ps->snap};
	snapshot now;
	int rc = take_snapshot(&w, &now);
	if (rc == -ENOENT || rc == -ENOTDIR) {
		watch_root_end(r, "deleted");
		return;
	}
	if (rc) {
		report_error(ps, r->path, -rc);
		if (rc == -E2BIG)
			watch_root_end(r, "error");
		return; /* the previous snapshot stays: the next walk that succeeds reports what changed since */
	}
	report_error(ps, w.err_path, w.err);
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
	walk_state w = {.r = r}; /* no previous walk: a directory it cannot read is left out, reported at the next */
	int rc = take_snapshot(&w, &ps->snap);
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
