#include "exec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../procmgr/procmgr.h"
#include "../proto/ra_limits.h"
#include "events.h"
#include "lifecycle.h"
#include "pid1.h"
#include "ports.h"
#include "log.h"

typedef enum { ATTACH_EXEC, ATTACH_ATTACH, ATTACH_WAIT } attach_kind;

typedef struct attachment {
	struct attachment *next_in_proc, *next_in_session;
	ra_session *s;
	ra_proc *p;
	attach_kind kind;
	uint64_t req_id;
	bool stream;  /* send stream messages */
	bool collect; /* keep the output for the reply */
	uint64_t cursor[RA_STREAM_COUNT];
	uint64_t lost[RA_STREAM_COUNT];
	ra_buf collected[RA_STREAM_COUNT];
	ev_timer deadline; /* proc.wait's timeoutMs */
} attachment;

/* What the agent keeps per process (ra_proc_set_user). */
typedef struct {
	attachment *attachments;
	uint64_t owner_serial; /* the connection that started it */
	bool kill_on_disconnect;
	bool background;
	bool exit_known;
} proc_extra;

static ra_agent *agent;
static const char *const stream_names[RA_STREAM_COUNT] = {"stdout", "stderr"};

static proc_extra *extra_of(const ra_proc *p) { return ra_proc_get_user(p); }
static attachment **session_list(ra_session *s) { return (attachment **)&s->attachments; }

/* ---- status of a process, as ops and replies report it ---- */

static const char *state_name(ra_proc_state st)
{
	return st == RA_PROC_RUNNING ? "running" : st == RA_PROC_EXITED ? "exited" : "done";
}

static const char *reason_name(ra_end_reason r)
{
	static const char *const names[] = {"running", "exited", "timeout", "killed", "clientGone"};
	return names[r];
}

/* {proc, pid, command, state, background, pty, startedAt, stdoutBytes, stderrBytes, stdinOpen
 *  [, exitCode, signal, reason, timedOut, durationMs, cpuUserMs, cpuSysMs, maxRssKb]} plus `extra` more
 * entries the caller writes next. */
static void enc_status(ra_enc *e, const ra_proc *p, uint32_t extra)
{
	const proc_extra *x = extra_of(p);
	bool ended = x && x->exit_known;
	ra_enc_map(e, 11u + (ended ? 9u : 0u) + extra);
	ra_enc_str(e, "proc");
	ra_enc_str(e, ra_proc_id(p));
	ra_enc_str(e, "pid");
	ra_enc_i64(e, ra_proc_pid(p));
	ra_enc_str(e, "command");
	ra_enc_str(e, ra_proc_command(p));
	ra_enc_str(e, "cwd");
	ra_enc_str(e, ra_proc_cwd(p));
	ra_enc_str(e, "state");
	ra_enc_str(e, state_name(ra_proc_get_state(p)));
	ra_enc_str(e, "background");
	ra_enc_bool(e, x && x->background);
	ra_enc_str(e, "pty");
	ra_enc_bool(e, ra_proc_is_pty(p));
	ra_enc_str(e, "startedAt");
	ra_enc_i64(e, ra_proc_started_unix_ms(p));
	ra_enc_str(e, "stdoutBytes");
	ra_enc_u64(e, ra_proc_output(p, RA_STREAM_STDOUT)->total);
	ra_enc_str(e, "stderrBytes");
	ra_enc_u64(e, ra_proc_output(p, RA_STREAM_STDERR)->total);
	ra_enc_str(e, "stdinOpen");
	ra_enc_bool(e, ra_proc_stdin_open(p));
	if (!ended)
		return;
	const ra_proc_exit *x2 = ra_proc_exit_info(p);
	ra_enc_str(e, "exitCode");
	ra_enc_i64(e, x2->exit_code);
	ra_enc_str(e, "signal");
	if (x2->signal && ra_signal_name(x2->signal))
		ra_enc_str(e, ra_signal_name(x2->signal));
	else
		ra_enc_nil(e);
	ra_enc_str(e, "coreDumped");
	ra_enc_bool(e, x2->core_dumped);
	ra_enc_str(e, "reason");
	ra_enc_str(e, reason_name(x2->reason));
	ra_enc_str(e, "timedOut");
	ra_enc_bool(e, x2->reason == RA_END_TIMEOUT);
	ra_enc_str(e, "durationMs");
	ra_enc_u64(e, x2->duration_ms);
	ra_enc_str(e, "cpuUserMs");
	ra_enc_u64(e, x2->cpu_user_ms);
	ra_enc_str(e, "cpuSysMs");
	ra_enc_u64(e, x2->cpu_sys_ms);
	ra_enc_str(e, "maxRssKb");
	ra_enc_u64(e, x2->max_rss_kb);
}

