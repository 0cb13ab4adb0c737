#include "client.h"

#include <ev.h>
#include <getopt.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../proto/proto.h"
#include "../proto/ra_limits.h"
#include "agent.h"
#include "config.h"

#define DEFAULT_URL "ws://127.0.0.1:49200"
#define CLIENT_MAX_MESSAGE RA_SESSION_OUT_QUEUE_CAP /* the largest message the agent may send */
#define REQUEST_ID 1

typedef enum { CMD_HEALTH, CMD_PING, CMD_INFO } client_cmd;

typedef struct {
	client_cmd cmd;
	bool json;
	char url[512];
	const char *token;
	/* connection */
	char address[300];
	int port;
	char path[200];
	struct lws_context *context;
	ev_timer timeout;
	double sent_at;
	bool request_pending; /* ready received, request not yet written */
	ra_buf inbox;
	int exit_code;
	bool finished;
} client_state;

static client_state st;

bool ra_client_is_command(const char *cmd)
{
	return strcmp(cmd, "health") == 0 || strcmp(cmd, "ping") == 0 || strcmp(cmd, "info") == 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void finish(int code)
{
	if (st.finished)
		return;
	st.finished = true;
	st.exit_code = code;
	ev_break(EV_DEFAULT, EVBREAK_ALL);
}

static void fail(const char *code, const char *message)
{
	if (st.finished)
		return;
	if (st.json) {
		char esc[1024];
		ra_json_escape(esc, 0, sizeof(esc), message, strlen(message));
		fprintf(stderr, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code, esc);
	} else
		fprintf(stderr, "runra-agent %s: %s: %s\n", st.cmd == CMD_HEALTH ? "health" : st.cmd == CMD_PING ? "ping" : "info",
			code, message);
	finish(1);
}

/* ---- msgpack → JSON, for --json and for human output of nested values ---- */

static void print_json_string(FILE *out, const char *s, size_t n)
{
	char buf[4096];
	fputc('"', out);
	while (n) {
		size_t part = n > 1000 ? 1000 : n;
		ra_json_escape(buf, 0, sizeof(buf), s, part);
		fputs(buf, out);
		s += part;
		n -= part;
	}
	fputc('"', out);
}

static void print_json(FILE *out, const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: fputs("null", out); break;
	case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", out); break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(out, "%llu", (unsigned long long)o->via.u64); break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(out, "%lld", (long long)o->via.i64); break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: fprintf(out, "%.17g", o->via.f64); break;
	case MSGPACK_OBJECT_STR: print_json_string(out, o->via.str.ptr, o->via.str.size); break;
	case MSGPACK_OBJECT_BIN: fprintf(out, "\"<%u bytes>\"", o->via.bin.size); break;
	case MSGPACK_OBJECT_EXT: fprintf(out, "\"<ext %d, %u bytes>\"", o->via.ext.type, o->via.ext.size); break;
	case MSGPACK_OBJECT_ARRAY:
		fputc('[', out);
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if (i)
				fputc(',', out);
			print_json(out, &o->via.array.ptr[i]);
		}
		fputc(']', out);
		break;
	case MSGPACK_OBJECT_MAP:
		fputc('{', out);
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			if (i)
				fputc(',', out);
			print_json(out, &o->via.map.ptr[i].key);
			fputc(':', out);
			print_json(out, &o->via.map.ptr[i].val);
		}
		fputc('}', out);
		break;
	}
}

/* ---- replies ---- */

static void print_result(const msgpack_object *result, double rtt_ms)
{
	if (st.json) {
		printf("{\"rttMs\":%.3f,\"result\":", rtt_ms);
		print_json(stdout, result);
		printf("}\n");
		return;
	}
	if (st.cmd == CMD_PING) {
		printf("pong from %s in %.3f ms\n", st.url, rtt_ms);
		return;
	}
	for (uint32_t i = 0; result->type == MSGPACK_OBJECT_MAP && i < result->via.map.size; i++) {
		const msgpack_object_kv *kv = &result->via.map.ptr[i];
		printf("%.*s: ", (int)kv->key.via.str.size, kv->key.via.str.ptr);
		if (kv->val.type == MSGPACK_OBJECT_STR)
			printf("%.*s", (int)kv->val.via.str.size, kv->val.via.str.ptr);
		else
			print_json(stdout, &kv->val);
		putchar('\n');
	}
}

static void report_error(const msgpack_object *err)
{
	const msgpack_object *code = err->type == MSGPACK_OBJECT_MAP ? ra_map_get(&err->via.map, "code") : NULL;
	const msgpack_object *msg = err->type == MSGPACK_OBJECT_MAP ? ra_map_get(&err->via.map, "message") : NULL;
	char c[64] = "INTERNAL", m[600] = "no message";
	if (code && code->type == MSGPACK_OBJECT_STR)
		snprintf(c, sizeof(c), "%.*s", (int)code->via.str.size, code->via.str.ptr);
	if (msg && msg->type == MSGPACK_OBJECT_STR)
		snprintf(m, sizeof(m), "%.*s", (int)msg->via.str.size, msg->via.str.ptr);
	fail(c, m);
}

