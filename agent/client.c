/* The debug client's connection layer: libwebsockets' client side on a libev loop, an outbound queue (one
 * lws_write per writable callback), reassembly of inbound messages, and the shared output helpers. The
 * commands themselves are in client_cmds.c. */
#include "client.h"

#include <getopt.h>
#include <libwebsockets.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../proto/ra_limits.h"
#include "client_internal.h"
#include "config.h"

#define DEFAULT_URL "ws://127.0.0.1:49200"

typedef struct out_msg {
	struct out_msg *next;
	ra_enc enc;
} out_msg;

static struct {
	const client_command *cmd;
	bool json;
	char url[512];
	const char *token;
	char address[300];
	int port;
	char path[200];
	struct lws_context *context;
	struct lws *wsi;
	struct ev_loop *loop;
	ev_timer timeout;
	ev_signal sigint, sigterm; /* commands that run until interrupted */
	char close_reason[300];    /* what the agent said when it closed the connection, if anything */
	out_msg *out_head, *out_tail;
	ra_buf inbox;
	uint64_t max_message_bytes; /* the agent's limit, from its ready message (0: not said) */
	bool ready;
	int exit_code;
	bool finished;
} st;

bool client_json(void) { return st.json; }
const char *client_url(void) { return st.url; }
struct ev_loop *client_loop(void) { return st.loop; }
uint64_t client_max_message_bytes(void) { return st.max_message_bytes; }

void client_set_timeout_ms(double ms)
{
	ev_timer_stop(st.loop, &st.timeout);
	ev_timer_set(&st.timeout, ms / 1000.0, 0);
	ev_timer_start(st.loop, &st.timeout);
}

bool ra_client_is_command(const char *cmd)
{
	for (const client_command *c = client_commands; c->name; c++)
		if (strcmp(c->name, cmd) == 0)
			return true;
	return false;
}

double client_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void client_finish(int code)
{
	if (st.finished)
		return;
	st.finished = true;
	st.exit_code = code;
	ev_break(st.loop, EVBREAK_ALL);
}

static void print_json_string(FILE *out, const char *s, size_t n);

void client_warn(const char *code, const char *message)
{
	if (st.json) {
		fputs("{\"error\":{\"code\":", stderr);
		print_json_string(stderr, code, strlen(code));
		fputs(",\"message\":", stderr);
		print_json_string(stderr, message, strlen(message));
		fputs("}}\n", stderr);
	} else {
		fprintf(stderr, "runra-agent %s: %s: %s\n", st.cmd->name, code, message);
	}
}

void client_fail(const char *code, const char *message)
{
	if (st.finished)
		return;
	client_warn(code, message);
	client_finish(1);
}

/* An error map's code and message (message, then suffix); defaults when they are missing. */
static void error_text(const msgpack_object *err, const char *suffix, char code[64], char message[700])
{
	const msgpack_object *c = err->type == MSGPACK_OBJECT_MAP ? ra_map_get(&err->via.map, "code") : NULL;
	const msgpack_object *m = err->type == MSGPACK_OBJECT_MAP ? ra_map_get(&err->via.map, "message") : NULL;
	snprintf(code, 64, "INTERNAL");
	if (c && c->type == MSGPACK_OBJECT_STR)
		snprintf(code, 64, "%.*s", (int)(c->via.str.size > 63 ? 63 : c->via.str.size), c->via.str.ptr);
	if (m && m->type == MSGPACK_OBJECT_STR)
		snprintf(message, 700, "%.*s%s", (int)(m->via.str.size > 600 ? 600 : m->via.str.size), m->via.str.ptr,
			 suffix);
	else
		snprintf(message, 700, "no message%s", suffix);
}

void client_report_error(const msgpack_object *err)
{
	char code[64], message[700];
	error_text(err, "", code, message);
	client_fail(code, message);
}

void client_warn_error(const msgpack_object *err, const char *suffix)
{
	char code[64], message[700];
	error_text(err, suffix, code, message);
	client_warn(code, message);
}