/* ---- attachments ---- */

static void update_hold(ra_proc *p)
{
	for (int st = 0; st < RA_STREAM_COUNT; st++) {
		uint64_t hold = RA_OUTBUF_NO_HOLD;
		for (attachment *a = extra_of(p)->attachments; a; a = a->next_in_proc)
			if ((a->stream || a->collect) && a->cursor[st] < hold)
				hold = a->cursor[st];
		ra_proc_set_hold(p, (ra_stream)st, hold);
	}
}

static void on_wait_deadline(struct ev_loop *loop, ev_timer *w, int revents);

static attachment *attach_new(ra_session *s, ra_proc *p, attach_kind kind, uint64_t req_id)
{
	attachment *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->s = s;
	a->p = p;
	a->kind = kind;
	a->req_id = req_id;
	for (int st = 0; st < RA_STREAM_COUNT; st++)
		ra_buf_init(&a->collected[st], 0, 0);
	ev_timer_init(&a->deadline, on_wait_deadline, 0, 0);
	a->deadline.data = a;
	proc_extra *x = extra_of(p);
	a->next_in_proc = x->attachments;
	x->attachments = a;
	a->next_in_session = *session_list(s);
	*session_list(s) = a;
	ra_proc_ref(p);
	return a;
}

static void unlink_from(attachment **head, attachment *a, bool in_proc)
{
	for (attachment **at = head; *at; at = in_proc ? &(*at)->next_in_proc : &(*at)->next_in_session) {
		if (*at == a) {
			*at = in_proc ? a->next_in_proc : a->next_in_session;
			return;
		}
	}
}

/* Frees the attachment; the process may be evicted by the last unref. */
static void attach_free(attachment *a)
{
	ra_proc *p = a->p;
	unlink_from(&extra_of(p)->attachments, a, true);
	unlink_from(session_list(a->s), a, false);
	ev_timer_stop(agent->loop, &a->deadline);
	for (int st = 0; st < RA_STREAM_COUNT; st++)
		ra_buf_free(&a->collected[st]);
	free(a);
	update_hold(p);
	ra_proc_unref(p);
}

/* The final reply of the attachment's request, then the attachment is gone. */
static void complete(attachment *a, bool detached)
{
	ra_enc e;
	ra_session_enc_init(a->s, &e);
	uint32_t extra = 2u + (detached ? 1u : 0u) + (a->collect ? 4u : 0u);
	ra_enc_reply_begin(&e, a->req_id, 1 + extra);
	ra_enc_str(&e, "status");
	enc_status(&e, a->p, 0);
	ra_enc_str(&e, "stdoutLost");
	ra_enc_u64(&e, a->lost[RA_STREAM_STDOUT]);
	ra_enc_str(&e, "stderrLost");
	ra_enc_u64(&e, a->lost[RA_STREAM_STDERR]);
	if (detached) {
		ra_enc_str(&e, "detached");
		ra_enc_bool(&e, true);
	}
	for (int st = 0; a->collect && st < RA_STREAM_COUNT; st++) {
		ra_enc_str(&e, stream_names[st]);
		ra_enc_bin(&e, ra_buf_payload(&a->collected[st]), a->collected[st].len);
		ra_enc_str(&e, st == RA_STREAM_STDOUT ? "stdoutTruncated" : "stderrTruncated");
		ra_enc_bool(&e, a->collected[st].failed);
	}
	if (ra_session_send(a->s, &e) == -EMSGSIZE)
		ra_session_send_error(a->s, true, a->req_id, RA_ERR_MESSAGE_TOO_LARGE, "the reply is too large to send");
	attach_free(a);
}

static bool caught_up(const attachment *a, bool to_exit)
{
	for (int st = 0; st < RA_STREAM_COUNT; st++) {
		uint64_t end = to_exit ? ra_proc_exit_offset(a->p, (ra_stream)st) : ra_proc_output(a->p, (ra_stream)st)->total;
		if ((a->stream || a->collect) && a->cursor[st] < end)
			return false;
	}
	return true;
}

/* Returns true when the attachment completed (and is freed). */
static bool maybe_complete(attachment *a)
{
	const proc_extra *x = extra_of(a->p);
	bool ready = false;
	switch (a->kind) {
	case ATTACH_WAIT:
		ready = x->exit_known;
		break;
	case ATTACH_EXEC:
		ready = x->exit_known && caught_up(a, true);
		break;
	case ATTACH_ATTACH:
		ready = ra_proc_get_state(a->p) == RA_PROC_DONE && caught_up(a, false);
		break;
	}
	if (ready)
		complete(a, false);
	return ready;
}

