#include "transport.h"

#include <errno.h>
#include <libwebsockets.h>
#include <linux/sockios.h>
#include <linux/vm_sockets.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../proto/ra_limits.h"
#include "dispatch.h"
#include "log.h"
#include "session.h"

/* Per-connection user data. lws allocates it for every connection (HTTP ones too) and frees it after
 * LWS_CALLBACK_CLOSED; the session inside is only live between ESTABLISHED and CLOSED. */
typedef struct {
	ra_session session;
	bool is_ws;
	bool rx_paused;
	bool closing; /* close with 1001 at the next writable */
	int last_outq; /* bytes in the kernel's send queue at the last progress check */
	ev_tstamp alive_confirmed; /* when lws was last told the peer is alive */
	char http_body[320];
	size_t http_len;
} conn;

/* Stop reading from a client whose replies pile up; resume once they drain. */
#define RX_PAUSE_BYTES (4u << 20)
#define RX_RESUME_BYTES (1u << 20)

static ra_agent *agent;
static struct lws_context *context;
static struct lws_vhost *vhost;
static int vsock_fd = -1;
static ev_io vsock_watcher;
static ev_timer shutdown_timer;
static void (*shutdown_done)(void);

static lws_retry_bo_t keepalive; /* lws keeps a pointer to it: it must outlive the context */
static ev_timer progress_timer;

static conn *conn_of(ra_session *s) { return (conn *)s; }

static void wake(ra_session *s) { lws_callback_on_writable((struct lws *)s->transport); }

/* ---- authentication ---- */

/* Compares in time that depends only on the lengths, not on where the first difference is. */
static bool constant_time_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char diff = (unsigned char)(alen != blen);
	for (size_t i = 0; i < alen && i < blen; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

static bool token_matches(const char *given, size_t given_len)
{
	const char *token = agent->config->token;
	return constant_time_equal(given, given_len, token, strlen(token));
}

static bool request_authorized(struct lws *wsi)
{
	if (!agent->config->token[0])
		return true; /* --insecure-no-auth */
	char hdr[RA_MAX_TOKEN + 16];
	int n = lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n > 7 && strncasecmp(hdr, "Bearer ", 7) == 0)
		return token_matches(hdr + 7, (size_t)n - 7);
	/* Browsers cannot set headers on a WebSocket: they may pass ?token=... */
	char arg[RA_MAX_TOKEN + 8];
	const char *q = lws_get_urlarg_by_name(wsi, "token=", arg, (int)sizeof(arg));
	return q && token_matches(q, strlen(q));
}

/* Answers a refused upgrade with an HTTP/1.1 status and the protocol's error object as a JSON body. Written
 * whole here because lws_return_http_status() answers "HTTP/1.0" at this point of an upgrade (the request
 * version is parsed later), which some WebSocket clients cannot read. Returns 1: "headers sent". */
static int refuse_upgrade(struct lws *wsi, unsigned status, const char *reason, ra_err code, const char *message)
{
	char body[256], resp[LWS_PRE + 640];
	int blen = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"retryable\":%s}}\n",
			    ra_err_name(code), message, ra_err_retryable(code) ? "true" : "false");
	int n = snprintf(resp + LWS_PRE, sizeof(resp) - LWS_PRE,
			 "HTTP/1.1 %u %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s"
			 "cache-control: no-store\r\nconnection: close\r\n\r\n%s",
			 status, reason, blen, status == 401 ? "www-authenticate: Bearer\r\n" : "", body);
	ra_log(RA_LOG_WARN, "transport.refused", "upgrade refused with %u: %s", status, message);
	if (lws_write(wsi, (unsigned char *)resp + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS) != n)
		return -1;
	return 1;
}

