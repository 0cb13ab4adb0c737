#include "events.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../fsops/fsops.h"
#include "../proto/ra_limits.h"
#include "agent.h"
#include "log.h"

/* ---- the ring ---- */

typedef struct {
	uint64_t seq;
	size_t size; /* bytes counted against the ring */
	bool scope;
	const char *name, *path, *path2, *proc;
	uint32_t len;
	uint8_t msg[]; /* the encoded message, then the strings */
} ev_entry;

static struct {
	ev_entry **slots;
	size_t cap, head, count, bytes;
	uint32_t max_events;
	size_t max_bytes;
	uint64_t last_seq;
	const char *workdir;
} ring;

static uint64_t first_seq(void) { return ring.last_seq - ring.count + 1; }

static ev_entry *ring_at(uint64_t seq) { return ring.slots[(ring.head + (seq - first_seq())) % ring.cap]; }

static void ring_drop_oldest(void)
{
	ev_entry *e = ring.slots[ring.head];
	ring.bytes -= e->size;
	free(e);
	ring.head = (ring.head + 1) % ring.cap;
	ring.count--;
}

static int ring_grow(void)
{
	size_t cap = ring.cap ? ring.cap * 2 : 1024;
	if (cap > ring.max_events)
		cap = ring.max_events;
	ev_entry **slots = malloc(cap * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < ring.count; i++)
		slots[i] = ring.slots[(ring.head + i) % ring.cap];
	free(ring.slots);
	ring.slots = slots;
	ring.cap = cap;
	ring.head = 0;
	return 0;
}

/* Keeps e as the newest event (its seq is last_seq + 1). Without memory for it, the ring is emptied rather
 * than left with a hole: subscribers then see a gap, never a silent loss. */
static void ring_push(ev_entry *e)
{
	ring.last_seq++;
	while (ring.count && (ring.count >= ring.max_events || ring.bytes + (e ? e->size : 0) > ring.max_bytes))
		ring_drop_oldest();
	if (e && ring.count == ring.cap && ring_grow()) {
		free(e);
		e = NULL;
	}
	if (!e) {
		while (ring.count)
			ring_drop_oldest();
		ring.head = 0;
		return;
	}
	ring.slots[(ring.head + ring.count) % ring.cap] = e;
	ring.count++;
	ring.bytes += e->size;
}

static const char *copy_into(char **at, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	memcpy(*at, s, n);
	const char *copy = *at;
	*at += n;
	return copy;
}

static ev_entry *entry_new(const ra_event_meta *m, const ra_enc *enc, uint64_t seq)
{
	size_t strings = strlen(m->name) + 1 + (m->path ? strlen(m->path) + 1 : 0) +
			 (m->path2 ? strlen(m->path2) + 1 : 0) + (m->proc ? strlen(m->proc) + 1 : 0);
	size_t size = sizeof(ev_entry) + enc->buf.len + strings;
	ev_entry *e = malloc(size);
	if (!e)
		return NULL;
	e->seq = seq;
	e->size = size;
	e->scope = m->path_is_scope;
	e->len = (uint32_t)enc->buf.len;
	memcpy(e->msg, ra_buf_payload(&enc->buf), enc->buf.len);
	char *at = (char *)e->msg + enc->buf.len;
	e->name = copy_into(&at, m->name);
	e->path = copy_into(&at, m->path);
	e->path2 = copy_into(&at, m->path2);
	e->proc = copy_into(&at, m->proc);
	return e;
}

void ra_events_init(uint32_t ring_events, uint32_t ring_bytes, const char *workdir)
{
	ring.max_events = ring_events;
	ring.max_bytes = ring_bytes;
	ring.workdir = workdir;
}

void ra_events_shutdown(void)
{
	while (ring.count)
		ring_drop_oldest();
	free(ring.slots);
	ring.slots = NULL;
	ring.cap = ring.head = 0;
}


/* ---- subscriptions ---- */

typedef struct {
	uint32_t id;
	unsigned npat, npath, nproc;
	char *pat[RA_SUBSCRIPTION_ITEMS_MAX];
	char *path[RA_SUBSCRIPTION_ITEMS_MAX];
	char *proc[RA_SUBSCRIPTION_ITEMS_MAX];
} subscription;

typedef struct {
	uint64_t next_seq; /* the next event this connection has not been offered */
	bool replaying;    /* the cursor was set by sinceSeq and has not reached the ring yet */
	uint32_t last_sub_id;
	unsigned nsubs;
	subscription *subs[RA_SUBSCRIPTIONS_MAX];
} conn_events;

