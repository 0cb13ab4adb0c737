#include "dispatch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../proto/ra_limits.h"
#include "../procmgr/procmgr.h"
#include "events.h"
#include "exec.h"
#include "files.h"
#include "log.h"
#include "lifecycle.h"
#include "metrics.h"
#include "pid1.h"
#include "ports.h"
#include "tunnel.h"
#include "watches.h"

/* Writes the reply and returns RA_OK, returns an error code with its reason in why, or returns
 * RA_REPLY_LATER when the reply will come from elsewhere (a long-running request). */
typedef ra_err (*op_handler)(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);

typedef struct {
	const char *name;
	op_handler handler; /* NULL: reserved for a later version, answered UNSUPPORTED */
} op_entry;

static ra_agent *agent;

static ra_err op_ping(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
static ra_err op_info(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);

static const op_entry op_table[] = {
	{"ping", op_ping},
	{"info", op_info},
	/* processes */
	{"exec", ra_op_exec}, {"proc.list", ra_op_proc_list}, {"proc.get", ra_op_proc_get},
	{"proc.wait", ra_op_proc_wait}, {"proc.kill", ra_op_proc_kill}, {"proc.signal", ra_op_proc_kill},
	{"proc.stdin", ra_op_proc_stdin},
	{"proc.closeStdin", ra_op_proc_close_stdin}, {"proc.attach", ra_op_proc_attach},
	{"proc.detach", ra_op_proc_detach}, {"proc.resize", ra_op_proc_resize},
	/* files */
	{"file.read", ra_op_file_read}, {"file.write", ra_op_file_write}, {"file.upload.open", ra_op_file_upload_open},
	{"file.upload.chunk", ra_op_file_upload_chunk}, {"file.upload.commit", ra_op_file_upload_commit},
	{"file.upload.abort", ra_op_file_upload_abort},
	{"file.list", ra_op_file_list}, {"file.stat", ra_op_file_stat}, {"file.exists", ra_op_file_exists},
	{"file.mkdir", ra_op_file_mkdir}, {"file.delete", ra_op_file_delete}, {"file.move", ra_op_file_move},
	{"file.chmod", ra_op_file_chmod},
	/* events */
	{"watch.add", ra_op_watch_add}, {"watch.remove", ra_op_watch_remove}, {"watch.list", ra_op_watch_list},
	{"subscribe", ra_op_subscribe}, {"unsubscribe", ra_op_unsubscribe},
	/* ports */
	{"port.expose", ra_op_port_expose}, {"port.list", ra_op_port_list}, {"port.close", ra_op_port_close},
	{"port.connect", ra_op_port_connect}, {"port.send", ra_op_port_send}, {"port.disconnect", ra_op_port_disconnect},
	/* lifecycle and metrics */
	{"shutdown", ra_op_shutdown}, {"pause.prepare", ra_op_pause_prepare}, {"resume", ra_op_resume},
	{"sandbox.reset", ra_op_sandbox_reset}, {"lifecycle.configure", ra_op_lifecycle_configure},
	{"timeout.extend", ra_op_timeout_extend}, {"metrics", ra_op_metrics},
};
#define OP_COUNT (sizeof(op_table) / sizeof(op_table[0]))

void ra_dispatch_init(ra_agent *a)
{
	agent = a;
	ra_files_init(a);
}

void ra_dispatch_session_drained(ra_session *s)
{
	if (s->attachments)
		ra_exec_session_drained(s);
	ra_files_session_drained(s);
	ra_events_session_drained(s);
	ra_tunnel_session_drained(s);
}

void ra_dispatch_session_closed(ra_session *s)
{
	ra_lifecycle_touch();
	ra_exec_session_closed(s);
	ra_files_session_closed(s);
	ra_events_session_closed(s);
	ra_ports_session_closed(s);
	ra_tunnel_session_closed(s);
	ra_lifecycle_session_closed(s);
}

static const op_entry *op_find(const ra_request *req)
{
	for (size_t i = 0; i < OP_COUNT; i++)
		if (ra_request_op_is(req, op_table[i].name))
			return &op_table[i];
	return NULL;
}

static uint32_t implemented_op_count(void)
{
	uint32_t n = 0;
	for (size_t i = 0; i < OP_COUNT; i++)
		n += op_table[i].handler != NULL;
	return n;
}

static void enc_implemented_ops(ra_enc *e)
{
	ra_enc_array(e, implemented_op_count());
	for (size_t i = 0; i < OP_COUNT; i++)
		if (op_table[i].handler)
			ra_enc_str(e, op_table[i].name);
}

static void enc_sandbox(ra_enc *e)
{
	const ra_config *c = agent->config;
	ra_enc_map(e, c->sandbox_count);
	for (unsigned i = 0; i < c->sandbox_count; i++) {
		ra_enc_str(e, c->sandbox[i].key);
		ra_enc_str(e, c->sandbox[i].value);
	}
}

static void enc_limits(ra_enc *e)
{
	ra_enc_map(e, 7);
	ra_enc_str(e, "maxRequestsPerSecond");
	if (agent->config->max_requests_per_second)
		ra_enc_u64(e, agent->config->max_requests_per_second);
	else
		ra_enc_nil(e);
	ra_enc_str(e, "defaultUser");
	if (agent->config->default_user[0])
		ra_enc_str(e, agent->config->default_user);
	else
		ra_enc_nil(e);
	ra_enc_str(e, "maxProcesses");
	ra_enc_u64(e, agent->config->max_processes);
	ra_enc_str(e, "outputBufferBytes");
	ra_enc_u64(e, agent->config->output_buffer_bytes);
	ra_enc_str(e, "maxMessageBytes");
	ra_enc_u64(e, agent->config->max_message_bytes);
	ra_enc_str(e, "maxConnections");
	ra_enc_u64(e, agent->config->max_connections);
	ra_enc_str(e, "keepaliveSeconds");
	ra_enc_u64(e, agent->config->keepalive_s);
}

void ra_dispatch_send_ready(ra_session *s)
{
	ra_lifecycle_touch();
	ra_enc e;
	ra_session_enc_init(s, &e);
	ra_enc_map(&e, 10);
	ra_enc_str(&e, "type");
	ra_enc_str(&e, "ready");
	ra_enc_str(&e, "agent");
	ra_enc_str(&e, RA_AGENT_NAME);
	ra_enc_str(&e, "version");
	ra_enc_str(&e, RA_VERSION);
	ra_enc_str(&e, "protocol");
	ra_enc_u64(&e, RA_PROTO_VERSION);
	ra_enc_str(&e, "session");
	ra_enc_u64(&e, s->serial);
	ra_enc_str(&e, "capabilities");
	enc_implemented_ops(&e);
	ra_enc_str(&e, "startedAt");
	ra_enc_i64(&e, agent->started_unix_ms);
	ra_enc_str(&e, "bootTime");
	ra_enc_i64(&e, agent->kernel_boot_unix_ms);
	ra_enc_str(&e, "sandbox");
	enc_sandbox(&e);
	ra_enc_str(&e, "limits");
	enc_limits(&e);
	ra_session_send(s, &e);
}

static ra_err op_ping(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	(void)why;
	const msgpack_object *data = ra_map_get(req->map, "data");
	ra_enc_reply_begin(reply, req->id, data ? 3 : 2);
	ra_enc_str(reply, "pong");
	ra_enc_bool(reply, true);
	ra_enc_str(reply, "time");
	ra_enc_i64(reply, ra_unix_ms());
	if (data) {
		ra_enc_str(reply, "data");
		ra_enc_object(reply, data);
	}
	return RA_OK;
}

static ra_err op_info(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)why;
	char listen[160];
	ra_config_describe_listen(agent->config, listen, sizeof(listen));
	ra_enc_reply_begin(reply, req->id, 16);
	ra_enc_str(reply, "agent");
	ra_enc_str(reply, RA_AGENT_NAME);
	ra_enc_str(reply, "version");
	ra_enc_str(reply, RA_VERSION);
	ra_enc_str(reply, "protocol");
	ra_enc_u64(reply, RA_PROTO_VERSION);
	ra_enc_str(reply, "pid");
	ra_enc_i64(reply, getpid());
	ra_enc_str(reply, "pid1");
	ra_enc_bool(reply, ra_pid1_is_init());
	ra_enc_str(reply, "startedAt");
	ra_enc_i64(reply, agent->started_unix_ms);
	ra_enc_str(reply, "bootTime");
	ra_enc_i64(reply, agent->kernel_boot_unix_ms);
	ra_enc_str(reply, "uptimeMs");
	ra_enc_u64(reply, ra_agent_uptime_ms(agent));
	ra_enc_str(reply, "workdir");
	ra_enc_str(reply, agent->config->workdir);
	ra_enc_str(reply, "listen");
	ra_enc_str(reply, listen);
	ra_enc_str(reply, "eventBackend");
	ra_enc_str(reply, ra_agent_backend_name(agent->loop));
	ra_enc_str(reply, "session");
	ra_enc_u64(reply, s->serial);
	ra_enc_str(reply, "connections");
	ra_enc_u64(reply, ra_session_count());
	ra_enc_str(reply, "orphansReaped");
	ra_enc_u64(reply, ra_procmgr_orphans_reaped());
	ra_enc_str(reply, "sandbox");
	enc_sandbox(reply);
	ra_enc_str(reply, "limits");
	enc_limits(reply);
	return RA_OK;
}

