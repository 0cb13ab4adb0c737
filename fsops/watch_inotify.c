/* watch, inotify backend: one inotify instance for every root, a table wd → directory node, and the
 * translation of the kernel's events into created/modified/deleted/moved.
 *
 * - A new directory is watched when its IN_CREATE is read, and then scanned: whatever was created in it
 *   before the watch existed is reported as created (mkdir -p a/b/c && touch a/b/c/f reports all four). An
 *   entry both seen by that scan and reported by the kernel (created after the watch, before the scan) is
 *   reported once: the scan remembers (node, name) until the queue has been read empty.
 * - "modified" is the close of a file that was written (IN_MODIFY then IN_CLOSE_WRITE): one event per
 *   writing session, not one per write(); `touch` alone reports only the creation.
 * - A move is the IN_MOVED_FROM/IN_MOVED_TO pair with the same cookie (the kernel queues them back to back);
 *   a source without its destination left the watched trees (deleted), a destination without a source came
 *   from outside (created, and scanned when it is a directory). A renamed directory keeps its watches, and
 *   the exclusions of its new path are applied to what is in it. A root moved into another root's tree is
 *   taken over by that root, watches and all.
 * - IN_Q_OVERFLOW: an overflow event, then every root's watches are built again from a fresh walk and a
 *   rescanned event says so; nothing is silently lost. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inotifytools/inotifytools.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "watch_internal.h"

#define DIR_MASK                                                                                           \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF | \
	 IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)
#define READ_BUF_BYTES (32u << 10) /* ~1000 events per wakeup: then the loop gets to send them */
#define DIRTY_MAX 65536u         /* files written and not yet closed that are tracked, all directories together */
#define MOVE_PAIR_WAIT_S 0.005   /* how long a lone IN_MOVED_FROM waits for its IN_MOVED_TO */

static int ifd = -1;
static ev_io io_watcher;
static ev_timer move_timer;
static uint64_t next_serial;

/* ---- wd table ---- */

static wnode **wd_buckets;
static size_t wd_nbuckets, wd_count;

static size_t wd_slot(int wd, size_t nbuckets) { return ((size_t)(unsigned)wd * 2654435761u) & (nbuckets - 1); }

static wnode *wd_lookup(int wd)
{
	if (!wd_nbuckets)
		return NULL;
	for (wnode *n = wd_buckets[wd_slot(wd, wd_nbuckets)]; n; n = n->wd_next)
		if (n->wd == wd)
			return n;
	return NULL;
}

static int wd_grow(void)
{
	size_t nb = wd_nbuckets ? wd_nbuckets * 2 : 256;
	wnode **b = calloc(nb, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < wd_nbuckets; i++)
		for (wnode *n = wd_buckets[i], *next; n; n = next) {
			next = n->wd_next;
			n->wd_next = b[wd_slot(n->wd, nb)];
			b[wd_slot(n->wd, nb)] = n;
		}
	free(wd_buckets);
	wd_buckets = b;
	wd_nbuckets = nb;
	return 0;
}

static int wd_insert(wnode *n)
{
	if (wd_count >= wd_nbuckets && wd_grow())
		return -ENOMEM;
	wnode **head = &wd_buckets[wd_slot(n->wd, wd_nbuckets)];
	n->wd_next = *head;
	*head = n;
	wd_count++;
	return 0;
}

static void wd_remove(wnode *n)
{
	for (wnode **pp = &wd_buckets[wd_slot(n->wd, wd_nbuckets)]; *pp; pp = &(*pp)->wd_next)
		if (*pp == n) {
			*pp = n->wd_next;
			wd_count--;
			return;
		}
}

/* ---- sets of keys: (node, name) of the entries the last scans reported; names of files being written ---- */

typedef struct hset {
	uint64_t *slots;
	size_t cap, count;
} hset;

static hset scanned;
static size_t dirty_count; /* names in the dirty sets of every node */

/* FNV-1a of the seed's 8 bytes, then the name's. (The seed XORed into the offset basis collided: the serial's
 * low byte cancelled out against the name's first byte, so that (2, "1x") and (3, "0x") were one key.) */
static uint64_t key_of(uint64_t seed, const char *name)
{
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < 8; i++, seed >>= 8)
		h = (h ^ (seed & 0xff)) * 1099511628211ull;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h ? h : 1;
}