static bool str_is(const msgpack_object *o, const char *s)
{
	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static void handle_message(struct lws *wsi, const uint8_t *buf, size_t len)
{
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	size_t off = 0;
	if (ra_scan(buf, len) != RA_SCAN_OK || msgpack_unpack_next(&up, (const char *)buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    up.data.type != MSGPACK_OBJECT_MAP) {
		fail("INVALID_MESSAGE", "the agent sent a message that is not a msgpack map");
		goto out;
	}
	const msgpack_object_map *map = &up.data.via.map;
	const msgpack_object *type = ra_map_get(map, "type");
	if (str_is(type, "ready")) {
		st.request_pending = true;
		lws_callback_on_writable(wsi);
	} else if (str_is(type, "reply")) {
		const msgpack_object *err = ra_map_get(map, "error");
		const msgpack_object *result = ra_map_get(map, "result");
		if (err)
			report_error(err);
		else if (result) {
			print_result(result, (now_s() - st.sent_at) * 1000.0);
			finish(0);
		}
	}
out:
	msgpack_unpacked_destroy(&up);
}

static int write_request(struct lws *wsi)
{
	ra_enc e;
	ra_enc_init(&e, LWS_PRE, 4096);
	ra_enc_map(&e, 2);
	ra_enc_str(&e, "id");
	ra_enc_u64(&e, REQUEST_ID);
	ra_enc_str(&e, "op");
	ra_enc_str(&e, st.cmd == CMD_PING ? "ping" : "info");
	st.request_pending = false;
	st.sent_at = now_s();
	int n = lws_write(wsi, ra_buf_payload(&e.buf), e.buf.len, LWS_WRITE_BINARY);
	ra_enc_free(&e);
	return n < 0 ? -1 : 0;
}

static int on_receive(struct lws *wsi, const void *in, size_t len)
{
	if (ra_buf_append(&st.inbox, in, len)) {
		fail("MESSAGE_TOO_LARGE", "the agent's message is too large for this client");
		return -1;
	}
	if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
		handle_message(wsi, ra_buf_payload(&st.inbox), st.inbox.len);
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
		fail("UNAUTHENTICATED", "the agent refused the token (HTTP 401)");
	else
		fail("UNAVAILABLE", msg);
}

static int on_http_body(const char *in, size_t len)
{
	if (ra_buf_append(&st.inbox, in, len))
		fail("MESSAGE_TOO_LARGE", "health response too large");
	return 0;
}

static void on_http_complete(struct lws *wsi)
{
	int status = (int)lws_http_client_http_response(wsi);
	const char *body = st.inbox.len ? (const char *)ra_buf_payload(&st.inbox) : "";
	int n = (int)st.inbox.len;
	while (n && body[n - 1] == '\n')
		n--;
	if (status != 200) {
		char msg[200];
		snprintf(msg, sizeof(msg), "HTTP %d: %.*s", status, n > 150 ? 150 : n, body);
		fail("UNAVAILABLE", msg);
		return;
	}
	if (st.json)
		printf("%.*s\n", n, body);
	else
		printf("healthy: %.*s\n", n, body);
	finish(0);
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
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		on_connection_error(wsi, in);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return on_receive(wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return st.request_pending ? write_request(wsi) : 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		fail("UNAVAILABLE", "the agent closed the connection");
		return 0;
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
		char buf[LWS_PRE + 2048], *px = buf + LWS_PRE;
		int lenx = (int)sizeof(buf) - LWS_PRE;
		return lws_http_client_read(wsi, &px, &lenx) < 0 ? -1 : 0;
	}
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
		return on_http_body(in, len);
	case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
		on_http_complete(wsi);
		return 0;
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		if (!st.finished)
			fail("UNAVAILABLE", "the agent closed the connection");
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
	fail("TIMEOUT", "no answer from the agent in time");
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
	if (st.cmd == CMD_HEALTH) {
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
	fprintf(out, "usage: runra-agent health|ping|info [--url URL] [--token TOKEN] [--json]\n"
			"  --url    agent address: ws://HOST:PORT or unix:/path [RUNRA_AGENT_URL], default %s\n"
			"  --token  bearer token [RUNRA_AGENT_TOKEN]\n"
			"  --json   machine-readable output\n",
		DEFAULT_URL);
	return code;
}

static int parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {{"url", required_argument, NULL, 'u'},
						 {"token", required_argument, NULL, 't'},
						 {"json", no_argument, NULL, 'j'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	st.cmd = strcmp(argv[0], "health") == 0 ? CMD_HEALTH : strcmp(argv[0], "ping") == 0 ? CMD_PING : CMD_INFO;
	const char *url = getenv("RUNRA_AGENT_URL");
	st.token = getenv("RUNRA_AGENT_TOKEN");
	optind = 1;
	opterr = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u': url = optarg; break;
		case 't': st.token = optarg; break;
		case 'j': st.json = true; break;
		case 'h': return 1;
		default: return -1;
		}
	}
	if (optind < argc)
		return -1;
	snprintf(st.url, sizeof(st.url), "%s", url && *url ? url : DEFAULT_URL);
	return 0;
}

int ra_client_main(int argc, char **argv)
{
	int parsed = parse_args(argc, argv);
	if (parsed)
		return parsed > 0 ? usage(stdout, 0) : usage(stderr, 2);
	if (parse_url()) {
		fprintf(stderr, "runra-agent: INVALID_CONFIG: cannot parse --url '%s'\n", st.url);
		return 2;
	}
	lws_set_log_level(getenv("RA_LWS_DEBUG") ? 0xff : 0, NULL);
	struct ev_loop *loop = ev_default_loop(EVFLAG_NOENV);
	void *loops[1] = {loop};
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
	ra_buf_init(&st.inbox, 0, CLIENT_MAX_MESSAGE);
	st.exit_code = 1;
	ev_timer_init(&st.timeout, on_timeout, RA_CLIENT_TIMEOUT_MS / 1000.0, 0);
	ev_timer_start(loop, &st.timeout);
	if (connect_agent())
		fail("UNAVAILABLE", "cannot start the connection");
	else
		ev_run(loop, 0);
	ev_timer_stop(loop, &st.timeout);
	lws_context_destroy(st.context);
	ra_buf_free(&st.inbox);
	return st.exit_code;
}