static void send_stream(attachment *a, int st, uint64_t offset, const uint8_t *data, size_t n, uint64_t lost)
{
	ra_enc e;
	ra_session_enc_init_sized(a->s, &e, n + 128);
	ra_enc_map(&e, 6 + (lost ? 1 : 0));
	ra_enc_str(&e, "type");
	ra_enc_str(&e, "stream");
	ra_enc_str(&e, "id");
	ra_enc_u64(&e, a->req_id);
	ra_enc_str(&e, "proc");
	ra_enc_str(&e, ra_proc_id(a->p));
	ra_enc_str(&e, "stream");
	ra_enc_str(&e, stream_names[st]);
	ra_enc_str(&e, "offset");
	ra_enc_u64(&e, offset);
	if (lost) {
		ra_enc_str(&e, "lost");
		ra_enc_u64(&e, lost);
	}
	ra_enc_str(&e, "data");
	ra_enc_bin(&e, data, n);
	ra_session_send(a->s, &e);
}

/* Keeps what fits under the cap; the rest only marks the output truncated (the buffer's failed flag). */
static void collect(ra_buf *b, const uint8_t *data, size_t n)
{
	size_t room = b->failed ? 0 : b->cap - b->len;
	ra_buf_append(b, data, n < room ? n : room);
	if (n > room)
		b->failed = true;
}

/* Moves one chunk of one stream towards the attachment; false when there was nothing to move. */
static bool pump_one(attachment *a, int st, uint64_t limit)
{
	const uint8_t *data;
	uint64_t start;
	size_t n = ra_outbuf_peek(ra_proc_output(a->p, (ra_stream)st), a->cursor[st], &data, &start);
	if (start >= limit && a->cursor[st] < limit) { /* all up to the limit was overwritten: lost, and past */
		a->lost[st] += limit - a->cursor[st];
		a->cursor[st] = limit;
		return true;
	}
	if (start + n > limit)
		n = limit > start ? (size_t)(limit - start) : 0;
	if (n == 0)
		return false;
	if (n > RA_STREAM_CHUNK_BYTES)
		n = RA_STREAM_CHUNK_BYTES;
	uint64_t lost = start - a->cursor[st]; /* overwritten before this reader got to it */
	a->lost[st] += lost;
	if (a->collect)
		collect(&a->collected[st], data, n);
	if (a->stream)
		send_stream(a, st, start, data, n, lost);
	a->cursor[st] = start + n;
	return true;
}

/* Sends output while the connection's queue is short; completes the request when it can. True if the
 * attachment was freed. */
static bool pump(attachment *a)
{
	if (a->stream || a->collect) {
		bool moved = true;
		while (moved && a->s->out_bytes < RA_STREAM_QUEUE_HIGH && !a->s->out_overflow) {
			moved = false;
			for (int st = 0; st < RA_STREAM_COUNT; st++) {
				uint64_t limit = a->kind == ATTACH_EXEC && extra_of(a->p)->exit_known
							 ? ra_proc_exit_offset(a->p, (ra_stream)st)
							 : UINT64_MAX;
				moved |= pump_one(a, st, limit);
			}
		}
		update_hold(a->p);
	}
	return maybe_complete(a);
}

static void pump_proc(ra_proc *p)
{
	for (attachment *a = extra_of(p)->attachments, *next; a; a = next) {
		next = a->next_in_proc;
		pump(a);
	}
}

void ra_exec_session_drained(ra_session *s)
{
	for (attachment *a = *session_list(s), *next; a; a = next) {
		next = a->next_in_session;
		pump(a);
	}
}

void ra_exec_session_closed(ra_session *s)
{
	while (*session_list(s))
		attach_free(*session_list(s));
	for (ra_proc *p = ra_proc_first(); p; p = ra_proc_next(p)) {
		proc_extra *x = extra_of(p);
		if (x && x->kill_on_disconnect && x->owner_serial == s->serial && ra_proc_get_state(p) != RA_PROC_DONE)
			ra_proc_terminate(p, RA_END_CLIENT_GONE);
	}
}

static void on_wait_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	attachment *a = w->data;
	ra_session_send_error(a->s, true, a->req_id, RA_ERR_TIMEOUT, "the process is still running");
	attach_free(a);
}

/* ---- events and procmgr hooks ---- */

static void fill_started(ra_enc *e, const void *ctx)
{
	const ra_proc *p = ctx;
	ra_enc_str(e, "proc");
	ra_enc_str(e, ra_proc_id(p));
	ra_enc_str(e, "pid");
	ra_enc_i64(e, ra_proc_pid(p));
	ra_enc_str(e, "command");
	ra_enc_str(e, ra_proc_command(p));
	ra_enc_str(e, "background");
	ra_enc_bool(e, extra_of(p)->background);
}