static void sub_free(subscription *sub)
{
	if (!sub)
		return;
	for (unsigned i = 0; i < sub->npat; i++)
		free(sub->pat[i]);
	for (unsigned i = 0; i < sub->npath; i++)
		free(sub->path[i]);
	for (unsigned i = 0; i < sub->nproc; i++)
		free(sub->proc[i]);
	free(sub);
}

/* "exec.*" matches "exec.started"; "*" matches everything; otherwise the name exactly. */
static bool pattern_matches(const char *pattern, const char *name)
{
	size_t n = strlen(pattern);
	if (n && pattern[n - 1] == '*')
		return strncmp(pattern, name, n - 1) == 0;
	return strcmp(pattern, name) == 0;
}

static bool path_under(const char *path, const char *prefix)
{
	if (!path)
		return false;
	size_t n = strlen(prefix);
	if (n == 1)
		return path[0] == '/';
	return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static bool path_matches(const ev_entry *e, const char *prefix)
{
	if (e->scope)
		return path_under(e->path, prefix) || path_under(prefix, e->path);
	return path_under(e->path, prefix) || path_under(e->path2, prefix);
}

/* Each filter narrows the events that carry what it filters on: paths apply to events with a path (a
 * watch.overflow, which has none, reaches a path-filtered subscription), procs to events of a process. */
static bool sub_matches(const subscription *sub, const ev_entry *e)
{
	bool ok = false;
	for (unsigned i = 0; i < sub->npat && !ok; i++)
		ok = pattern_matches(sub->pat[i], e->name);
	if (ok && sub->npath && e->path) {
		ok = false;
		for (unsigned i = 0; i < sub->npath && !ok; i++)
			ok = path_matches(e, sub->path[i]);
	}
	if (ok && sub->nproc && e->proc) {
		ok = false;
		for (unsigned i = 0; i < sub->nproc && !ok; i++)
			ok = strcmp(e->proc, sub->proc[i]) == 0;
	}
	return ok;
}

static bool conn_matches(const conn_events *c, const ev_entry *e)
{
	for (unsigned i = 0; i < c->nsubs; i++)
		if (sub_matches(c->subs[i], e))
			return true;
	return false;
}

/* ---- delivery ---- */

static bool queue_has_room(const ra_session *s)
{
	return s->out_bytes < RA_EVENT_QUEUE_HIGH && !s->out_overflow && !s->out_broken;
}

static void send_gap(ra_session *s, uint64_t from, uint64_t to, const char *reason)
{
	ra_enc e;
	ra_session_enc_init(s, &e);
	ra_enc_map(&e, 4);
	ra_enc_str(&e, "type");
	ra_enc_str(&e, "gap");
	ra_enc_str(&e, "from");
	ra_enc_u64(&e, from);
	ra_enc_str(&e, "to");
	ra_enc_u64(&e, to);
	ra_enc_str(&e, "reason");
	ra_enc_str(&e, reason);
	ra_session_send(s, &e);
}

static void deliver(ra_session *s, const ev_entry *ev)
{
	ra_enc e;
	ra_session_enc_init_sized(s, &e, ev->len);
	ra_buf_append(&e.buf, ev->msg, ev->len);
	ra_session_send(s, &e);
}

/* Moves the connection's due events from the ring into its queue, as far as the queue has room. */
static void pump(ra_session *s)
{
	conn_events *c = s->events;
	if (!c || !c->nsubs)
		return;
	while (c->next_seq <= ring.last_seq && queue_has_room(s)) {
		if (c->next_seq < first_seq()) {
			send_gap(s, c->next_seq, first_seq() - 1, c->replaying ? "expired" : "behind");
			c->next_seq = first_seq();
			continue;
		}
		c->replaying = false;
		const ev_entry *e = ring_at(c->next_seq++);
		if (conn_matches(c, e))
			deliver(s, e);
	}
}

uint64_t ra_events_emit(const ra_event_meta *m, uint32_t fields, ra_event_fill_fn fill, const void *ctx)
{
	uint64_t seq = ring.last_seq + 1;
	ra_enc enc;
	ra_enc_init(&enc, 0, RA_SESSION_OUT_QUEUE_CAP);
	ra_enc_map(&enc, 4 + fields);
	ra_enc_str(&enc, "type");
	ra_enc_str(&enc, "event");
	ra_enc_str(&enc, "event");
	ra_enc_str(&enc, m->name);
	ra_enc_str(&enc, "seq");
	ra_enc_u64(&enc, seq);
	ra_enc_str(&enc, "ts");
	ra_enc_i64(&enc, ra_unix_ms());
	fill(&enc, ctx);
	/* The same check as for what clients send: a field count that does not match what fill wrote must
	 * not reach a client as a broken message. */
	bool whole = !ra_enc_failed(&enc) && ra_scan(ra_buf_payload(&enc.buf), enc.buf.len) == RA_SCAN_OK;
	ev_entry *e = whole ? entry_new(m, &enc, seq) : NULL;
	ra_enc_free(&enc);
	if (!e)
		ra_log(RA_LOG_ERROR, "events.lost", "event %llu (%s) could not be encoded or kept: subscribers will see a gap",
		       (unsigned long long)seq, m->name);
	ring_push(e);
	for (ra_session *s = ra_session_first(); s; s = s->next)
		pump(s);
	return seq;
}

void ra_events_session_drained(ra_session *s)
{
	if (s->events)
		pump(s);
}

void ra_events_session_closed(ra_session *s)
{
	conn_events *c = s->events;
	if (!c)
		return;
	for (unsigned i = 0; i < c->nsubs; i++)
		sub_free(c->subs[i]);
	free(c);
	s->events = NULL;
}

/* ---- subscribe / unsubscribe ---- */

static const msgpack_object *list_arg(const ra_request *req, const char *key, ra_err *rc, ra_why *why)
{
	const msgpack_object *o = ra_map_get(req->map, key);
	*rc = RA_OK;
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return NULL;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		*rc = ra_fail(why, RA_ERR_INVALID_CONFIG, "%s must be an array of strings", key);
	else if (o->via.array.size > RA_SUBSCRIPTION_ITEMS_MAX)
		*rc = ra_fail(why, RA_ERR_INVALID_CONFIG, "%s has more than %u items", key, RA_SUBSCRIPTION_ITEMS_MAX);
	return *rc ? NULL : o;
}

/* Copies the items of arr, each a string of 1 to max bytes without NUL, into out (*n of them). On an item that
 * is not: RA_ERR_INVALID_CONFIG with its index in *bad and no message, which the caller words. */
static ra_err copy_strings(char **out, unsigned *n, const msgpack_object *arr, uint32_t max, uint32_t *bad,
			   ra_why *why)
{
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *p = &arr->via.array.ptr[i];
		if (p->type != MSGPACK_OBJECT_STR || p->via.str.size == 0 || p->via.str.size > max ||
		    memchr(p->via.str.ptr, 0, p->via.str.size)) {
			*bad = i;
			return RA_ERR_INVALID_CONFIG;
		}
		if (!(out[(*n)++] = ra_obj_cstr(p)))
			return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	}
	return RA_OK;
}

