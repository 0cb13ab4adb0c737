#include "watches.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../fsops/watch.h"
#include "events.h"
#include "log.h"

static ra_agent *agent;
static bool watcher_ready;

/* ---- watcher → bus ---- */

static const char *const event_names[] = {
	[RA_WEV_CREATED] = "file.created",     [RA_WEV_MODIFIED] = "file.modified",
	[RA_WEV_DELETED] = "file.deleted",     [RA_WEV_MOVED] = "file.moved",
	[RA_WEV_OVERFLOW] = "watch.overflow",  [RA_WEV_RESCANNED] = "watch.rescanned",
	[RA_WEV_ERROR] = "watch.error",        [RA_WEV_REMOVED] = "watch.removed",
};

static void describe_errno(int err, char *buf, size_t cap)
{
	if (err == E2BIG)
		snprintf(buf, cap, "more than %u entries to poll: exclude some", RA_WATCH_POLL_ENTRIES_MAX);
	else if (err == ENOSPC)
		snprintf(buf, cap, "the inotify watch limit was reached (max_user_watches: %ld; raise "
			 "fs.inotify.max_user_watches or user.max_inotify_watches, or exclude directories)",
			 ra_watch_max_user_watches());
	else
		snprintf(buf, cap, "%s", strerror(err));
}

static void fill_entry(ra_enc *e, const ra_watch_event *ev)
{
	ra_enc_str(e, "watch");
	ra_enc_u64(e, ev->watch);
	if (ev->kind == RA_WEV_MOVED) {
		ra_enc_str(e, "from");
		ra_enc_str(e, ev->from);
		ra_enc_str(e, "to");
	} else {
		ra_enc_str(e, "path");
	}
	ra_enc_str(e, ev->path);
	ra_enc_str(e, "kind"); /* not "type": that key is the message's own */
	ra_enc_str(e, ra_fs_type_name(ev->type));
	if (ev->size >= 0) {
		ra_enc_str(e, "size");
		ra_enc_u64(e, (uint64_t)ev->size);
	}
}

static void fill_watch_event(ra_enc *e, const void *ctx)
{
	const ra_watch_event *ev = ctx;
	char message[256];
	switch (ev->kind) {
	case RA_WEV_CREATED:
	case RA_WEV_MODIFIED:
	case RA_WEV_DELETED:
	case RA_WEV_MOVED:
		fill_entry(e, ev);
		return;
	case RA_WEV_OVERFLOW:
		ra_enc_str(e, "message");
		ra_enc_str(e, "the kernel's event queue overflowed and events were lost; every inotify watch is "
			      "rebuilt and announced by watch.rescanned: resynchronize (file.list) after it");
		return;
	default:
		break;
	}
	ra_enc_str(e, "watch");
	ra_enc_u64(e, ev->watch);
	ra_enc_str(e, "path");
	ra_enc_str(e, ev->path);
	if (ev->kind == RA_WEV_RESCANNED) {
		ra_enc_str(e, "dirs");
		ra_enc_u64(e, ev->dirs);
	} else if (ev->kind == RA_WEV_ERROR) {
		ra_enc_str(e, "code");
		ra_enc_str(e, ra_err_name(ev->err == E2BIG ? RA_ERR_RESOURCE_EXHAUSTED : ra_err_from_errno(ev->err)));
		describe_errno(ev->err, message, sizeof(message));
		ra_enc_str(e, "message");
		ra_enc_str(e, message);
	} else {
		ra_enc_str(e, "reason");
		ra_enc_str(e, ev->reason);
	}
}

static uint32_t field_count(const ra_watch_event *ev)
{
	switch (ev->kind) {
	case RA_WEV_CREATED:
	case RA_WEV_MODIFIED:
	case RA_WEV_DELETED:
		return 3 + (ev->size >= 0);
	case RA_WEV_MOVED:
		return 4 + (ev->size >= 0);
	case RA_WEV_OVERFLOW:
		return 1;
	case RA_WEV_ERROR:
		return 4;
	default:
		return 3;
	}
}

static void on_watch_event(const ra_watch_event *ev, void *ctx)
{
	(void)ctx;
	if (ev->kind == RA_WEV_OVERFLOW)
		ra_log(RA_LOG_WARN, "watch.overflow", "the kernel's inotify queue overflowed: rescanning every watch");
	else if (ev->kind == RA_WEV_ERROR || ev->kind == RA_WEV_REMOVED)
		ra_log(ev->kind == RA_WEV_REMOVED ? RA_LOG_INFO : RA_LOG_WARN, event_names[ev->kind], "watch %u %s: %s",
		       ev->watch, ev->path, ev->kind == RA_WEV_REMOVED ? ev->reason : strerror(ev->err));
	bool entry = ev->kind <= RA_WEV_MOVED;
	ra_event_meta m = {.name = event_names[ev->kind], .path = ev->path[0] ? ev->path : NULL, .path2 = ev->from,
			   .path_is_scope = !entry};
	ra_events_emit(&m, field_count(ev), fill_watch_event, ev);
}