static void fill_completed(ra_enc *e, const void *ctx)
{
	const ra_proc *p = ctx;
	ra_enc_str(e, "status");
	enc_status(e, p, 0);
}

static void on_output(ra_proc *p, void *ctx)
{
	(void)ctx;
	ra_lifecycle_touch();
	pump_proc(p);
}

static void on_proc_exit(ra_proc *p, void *ctx)
{
	(void)ctx;
	extra_of(p)->exit_known = true;
	ra_event_meta m = {.name = "exec.completed", .proc = ra_proc_id(p)};
	ra_events_emit(&m, 1, fill_completed, p);
	pump_proc(p);
}

static void on_done(ra_proc *p, void *ctx)
{
	(void)ctx;
	pump_proc(p);
}

static void on_free(ra_proc *p, void *ctx)
{
	(void)ctx;
	free(extra_of(p));
	ra_proc_set_user(p, NULL);
}

void ra_exec_init(ra_agent *a)
{
	agent = a;
	const ra_config *c = a->config;
	ra_procmgr_config cfg = {
		.output_cap = c->output_buffer_bytes,
		.max_live = c->max_processes,
		.max_retained = RA_PROC_RETAINED_DONE,
		.retained_output_bytes = RA_PROC_RETAINED_OUTPUT_BYTES,
		.kill_grace_ms = RA_KILL_GRACE_MS,
		.stdin_queue_cap = RA_STDIN_QUEUE_BYTES,
		.default_cwd = c->workdir,
		.child_nofile = ra_pid1_child_nofile(),
	};
	ra_proc_hooks hooks = {.on_output = on_output, .on_exit = on_proc_exit, .on_done = on_done, .on_free = on_free};
	ra_procmgr_init(a->loop, &cfg, &hooks);
}

void ra_exec_shutdown(void) { ra_procmgr_shutdown(); }

/* ---- ops ---- */

static ra_err find_proc(const ra_request *req, ra_proc **out, ra_why *why)
{
	char *id = NULL;
	ra_err rc = ra_arg_cstr(req, "proc", true, RA_PROC_ID_MAX, &id, why);
	if (rc)
		return rc;
	*out = ra_proc_find(id);
	rc = *out ? RA_OK : ra_fail(why, RA_ERR_NOT_FOUND, "no process '%s'", id);
	free(id);
	return rc;
}

typedef struct {
	ra_spawn_opts o;
	char *id, *cmd, *cwd, *user;
	char **argv, **env;
	bool background, collect, stream, kill_on_disconnect;
	uint64_t collect_cap;
} exec_args;

static void exec_args_free(exec_args *x)
{
	free(x->id);
	free(x->cmd);
	free(x->cwd);
	free(x->user);
	for (char **v = x->argv; v && *v; v++)
		free(*v);
	free(x->argv);
	for (char **v = x->env; v && *v; v++)
		free(*v);
	free(x->env);
}

static ra_err parse_argv(const msgpack_object *o, exec_args *x, ra_why *why)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0 || o->via.array.size > RA_EXEC_MAX_ARGS)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "argv must be a non-empty array of at most %d strings",
			       RA_EXEC_MAX_ARGS);
	x->argv = calloc(o->via.array.size + 1, sizeof(char *));
	if (!x->argv)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	size_t total = 0;
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *s = &o->via.array.ptr[i];
		total += s->type == MSGPACK_OBJECT_STR ? s->via.str.size + 1 : 0;
		if (!(x->argv[i] = ra_obj_cstr(s)) || total > RA_EXEC_MAX_ARG_BYTES || s->via.str.size > RA_EXEC_MAX_ONE_ARG)
			return ra_fail(why, RA_ERR_INVALID_CONFIG, "argv[%u] must be a string without NUL bytes of at most %d "
								   "bytes, and argv at most %d bytes in all", i,
				       RA_EXEC_MAX_ONE_ARG, RA_EXEC_MAX_ARG_BYTES);
	}
	return RA_OK;
}

static bool env_name_ok(const msgpack_object *k)
{
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size > 0 && !memchr(k->via.str.ptr, '=', k->via.str.size) &&
	       !memchr(k->via.str.ptr, 0, k->via.str.size);
}

