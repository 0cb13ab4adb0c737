/* Shared by watch.c (roots, API), watch_inotify.c and watch_poll.c; nothing outside fsops/ includes it. */
#ifndef RA_WATCH_INTERNAL_H
#define RA_WATCH_INTERNAL_H

#include <sys/types.h>

#include "internal.h"
#include "watch.h"

typedef struct wroot wroot;
typedef struct wnode wnode;
typedef struct poll_state poll_state;
struct hset;

/* One watched directory: a name under its parent (a root's top node holds the root's path). */
struct wnode {
	wnode *parent, *first_child, *next_sibling, *prev_sibling;
	wnode *wd_next; /* chain of the wd table */
	wroot *root;
	uint64_t serial; /* never reused, unlike a node's address */
	int wd;
	char *name;
	struct hset *dirty; /* names of files written and not yet closed (NULL when none): they go with the node */
	bool dirty_lost;    /* a write could not be remembered here: every close after a write counts */
};

struct wroot {
	wroot *next;
	uint32_t id;
	char *path;
	size_t path_len;
	bool recursive;
	ra_watch_mode mode;
	uint32_t poll_ms;
	char **exclude;
	unsigned exclude_count;
	uint32_t dirs;
	dev_t dev;        /* the root directory itself: a root whose path no longer leads to it was moved */
	ino_t ino;
	wnode *top;       /* inotify */
	poll_state *poll; /* poll */
};

struct watch_globals {
	struct ev_loop *loop;
	ra_watch_sink_fn sink;
	void *ctx;
	wroot *roots;
	uint32_t next_id;
	bool inotify_ok;           /* the instance exists; without it every root is polled */
	uint32_t conflict_root;    /* set with -EEXIST by inotify_root_start: the root already watching it */
};
extern struct watch_globals ra_watch_g;

void watch_emit(const ra_watch_event *ev);
/* An event about the root, or a directory of it (path; NULL: the root): an error (err), its end (reason), a
 * rescan (it carries r->dirs). */
void watch_emit_root(const wroot *r, ra_watch_event_kind kind, const char *path, int err, const char *reason);
/* buf (dir_len bytes, a directory) + "/" + name, in place ("/" + name gives "/name"); the new length, or 0
 * (buf unchanged) when it would not fit in PATH_MAX. */
size_t watch_path_join(char *buf, size_t dir_len, const char *name);
/* "." or "..", which walks skip. */
static inline bool watch_is_dot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}
/* Path of an entry below the root relative to it ("" for the root itself). */
const char *watch_rel(const wroot *r, const char *path);
bool watch_root_excludes(const wroot *r, const char *path, const char *name);
/* Ends a root whose directory went away (emits RA_WEV_REMOVED). */
void watch_root_end(wroot *r, const char *reason);

/* inotify backend */
int inotify_backend_init(struct ev_loop *loop);
void inotify_backend_shutdown(void);
int inotify_root_start(wroot *r); /* watches the tree (no events); -errno, nothing left on failure */
void inotify_root_stop(wroot *r);

/* poll backend */
int poll_root_start(wroot *r);
void poll_root_stop(wroot *r);

#endif