static uint64_t entry_key(const wnode *n, const char *name) { return key_of(n->serial, name); }

static bool hset_has(const hset *s, uint64_t k)
{
	if (!s->cap)
		return false;
	for (size_t i = k & (s->cap - 1); s->slots[i]; i = (i + 1) & (s->cap - 1))
		if (s->slots[i] == k)
			return true;
	return false;
}

static void hset_put(hset *s, uint64_t k)
{
	size_t i = k & (s->cap - 1);
	while (s->slots[i] && s->slots[i] != k)
		i = (i + 1) & (s->cap - 1);
	s->count += !s->slots[i];
	s->slots[i] = k;
}

static int hset_add(hset *s, uint64_t k)
{
	if ((s->count + 1) * 2 > s->cap) {
		hset bigger = {calloc(s->cap ? s->cap * 2 : 64, sizeof(uint64_t)), s->cap ? s->cap * 2 : 64, 0};
		if (!bigger.slots)
			return -ENOMEM;
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i])
				hset_put(&bigger, s->slots[i]);
		free(s->slots);
		*s = bigger;
	}
	hset_put(s, k);
	return 0;
}

/* Linear probing: the entries after the removed one move back to where a lookup finds them. */
static bool hset_del(hset *s, uint64_t k)
{
	if (!s->cap)
		return false;
	size_t mask = s->cap - 1, i = k & mask;
	while (s->slots[i] != k) {
		if (!s->slots[i])
			return false;
		i = (i + 1) & mask;
	}
	s->slots[i] = 0;
	s->count--;
	for (size_t j = (i + 1) & mask; s->slots[j]; j = (j + 1) & mask) {
		size_t home = s->slots[j] & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			s->slots[i] = s->slots[j];
			s->slots[j] = 0;
			i = j;
		}
	}
	return true;
}

static void hset_clear(hset *s)
{
	free(s->slots);
	*s = (hset){0};
}

/* ---- files written and not yet closed, per directory node ---- */

static void dirty_free(wnode *n)
{
	if (!n->dirty)
		return;
	dirty_count -= n->dirty->count;
	hset_clear(n->dirty);
	free(n->dirty);
	n->dirty = NULL;
}

/* A write to name in n, kept until the file is closed, deleted or moved, or n goes. One that cannot be kept
 * (DIRTY_MAX, no memory) makes every close after a write in n count, for as long as n is watched. */
static void dirty_mark(wnode *n, const char *name)
{
	uint64_t k = key_of(0, name);
	if (n->dirty_lost || (n->dirty && hset_has(n->dirty, k)))
		return;
	if (!n->dirty)
		n->dirty = calloc(1, sizeof(*n->dirty));
	if (!n->dirty || dirty_count >= DIRTY_MAX || hset_add(n->dirty, k)) {
		n->dirty_lost = true;
		return;
	}
	dirty_count++;
}

/* Forgets name in n; whether it had been written since it was opened. */
static bool dirty_take(wnode *n, const char *name)
{
	if (!n->dirty || !hset_del(n->dirty, key_of(0, name)))
		return n->dirty_lost;
	dirty_count--;
	if (!n->dirty->count)
		dirty_free(n);
	return true;
}

/* ---- nodes ---- */

static void node_attach(wnode *n, wnode *parent)
{
	n->parent = parent;
	n->next_sibling = parent->first_child;
	if (parent->first_child)
		parent->first_child->prev_sibling = n;
	parent->first_child = n;
}

static wnode *node_new(wroot *r, wnode *parent, const char *name, int wd)
{
	wnode *n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name)) || (n->wd = wd, wd_insert(n))) {
		if (n)
			free(n->name);
		free(n);
		return NULL;
	}
	n->root = r;
	n->serial = ++next_serial;
	if (parent)
		node_attach(n, parent);
	else
		r->top = n;
	r->dirs++;
	return n;
}

static void node_detach(wnode *n)
{
	if (n->prev_sibling)
		n->prev_sibling->next_sibling = n->next_sibling;
	else if (n->parent)
		n->parent->first_child = n->next_sibling;
	if (n->next_sibling)
		n->next_sibling->prev_sibling = n->prev_sibling;
	n->parent = n->prev_sibling = n->next_sibling = NULL;
}