bool client_str_is(const msgpack_object *o, const char *s)
{
	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* ---- msgpack → JSON ---- */

static void print_json_ascii(FILE *out, unsigned char c)
{
	static const char short_escapes[] = {['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r'};
	if (c == '"' || c == '\\')
		fprintf(out, "\\%c", c);
	else if (c < sizeof(short_escapes) && short_escapes[c])
		fprintf(out, "\\%c", short_escapes[c]);
	else if (c < 0x20 || c == 0x7f)
		fprintf(out, "\\u%04x", c);
	else
		fputc(c, out);
}

/* Names are bytes on the agent's side (protocol §10) and may not be UTF-8: each byte that is not part of a
 * well-formed character becomes U+FFFD, so the output stays valid JSON. */
static void print_json_string(FILE *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	fputc('"', out);
	for (size_t i = 0; i < n;) {
		size_t len = ra_utf8_char_length(p + i, n - i);
		if (len == 0)
			fputs("\\ufffd", out);
		else if (len == 1)
			print_json_ascii(out, p[i]);
		else
			fwrite(p + i, 1, len, out);
		i += len ? len : 1;
	}
	fputc('"', out);
}

static void print_base64(FILE *out, const unsigned char *p, size_t n)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	fputc('"', out);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0u);
		char quad[4] = {digits[v >> 18 & 63], digits[v >> 12 & 63], i + 1 < n ? digits[v >> 6 & 63] : '=',
				i + 2 < n ? digits[v & 63] : '='};
		fwrite(quad, 1, sizeof(quad), out);
	}
	fputc('"', out);
}

/* JSON keys are strings; msgpack's may be anything, and then the key is the JSON text of its value. */
static void print_json_key(FILE *out, const msgpack_object *key)
{
	if (key->type == MSGPACK_OBJECT_STR) {
		print_json_string(out, key->via.str.ptr, key->via.str.size);
		return;
	}
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (mem) {
		client_print_json(mem, key);
		fclose(mem);
	}
	print_json_string(out, text ? text : "", text ? len : 0);
	free(text);
}

static void print_json_container(FILE *out, const msgpack_object *o)
{
	bool map = o->type == MSGPACK_OBJECT_MAP;
	uint32_t n = map ? o->via.map.size : o->via.array.size;
	fputc(map ? '{' : '[', out);
	for (uint32_t i = 0; i < n; i++) {
		if (i)
			fputc(',', out);
		if (map) {
			print_json_key(out, &o->via.map.ptr[i].key);
			fputc(':', out);
			client_print_json(out, &o->via.map.ptr[i].val);
		} else {
			client_print_json(out, &o->via.array.ptr[i]);
		}
	}
	fputc(map ? '}' : ']', out);
}

static void print_json_ext(FILE *out, const msgpack_object_ext *ext)
{
	fprintf(out, "{\"extType\":%d,\"data\":", ext->type);
	print_base64(out, (const unsigned char *)ext->ptr, ext->size);
	fputc('}', out);
}

void client_print_json(FILE *out, const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: fputs("null", out); break;
	case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", out); break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(out, "%llu", (unsigned long long)o->via.u64); break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(out, "%lld", (long long)o->via.i64); break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (isfinite(o->via.f64))
			fprintf(out, "%.17g", o->via.f64);
		else
			fputs("null", out); /* JSON has no NaN or infinity */
		break;
	case MSGPACK_OBJECT_STR: print_json_string(out, o->via.str.ptr, o->via.str.size); break;
	case MSGPACK_OBJECT_BIN: print_base64(out, (const unsigned char *)o->via.bin.ptr, o->via.bin.size); break;
	case MSGPACK_OBJECT_EXT: print_json_ext(out, &o->via.ext); break;
	case MSGPACK_OBJECT_ARRAY:
	case MSGPACK_OBJECT_MAP: print_json_container(out, o); break;
	}
}

/* ---- outbound queue ---- */

ra_enc *client_request(uint64_t id, const char *op, uint32_t args)
{
	out_msg *m = calloc(1, sizeof(*m));
	if (!m) {
		client_fail("RESOURCE_EXHAUSTED", "out of memory");
		return NULL;
	}
	ra_enc_init(&m->enc, LWS_PRE, RA_SESSION_OUT_QUEUE_CAP);
	ra_enc_map(&m->enc, 2 + args);
	ra_enc_str(&m->enc, "id");
	ra_enc_u64(&m->enc, id);
	ra_enc_str(&m->enc, "op");
	ra_enc_str(&m->enc, op);
	return &m->enc;
}

void client_send(ra_enc *e)
{
	if (!e)
		return;
	out_msg *m = (out_msg *)((char *)e - offsetof(out_msg, enc));
	if (st.out_tail)
		st.out_tail->next = m;
	else
		st.out_head = m;
	st.out_tail = m;
	if (st.wsi)
		lws_callback_on_writable(st.wsi);
}

static int write_next(struct lws *wsi)
{
	out_msg *m = st.out_head;
	if (!m)
		return 0;
	st.out_head = m->next;
	if (!st.out_head)
		st.out_tail = NULL;
	int n = lws_write(wsi, ra_buf_payload(&m->enc.buf), m->enc.buf.len, LWS_WRITE_BINARY);
	ra_enc_free(&m->enc);
	free(m);
	if (st.out_head)
		lws_callback_on_writable(wsi);
	return n < 0 ? -1 : 0;
}

/* ---- inbound ---- */