/* ---- ops ---- */

static void enc_info(ra_enc *e, const ra_watch_info *w)
{
	ra_enc_map(e, 7);
	ra_enc_str(e, "watch");
	ra_enc_u64(e, w->id);
	ra_enc_str(e, "path");
	ra_enc_str(e, w->path);
	ra_enc_str(e, "recursive");
	ra_enc_bool(e, w->recursive);
	ra_enc_str(e, "mode");
	ra_enc_str(e, ra_watch_mode_name(w->mode));
	ra_enc_str(e, "pollMs");
	if (w->mode == RA_WATCH_POLL)
		ra_enc_u64(e, w->poll_ms);
	else
		ra_enc_nil(e);
	ra_enc_str(e, "dirs");
	ra_enc_u64(e, w->dirs);
	ra_enc_str(e, "exclude");
	ra_enc_array(e, w->exclude_count);
	for (unsigned i = 0; i < w->exclude_count; i++)
		ra_enc_str(e, w->exclude[i]);
}

static bool info_of(uint32_t id, ra_watch_info *out) { return ra_watch_next(id - 1, out) && out->id == id; }


typedef struct {
	ra_watch_spec spec;
	char path[RA_FS_PATH_MAX];
	char *exclude[RA_WATCH_EXCLUDES_MAX];
} add_args;

static void add_args_free(add_args *a)
{
	for (unsigned i = 0; i < a->spec.exclude_count; i++)
		free(a->exclude[i]);
}

static ra_err read_path(const ra_request *req, char *out, ra_why *why)
{
	const msgpack_object *o = ra_map_get(req->map, "path");
	if (!o || o->type != MSGPACK_OBJECT_STR)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "path must be a path (a string)");
	int rc = ra_fs_resolve(agent->config->workdir, o->via.str.ptr, o->via.str.size, out, RA_FS_PATH_MAX);
	if (rc)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "path must be a non-empty path without NUL bytes, under %d bytes",
			       RA_FS_PATH_MAX);
	return RA_OK;
}

static ra_err read_exclude(const ra_request *req, add_args *a, ra_why *why)
{
	const msgpack_object *o = ra_map_get(req->map, "exclude");
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return RA_OK; /* the default set */
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > RA_WATCH_EXCLUDES_MAX)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "exclude must be an array of at most %d glob patterns",
			       RA_WATCH_EXCLUDES_MAX);
	a->spec.exclude = (const char *const *)a->exclude;
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *p = &o->via.array.ptr[i];
		if (p->type != MSGPACK_OBJECT_STR || ra_watch_pattern_check(p->via.str.ptr, p->via.str.size))
			return ra_fail(why, RA_ERR_INVALID_CONFIG,
				       "exclude[%u] must be a relative glob pattern of 1 to %d bytes with closed brackets", i,
				       RA_WATCH_PATTERN_MAX);
		if (!(a->exclude[i] = ra_obj_cstr(p)))
			return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
		a->spec.exclude_count = i + 1;
	}
	return RA_OK;
}

static ra_err read_mode(const ra_request *req, add_args *a, ra_why *why)
{
	const msgpack_object *o = ra_map_get(req->map, "mode");
	a->spec.mode = RA_WATCH_AUTO;
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return RA_OK;
	static const ra_watch_mode modes[] = {RA_WATCH_AUTO, RA_WATCH_INOTIFY, RA_WATCH_POLL};
	for (size_t i = 0; o->type == MSGPACK_OBJECT_STR && i < 3; i++) {
		const char *name = ra_watch_mode_name(modes[i]);
		if (o->via.str.size == strlen(name) && memcmp(o->via.str.ptr, name, o->via.str.size) == 0) {
			a->spec.mode = modes[i];
			return RA_OK;
		}
	}
	return ra_fail(why, RA_ERR_INVALID_CONFIG, "mode must be \"auto\", \"inotify\" or \"poll\"");
}

