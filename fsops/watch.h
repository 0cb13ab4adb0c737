/* watch: change events for directory trees ("roots"), from inotify or, where inotify cannot see changes
 * (network and host-shared filesystems), from a periodic scan. Knows nothing of the protocol: events go to
 * one sink function, errors are -errno.
 *
 * libinotifytools creates the inotify instance and reports the system's limits. The library's own watch
 * bookkeeping is not used: it cannot give back the wd of a watch it added (only a lookup by a name that goes
 * stale when a directory is renamed) and it leaks the entry of every deleted directory (inotify-tools #29,
 * #120, #228). So the watches are added on its fd directly and kept in this module's table (wd → directory
 * node, each node a name under its parent, so renaming a directory re-parents one node), and the fd is read
 * here, non-blocking, from the libev loop (the library's reader uses select() and busy-waits). */
#ifndef RA_WATCH_H
#define RA_WATCH_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "fsops.h"

#define RA_WATCH_ROOTS_MAX 64
#define RA_WATCH_EXCLUDES_MAX 32
#define RA_WATCH_PATTERN_MAX 255
#define RA_WATCH_POLL_MS_DEFAULT 1000u
#define RA_WATCH_POLL_MS_MIN 100u
#define RA_WATCH_POLL_MS_MAX 3600000u
#define RA_WATCH_POLL_ENTRIES_MAX 200000u /* a polled root with more entries ends with an error */

typedef enum { RA_WATCH_AUTO, RA_WATCH_INOTIFY, RA_WATCH_POLL } ra_watch_mode;

typedef enum {
	RA_WEV_CREATED,
	RA_WEV_MODIFIED, /* closed after a write (inotify), or a new size or mtime (poll) */
	RA_WEV_DELETED,
	RA_WEV_MOVED,
	RA_WEV_OVERFLOW,  /* the kernel's queue overflowed: events were lost; every inotify root is rescanned */
	RA_WEV_RESCANNED, /* a root was scanned again after an overflow: resynchronize with a listing */
	RA_WEV_ERROR,     /* a directory could not be watched (err); the rest of the root goes on */
	RA_WEV_REMOVED,   /* a root ended (reason) */
} ra_watch_event_kind;

typedef struct {
	ra_watch_event_kind kind;
	uint32_t watch;     /* the root's id (0 for an overflow) */
	const char *path;   /* the entry (the destination of a move), or the root for the other kinds */
	const char *from;   /* a move's source */
	ra_fs_type type;    /* of the entry; a deleted non-directory is RA_FS_FILE */
	int64_t size;       /* -1 when not known */
	int err;            /* RA_WEV_ERROR: errno */
	const char *reason; /* RA_WEV_REMOVED: "request", "deleted", "moved", "unmounted", "error" */
	uint32_t dirs;      /* RA_WEV_RESCANNED: directories now watched */
} ra_watch_event;

typedef void (*ra_watch_sink_fn)(const ra_watch_event *ev, void *ctx);

typedef struct {
	const char *path; /* absolute and normalized: a directory */
	bool recursive;
	ra_watch_mode mode;
	uint32_t poll_ms;
	const char *const *exclude; /* glob patterns (ra_watch_pattern_check); NULL: the default set */
	unsigned exclude_count;
} ra_watch_spec;

typedef struct {
	uint32_t id;
	const char *path;
	bool recursive;
	ra_watch_mode mode; /* the one in use: inotify or poll */
	uint32_t poll_ms;
	uint32_t dirs;      /* directories watched (inotify) or seen by the last scan (poll) */
	const char *const *exclude;
	unsigned exclude_count;
} ra_watch_info;

/* Creates the inotify instance (with close-on-exec). Without it (-errno) roots can still be added: they are
 * polled, and an explicit RA_WATCH_INOTIFY is -ENOSYS. */
int ra_watch_init(struct ev_loop *loop, ra_watch_sink_fn sink, void *ctx);
void ra_watch_shutdown(void);

/* Adds a root; *id is its id. -EEXIST when it overlaps a root (the same path, or one inside the other where
 * the outer is recursive; for an inotify root also a directory an inotify root watches, reached by another
 * path: *id is then that root's id, and the new root's id is used up), -ENOSYS (no inotify), -ENOENT, -ENOTDIR, -EINVAL (a bad pattern),
 * -ENOSPC (the system's inotify watch limit: ra_watch_max_user_watches), -EMFILE (RA_WATCH_ROOTS_MAX roots),
 * -E2BIG (a polled root over RA_WATCH_POLL_ENTRIES_MAX entries). Nothing is left behind on failure. */
int ra_watch_add(const ra_watch_spec *spec, uint32_t *id);
/* -ENOENT for an unknown id. Emits RA_WEV_REMOVED with reason "request". */
int ra_watch_remove(uint32_t id);
/* Roots in the order added: id 0 gives the first; returns false past the last. */
bool ra_watch_next(uint32_t after, ra_watch_info *out);
/* The root whose path is exactly path; 0 if none. */
uint32_t ra_watch_find(const char *path);

/* 0, or -EINVAL for an empty or over-long pattern, an absolute one, a NUL or an unclosed '['. */
int ra_watch_pattern_check(const char *pattern, size_t len);
const char *const *ra_watch_default_exclude(unsigned *count);
bool ra_watch_excluded(const char *const *exclude, unsigned count, const char *rel, const char *name);
/* /proc/sys/fs/inotify/max_user_watches, or -1. */
long ra_watch_max_user_watches(void);
const char *ra_watch_mode_name(ra_watch_mode m);

#endif