static ra_err read_patterns(subscription *sub, const msgpack_object *arr, ra_why *why)
{
	uint32_t bad = 0;
	ra_err rc = copy_strings(sub->pat, &sub->npat, arr, RA_EVENT_PATTERN_MAX, &bad, why);
	if (rc == RA_ERR_INVALID_CONFIG)
		return ra_fail(why, rc, "events[%u] must be a name or pattern of 1 to %u bytes", bad,
			       RA_EVENT_PATTERN_MAX);
	return rc;
}

static ra_err read_paths(subscription *sub, const msgpack_object *arr, ra_why *why)
{
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *p = &arr->via.array.ptr[i];
		char path[RA_FS_PATH_MAX];
		if (p->type != MSGPACK_OBJECT_STR ||
		    ra_fs_resolve(ring.workdir, p->via.str.ptr, p->via.str.size, path, sizeof(path)))
			return ra_fail(why, RA_ERR_INVALID_CONFIG,
				       "paths[%u] must be a non-empty path without NUL bytes, under %d bytes", i,
				       RA_FS_PATH_MAX);
		if (!(sub->path[sub->npath++] = strdup(path)))
			return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	}
	return RA_OK;
}

static ra_err read_procs(subscription *sub, const msgpack_object *arr, ra_why *why)
{
	uint32_t bad = 0;
	ra_err rc = copy_strings(sub->proc, &sub->nproc, arr, 64, &bad, why);
	if (rc == RA_ERR_INVALID_CONFIG)
		return ra_fail(why, rc, "procs[%u] must be a process id (1 to 64 bytes)", bad);
	return rc;
}