static ra_err parse_env(const msgpack_object *o, exec_args *x, ra_why *why)
{
	if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size > RA_EXEC_MAX_ENV)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "env must be a map of at most %d names to strings", RA_EXEC_MAX_ENV);
	x->env = calloc(o->via.map.size + 1, sizeof(char *));
	if (!x->env)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	size_t total = 0;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
		if (!env_name_ok(k) || v->type != MSGPACK_OBJECT_STR || memchr(v->via.str.ptr, 0, v->via.str.size))
			return ra_fail(why, RA_ERR_INVALID_CONFIG, "env entry %u: names are non-empty strings without '=' "
								   "or NUL, values strings without NUL", i);
		size_t n = k->via.str.size + v->via.str.size + 2;
		total += n;
		if (total > RA_EXEC_MAX_ENV_BYTES)
			return ra_fail(why, RA_ERR_INVALID_CONFIG, "env is larger than %d bytes", RA_EXEC_MAX_ENV_BYTES);
		char *entry = malloc(n);
		if (!entry)
			return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
		memcpy(entry, k->via.str.ptr, k->via.str.size);
		entry[k->via.str.size] = '=';
		memcpy(entry + k->via.str.size + 1, v->via.str.ptr, v->via.str.size);
		entry[n - 1] = '\0';
		x->env[i] = entry;
	}
	return RA_OK;
}

static ra_err parse_user(const ra_request *req, exec_args *x, ra_why *why)
{
	const msgpack_object *o = ra_map_get(req->map, "user");
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return RA_OK;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 < 0xfffffffeu) {
		x->user = malloc(16);
		if (!x->user)
			return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
		snprintf(x->user, 16, "%llu", (unsigned long long)o->via.u64);
		return RA_OK;
	}
	return ra_arg_cstr(req, "user", false, 255, &x->user, why);
}

static ra_err parse_pty(const ra_request *req, exec_args *x, ra_why *why)
{
	const msgpack_object *o = ra_map_get(req->map, "pty");
	if (!o || o->type == MSGPACK_OBJECT_NIL || (o->type == MSGPACK_OBJECT_BOOLEAN && !o->via.boolean))
		return RA_OK;
	x->o.pty = true;
	if (o->type == MSGPACK_OBJECT_BOOLEAN)
		return RA_OK;
	if (o->type != MSGPACK_OBJECT_MAP)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "pty must be true or {cols, rows}");
	const char *keys[2] = {"cols", "rows"};
	unsigned short *dst[2] = {&x->o.cols, &x->o.rows};
	for (int i = 0; i < 2; i++) {
		const msgpack_object *v = ra_map_get(&o->via.map, keys[i]);
		if (!v)
			continue;
		if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 == 0 || v->via.u64 > 65535)
			return ra_fail(why, RA_ERR_INVALID_CONFIG, "pty.%s must be from 1 to 65535", keys[i]);
		*dst[i] = (unsigned short)v->via.u64;
	}
	return RA_OK;
}

static ra_err parse_command(const ra_request *req, exec_args *x, ra_why *why)
{
	const msgpack_object *argv = ra_map_get(req->map, "argv");
	ra_err rc = ra_arg_cstr(req, "cmd", false, RA_EXEC_MAX_ONE_ARG, &x->cmd, why);
	if (rc)
		return rc;
	if (!x->cmd == !(argv && argv->type != MSGPACK_OBJECT_NIL))
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "give either cmd (a shell command) or argv (a program and its "
							   "arguments)");
	if (x->cmd) {
		x->o.shell_command = x->cmd;
		return RA_OK;
	}
	rc = parse_argv(argv, x, why);
	x->o.argv = x->argv;
	return rc;
}

static ra_err parse_exec(const ra_request *req, exec_args *x, ra_why *why)
{
	ra_err rc;
	uint64_t timeout = 0;
	x->stream = true;
	x->collect_cap = RA_EXEC_COLLECT_DEFAULT;
	if ((rc = parse_command(req, x, why)) || (rc = ra_arg_cstr(req, "cwd", false, 4095, &x->cwd, why)) ||
	    (rc = ra_arg_cstr(req, "procId", false, RA_PROC_ID_MAX, &x->id, why)) || (rc = parse_user(req, x, why)) ||
	    (rc = parse_pty(req, x, why)) || (rc = ra_arg_u64(req, "timeoutMs", false, RA_EXEC_MAX_TIMEOUT_MS, &timeout, why)) ||
	    (rc = ra_arg_bool(req, "background", &x->background, why)) ||
	    (rc = ra_arg_bool(req, "collect", &x->collect, why)) || (rc = ra_arg_bool(req, "stream", &x->stream, why)) ||
	    (rc = ra_arg_bool(req, "killOnDisconnect", &x->kill_on_disconnect, why)) ||
	    (rc = ra_arg_bool(req, "stdinStream", &x->o.stdin_stream, why)) ||
	    (rc = ra_arg_u64(req, "maxOutputBytes", false, RA_EXEC_COLLECT_MAX, &x->collect_cap, why)))
		return rc;
	const msgpack_object *env = ra_map_get(req->map, "env");
	if (env && env->type != MSGPACK_OBJECT_NIL && (rc = parse_env(env, x, why)))
		return rc;
	bool has_stdin;
	uint32_t stdin_len = 0;
	if ((rc = ra_arg_bytes(req, "stdin", &x->o.stdin_data, &stdin_len, &has_stdin, why)))
		return rc;
	if (x->cwd && x->cwd[0] != '/')
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "cwd must be an absolute path");
	x->o.stdin_len = stdin_len;
	x->o.id = x->id;
	x->o.cwd = x->cwd;
	x->o.user = x->user ? x->user : (agent->config->default_user[0] ? agent->config->default_user : NULL);
	x->o.env_set = x->env;
	x->o.timeout_ms = timeout;
	return RA_OK;
}

