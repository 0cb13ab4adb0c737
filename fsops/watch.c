/* watch: the roots, their exclusion patterns, and the choice of backend (watch.h). */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "watch_internal.h"

struct watch_globals ra_watch_g;

/* The insides of these are churn nobody watches: the directories themselves are reported, not what is in
 * them. */
static const char *const default_exclude[] = {"**/.git/*", "**/node_modules/*", RA_FS_TEMP_PATTERN};

const char *const *ra_watch_default_exclude(unsigned *count)
{
	*count = sizeof(default_exclude) / sizeof(default_exclude[0]);
	return default_exclude;
}

const char *ra_watch_mode_name(ra_watch_mode m)
{
	return m == RA_WATCH_POLL ? "poll" : m == RA_WATCH_INOTIFY ? "inotify" : "auto";
}

void watch_emit(const ra_watch_event *ev) { ra_watch_g.sink(ev, ra_watch_g.ctx); }

void watch_emit_root(const wroot *r, ra_watch_event_kind kind, const char *path, int err, const char *reason)
{
	ra_watch_event ev = {.kind = kind, .watch = r->id, .path = path ? path : r->path, .type = RA_FS_DIR,
			     .size = -1, .err = err, .reason = reason, .dirs = r->dirs};
	watch_emit(&ev);
}

size_t watch_path_join(char *buf, size_t dir_len, const char *name)
{
	size_t nl = strlen(name);
	bool slash = !(dir_len == 1 && buf[0] == '/');
	if (dir_len + slash + nl + 1 > PATH_MAX)
		return 0;
	if (slash)
		buf[dir_len++] = '/';
	memcpy(buf + dir_len, name, nl + 1);
	return dir_len + nl;
}

int ra_watch_pattern_check(const char *pattern, size_t len)
{
	if (len == 0 || len > RA_WATCH_PATTERN_MAX || memchr(pattern, 0, len) || pattern[0] == '/')
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (pattern[i] == '\\' && i + 1 < len) {
			i++;
		} else if (pattern[i] == '[') {
			size_t j = i + 1;
			if (j < len && (pattern[j] == '!' || pattern[j] == '^'))
				j++;
			if (j < len && pattern[j] == ']')
				j++;
			while (j < len && pattern[j] != ']')
				j++;
			if (j == len)
				return -EINVAL;
			i = j;
		}
	}
	return 0;
}

/* "**" + "/" + rest: rest matched against the relative path from any component on. */
static bool match_any_depth(const char *rest, const char *rel)
{
	for (const char *p = rel; p; p = strchr(p, '/')) {
		if (*p == '/')
			p++;
		if (fnmatch(rest, p, FNM_PATHNAME) == 0)
			return true;
	}
	return false;
}

/* A pattern without '/' matches an entry's name at any depth; "**" + "/x" matches x at any depth of the
 * relative path; any other pattern matches the whole relative path ('*' does not cross '/'). */
bool ra_watch_excluded(const char *const *exclude, unsigned count, const char *rel, const char *name)
{
	for (unsigned i = 0; i < count; i++) {
		const char *p = exclude[i];
		if (!strchr(p, '/')) {
			if (fnmatch(p, name, 0) == 0)
				return true;
		} else if (strncmp(p, "**/", 3) == 0) {
			if (match_any_depth(p + 3, rel))
				return true;
		} else if (fnmatch(p, rel, FNM_PATHNAME) == 0) {
			return true;
		}
	}
	return false;
}

const char *watch_rel(const wroot *r, const char *path)
{
	if (!path[r->path_len])
		return "";
	return path + r->path_len + (r->path_len > 1); /* past "root/"; for "/" past the slash */
}

bool watch_root_excludes(const wroot *r, const char *path, const char *name)
{
	return ra_watch_excluded((const char *const *)r->exclude, r->exclude_count, watch_rel(r, path), name);
}

/* Filesystems whose changes can come from elsewhere (a server, the host) where inotify sees only local
 * writes: NFS, SMB/CIFS, 9p, FUSE (virtiofs too), Ceph, AFS, CODA. */
static bool fs_needs_polling(const char *path)
{
	struct statfs sf;
	if (statfs(path, &sf) != 0)
		return false;
	switch ((unsigned long)sf.f_type) {
	case 0x6969UL:     /* NFS */
	case 0x517BUL:     /* SMB */
	case 0xFF534D42UL: /* CIFS */
	case 0xFE534D42UL: /* SMB2 */
	case 0x01021997UL: /* 9p */
	case 0x65735546UL: /* FUSE */
	case 0x00C36400UL: /* Ceph */
	case 0x5346414FUL: /* AFS */
	case 0x73757245UL: /* CODA */
		return true;
	}
	return false;
}

static bool is_inside(const char *inner, const char *outer)
{
	size_t n = strlen(outer);
	if (n == 1)
		return inner[0] == '/' && inner[1];
	return strncmp(inner, outer, n) == 0 && inner[n] == '/';
}

/* By path only. The same directory reached by another path is an overlap only between inotify roots, and
 * inotify finds it (the root's watch is one already held): a polled root may alias any other (§9.8). */