/* A token bucket per connection: rate tokens a second, up to twice that saved up for a burst. */
static bool over_rate(ra_session *s)
{
	double rate = agent->config->max_requests_per_second, now = ev_now(agent->loop);
	if (rate <= 0)
		return false;
	if (s->rate_at == 0)
		s->rate_tokens = 2 * rate;
	else
		s->rate_tokens += (now - s->rate_at) * rate;
	if (s->rate_tokens > 2 * rate)
		s->rate_tokens = 2 * rate;
	s->rate_at = now;
	if (s->rate_tokens < 1)
		return true;
	s->rate_tokens -= 1;
	return false;
}

static void run_op(ra_session *s, const ra_request *req)
{
	const op_entry *op = op_find(req);
	if (!op) {
		ra_session_send_error(s, true, req->id, RA_ERR_UNKNOWN_OP, "unknown op");
		return;
	}
	if (!op->handler) {
		ra_session_send_error(s, true, req->id, RA_ERR_UNSUPPORTED, "op is reserved but not implemented by this agent");
		return;
	}
	if (agent->shutting_down) {
		ra_session_send_error(s, true, req->id, RA_ERR_UNAVAILABLE, "the agent is shutting down");
		return;
	}
	ra_enc reply;
	ra_why why = {""};
	ra_session_enc_init(s, &reply);
	ra_err code = op->handler(s, req, &reply, &why);
	if (code != RA_OK) {
		ra_enc_free(&reply);
		if (code != RA_REPLY_LATER)
			ra_session_send_error(s, true, req->id, code, why.text);
		return;
	}
	if (ra_session_send(s, &reply) == -EMSGSIZE)
		ra_session_send_error(s, true, req->id, RA_ERR_MESSAGE_TOO_LARGE, "the reply is too large to send");
}

void ra_dispatch_message(ra_session *s, const uint8_t *msg, size_t len)
{
	ra_lifecycle_message();
	ra_request req;
	const char *why;
	ra_err code = ra_request_decode(&req, msg, len, &why);
	if (over_rate(s)) { /* every message counts, a malformed one too */
		char text[96];
		snprintf(text, sizeof(text), "more than %u requests per second on this connection: retry later",
			 agent->config->max_requests_per_second);
		ra_session_send_error(s, code == RA_OK || req.has_id, req.id, RA_ERR_RATE_LIMITED, text);
	} else if (code != RA_OK) {
		ra_log(RA_LOG_DEBUG, "dispatch.invalid", "session %llu: %s", (unsigned long long)s->serial, why);
		ra_session_send_error(s, req.has_id, req.id, code, why);
	} else {
		run_op(s, &req);
	}
	ra_request_free(&req);
}