static ra_err spawn_step_error(const ra_spawn_failure *f, const exec_args *x, const char *what, ra_why *why)
{
	ra_err code = f->err == ENOENT ? RA_ERR_NOT_FOUND : ra_err_from_errno(f->err);
	const char *cwd = x->cwd ? x->cwd : agent->config->workdir;
	switch (f->step) {
	case SPAWN_STEP_CWD:
		if (f->err == ENOTDIR)
			return ra_fail(why, RA_ERR_INVALID_CONFIG, "cwd '%s' is not a directory", cwd);
		return ra_fail(why, code, "cwd '%s': %s", cwd, strerror(f->err));
	case SPAWN_STEP_FORK:
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "fork: %s", strerror(f->err));
	case SPAWN_STEP_SETUP:
		return ra_fail(why, ra_err_from_errno(f->err), "could not set up the process's pipes or terminal: %s",
			       strerror(f->err));
	case SPAWN_STEP_USER:
		return ra_fail(why, code, "could not switch to user '%s': %s", x->o.user, strerror(f->err));
	case SPAWN_STEP_CHDIR:
		return ra_fail(why, code, "could not chdir to '%s'%s%s: %s", cwd, x->o.user ? " as " : "",
			       x->o.user ? x->o.user : "", strerror(f->err));
	case SPAWN_STEP_EXEC:
		return ra_fail(why, code, "could not execute '%s': %s", what, strerror(f->err));
	default:
		return ra_fail(why, RA_ERR_INTERNAL, "could not set up the process (step %d): %s", (int)f->step,
			       strerror(f->err));
	}
}

static ra_err spawn_error(int rc, const ra_spawn_failure *f, const exec_args *x, ra_why *why)
{
	const char *what = x->cmd ? "/bin/sh" : x->argv[0];
	switch (rc) {
	case -EAGAIN:
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "too many processes (at most %u running)",
			       agent->config->max_processes);
	case -EINVAL:
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "procId must be 1 to %d of [A-Za-z0-9._:-]", RA_PROC_ID_MAX);
	case RA_SPAWN_ERR_USER:
		return ra_fail(why, RA_ERR_NOT_FOUND, "unknown user '%s'", x->o.user);
	case RA_SPAWN_ERR_STEP:
		return spawn_step_error(f, x, what, why);
	default:
		return ra_fail(why, ra_err_from_errno(-rc), "could not start the process: %s", strerror(-rc));
	}
}

static void reply_status(ra_enc *reply, uint64_t id, const ra_proc *p)
{
	ra_enc_reply_begin(reply, id, 1);
	ra_enc_str(reply, "status");
	enc_status(reply, p, 0);
}

static ra_err start_attachment(ra_session *s, ra_proc *p, attach_kind kind, uint64_t req_id, bool stream,
			       bool collect, uint64_t collect_cap, ra_why *why)
{
	attachment *a = attach_new(s, p, kind, req_id);
	if (!a)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	a->stream = stream;
	a->collect = collect;
	for (int st = 0; st < RA_STREAM_COUNT; st++)
		ra_buf_init(&a->collected[st], 0, collect ? collect_cap : 0);
	pump(a);
	return RA_REPLY_LATER;
}

/* A retried exec (same procId) answers with the process the first one started; the same id with another
 * command is a conflict, not a retry. */
static ra_err retried_exec(ra_session *s, const ra_request *req, ra_enc *reply, const exec_args *x, ra_proc *p,
			   ra_why *why)
{
	char *described = ra_proc_describe(&x->o);
	bool same = described && strcmp(described, ra_proc_command(p)) == 0;
	free(described);
	if (!same)
		return ra_fail(why, RA_ERR_ALREADY_EXISTS, "procId '%s' is in use by another command", ra_proc_id(p));
	if (x->background) {
		reply_status(reply, req->id, p);
		return RA_OK;
	}
	return start_attachment(s, p, ATTACH_EXEC, req->id, x->stream, x->collect, x->collect_cap, why);
}