static ra_err read_subscription(const ra_request *req, subscription *sub, ra_why *why)
{
	ra_err rc;
	const msgpack_object *events = list_arg(req, "events", &rc, why);
	if (rc)
		return rc;
	if (!events || events->via.array.size == 0)
		return ra_fail(why, RA_ERR_INVALID_CONFIG,
			       "events is required: a non-empty array of names or patterns (e.g. [\"file.*\"] or [\"*\"])");
	if ((rc = read_patterns(sub, events, why)))
		return rc;
	const msgpack_object *paths = list_arg(req, "paths", &rc, why);
	if (rc || (paths && (rc = read_paths(sub, paths, why))))
		return rc;
	const msgpack_object *procs = list_arg(req, "procs", &rc, why);
	if (rc || (procs && (rc = read_procs(sub, procs, why))))
		return rc;
	return RA_OK;
}

static conn_events *conn_of(ra_session *s)
{
	if (!s->events) {
		conn_events *c = calloc(1, sizeof(*c));
		if (c)
			c->next_seq = ring.last_seq + 1;
		s->events = c;
	}
	return s->events;
}

/* sinceSeq: events after it are due on this connection (again, if it was already past them). */
static ra_err apply_since(conn_events *c, const ra_request *req, ra_why *why)
{
	uint64_t since = UINT64_MAX;
	ra_err rc = ra_arg_u64(req, "sinceSeq", false, UINT64_MAX - 1, &since, why);
	if (rc || since == UINT64_MAX)
		return rc;
	if (since > ring.last_seq)
		return ra_fail(why, RA_ERR_INVALID_CONFIG,
			       "sinceSeq %llu is past the last event (%llu): the agent restarted (see startedAt); "
			       "subscribe without sinceSeq and resynchronize",
			       (unsigned long long)since, (unsigned long long)ring.last_seq);
	if (c->nsubs == 0 || since + 1 < c->next_seq) {
		c->next_seq = since + 1;
		c->replaying = since + 1 < first_seq(); /* "expired": it asked for what the ring no longer holds */
	}
	return RA_OK;
}

static void reply_subscribed(const ra_request *req, ra_enc *reply, uint32_t id, uint64_t cursor)
{
	ra_enc_reply_begin(reply, req->id, 4);
	ra_enc_str(reply, "sub");
	ra_enc_u64(reply, id);
	ra_enc_str(reply, "seq");
	ra_enc_u64(reply, ring.last_seq);
	ra_enc_str(reply, "oldestSeq");
	ra_enc_u64(reply, ring.count ? first_seq() : ring.last_seq + 1);
	ra_enc_str(reply, "nextSeq");
	ra_enc_u64(reply, cursor);
}

ra_err ra_op_subscribe(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	conn_events *c = conn_of(s);
	subscription *sub = calloc(1, sizeof(*sub));
	if (!c || !sub) {
		free(sub);
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	}
	ra_err rc = read_subscription(req, sub, why);
	uint64_t cursor = c->next_seq;
	bool replaying = c->replaying;
	if (!rc && c->nsubs >= RA_SUBSCRIPTIONS_MAX)
		rc = ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "at most %u subscriptions per connection",
			     RA_SUBSCRIPTIONS_MAX);
	if (!rc && c->nsubs == 0)
		c->next_seq = ring.last_seq + 1; /* a first subscription starts now, unless sinceSeq says otherwise */
	if (!rc)
		rc = apply_since(c, req, why);
	if (rc) {
		c->next_seq = cursor;
		c->replaying = replaying;
		sub_free(sub);
		return rc;
	}
	sub->id = ++c->last_sub_id;
	c->subs[c->nsubs++] = sub;
	/* The reply goes first: it tells where replay starts, then the events follow. */
	reply_subscribed(req, reply, sub->id, c->next_seq);
	ra_session_send(s, reply);
	pump(s);
	return RA_REPLY_LATER;
}

ra_err ra_op_unsubscribe(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	conn_events *c = s->events;
	uint64_t id = UINT64_MAX; /* absent: all */
	ra_err rc = ra_arg_u64(req, "sub", false, UINT32_MAX, &id, why);
	if (rc)
		return rc;
	bool all = id == UINT64_MAX;
	unsigned removed = 0;
	for (unsigned i = 0; c && i < c->nsubs;) {
		if (!all && c->subs[i]->id != id) {
			i++;
			continue;
		}
		sub_free(c->subs[i]);
		c->subs[i] = c->subs[--c->nsubs];
		removed++;
	}
	if (!all && !removed)
		return ra_fail(why, RA_ERR_NOT_FOUND, "no subscription %llu on this connection", (unsigned long long)id);
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "removed");
	ra_enc_u64(reply, removed);
	ra_enc_str(reply, "subscriptions");
	ra_enc_u64(reply, c ? c->nsubs : 0);
	return RA_OK;
}
