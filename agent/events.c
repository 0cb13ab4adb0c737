#include "events.h"

#include <string.h>

#include "agent.h"

static uint64_t last_seq;

/* "exec.*" matches "exec.started"; "*" matches everything; otherwise the name exactly. */
static bool pattern_matches(const char *pattern, const char *name)
{
	size_t n = strlen(pattern);
	if (n && pattern[n - 1] == '*')
		return strncmp(pattern, name, n - 1) == 0;
	return strcmp(pattern, name) == 0;
}

static bool session_wants(const ra_session *s, const char *name)
{
	for (unsigned i = 0; i < s->event_pattern_count; i++)
		if (pattern_matches(s->event_patterns[i], name))
			return true;
	return false;
}

uint64_t ra_events_emit(const char *name, uint32_t fields, ra_event_fill_fn fill, const void *ctx)
{
	uint64_t seq = ++last_seq;
	int64_t ts = ra_unix_ms();
	for (ra_session *s = ra_session_first(); s; s = s->next) {
		if (!session_wants(s, name))
			continue;
		ra_enc e;
		ra_session_enc_init(s, &e);
		ra_enc_map(&e, 4 + fields);
		ra_enc_str(&e, "type");
		ra_enc_str(&e, "event");
		ra_enc_str(&e, "event");
		ra_enc_str(&e, name);
		ra_enc_str(&e, "seq");
		ra_enc_u64(&e, seq);
		ra_enc_str(&e, "ts");
		ra_enc_i64(&e, ts);
		fill(&e, ctx);
		ra_session_send(s, &e);
	}
	return seq;
}

static ra_err read_patterns(const ra_request *req, const msgpack_object **arr, ra_why *why)
{
	const msgpack_object *o = ra_map_get(req->map, "events");
	*arr = NULL;
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return RA_OK;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "events must be an array of event names or patterns");
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *p = &o->via.array.ptr[i];
		if (p->type != MSGPACK_OBJECT_STR || p->via.str.size == 0 || p->via.str.size >= RA_EVENT_PATTERN_MAX ||
		    memchr(p->via.str.ptr, 0, p->via.str.size))
			return ra_fail(why, RA_ERR_INVALID_CONFIG, "events[%u] must be a name or pattern of 1 to %d bytes", i,
				       RA_EVENT_PATTERN_MAX - 1);
	}
	*arr = o;
	return RA_OK;
}

static int find_pattern(const ra_session *s, const char *p, size_t n)
{
	for (unsigned i = 0; i < s->event_pattern_count; i++)
		if (strlen(s->event_patterns[i]) == n && memcmp(s->event_patterns[i], p, n) == 0)
			return (int)i;
	return -1;
}

/* Patterns of arr not yet subscribed (a pattern repeated within arr counts once). */
static unsigned count_new(const ra_session *s, const msgpack_object *arr)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *p = &arr->via.array.ptr[i];
		bool seen = find_pattern(s, p->via.str.ptr, p->via.str.size) >= 0;
		for (uint32_t j = 0; j < i && !seen; j++)
			seen = arr->via.array.ptr[j].via.str.size == p->via.str.size &&
			       memcmp(arr->via.array.ptr[j].via.str.ptr, p->via.str.ptr, p->via.str.size) == 0;
		n += !seen;
	}
	return n;
}

static void reply_patterns(ra_session *s, const ra_request *req, ra_enc *reply)
{
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "events");
	ra_enc_array(reply, s->event_pattern_count);
	for (unsigned i = 0; i < s->event_pattern_count; i++)
		ra_enc_str(reply, s->event_patterns[i]);
	ra_enc_str(reply, "seq");
	ra_enc_u64(reply, last_seq);
}

ra_err ra_op_subscribe(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	const msgpack_object *arr;
	ra_err rc = read_patterns(req, &arr, why);
	if (rc)
		return rc;
	if (!arr)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "events is required (e.g. [\"exec.*\"] or [\"*\"])");
	if (count_new(s, arr) + s->event_pattern_count > RA_EVENT_PATTERNS_MAX) /* all or nothing */
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "at most %d subscriptions per connection", RA_EVENT_PATTERNS_MAX);
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *p = &arr->via.array.ptr[i];
		if (find_pattern(s, p->via.str.ptr, p->via.str.size) >= 0)
			continue;
		memcpy(s->event_patterns[s->event_pattern_count], p->via.str.ptr, p->via.str.size);
		s->event_patterns[s->event_pattern_count++][p->via.str.size] = '\0';
	}
	reply_patterns(s, req, reply);
	return RA_OK;
}

ra_err ra_op_unsubscribe(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	const msgpack_object *arr;
	ra_err rc = read_patterns(req, &arr, why);
	if (rc)
		return rc;
	if (!arr) {
		s->event_pattern_count = 0; /* no list: everything */
	} else {
		for (uint32_t i = 0; i < arr->via.array.size; i++) {
			int at = find_pattern(s, arr->via.array.ptr[i].via.str.ptr, arr->via.array.ptr[i].via.str.size);
			if (at < 0)
				continue;
			memmove(s->event_patterns[at], s->event_patterns[at + 1],
				(s->event_pattern_count - (unsigned)at - 1) * sizeof(s->event_patterns[0]));
			s->event_pattern_count--;
		}
	}
	reply_patterns(s, req, reply);
	return RA_OK;
}