/* Drops the watches of n and everything under it. A watch the kernel already dropped fails with EINVAL,
 * which is fine: the node goes either way. */
static void subtree_unwatch(wnode *n)
{
	while (n->first_child)
		subtree_unwatch(n->first_child);
	node_detach(n);
	inotify_rm_watch(ifd, n->wd);
	wd_remove(n);
	if (n->root->top == n)
		n->root->top = NULL;
	n->root->dirs--;
	dirty_free(n);
	free(n->name);
	free(n);
}

static wnode *find_child(const wnode *parent, const char *name)
{
	for (wnode *c = parent->first_child; c; c = c->next_sibling)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static void subtree_set_root(wnode *n, wroot *r)
{
	n->root->dirs--;
	n->root = r;
	r->dirs++;
	for (wnode *c = n->first_child; c; c = c->next_sibling)
		subtree_set_root(c, r);
}

/* The node's absolute path into buf (PATH_MAX); 0 when it does not fit. */
static size_t node_path(const wnode *n, char *buf)
{
	if (!n->parent) { /* a top node's name is its root's path */
		size_t len = strlen(n->name);
		if (len >= PATH_MAX)
			return 0;
		memcpy(buf, n->name, len + 1);
		return len;
	}
	size_t len = node_path(n->parent, buf);
	return len ? watch_path_join(buf, len, n->name) : 0;
}

/* ---- events out ---- */

static void emit_entry(ra_watch_event_kind kind, const wroot *r, const char *path, const char *from, bool isdir)
{
	ra_watch_event ev = {.kind = kind, .watch = r->id, .path = path, .from = from,
			     .type = isdir ? RA_FS_DIR : RA_FS_FILE, .size = -1};
	struct stat st;
	if (kind != RA_WEV_DELETED && !isdir && lstat(path, &st) == 0) {
		ev.type = fsops_type_of(st.st_mode);
		if (S_ISREG(st.st_mode))
			ev.size = (int64_t)st.st_size;
	}
	watch_emit(&ev);
}

static void emit_error(const wroot *r, const char *path, int err) { watch_emit_root(r, RA_WEV_ERROR, path, err, NULL); }

/* An entry a scan found, reported as created: remembered so that the kernel's own report of it (read after
 * the scan) is not a second one. */
static void emit_scanned(const wroot *r, const wnode *dir, const char *path, const char *name, bool isdir)
{
	emit_entry(RA_WEV_CREATED, r, path, NULL, isdir);
	hset_add(&scanned, entry_key(dir, name));
}

/* ---- adding watches ---- */

/* The source of a move, waiting for its destination (the kernel queues the two halves back to back). */
static struct {
	bool active;
	uint32_t cookie;
	bool isdir;
	wroot *root;
	wnode *dir; /* the moved directory's node, if it was watched */
	char path[PATH_MAX];
} pending;

static int add_dir(wroot *r, wnode *parent, const char *name, char *path, size_t len, bool emit);

static bool entry_is_dir(int dfd, const struct dirent *d)
{
	if (d->d_type != DT_UNKNOWN)
		return d->d_type == DT_DIR;
	struct stat st;
	return fstatat(dfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static int scan_entry(wroot *r, wnode *node, int dfd, const struct dirent *de, char *path, size_t len, bool emit)
{
	bool isdir = entry_is_dir(dfd, de);
	if (emit)
		emit_scanned(r, node, path, de->d_name, isdir);
	return isdir && r->recursive ? add_dir(r, node, de->d_name, path, len, emit) : 0;
}

/* Walks a freshly watched directory: its subdirectories get watches (recursive roots), and with emit every
 * entry is reported as created. */
static int scan_dir(wroot *r, wnode *node, char *path, size_t len, bool emit)
{
	DIR *d = fsops_opendir(path, node->parent != NULL); /* a root given as a link is followed (§9.7) */
	if (!d)
		return 0; /* gone or unreadable: nothing to report under it */
	int rc = 0;
	struct dirent *de;
	while (!rc && (de = readdir(d))) {
		size_t clen = watch_is_dot(de->d_name) ? 0 : watch_path_join(path, len, de->d_name);
		if (clen && !watch_root_excludes(r, path, de->d_name))
			rc = scan_entry(r, node, dirfd(d), de, path, clen, emit);
		path[len] = '\0'; /* the caller goes on with the directory's path */
	}
	closedir(d);
	return rc;
}

/* ---- a directory that changed place: the exclusions of its new place ---- */

/* Renamed, moved to another root, or taken over with its root: what the exclusions now exclude is no longer
 * watched (it is still there: nothing is reported), what comes into view is watched and reported as created,
 * parents first. */
typedef struct {
	wroot *r;
	const wroot *from;  /* the root it was in (when old is set) */
	char *path;         /* its path now, extended in place while walking */
	char old[PATH_MAX]; /* its path in from; "" when nothing in it was in view before */
} moved_dir;

static int reconcile(moved_dir *m, wnode *n, size_t len, size_t old_len, unsigned depth);

static int reconcile_entry(moved_dir *m, wnode *n, int dfd, const struct dirent *de, size_t len, size_t old_len,
			   unsigned depth)
{
	const char *name = de->d_name;
	bool isdir = entry_is_dir(dfd, de);
	wnode *child = isdir ? find_child(n, name) : NULL;
	if (watch_root_excludes(m->r, m->path, name)) {
		if (child)
			subtree_unwatch(child);
		return 0;
	}
	bool seen = old_len && !watch_root_excludes(m->from, m->old, name);
	if (!seen)
		emit_scanned(m->r, n, m->path, name, isdir);
	if (!isdir)
		return 0;
	if (!child)
		return add_dir(m->r, n, name, m->path, len, !seen);
	if (!seen)
		return reconcile(m, child, len, 0, UINT_MAX);
	return depth > 1 ? reconcile(m, child, len, old_len, depth - 1) : 0;
}

/* The entries of n down to depth levels; old_len 0: none of them was in view before. */
static int reconcile(moved_dir *m, wnode *n, size_t len, size_t old_len, unsigned depth)
{
	DIR *d = fsops_opendir(m->path, true);
	if (!d)
		return 0; /* gone or unreadable: its own events follow */
	int rc = 0;
	struct dirent *de;
	while (!rc && (de = readdir(d))) {
		size_t clen = watch_is_dot(de->d_name) ? 0 : watch_path_join(m->path, len, de->d_name);
		size_t old_clen = clen && old_len ? watch_path_join(m->old, old_len, de->d_name) : 0;
		if (clen)
			rc = reconcile_entry(m, n, dirfd(d), de, clen, old_clen, depth);
		m->path[len] = '\0';
		m->old[old_len] = '\0';
	}
	closedir(d);
	return rc;
}

static bool same_patterns(const wroot *a, const wroot *b)
{
	if (a->exclude_count != b->exclude_count)
		return false;
	for (unsigned i = 0; i < a->exclude_count; i++)
		if (strcmp(a->exclude[i], b->exclude[i]) != 0)
			return false;
	return true;
}

/* How many levels below a moved directory the exclusions can judge an entry otherwise than before the move.
 * A name pattern judges the name alone: none. One with '/' (past a leading "**" + "/") matches exactly one
 * component more than it has slashes, so an entry more levels down than it has slashes can match it only
 * within the part of its path below the moved directory, which the move did not change. A root with other
 * patterns: every level. */
static unsigned exclusion_depth(const wroot *from, const wroot *r)
{
	if (from != r && !same_patterns(from, r))
		return UINT_MAX;
	unsigned depth = 0;
	for (unsigned i = 0; i < r->exclude_count; i++) {
		const char *p = r->exclude[i];
		unsigned slashes = 0;
		for (p += strncmp(p, "**/", 3) == 0 ? 3 : 0; *p; p++)
			slashes += *p == '/';
		if (slashes > depth)
			depth = slashes;
	}
	return depth;
}

/* d is now at path (len bytes) in r; it was at from_path in from, or (from NULL) nothing in it was in view. */
static int reconcile_moved(wroot *r, wnode *d, char *path, size_t len, const wroot *from, const char *from_path)
{
	unsigned depth = from ? exclusion_depth(from, r) : UINT_MAX;
	if (!depth)
		return 0;
	moved_dir m = {.r = r, .from = from, .path = path};
	snprintf(m.old, sizeof(m.old), "%s", from ? from_path : "");
	return reconcile(&m, d, len, strlen(m.old), depth);
}

/* ---- roots moved into other roots ---- */

/* A root's top node met inside another root: it was moved there if the root's own path no longer leads to
 * it (otherwise it is reached twice, through a bind mount). */
static bool root_moved_away(const wnode *n)
{
	const wroot *r = n->root;
	struct stat st;
	return n == r->top && (stat(r->path, &st) != 0 || st.st_dev != r->dev || st.st_ino != r->ino);
}

/* r takes the moved root's node over: its watches stay (dropping and adding them again would miss events),
 * what is in it is reported as created, as for a directory moved in from outside, and the old root ends as
 * moved (its own IN_MOVE_SELF, read later, then concerns a node that is no longer a top). */
static int take_over(wroot *r, wnode *parent, wnode *top, const char *name, char *path, size_t len)
{
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	wroot *old = top->root;
	free(top->name);
	top->name = copy;
	old->top = NULL;
	node_attach(top, parent);
	subtree_set_root(top, r);
	watch_root_end(old, "moved");
	return reconcile_moved(r, top, path, len, NULL, NULL);
}

/* Watches the directory at path (and, for a recursive root, everything under it). A subdirectory that
 * vanished or cannot be read is skipped; the watch limit or no memory stops the walk. */
static int add_dir(wroot *r, wnode *parent, const char *name, char *path, size_t len, bool emit)
{
	int wd = inotify_add_watch(ifd, path, DIR_MASK | (parent ? IN_DONT_FOLLOW : 0));
	if (wd < 0) {
		int e = errno;
		if (parent && e != ENOSPC && e != ENOMEM)
			return 0;
		return -e;
	}
	wnode *known = wd_lookup(wd);
	if (known && !parent) { /* the root itself is watched already (another path to it) */
		ra_watch_g.conflict_root = known->root->id;
		return -EEXIST;
	}
	if (known && emit && known->root != r && root_moved_away(known))
		return take_over(r, parent, known, name, path, len);
	if (known)
		return 0; /* reached twice (a bind mount): watched once */
	wnode *node = node_new(r, parent, parent ? name : path, wd);
	if (!node) {
		inotify_rm_watch(ifd, wd);
		return -ENOMEM;
	}
	if (!r->recursive && !emit)
		return 0;
	return scan_dir(r, node, path, len, emit);
}

/* A new directory inside a root: watched and scanned; the watch limit is reported, not fatal. */
static void add_new_dir(wroot *r, wnode *parent, const char *name, char *path, size_t len)
{
	int rc = add_dir(r, parent, name, path, len, true);
	if (rc)
		emit_error(r, path, -rc);
}

int inotify_root_start(wroot *r)
{
	char path[PATH_MAX];
	size_t len = strlen(r->path);
	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, r->path, len + 1);
	r->dirs = 0;
	int rc = add_dir(r, NULL, NULL, path, len, false);
	if (rc)
		inotify_root_stop(r);
	return rc;
}

void inotify_root_stop(wroot *r)
{
	if (pending.active && pending.root == r) { /* its move out would be reported after its end, by a freed root */
		pending.active = false;
		ev_timer_stop(ra_watch_g.loop, &move_timer);
	}
	if (r->top)
		subtree_unwatch(r->top);
}

/* ---- moves ---- */

/* The source of a move whose destination did not follow: it left the watched trees. */
static void flush_pending(void)
{
	if (!pending.active)
		return;
	pending.active = false;
	ev_timer_stop(ra_watch_g.loop, &move_timer);
	if (pending.dir)
		subtree_unwatch(pending.dir);
	emit_entry(RA_WEV_DELETED, pending.root, pending.path, NULL, pending.isdir);
}

static void on_move_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop, (void)w, (void)revents;
	flush_pending();
}

static void moved_from(wnode *n, const char *name, const char *path, bool isdir)
{
	pending.active = true;
	pending.isdir = isdir;
	pending.root = n->root;
	pending.dir = isdir ? find_child(n, name) : NULL;
	snprintf(pending.path, sizeof(pending.path), "%s", path);
}

/* false when d could not take its new name (no memory): it is no longer watched, rather than reported under
 * a wrong path */
static bool rename_node(wnode *d, wnode *new_parent, const char *name)
{
	char *copy = strdup(name);
	if (!copy) {
		subtree_unwatch(d);
		return false;
	}
	free(d->name);
	d->name = copy;
	node_detach(d);
	node_attach(d, new_parent);
	if (d->root != new_parent->root)
		subtree_set_root(d, new_parent->root);
	return true;
}

/* The destination of a move. A watched directory keeps its watches under its new path, and the exclusions
 * of that path apply to it (after the move event: parents first). One that was not watched (it came from a
 * root that does not descend) is scanned, and what is in it reported as created. */
static void moved_to(wnode *n, const char *name, char *path, size_t len, uint32_t cookie, bool isdir)
{
	wroot *r = n->root;
	if (!pending.active || pending.cookie != cookie) {
		emit_entry(RA_WEV_CREATED, r, path, NULL, isdir); /* from outside the watched trees */
		if (isdir && r->recursive)
			add_new_dir(r, n, name, path, len);
		return;
	}
	pending.active = false;
	wnode *d = pending.dir;
	bool kept = d && r->recursive && rename_node(d, n, name);
	if (d && !r->recursive)
		subtree_unwatch(d); /* into a root that does not descend */
	emit_entry(RA_WEV_MOVED, r, path, pending.path, isdir);
	int rc = 0;
	if (kept)
		rc = reconcile_moved(r, d, path, len, pending.root, pending.path);
	else if (!d && isdir && r->recursive)
		rc = add_dir(r, n, name, path, len, true);
	if (rc)
		emit_error(r, path, -rc);
}

/* ---- reading events ---- */

static void handle_named(wnode *n, const struct inotify_event *ie)
{
	wroot *r = n->root;
	char path[PATH_MAX];
	size_t dlen = node_path(n, path);
	size_t len = dlen ? watch_path_join(path, dlen, ie->name) : 0;
	if (!len)
		return;
	bool isdir = ie->mask & IN_ISDIR;
	uint64_t key = entry_key(n, ie->name);
	if (watch_root_excludes(r, path, ie->name)) {
		if ((ie->mask & IN_MOVED_TO) && pending.active && pending.cookie == ie->cookie)
			flush_pending(); /* moved into an excluded name: gone from view */
		return;
	}
	if (ie->mask & IN_CREATE) {
		if (hset_del(&scanned, key))
			return;
		emit_entry(RA_WEV_CREATED, r, path, NULL, isdir);
		if (isdir && r->recursive)
			add_new_dir(r, n, ie->name, path, len);
	} else if (ie->mask & IN_MODIFY) {
		dirty_mark(n, ie->name);
	} else if (ie->mask & IN_CLOSE_WRITE) {
		if (dirty_take(n, ie->name))
			emit_entry(RA_WEV_MODIFIED, r, path, NULL, false);
	} else if (ie->mask & IN_DELETE) {
		dirty_take(n, ie->name);
		hset_del(&scanned, key);
		emit_entry(RA_WEV_DELETED, r, path, NULL, isdir);
	} else if (ie->mask & IN_MOVED_FROM) {
		dirty_take(n, ie->name);
		hset_del(&scanned, key);
		moved_from(n, ie->name, path, isdir);
		pending.cookie = ie->cookie;
	} else if (ie->mask & IN_MOVED_TO) {
		if (hset_del(&scanned, key) && !(pending.active && pending.cookie == ie->cookie))
			return;
		moved_to(n, ie->name, path, len, ie->cookie, isdir);
	}
}

static void handle_self(wnode *n, uint32_t mask)
{
	if (n != n->root->top) {
		if (mask & IN_IGNORED)
			subtree_unwatch(n); /* deleted (its parent reported it) */
		return;
	}
	if (mask & (IN_DELETE_SELF | IN_IGNORED))
		watch_root_end(n->root, "deleted");
	else if (mask & IN_MOVE_SELF)
		watch_root_end(n->root, "moved");
	else if (mask & IN_UNMOUNT)
		watch_root_end(n->root, "unmounted");
}

static void rescan_all(void)
{
	hset_clear(&scanned); /* the writes being tracked go with the nodes */
	ra_watch_event ov = {.kind = RA_WEV_OVERFLOW, .path = "", .size = -1};
	watch_emit(&ov);
	for (wroot *r = ra_watch_g.roots, *next; r; r = next) {
		next = r->next;
		if (r->mode != RA_WATCH_INOTIFY)
			continue;
		inotify_root_stop(r);
		int rc = inotify_root_start(r);
		if (rc) {
			if (rc != -ENOENT && rc != -ENOTDIR)
				emit_error(r, r->path, -rc);
			watch_root_end(r, rc == -ENOENT || rc == -ENOTDIR ? "deleted" : "error");
			continue;
		}
		watch_emit_root(r, RA_WEV_RESCANNED, NULL, 0, NULL);
	}
}

static void handle_event(const struct inotify_event *ie)
{
	if (ie->mask & IN_Q_OVERFLOW) {
		flush_pending();
		rescan_all();
		return;
	}
	if (pending.active && !((ie->mask & IN_MOVED_TO) && ie->cookie == pending.cookie))
		flush_pending();
	wnode *n = wd_lookup(ie->wd);
	if (!n)
		return; /* a watch already dropped */
	if (ie->len && ie->name[0])
		handle_named(n, ie);
	else
		handle_self(n, ie->mask);
}

/* The queue was read empty: every event of what the scans saw has been read. */
static void on_queue_empty(struct ev_loop *loop)
{
	hset_clear(&scanned);
	if (pending.active)
		ev_timer_start(loop, &move_timer);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)w, (void)revents;
	static char buf[READ_BUF_BYTES] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	do
		n = read(ifd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
		const struct inotify_event *ie = (const struct inotify_event *)(buf + off);
		handle_event(ie);
		off += (ssize_t)(sizeof(*ie) + ie->len);
	}
	int left = 0;
	if (n <= 0 || (ioctl(ifd, FIONREAD, &left) == 0 && left == 0))
		on_queue_empty(loop);
}