/* lws drops an upgrade that offers only unknown subprotocols without a word; say why instead. */
static bool subprotocol_acceptable(struct lws *wsi)
{
	char offered[256];
	int n = lws_hdr_copy(wsi, offered, sizeof(offered), WSI_TOKEN_PROTOCOL);
	if (n <= 0)
		return n == 0 && !lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL); /* none offered: fine */
	for (char *save = NULL, *tok = strtok_r(offered, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
		if (strcmp(tok, RA_PROTO_SUBPROTOCOL) == 0)
			return true;
	return false;
}

static int confirm_upgrade(struct lws *wsi)
{
	if (!request_authorized(wsi))
		return refuse_upgrade(wsi, 401, "Unauthorized", RA_ERR_UNAUTHENTICATED, "missing or wrong bearer token");
	if (!subprotocol_acceptable(wsi))
		return refuse_upgrade(wsi, 400, "Bad Request", RA_ERR_UNSUPPORTED,
				      "unsupported subprotocol: offer " RA_PROTO_SUBPROTOCOL);
	if (agent->shutting_down)
		return refuse_upgrade(wsi, 503, "Service Unavailable", RA_ERR_UNAVAILABLE, "the agent is shutting down");
	if (ra_session_count() >= agent->config->max_connections)
		return refuse_upgrade(wsi, 503, "Service Unavailable", RA_ERR_RATE_LIMITED, "too many connections");
	return 0;
}

/* ---- plain HTTP: /healthz ---- */

static int http_done(struct lws *wsi) { return lws_http_transaction_completed(wsi) ? -1 : 0; }

static int serve_http(struct lws *wsi, conn *c, const char *path)
{
	if (strcmp(path, "/healthz") != 0) {
		lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
		return http_done(wsi);
	}
	int n = snprintf(c->http_body, sizeof(c->http_body),
			 "{\"status\":\"%s\",\"agent\":\"" RA_AGENT_NAME "\",\"version\":\"" RA_VERSION
			 "\",\"uptimeMs\":%llu,\"connections\":%zu}\n",
			 agent->shutting_down ? "stopping" : "ok", (unsigned long long)ra_agent_uptime_ms(agent),
			 ra_session_count());
	c->http_len = (size_t)n;
	unsigned status = agent->shutting_down ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_OK;
	uint8_t buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);
	if (lws_add_http_common_headers(wsi, status, "application/json", c->http_len, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (const unsigned char *)"no-store", 8,
					 &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

static int write_http_body(struct lws *wsi, conn *c)
{
	if (!c->http_len)
		return 0;
	uint8_t buf[LWS_PRE + sizeof(c->http_body)];
	memcpy(buf + LWS_PRE, c->http_body, c->http_len);
	size_t len = c->http_len;
	c->http_len = 0;
	if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
		return -1;
	return http_done(wsi);
}

/* ---- WebSocket ---- */

static int on_established(struct lws *wsi, conn *c)
{
	int sndbuf = (int)RA_SOCKET_SNDBUF_BYTES;
	setsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)); /* best effort */
	ra_session_init(&c->session, wsi, wake, LWS_PRE, agent->config->max_message_bytes);
	c->is_ws = true;
	agent->connections_total++;
	char peer[64] = "";
	lws_get_peer_simple(wsi, peer, sizeof(peer));
	ra_log(RA_LOG_INFO, "session.open", "session %llu from %s (%zu open)", (unsigned long long)c->session.serial,
	       peer[0] ? peer : "local", ra_session_count());
	ra_dispatch_send_ready(&c->session);
	return 0;
}

static void update_rx_flow(struct lws *wsi, conn *c)
{
	size_t queued = c->session.out_bytes;
	if (!c->rx_paused && queued > RX_PAUSE_BYTES) {
		c->rx_paused = true;
		lws_rx_flow_control(wsi, 0);
	} else if (c->rx_paused && queued < RX_RESUME_BYTES) {
		c->rx_paused = false;
		lws_rx_flow_control(wsi, 1);
	}
}

/* Any traffic proves the peer alive, not only a PONG. Told to lws at most once a second: each telling
 * re-inserts the connection's keepalive timer into lws's sorted timer list, a walk of every connection's
 * timers (with 256 connections, a quarter of the agent's time answering pings). */
static void confirm_alive(struct lws *wsi, conn *c)
{
	ev_tstamp now = ev_now(agent->loop);
	if (now - c->alive_confirmed < 1.0)
		return;
	c->alive_confirmed = now;
	lws_validity_confirmed(wsi);
}

static int close_with(struct lws *wsi, enum lws_close_status code, const char *reason)
{
	lws_close_reason(wsi, code, (unsigned char *)reason, strlen(reason));
	return -1;
}

static int on_receive(struct lws *wsi, conn *c, const void *in, size_t len)
{
	ra_session *s = &c->session;
	bool final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
	confirm_alive(wsi, c);
	switch (ra_session_rx(s, in, len, lws_frame_is_binary(wsi), final)) {
	case RA_RX_MORE:
		return 0;
	case RA_RX_MESSAGE:
		ra_dispatch_message(s, s->message, s->message_len);
		break;
	case RA_RX_TEXT:
		ra_session_send_error(s, false, 0, RA_ERR_INVALID_MESSAGE,
				      "text frames are not accepted: send msgpack in binary frames");
		break;
	case RA_RX_TOO_LARGE:
		ra_session_send_error(s, false, 0, RA_ERR_MESSAGE_TOO_LARGE, "message exceeds maxMessageBytes");
		break;
	case RA_RX_CLOSE_TOO_LARGE:
		ra_log(RA_LOG_WARN, "session.too_large", "session %llu: message past the hard ceiling, closing",
		       (unsigned long long)s->serial);
		return close_with(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
	}
	ra_session_rx_done(s);
	update_rx_flow(wsi, c);
	return 0;
}

/* A client that only receives, slowly, answers PINGs late: they wait behind the data in the socket. While a
 * connection's kernel send queue keeps shrinking, its peer is alive; this check runs only while some
 * connection has bytes there, so idle connections cost no wake-ups. */
static void on_progress_check(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	bool any = false;
	for (ra_session *s = ra_session_first(); s; s = s->next) {
		conn *c = conn_of(s);
		int outq = 0;
		if (ioctl(lws_get_socket_fd(s->transport), SIOCOUTQ, &outq) != 0 || outq <= 0) {
			c->last_outq = 0;
			continue;
		}
		any = true;
		if (outq < c->last_outq)
			lws_validity_confirmed(s->transport);
		c->last_outq = outq;
	}
	if (!any)
		ev_timer_stop(loop, t);
}

static void watch_progress(void)
{
	if (!ev_is_active(&progress_timer))
		ev_timer_again(agent->loop, &progress_timer);
}

/* Sends the head message, or its next fragment; the bytes sent, or -1. */
static long write_head(struct lws *wsi, ra_session *s, ra_out_msg *m)
{
	size_t chunk = m->len - m->sent;
	if (chunk > RA_WS_FRAGMENT_BYTES)
		chunk = RA_WS_FRAGMENT_BYTES;
	int flags = lws_write_ws_flags(LWS_WRITE_BINARY, m->sent == 0, m->sent + chunk == m->len);
	/* Bytes in front of a later fragment were sent already, so lws may use them as its LWS_PRE room. */
	if (lws_write(wsi, m->data + s->headroom + m->sent, chunk, (enum lws_write_protocol)flags) < 0)
		return -1;
	ra_session_out_advance(s, chunk);
	return (long)chunk;
}

/* Small messages (events, short replies) go out several per writable callback while the socket takes them:
 * one per loop iteration would cap a connection at a few hundred thousand messages per second and let a
 * burst of events outrun it. The socket is asked (lws_send_pipe_choked) before each further write, so lws
 * never has to buffer a partial one of these. */
static int on_writable(struct lws *wsi, conn *c)
{
	ra_session *s = &c->session;
	if (s->out_broken)
		return close_with(wsi, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "agent out of memory");
	if (s->out_overflow)
		return close_with(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, "outbound queue full");
	ra_out_msg *m = ra_session_out_head(s);
	if (!m) {
		if (c->closing)
			return close_with(wsi, LWS_CLOSE_STATUS_GOINGAWAY, "agent shutting down");
		return 0;
	}
	size_t budget = RA_WS_FRAGMENT_BYTES;
	bool choked = false;
	do {
		long n = write_head(wsi, s, m);
		if (n < 0)
			return -1;
		budget = (size_t)n < budget ? budget - (size_t)n : 0;
		m = ra_session_out_head(s);
	} while (m && budget && m->len - m->sent <= budget && !(choked = lws_send_pipe_choked(wsi)));
	/* The socket took more bytes: a peer that only reads, slowly (a long download), is alive as long as its
	 * kernel keeps acknowledging them. A dead one stops that once the buffers are full. */
	confirm_alive(wsi, c);
	if (choked || ra_session_out_head(s))
		watch_progress(); /* the socket is full: the peer may take a while (PINGs wait behind the data) */
	update_rx_flow(wsi, c);
	if (s->out_bytes < RA_STREAM_QUEUE_HIGH / 2)
		ra_dispatch_session_drained(s);
	if (ra_session_out_head(s) || c->closing)
		lws_callback_on_writable(wsi);
	return 0;
}

static void on_closed(conn *c)
{
	if (!c->is_ws)
		return;
	ra_log(RA_LOG_INFO, "session.close", "session %llu closed (%zu open)", (unsigned long long)c->session.serial,
	       ra_session_count() - 1);
	ra_dispatch_session_closed(&c->session);
	ra_session_destroy(&c->session);
	c->is_ws = false;
	if (agent->shutting_down && ra_session_count() == 0 && shutdown_done) {
		ev_timer_stop(agent->loop, &shutdown_timer);
		void (*done)(void) = shutdown_done;
		shutdown_done = NULL;
		done();
	}
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	conn *c = user;
	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return confirm_upgrade(wsi);
	case LWS_CALLBACK_HTTP:
		if (!lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI)) {
			lws_return_http_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL);
			return http_done(wsi);
		}
		return serve_http(wsi, c, in);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return write_http_body(wsi, c);
	case LWS_CALLBACK_ESTABLISHED:
		return on_established(wsi, c);
	case LWS_CALLBACK_RECEIVE:
		return on_receive(wsi, c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return on_writable(wsi, c);
	case LWS_CALLBACK_CLOSED:
		on_closed(c);
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* The first protocol serves plain HTTP and upgrades that name no subprotocol; both use the same callback
 * and the same per-connection data, so either can carry a session. tx_packet_size: without it lws hands
 * the socket at most rx_buffer_size bytes per write and copies the rest of each frame aside. */
#define TX_PACKET_BYTES (RA_WS_FRAGMENT_BYTES + 64)
static const struct lws_protocols protocols[] = {
	{"http", callback, sizeof(conn), 16384, 0, NULL, TX_PACKET_BYTES},
	{RA_PROTO_SUBPROTOCOL, callback, sizeof(conn), 16384, 0, NULL, TX_PACKET_BYTES},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
		n--;
	ra_log_level mine = level == LLL_ERR ? RA_LOG_ERROR : level == LLL_WARN ? RA_LOG_WARN : RA_LOG_DEBUG;
	ra_log(mine, "lws", "%.*s", (int)n, line);
}

/* ---- vsock: our listener, lws adopts what it accepts ---- */

static void on_vsock_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	for (;;) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				ra_log(RA_LOG_WARN, "transport.accept", "vsock accept: %s", strerror(errno));
			if (errno != EINTR && errno != ECONNABORTED)
				return;
			continue;
		}
		if (!lws_adopt_socket_vhost(vhost, fd)) /* lws closes fd when it fails */
			ra_log(RA_LOG_WARN, "transport.accept", "vsock connection not adopted");
	}
}