static wroot *find_overlap(const char *path, bool recursive)
{
	for (wroot *r = ra_watch_g.roots; r; r = r->next)
		if (strcmp(r->path, path) == 0 || (r->recursive && is_inside(path, r->path)) ||
		    (recursive && is_inside(r->path, path)))
			return r;
	return NULL;
}

static void root_free(wroot *r)
{
	for (unsigned i = 0; i < r->exclude_count; i++)
		free(r->exclude[i]);
	free(r->exclude);
	free(r->path);
	free(r);
}

static int copy_excludes(wroot *r, const ra_watch_spec *spec)
{
	const char *const *src = spec->exclude;
	unsigned n = spec->exclude_count;
	if (!src)
		src = ra_watch_default_exclude(&n);
	if (n > RA_WATCH_EXCLUDES_MAX)
		return -EINVAL;
	r->exclude = calloc(n ? n : 1, sizeof(char *));
	if (!r->exclude)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		if (ra_watch_pattern_check(src[i], strlen(src[i])))
			return -EINVAL;
		if (!(r->exclude[i] = strdup(src[i])))
			return -ENOMEM;
		r->exclude_count = i + 1;
	}
	return 0;
}

static int root_new(const ra_watch_spec *spec, wroot **out)
{
	wroot *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->recursive = spec->recursive;
	r->poll_ms = spec->poll_ms ? spec->poll_ms : RA_WATCH_POLL_MS_DEFAULT;
	r->path = strdup(spec->path);
	int rc = r->path ? copy_excludes(r, spec) : -ENOMEM;
	if (rc) {
		root_free(r);
		return rc;
	}
	r->path_len = strlen(r->path);
	r->mode = spec->mode;
	if (r->mode == RA_WATCH_AUTO)
		r->mode = !ra_watch_g.inotify_ok || fs_needs_polling(r->path) ? RA_WATCH_POLL : RA_WATCH_INOTIFY;
	*out = r;
	return 0;
}

static unsigned root_count(void)
{
	unsigned n = 0;
	for (wroot *r = ra_watch_g.roots; r; r = r->next)
		n++;
	return n;
}

static void root_link(wroot *r)
{
	wroot **tail = &ra_watch_g.roots;
	while (*tail)
		tail = &(*tail)->next;
	*tail = r;
}

static void root_unlink(wroot *r)
{
	for (wroot **pp = &ra_watch_g.roots; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			return;
		}
}

int ra_watch_add(const ra_watch_spec *spec, uint32_t *id)
{
	struct stat st;
	if (stat(spec->path, &st) != 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (spec->mode == RA_WATCH_INOTIFY && !ra_watch_g.inotify_ok)
		return -ENOSYS;
	wroot *other = find_overlap(spec->path, spec->recursive);
	if (other) {
		*id = other->id;
		return -EEXIST;
	}
	if (root_count() >= RA_WATCH_ROOTS_MAX)
		return -EMFILE;
	wroot *r;
	int rc = root_new(spec, &r);
	if (rc)
		return rc;
	r->id = ++ra_watch_g.next_id;
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	rc = r->mode == RA_WATCH_POLL ? poll_root_start(r) : inotify_root_start(r);
	if (rc) {
		if (rc == -EEXIST)
			*id = ra_watch_g.conflict_root;
		root_free(r);
		return rc;
	}
	root_link(r);
	*id = r->id;
	return 0;
}

static void root_stop(wroot *r)
{
	if (r->mode == RA_WATCH_POLL)
		poll_root_stop(r);
	else
		inotify_root_stop(r);
}

void watch_root_end(wroot *r, const char *reason)
{
	root_unlink(r);
	root_stop(r);
	watch_emit_root(r, RA_WEV_REMOVED, NULL, 0, reason);
	root_free(r);
}

int ra_watch_remove(uint32_t id)
{
	for (wroot *r = ra_watch_g.roots; r; r = r->next)
		if (r->id == id) {
			watch_root_end(r, "request");
			return 0;
		}
	return -ENOENT;
}

bool ra_watch_next(uint32_t after, ra_watch_info *out)
{
	for (wroot *r = ra_watch_g.roots; r; r = r->next) {
		if (r->id <= after)
			continue;
		*out = (ra_watch_info){.id = r->id, .path = r->path, .recursive = r->recursive, .mode = r->mode,
				       .poll_ms = r->poll_ms, .dirs = r->dirs,
				       .exclude = (const char *const *)r->exclude, .exclude_count = r->exclude_count};
		return true;
	}
	return false;
}

uint32_t ra_watch_find(const char *path)
{
	for (wroot *r = ra_watch_g.roots; r; r = r->next)
		if (strcmp(r->path, path) == 0)
			return r->id;
	return 0;
}

int ra_watch_init(struct ev_loop *loop, ra_watch_sink_fn sink, void *ctx)
{
	ra_watch_g.loop = loop;
	ra_watch_g.sink = sink;
	ra_watch_g.ctx = ctx;
	int rc = inotify_backend_init(loop);
	ra_watch_g.inotify_ok = rc == 0;
	return rc;
}

void ra_watch_shutdown(void)
{
	while (ra_watch_g.roots) {
		wroot *r = ra_watch_g.roots;
		root_unlink(r);
		root_stop(r);
		root_free(r);
	}
	inotify_backend_shutdown();
}
