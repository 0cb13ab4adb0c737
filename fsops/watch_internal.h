/* Shared by watch.c (roots, API), watch_inotify.c and watch_poll.c; nothing outside fsops/ includes it. */
#ifndef RA_WATCH_INTERNAL_H
#define RA_WATCH_INTERNAL_H

#include <sys/types.h>

#include "watch.h"

typedef struct wroot wroot;
typedef struct wnode wnode;
typedef struct poll_state poll_state;

/* One watched directory: a name under its parent (a root's top node holds the root's path). */
struct wnode {
	wnode *parent, *first_child, *next_sibling, *prev_sibling;
	wnode *wd_next; /* chain of the wd table */
	wroot *root;
	uint64_t serial; /* never reused, unlike a node's address */
	int wd;
	char *name;
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
	dev_t dev;        /* the root directory itself: the same one reached by another path is an overlap */
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