ra_err ra_op_exec(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	exec_args x;
	memset(&x, 0, sizeof(x));
	ra_err rc = parse_exec(req, &x, why);
	ra_proc *p = NULL;
	ra_spawn_failure failure = {0, 0};
	/* allocated first: a process must never exist without the record its hooks rely on */
	proc_extra *extra = rc ? NULL : calloc(1, sizeof(*extra));
	if (!rc && !extra)
		rc = ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	int spawned = rc ? 0 : ra_proc_spawn(&x.o, &p, &failure);
	if (!rc && spawned == -EEXIST) {
		rc = retried_exec(s, req, reply, &x, p, why);
		spawned = 0;
	} else if (!rc && spawned) {
		rc = spawn_error(spawned, &failure, &x, why);
	}
	if (rc || !p || ra_proc_get_user(p)) {
		free(extra);
		exec_args_free(&x);
		return rc;
	}
	extra->owner_serial = s->serial;
	extra->kill_on_disconnect = x.kill_on_disconnect;
	extra->background = x.background;
	ra_proc_set_user(p, extra);
	ra_log(RA_LOG_DEBUG, "exec.started", "%s pid %d: %s", ra_proc_id(p), (int)ra_proc_pid(p), ra_proc_command(p));
	ra_ports_kick(); /* it may listen */
	ra_event_meta m = {.name = "exec.started", .proc = ra_proc_id(p)};
	ra_events_emit(&m, 4, fill_started, p);
	if (x.background) {
		reply_status(reply, req->id, p);
		rc = RA_OK;
	} else {
		rc = start_attachment(s, p, ATTACH_EXEC, req->id, x.stream, x.collect, x.collect_cap, why);
	}
	exec_args_free(&x);
	return rc;
}

ra_err ra_op_proc_list(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	(void)why;
	uint32_t n = 0;
	for (ra_proc *p = ra_proc_first(); p; p = ra_proc_next(p))
		n++;
	ra_enc_reply_begin(reply, req->id, 1);
	ra_enc_str(reply, "processes");
	ra_enc_array(reply, n);
	for (ra_proc *p = ra_proc_first(); p; p = ra_proc_next(p))
		enc_status(reply, p, 0);
	return RA_OK;
}

ra_err ra_op_proc_get(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	ra_proc *p;
	ra_err rc = find_proc(req, &p, why);
	if (!rc)
		reply_status(reply, req->id, p);
	return rc;
}

static ra_err parse_signal(const ra_request *req, int *sig, ra_why *why)
{
	const msgpack_object *o = ra_map_get(req->map, "signal");
	*sig = SIGTERM;
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return RA_OK;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		*sig = o->via.u64 >= 1 && o->via.u64 <= 64 ? (int)o->via.u64 : 0; /* real-time signals by number */
	else if (o->type == MSGPACK_OBJECT_STR)
		*sig = ra_signal_from_name(o->via.str.ptr, o->via.str.size);
	else
		*sig = 0;
	return *sig ? RA_OK : ra_fail(why, RA_ERR_INVALID_CONFIG, "unknown signal (use a name such as SIGTERM, or its number)");
}

ra_err ra_op_proc_kill(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	ra_proc *p;
	int sig;
	bool group = true;
	ra_err rc;
	if ((rc = find_proc(req, &p, why)) || (rc = parse_signal(req, &sig, why)) ||
	    (rc = ra_arg_bool(req, "group", &group, why)))
		return rc;
	int r = ra_proc_signal(p, sig, group, RA_END_KILLED);
	if (r == -ESRCH)
		return ra_fail(why, RA_ERR_NOT_FOUND, "process '%s' has no live process left to signal", ra_proc_id(p));
	if (r)
		return ra_fail(why, ra_err_from_errno(-r), "kill: %s", strerror(-r));
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "proc");
	ra_enc_str(reply, ra_proc_id(p));
	ra_enc_str(reply, "signal");
	if (ra_signal_name(sig))
		ra_enc_str(reply, ra_signal_name(sig));
	else
		ra_enc_i64(reply, sig);
	return RA_OK;
}