static int listen_vsock(unsigned port)
{
	vsock_fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (vsock_fd < 0) {
		ra_log(RA_LOG_ERROR, "transport.listen", "vsock socket: %s", strerror(errno));
		return -1;
	}
	struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
	if (bind(vsock_fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(vsock_fd, 128)) {
		ra_log(RA_LOG_ERROR, "transport.listen", "vsock port %u: %s", port, strerror(errno));
		close(vsock_fd);
		vsock_fd = -1;
		return -1;
	}
	ev_io_init(&vsock_watcher, on_vsock_accept, vsock_fd, EV_READ);
	ev_io_start(agent->loop, &vsock_watcher);
	return 0;
}

static void fill_vhost_info(struct lws_context_creation_info *info, const ra_config *cfg)
{
	info->vhost_name = "runra";
	info->protocols = protocols;
	info->options = LWS_SERVER_OPTION_LIBEV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	keepalive.secs_since_valid_ping = (uint16_t)cfg->keepalive_s;
	keepalive.secs_since_valid_hangup = (uint16_t)(cfg->keepalive_s * 2 + 5);
	info->retry_and_idle_policy = &keepalive;
	info->timeout_secs = RA_HTTP_HEADER_TIMEOUT_S;
	info->timeout_secs_ah_idle = RA_HTTP_HEADER_TIMEOUT_S;
	switch (cfg->listen_kind) {
	case RA_LISTEN_TCP:
		info->port = (int)cfg->listen_port;
		info->iface = cfg->listen_host[0] ? cfg->listen_host : NULL;
		break;
	case RA_LISTEN_UNIX:
		info->options |= LWS_SERVER_OPTION_UNIX_SOCK;
		info->iface = cfg->listen_path;
		info->port = 0;
		unlink(cfg->listen_path); /* a stale socket from an earlier run would make bind fail */
		break;
	case RA_LISTEN_VSOCK:
		info->port = CONTEXT_PORT_NO_LISTEN_SERVER;
		break;
	}
}

int ra_transport_start(ra_agent *a)
{
	agent = a;
	/* lws logs at NOTICE and INFO on every connection: only worth it when debugging. */
	int lws_levels = LLL_ERR | LLL_WARN | (ra_log_enabled(RA_LOG_DEBUG) ? LLL_NOTICE | LLL_INFO : 0);
	lws_set_log_level(lws_levels, lws_log_emit);

	void *loops[1] = {a->loop};
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	fill_vhost_info(&info, a->config);
	info.foreign_loops = loops;
	info.fd_limit_per_thread = RA_MAX_FDS;
	/* lws reads a connection this much at a time (default 4 KiB: 64 reads per 256 KiB upload chunk). */
	info.pt_serv_buf_size = RA_WS_READ_BYTES;
	double every = a->config->keepalive_s / 2.0;
	ev_init(&progress_timer, on_progress_check);
	progress_timer.repeat = every < 0.5 ? 0.5 : every;
	context = lws_create_context(&info);
	if (!context) {
		ra_log(RA_LOG_ERROR, "transport.start", "libwebsockets context not created");
		return -1;
	}
	char where[160];
	ra_config_describe_listen(a->config, where, sizeof(where));
	vhost = lws_create_vhost(context, &info);
	if (!vhost) {
		ra_log(RA_LOG_ERROR, "transport.listen", "cannot listen on %s", where);
		return -1;
	}
	if (a->config->listen_kind == RA_LISTEN_VSOCK && listen_vsock(a->config->listen_port))
		return -1;
	return 0;
}

static void on_shutdown_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	void (*done)(void) = shutdown_done;
	shutdown_done = NULL;
	if (done)
		done();
}

void ra_transport_shutdown(unsigned grace_ms, void (*done)(void))
{
	if (vsock_fd >= 0) {
		ev_io_stop(agent->loop, &vsock_watcher);
		close(vsock_fd);
		vsock_fd = -1;
	}
	shutdown_done = done;
	if (ra_session_count() == 0) {
		shutdown_done = NULL;
		done();
		return;
	}
	for (ra_session *s = ra_session_first(); s; s = s->next) {
		conn_of(s)->closing = true;
		wake(s);
	}
	ev_timer_init(&shutdown_timer, on_shutdown_timeout, grace_ms / 1000.0, 0);
	ev_timer_start(agent->loop, &shutdown_timer);
}

void ra_transport_destroy(void)
{
	if (agent)
		ev_timer_stop(agent->loop, &progress_timer);
	if (context)
		lws_context_destroy(context);
	context = NULL;
	vhost = NULL;
	if (agent && agent->config->listen_kind == RA_LISTEN_UNIX)
		unlink(agent->config->listen_path);
}