static void remember_limits(const msgpack_object_map *ready)
{
	const msgpack_object *limits = ra_map_get(ready, "limits");
	const msgpack_object *max = limits && limits->type == MSGPACK_OBJECT_MAP
					    ? ra_map_get(&limits->via.map, "maxMessageBytes")
					    : NULL;
	if (max && max->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		st.max_message_bytes = max->via.u64;
}

static void handle_message(const uint8_t *buf, size_t len)
{
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	size_t off = 0;
	if (ra_scan(buf, len) != RA_SCAN_OK ||
	    msgpack_unpack_next(&up, (const char *)buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    up.data.type != MSGPACK_OBJECT_MAP) {
		client_fail("INVALID_MESSAGE", "the agent sent a message that is not a msgpack map");
	} else if (!st.ready && client_str_is(ra_map_get(&up.data.via.map, "type"), "ready")) {
		st.ready = true;
		remember_limits(&up.data.via.map);
		if (st.cmd->no_timeout)
			ev_timer_stop(st.loop, &st.timeout);
		st.cmd->start();
	} else if (st.ready && !st.finished) { /* messages already read in this turn of the loop are not output */
		st.cmd->on_message(&up.data.via.map);
	}
	msgpack_unpacked_destroy(&up);
}

static int on_receive(struct lws *wsi, const void *in, size_t len)
{
	if (ra_buf_append(&st.inbox, in, len)) {
		client_fail("MESSAGE_TOO_LARGE", "the agent's message is too large for this client");
		return -1;
	}
	if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
		handle_message(ra_buf_payload(&st.inbox), st.inbox.len);
		ra_buf_reset(&st.inbox);
	}
	return 0;
}

static void on_connection_error(struct lws *wsi, const char *why)
{
	int status = wsi ? (int)lws_http_client_http_response(wsi) : 0;
	char msg[300];
	snprintf(msg, sizeof(msg), "cannot connect to %s: %s", st.url, why ? why : "connection failed");
	if (status == 401 || (why && strstr(why, "401")))
		client_fail("UNAUTHENTICATED", "the agent refused the token (HTTP 401)");
	else
		client_fail("UNAVAILABLE", msg);
}

/* The agent says why it closes (1001 shutting down, 1008 a full queue...): more useful than "closed". */
static void remember_close_reason(const unsigned char *payload, size_t len)
{
	if (len < 2)
		return;
	int reason_len = len - 2 > 200 ? 200 : (int)(len - 2);
	snprintf(st.close_reason, sizeof(st.close_reason), "the agent closed the connection (%u %.*s)",
		 (unsigned)payload[0] << 8 | payload[1], reason_len, (const char *)payload + 2);
}

static int on_http_body(const char *in, size_t len)
{
	if (ra_buf_append(&st.inbox, in, len))
		client_fail("MESSAGE_TOO_LARGE", "health response too large");
	return 0;
}

static int client_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		if (!st.token || !st.token[0])
			return 0;
		char value[RA_MAX_TOKEN + 16];
		int n = snprintf(value, sizeof(value), "Bearer %s", st.token);
		unsigned char **p = (unsigned char **)in, *end = (*p) + len;
		return lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)value, n, p, end);
	}
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		st.wsi = wsi;
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		st.wsi = NULL;
		on_connection_error(wsi, in);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return on_receive(wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return write_next(wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		remember_close_reason(in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		st.wsi = NULL;
		client_fail("UNAVAILABLE", st.close_reason[0] ? st.close_reason : "the agent closed the connection");
		return 0;
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
		char buf[LWS_PRE + 2048], *px = buf + LWS_PRE;
		int lenx = (int)sizeof(buf) - LWS_PRE;
		return lws_http_client_read(wsi, &px, &lenx) < 0 ? -1 : 0;
	}
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
		return on_http_body(in, len);
	case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
		client_health_result((int)lws_http_client_http_response(wsi),
				     st.inbox.len ? (const char *)ra_buf_payload(&st.inbox) : "", st.inbox.len);
		return 0;
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		client_fail("UNAVAILABLE", "the agent closed the connection");
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols client_protocols[] = {
	{"runra-client", client_callback, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ws://host:port/path, http://..., or unix:/path. */
static int parse_url(void)
{
	if (strncmp(st.url, "unix:", 5) == 0) {
		snprintf(st.address, sizeof(st.address), "+%s", st.url + 5);
		st.port = 0;
		snprintf(st.path, sizeof(st.path), "/");
		return 0;
	}
	char copy[512];
	snprintf(copy, sizeof(copy), "%s", st.url);
	const char *prot, *ads, *path;
	if (lws_parse_uri(copy, &prot, &ads, &st.port, &path))
		return -1;
	if (strcmp(prot, "ws") && strcmp(prot, "http"))
		return -1;
	snprintf(st.address, sizeof(st.address), "%s", ads);
	snprintf(st.path, sizeof(st.path), "/%s", path);
	return 0;
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	client_fail("TIMEOUT", "no answer from the agent in time");
}

static void on_interrupt(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	client_finish(0); /* the way to stop a command that runs until interrupted: not a failure */
}

/* From the start, not only once the agent is ready: an interrupt while connecting ends it the same way. */
static void start_interrupt_watchers(void)
{
	ev_signal_init(&st.sigint, on_interrupt, SIGINT);
	ev_signal_start(st.loop, &st.sigint);
	ev_signal_init(&st.sigterm, on_interrupt, SIGTERM);
	ev_signal_start(st.loop, &st.sigterm);
}

static int connect_agent(void)
{
	struct lws_client_connect_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.context = st.context;
	ci.address = st.address;
	ci.port = st.port;
	ci.host = st.address[0] == '+' ? "localhost" : st.address;
	ci.origin = ci.host;
	ci.local_protocol_name = "runra-client"; /* binds our callback, or lws swallows HTTP bodies */
	if (st.cmd->http_health) {
		ci.path = "/healthz";
		ci.method = "GET";
	} else {
		ci.path = st.path;
		ci.protocol = RA_PROTO_SUBPROTOCOL;
	}
	return lws_client_connect_via_info(&ci) ? 0 : -1;
}

static int usage(FILE *out, int code)
{
	fprintf(out,
		"usage: runra-agent %s\n"
		"common options:\n"
		"  --url URL    agent address: ws://HOST:PORT or unix:/path [RUNRA_AGENT_URL], default %s\n"
		"  --token T    bearer token [RUNRA_AGENT_TOKEN]\n"
		"  --json       machine-readable output\n",
		st.cmd->usage, DEFAULT_URL);
	return code;
}

/* Pulls the common options out of argv, leaving the command's own; returns the count left (or -1/-2). */
static int take_common_options(int argc, char **argv)
{
	const char *url = getenv("RUNRA_AGENT_URL");
	st.token = getenv("RUNRA_AGENT_TOKEN");
	int kept = 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				argv[kept++] = argv[i++];
			break;
		}
		bool has_value = i + 1 < argc;
		if (strcmp(argv[i], "--url") == 0 && has_value)
			url = argv[++i];
		else if (strcmp(argv[i], "--token") == 0 && has_value)
			st.token = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			st.json = true;
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return -2;
		else
			argv[kept++] = argv[i];
	}
	argv[kept] = NULL;
	snprintf(st.url, sizeof(st.url), "%s", url && *url ? url : DEFAULT_URL);
	return kept;
}

static int run_loop(void)
{
	lws_set_log_level(getenv("RA_LWS_DEBUG") ? 0xff : 0, NULL);
	st.loop = ev_default_loop(EVFLAG_NOENV);
	void *loops[1] = {st.loop};
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = client_protocols;
	info.options = LWS_SERVER_OPTION_LIBEV;
	info.foreign_loops = loops;
	info.fd_limit_per_thread = 64;
	st.context = lws_create_context(&info);
	if (!st.context) {
		fprintf(stderr, "runra-agent: INTERNAL: cannot create the client context\n");
		return 1;
	}
	ra_buf_init(&st.inbox, 0, RA_SESSION_OUT_QUEUE_CAP);
	st.exit_code = 1;
	ev_timer_init(&st.timeout, on_timeout, RA_CLIENT_TIMEOUT_MS / 1000.0, 0);
	ev_timer_start(st.loop, &st.timeout);
	if (st.cmd->until_signal)
		start_interrupt_watchers();
	if (connect_agent())
		client_fail("UNAVAILABLE", "cannot start the connection");
	else
		ev_run(st.loop, 0);
	ev_timer_stop(st.loop, &st.timeout);
	ev_signal_stop(st.loop, &st.sigint); /* no-ops when they were not started */
	ev_signal_stop(st.loop, &st.sigterm);
	lws_context_destroy(st.context);
	ra_buf_free(&st.inbox);
	while (st.out_head) {
		out_msg *m = st.out_head;
		st.out_head = m->next;
		ra_enc_free(&m->enc);
		free(m);
	}
	return st.exit_code;
}

int ra_client_main(int argc, char **argv)
{
	for (const client_command *c = client_commands; c->name; c++)
		if (strcmp(c->name, argv[0]) == 0)
			st.cmd = c;
	int left = take_common_options(argc, argv);
	if (left == -2)
		return usage(stdout, 0);
	int rc = st.cmd->parse(left, argv);
	if (rc)
		return rc == 1 ? usage(stdout, 0) : usage(stderr, 2);
	if (parse_url()) {
		fprintf(stderr, "runra-agent: INVALID_CONFIG: cannot parse --url '%s'\n", st.url);
		return 2;
	}
	return run_loop();
}