ra_err ra_op_proc_stdin(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	ra_proc *p;
	const uint8_t *data = NULL;
	uint32_t len = 0;
	bool present, eof = false;
	ra_err rc;
	if ((rc = find_proc(req, &p, why)) || (rc = ra_arg_bytes(req, "data", &data, &len, &present, why)) ||
	    (rc = ra_arg_bool(req, "eof", &eof, why)))
		return rc;
	if (len > RA_STDIN_QUEUE_BYTES)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "data is larger than the stdin queue (%u bytes): send it in parts",
			       RA_STDIN_QUEUE_BYTES);
	int r = ra_proc_stdin_open(p) ? 0 : -EPIPE;
	if (!r && len)
		r = ra_proc_write_stdin(p, data, len);
	if (!r && eof)
		r = ra_proc_close_stdin(p);
	if (r == -EPIPE)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "the stdin of '%s' is not open (start it with stdinStream: true)",
			       ra_proc_id(p));
	if (r == -ENOBUFS)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "the process is not reading its stdin: queue full");
	if (r)
		return ra_fail(why, ra_err_from_errno(-r), "stdin: %s", strerror(-r));
	ra_enc_reply_begin(reply, req->id, 1);
	ra_enc_str(reply, "written");
	ra_enc_u64(reply, len);
	return RA_OK;
}

ra_err ra_op_proc_close_stdin(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	ra_proc *p;
	ra_err rc = find_proc(req, &p, why);
	if (rc)
		return rc;
	if (ra_proc_close_stdin(p))
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "the stdin of '%s' is not open", ra_proc_id(p));
	ra_enc_reply_begin(reply, req->id, 1);
	ra_enc_str(reply, "closed");
	ra_enc_bool(reply, true);
	return RA_OK;
}

ra_err ra_op_proc_wait(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)reply;
	ra_proc *p;
	uint64_t timeout = 0;
	ra_err rc;
	if ((rc = find_proc(req, &p, why)) ||
	    (rc = ra_arg_u64(req, "timeoutMs", false, RA_EXEC_MAX_TIMEOUT_MS, &timeout, why)))
		return rc;
	attachment *a = attach_new(s, p, ATTACH_WAIT, req->id);
	if (!a)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	if (maybe_complete(a))
		return RA_REPLY_LATER; /* already answered */
	if (timeout) {
		ev_timer_set(&a->deadline, (double)timeout / 1000.0, 0);
		ev_timer_start(agent->loop, &a->deadline);
	}
	return RA_REPLY_LATER;
}

ra_err ra_op_proc_attach(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)reply;
	ra_proc *p;
	uint64_t from[RA_STREAM_COUNT] = {0, 0};
	bool stream = true;
	ra_err rc;
	if ((rc = find_proc(req, &p, why)) || (rc = ra_arg_u64(req, "stdoutOffset", false, UINT64_MAX, &from[0], why)) ||
	    (rc = ra_arg_u64(req, "stderrOffset", false, UINT64_MAX, &from[1], why)) ||
	    (rc = ra_arg_bool(req, "stream", &stream, why)))
		return rc;
	attachment *a = attach_new(s, p, ATTACH_ATTACH, req->id);
	if (!a)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	a->stream = stream;
	for (int st = 0; st < RA_STREAM_COUNT; st++) {
		uint64_t total = ra_proc_output(p, (ra_stream)st)->total;
		a->cursor[st] = from[st] > total ? total : from[st];
	}
	pump(a);
	return RA_REPLY_LATER;
}

ra_err ra_op_proc_detach(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	ra_proc *p;
	ra_err rc = find_proc(req, &p, why);
	if (rc)
		return rc;
	uint64_t n = 0;
	for (attachment *a = *session_list(s), *next; a; a = next) {
		next = a->next_in_session;
		if (a->p == p && a->kind != ATTACH_WAIT) {
			complete(a, true);
			n++;
		}
	}
	ra_enc_reply_begin(reply, req->id, 1);
	ra_enc_str(reply, "detached");
	ra_enc_u64(reply, n);
	return RA_OK;
}

ra_err ra_op_proc_resize(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	ra_proc *p;
	uint64_t cols = 0, rows = 0;
	ra_err rc;
	if ((rc = find_proc(req, &p, why)) || (rc = ra_arg_u64(req, "cols", true, 65535, &cols, why)) ||
	    (rc = ra_arg_u64(req, "rows", true, 65535, &rows, why)))
		return rc;
	if (!cols || !rows)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "cols and rows must be from 1 to 65535");
	int r = ra_proc_resize(p, (unsigned short)cols, (unsigned short)rows);
	if (r == -ENOTTY)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "process '%s' has no terminal (start it with pty)", ra_proc_id(p));
	if (r == -EPIPE)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "the terminal of '%s' is closed", ra_proc_id(p));
	if (r)
		return ra_fail(why, ra_err_from_errno(-r), "resize: %s", strerror(-r));
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "cols");
	ra_enc_u64(reply, cols);
	ra_enc_str(reply, "rows");
	ra_enc_u64(reply, rows);
	return RA_OK;
}