static ra_err read_add_args(const ra_request *req, add_args *a, ra_why *why)
{
	uint64_t poll_ms = RA_WATCH_POLL_MS_DEFAULT;
	a->spec.recursive = true;
	a->spec.path = a->path;
	ra_err rc;
	if ((rc = read_path(req, a->path, why)) || (rc = ra_arg_bool(req, "recursive", &a->spec.recursive, why)) ||
	    (rc = read_mode(req, a, why)) || (rc = ra_arg_u64_range(req, "pollMs", false, RA_WATCH_POLL_MS_MIN, RA_WATCH_POLL_MS_MAX, &poll_ms, why)) ||
	    (rc = read_exclude(req, a, why)))
		return rc;
	a->spec.poll_ms = (uint32_t)poll_ms;
	return RA_OK;
}

static ra_err add_error(int rc, const char *path, uint32_t other, ra_why *why)
{
	char message[256];
	switch (rc) {
	case -EEXIST: {
		ra_watch_info w;
		info_of(other, &w);
		return ra_fail(why, RA_ERR_ALREADY_EXISTS, "'%s' overlaps watch %u ('%s'%s)", path, other, w.path,
			       w.recursive ? ", recursive" : "");
	}
	case -ENOTDIR:
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "'%s' is not a directory: a watch's root is a directory", path);
	case -EMFILE:
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "at most %d watches", RA_WATCH_ROOTS_MAX);
	case -ENOSYS:
		return ra_fail(why, RA_ERR_UNSUPPORTED, "inotify is not available here (see the agent's log): use mode \"poll\"");
	case -E2BIG:
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "'%s' has more than %u entries to poll: exclude some",
			       path, RA_WATCH_POLL_ENTRIES_MAX);
	default:
		describe_errno(-rc, message, sizeof(message));
		return ra_fail(why, ra_err_from_errno(-rc), "watch '%s': %s", path, message);
	}
}

ra_err ra_op_watch_add(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	add_args a = {0};
	uint32_t id = 0;
	ra_err rc = read_add_args(req, &a, why);
	if (!rc) {
		int err = ra_watch_add(&a.spec, &id);
		if (err)
			rc = add_error(err, a.path, id, why);
	}
	add_args_free(&a);
	if (rc)
		return rc;
	ra_watch_info w;
	info_of(id, &w);
	ra_log(RA_LOG_INFO, "watch.add", "watch %u: %s (%s, %u directories)", id, w.path, ra_watch_mode_name(w.mode),
	       w.dirs);
	ra_enc_reply_begin(reply, req->id, 1);
	ra_enc_str(reply, "watch");
	enc_info(reply, &w);
	return RA_OK;
}

ra_err ra_op_watch_remove(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	uint64_t id = 0;
	char path[RA_FS_PATH_MAX];
	ra_err rc = ra_arg_u64(req, "watch", false, UINT32_MAX, &id, why);
	if (!rc && !id) {
		if (!ra_map_get(req->map, "path"))
			return ra_fail(why, RA_ERR_INVALID_CONFIG, "watch (an id) or path is required");
		if (!(rc = read_path(req, path, why)) && !(id = ra_watch_find(path)))
			return ra_fail(why, RA_ERR_NOT_FOUND, "no watch has the root '%s'", path);
	}
	if (rc)
		return rc;
	if (ra_watch_remove((uint32_t)id))
		return ra_fail(why, RA_ERR_NOT_FOUND, "no watch %llu", (unsigned long long)id);
	ra_enc_reply_begin(reply, req->id, 1);
	ra_enc_str(reply, "removed");
	ra_enc_u64(reply, id);
	return RA_OK;
}

ra_err ra_op_watch_list(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s, (void)why;
	ra_watch_info w;
	uint32_t n = 0;
	for (uint32_t id = 0; ra_watch_next(id, &w); id = w.id)
		n++;
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "watches");
	ra_enc_array(reply, n);
	for (uint32_t id = 0; ra_watch_next(id, &w); id = w.id)
		enc_info(reply, &w);
	ra_enc_str(reply, "maxUserWatches");
	ra_enc_i64(reply, ra_watch_max_user_watches());
	return RA_OK;
}

/* ---- lifecycle ---- */

void ra_watches_init(ra_agent *a)
{
	agent = a;
	int rc = ra_watch_init(a->loop, on_watch_event, NULL);
	if (rc)
		ra_log(RA_LOG_ERROR, "watch.init", "no inotify (%s): watches are polled", strerror(-rc));
	watcher_ready = true;
	if (!a->config->watch_workdir)
		return;
	ra_watch_spec spec = {.path = a->config->workdir, .recursive = true};
	uint32_t id;
	rc = ra_watch_add(&spec, &id);
	if (rc)
		ra_log(RA_LOG_WARN, "watch.workdir", "the workdir %s is not watched: %s", a->config->workdir, strerror(-rc));
}

void ra_watches_shutdown(void)
{
	if (watcher_ready)
		ra_watch_shutdown();
	watcher_ready = false;
}