/* ---- instance ---- */

/* libinotifytools keeps its fd private; it is the lowest free descriptor at the time of its inotify_init(),
 * which a probe finds just before (the loop is single-threaded). /proc confirms it when mounted. */
static int create_instance(void)
{
	int probe = eventfd(0, EFD_CLOEXEC);
	if (probe < 0)
		return -errno;
	close(probe);
	if (!inotifytools_init(0, 0, 0))
		return -(inotifytools_error() ? inotifytools_error() : EIO);
	char link[64], target[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", probe);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n >= 0) {
		target[n] = '\0';
		if (strcmp(target, "anon_inode:inotify") != 0) {
			inotifytools_cleanup(); /* closes the library's fd, wherever it is: it is not close-on-exec */
			return -EBADF;
		}
	}
	if (fcntl(probe, F_SETFD, FD_CLOEXEC) || fcntl(probe, F_SETFL, fcntl(probe, F_GETFL) | O_NONBLOCK)) {
		int e = errno;
		inotifytools_cleanup();
		return -e;
	}
	return probe;
}

int inotify_backend_init(struct ev_loop *loop)
{
	int fd = create_instance();
	if (fd < 0)
		return fd;
	ifd = fd;
	ev_io_init(&io_watcher, on_readable, ifd, EV_READ);
	ev_io_start(loop, &io_watcher);
	ev_timer_init(&move_timer, on_move_timeout, MOVE_PAIR_WAIT_S, 0.);
	return 0;
}

void inotify_backend_shutdown(void)
{
	if (ifd < 0)
		return;
	ev_io_stop(ra_watch_g.loop, &io_watcher);
	ev_timer_stop(ra_watch_g.loop, &move_timer);
	pending.active = false;
	hset_clear(&scanned);
	free(wd_buckets);
	wd_buckets = NULL;
	wd_nbuckets = wd_count = 0;
	inotifytools_cleanup();
	ifd = -1;
}

static long read_number(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* The system's limit (libinotifytools reads fs.inotify.max_user_watches), or the user namespace's when it is
 * lower: containers often run in one, and there the namespace's limit is the one that bites. */
long ra_watch_max_user_watches(void)
{
	long sys = inotifytools_get_max_user_watches();
	long ns = read_number("/proc/sys/user/max_inotify_watches");
	return ns >= 0 && (sys < 0 || ns < sys) ? ns : sys;
}
