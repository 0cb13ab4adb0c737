#include "tunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../proto/ra_limits.h"
#include "lifecycle.h"
#include "log.h"
#include "pid1.h"
#include "spares.h"

typedef struct chunk {
	struct chunk *next;
	size_t alloc; /* bytes allocated, this header included */
	size_t len, off;
	bool reply_pending; /* its port.send is answered when it is written */
	uint64_t reply_id;
	uint8_t data[];
} chunk;

typedef struct tunnel {
	struct tunnel *next;
	ra_session *s;
	uint32_t id;
	uint16_t port;
	int fd;
	ev_io rio, wio;
	ev_timer connect_timer;
	uint64_t connect_req;
	bool connected, reading;
	bool peer_eof;   /* the server closed its side */
	bool client_eof; /* the client will send nothing more */
	bool shut_wr;
	/* where to connect: one address, or 127.0.0.1 then ::1 */
	struct sockaddr_storage addr[2];
	unsigned naddr, attempt;
	int first_err;
	chunk *q_head, *q_tail;
	size_t queued;     /* bytes waiting for the port */
	size_t queued_mem; /* what the chunks holding them take: counted against RA_TUNNEL_QUEUE_MAX */
	uint64_t bytes_in, bytes_out; /* to the port, from the port */
} tunnel;

static ra_agent *agent;
static tunnel *tunnels;
static uint32_t last_id;

static unsigned count_tunnels(const ra_session *s)
{
	unsigned n = 0;
	for (tunnel *t = tunnels; t; t = t->next)
		n += !s || t->s == s;
	return n;
}

static tunnel *find_tunnel(const ra_session *s, uint64_t id)
{
	for (tunnel *t = tunnels; t; t = t->next)
		if (t->id == id && t->s == s)
			return t;
	return NULL;
}

/* ---- messages ---- */

static void send_reply_error(ra_session *s, uint64_t id, ra_err code, const char *message)
{
	ra_session_send_error(s, true, id, code, message);
}

/* The reply of a port.send: {tunnel, queued}. */
static void enc_sent(ra_enc *e, uint64_t req_id, uint32_t tunnel_id, size_t queued)
{
	ra_enc_reply_begin(e, req_id, 2);
	ra_enc_str(e, "tunnel");
	ra_enc_u64(e, tunnel_id);
	ra_enc_str(e, "queued");
	ra_enc_u64(e, queued);
}

static void send_sent_reply(tunnel *t, uint64_t id)
{
	ra_enc e;
	ra_session_enc_init(t->s, &e);
	enc_sent(&e, id, t->id, t->queued);
	ra_session_send(t->s, &e);
}

static void begin_tunnel_msg(ra_enc *e, const tunnel *t, uint32_t fields)
{
	ra_enc_map(e, 2 + fields);
	ra_enc_str(e, "type");
	ra_enc_str(e, "tunnel");
	ra_enc_str(e, "tunnel");
	ra_enc_u64(e, t->id);
}

static void send_eof(tunnel *t)
{
	ra_enc e;
	ra_session_enc_init(t->s, &e);
	begin_tunnel_msg(&e, t, 1);
	ra_enc_str(&e, "eof");
	ra_enc_bool(&e, true);
	ra_session_send(t->s, &e);
}

static void send_closed(tunnel *t, int err)
{
	ra_enc e;
	ra_session_enc_init(t->s, &e);
	begin_tunnel_msg(&e, t, 4);
	ra_enc_str(&e, "closed");
	ra_enc_bool(&e, true);
	ra_enc_str(&e, "bytesIn");
	ra_enc_u64(&e, t->bytes_in);
	ra_enc_str(&e, "bytesOut");
	ra_enc_u64(&e, t->bytes_out);
	ra_enc_str(&e, "error");
	if (!err) {
		ra_enc_nil(&e);
	} else {
		ra_enc_map(&e, 2);
		ra_enc_str(&e, "code");
		ra_enc_str(&e, ra_err_name(ra_err_from_errno(err)));
		ra_enc_str(&e, "message");
		ra_enc_str(&e, strerror(err));
	}
	ra_session_send(t->s, &e);
}

/* ---- life ---- */

static void tunnel_free(tunnel *t, bool answer_pending)
{
	for (tunnel **pp = &tunnels; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	ev_io_stop(agent->loop, &t->rio);
	ev_io_stop(agent->loop, &t->wio);
	ev_timer_stop(agent->loop, &t->connect_timer);
	while (t->q_head) {
		chunk *c = t->q_head;
		t->q_head = c->next;
		if (c->reply_pending && answer_pending)
			send_reply_error(t->s, c->reply_id, RA_ERR_UNAVAILABLE, "the tunnel closed before these bytes were written");
		ra_spare_give(c, c->alloc);
	}
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

/* Ends a tunnel on its own (the port closed or failed); the client learns it from a closed message. */
static void tunnel_end(tunnel *t, int err)
{
	send_closed(t, err);
	tunnel_free(t, true);
}

static void set_reading(tunnel *t, bool on)
{
	t->reading = on;
	if (on)
		ev_io_start(agent->loop, &t->rio);
	else
		ev_io_stop(agent->loop, &t->rio);
}

static bool queue_full(const ra_session *s) { return s->out_bytes >= RA_STREAM_QUEUE_HIGH || s->out_overflow; }

/* ---- from the port ---- */

static void on_port_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop, (void)revents;
	tunnel *t = (tunnel *)((char *)w - offsetof(tunnel, rio));
	if (queue_full(t->s)) {
		set_reading(t, false); /* ra_tunnel_session_drained resumes */
		return;
	}
	/* Read straight into the message, behind its header: {type, tunnel, data: bin32}. */
	ra_enc e;
	ra_session_enc_init_sized(t->s, &e, RA_TUNNEL_READ_BYTES + 64);
	begin_tunnel_msg(&e, t, 1);
	ra_enc_str(&e, "data");
	size_t at = e.buf.len;
	if (ra_buf_reserve(&e.buf, at + 5 + RA_TUNNEL_READ_BYTES)) {
		ra_enc_free(&e);
		tunnel_end(t, ENOMEM);
		return;
	}
	uint8_t *bin = ra_buf_payload(&e.buf) + at;
	ssize_t n = read(t->fd, bin + 5, RA_TUNNEL_READ_BYTES);
	if (n <= 0)
		ra_enc_free(&e);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			tunnel_end(t, errno);
		return;
	}
	if (n == 0) {
		t->peer_eof = true;
		set_reading(t, false);
		send_eof(t);
		if (t->shut_wr)
			tunnel_end(t, 0);
		return;
	}
	t->bytes_out += (uint64_t)n;
	ra_lifecycle_touch(); /* data through a tunnel is activity: not idle */
	bin[0] = 0xc6; /* msgpack bin 32, then the length big-endian */
	for (int i = 0; i < 4; i++)
		bin[1 + i] = (uint8_t)((uint64_t)n >> (24 - 8 * i));
	e.buf.len = at + 5 + (size_t)n;
	ra_session_send(t->s, &e);
}

/* ---- to the port ---- */

static void finish_client_eof(tunnel *t)
{
	if (!t->client_eof || t->shut_wr || t->q_head)
		return;
	shutdown(t->fd, SHUT_WR);
	t->shut_wr = true;
	if (t->peer_eof)
		tunnel_end(t, 0);
}

/* Writes what is queued; false if the tunnel ended. */
static bool flush_queue(tunnel *t)
{
	while (t->q_head) {
		chunk *c = t->q_head;
		ssize_t n = write(t->fd, c->data + c->off, c->len - c->off);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			tunnel_end(t, errno);
			return false;
		}
		c->off += (size_t)n;
		t->queued -= (size_t)n;
		t->bytes_in += (uint64_t)n;
		if (c->off < c->len)
			break;
		t->q_head = c->next;
		if (!t->q_head)
			t->q_tail = NULL;
		if (c->reply_pending)
			send_sent_reply(t, c->reply_id);
		t->queued_mem -= c->alloc;
		ra_spare_give(c, c->alloc);
	}
	if (t->q_head)
		ev_io_start(agent->loop, &t->wio);
	else
		ev_io_stop(agent->loop, &t->wio);
	return true;
}

static void on_port_writable(struct ev_loop *loop, ev_io *w, int revents);

/* Small sends join the last chunk while it has room, so that many of them cost what their bytes do. A chunk
 * carries one reply at most: a send that must wait for its bytes joins only a chunk that carries none. */
#define CHUNK_MIN_ALLOC 4096u

static bool append_to_tail(tunnel *t, const uint8_t *data, size_t len, uint64_t req_id, bool pending)
{
	chunk *c = t->q_tail;
	if (!c || c->alloc - sizeof(*c) - c->len < len || (pending && c->reply_pending))
		return false;
	memcpy(c->data + c->len, data, len);
	c->len += len;
	if (pending) {
		c->reply_pending = true;
		c->reply_id = req_id;
	}
	return true;
}

static int queue_bytes(tunnel *t, const uint8_t *data, size_t len, uint64_t req_id, bool *answered)
{
	/* Over the window: the reply waits for these bytes to be written, which paces the client. */
	bool pending = t->queued + len > RA_TUNNEL_WINDOW_BYTES;
	*answered = !pending;
	if (!append_to_tail(t, data, len, req_id, pending)) {
		/* Room to spare, but not much: a chunk that carries a reply takes nothing more, and the queue's
		 * memory limit must mean about its bytes (20 KiB sends in 260 KiB chunks would hit it at 2 MiB). */
		size_t need = sizeof(chunk) + len, want = need < CHUNK_MIN_ALLOC ? CHUNK_MIN_ALLOC : need, alloc = 0;
		chunk *c = ra_spare_take(need, 2 * want, &alloc);
		if (!c) {
			alloc = ra_spare_size_for(want) <= 2 * want ? ra_spare_size_for(want) : want;
			if (!(c = malloc(alloc)))
				return -ENOMEM;
		}
		*c = (chunk){.alloc = alloc, .len = len, .reply_pending = pending, .reply_id = req_id};
		memcpy(c->data, data, len);
		if (t->q_tail)
			t->q_tail->next = c;
		else
			t->q_head = c;
		t->q_tail = c;
		t->queued_mem += alloc;
	}
	t->queued += len;
	return 0;
}

/* ---- connecting ---- */

static void connect_next(tunnel *t);

static void connect_failed(tunnel *t, int err)
{
	char message[160];
	if (err == ECONNREFUSED)
		snprintf(message, sizeof(message), "nothing listens on port %u (%s)", t->port,
			 t->naddr > 1 ? "127.0.0.1 and ::1" : "at that address");
	else if (err == ETIMEDOUT)
		snprintf(message, sizeof(message), "connecting to port %u timed out", t->port);
	else
		snprintf(message, sizeof(message), "connecting to port %u: %s", t->port, strerror(err));
	ra_err code = err == ECONNREFUSED ? RA_ERR_UNAVAILABLE : ra_err_from_errno(err);
	send_reply_error(t->s, t->connect_req, code, message);
	tunnel_free(t, false);
}

static void connected(tunnel *t)
{
	char address[INET6_ADDRSTRLEN] = "?";
	const struct sockaddr_storage *a = &t->addr[t->attempt];
	if (a->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, address, sizeof(address));
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, address, sizeof(address));
	t->connected = true;
	ev_timer_stop(agent->loop, &t->connect_timer);
	ev_io_stop(agent->loop, &t->wio);
	ev_set_cb(&t->wio, on_port_writable);
	ra_enc e;
	ra_session_enc_init(t->s, &e);
	ra_enc_reply_begin(&e, t->connect_req, 3);
	ra_enc_str(&e, "tunnel");
	ra_enc_u64(&e, t->id);
	ra_enc_str(&e, "port");
	ra_enc_u64(&e, t->port);
	ra_enc_str(&e, "address");
	ra_enc_str(&e, address);
	ra_session_send(t->s, &e);
	set_reading(t, true);
}

static void on_connect_done(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop, (void)revents;
	tunnel *t = (tunnel *)((char *)w - offsetof(tunnel, wio));
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (!err) {
		connected(t);
		return;
	}
	if (!t->first_err)
		t->first_err = err;
	ev_io_stop(agent->loop, &t->wio);
	close(t->fd);
	t->fd = -1;
	t->attempt++;
	connect_next(t);
}

static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop, (void)revents;
	connect_failed((tunnel *)((char *)w - offsetof(tunnel, connect_timer)), ETIMEDOUT);
}

static void connect_next(tunnel *t)
{
	for (; t->attempt < t->naddr; t->attempt++) {
		const struct sockaddr_storage *a = &t->addr[t->attempt];
		socklen_t len = a->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
		t->fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (t->fd >= 0 && ra_fd_in_reserve(t->fd)) { /* kept for new connections and process pipes */
			close(t->fd);
			t->fd = -1;
			errno = EMFILE;
		}
		if (t->fd < 0) {
			t->first_err = t->first_err ? t->first_err : errno;
			continue;
		}
		if (connect(t->fd, (const struct sockaddr *)a, len) == 0) {
			ev_io_init(&t->rio, on_port_readable, t->fd, EV_READ);
			ev_io_init(&t->wio, on_port_writable, t->fd, EV_WRITE);
			connected(t);
			return;
		}
		if (errno == EINPROGRESS) {
			ev_io_init(&t->rio, on_port_readable, t->fd, EV_READ);
			ev_io_init(&t->wio, on_connect_done, t->fd, EV_WRITE);
			ev_io_start(agent->loop, &t->wio);
			return;
		}
		t->first_err = t->first_err ? t->first_err : errno;
		close(t->fd);
		t->fd = -1;
	}
	connect_failed(t, t->first_err ? t->first_err : ECONNREFUSED);
}

static void on_port_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop, (void)revents;
	tunnel *t = (tunnel *)((char *)w - offsetof(tunnel, wio));
	if (flush_queue(t))
		finish_client_eof(t);
}

/* ---- ops ---- */

static void set_addr(struct sockaddr_storage *ss, int family, const void *ip, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, ip, 4);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		memcpy(&in6->sin6_addr, ip, 16);
	}
}

/* host: an IP address, or absent / "localhost" for 127.0.0.1 then ::1 (a server bound to either). */
static ra_err read_target(const ra_request *req, tunnel *t, ra_why *why)
{
	uint64_t port = 0;
	ra_err rc = ra_arg_u64_range(req, "port", true, 1, 65535, &port, why);
	if (rc)
		return rc;
	t->port = (uint16_t)port;
	char *host = NULL;
	if ((rc = ra_arg_cstr(req, "host", false, 63, &host, why)))
		return rc;
	uint8_t ip[16];
	if (!host || strcmp(host, "localhost") == 0) {
		inet_pton(AF_INET, "127.0.0.1", ip);
		set_addr(&t->addr[0], AF_INET, ip, t->port);
		inet_pton(AF_INET6, "::1", ip);
		set_addr(&t->addr[1], AF_INET6, ip, t->port);
		t->naddr = 2;
	} else if (inet_pton(AF_INET, host, ip) == 1) {
		set_addr(&t->addr[0], AF_INET, ip, t->port);
		t->naddr = 1;
	} else if (inet_pton(AF_INET6, host, ip) == 1) {
		set_addr(&t->addr[0], AF_INET6, ip, t->port);
		t->naddr = 1;
	} else {
		rc = ra_fail(why, RA_ERR_INVALID_CONFIG, "host must be an IPv4 or IPv6 address or \"localhost\", got '%s'", host);
	}
	free(host);
	return rc;
}

ra_err ra_op_port_connect(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)reply;
	uint64_t timeout_ms = RA_TUNNEL_CONNECT_MS_DEFAULT;
	ra_err rc = ra_arg_u64(req, "timeoutMs", false, RA_TUNNEL_CONNECT_MS_MAX, &timeout_ms, why);
	if (rc)
		return rc;
	if (count_tunnels(s) >= RA_TUNNELS_PER_CONNECTION || count_tunnels(NULL) >= RA_TUNNELS_MAX)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "at most %u tunnels per connection and %u in all",
			       RA_TUNNELS_PER_CONNECTION, RA_TUNNELS_MAX);
	tunnel *t = calloc(1, sizeof(*t));
	if (!t)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	t->fd = -1;
	if ((rc = read_target(req, t, why))) {
		free(t);
		return rc;
	}
	t->s = s;
	t->id = ++last_id;
	t->connect_req = req->id;
	t->next = tunnels;
	tunnels = t;
	ev_timer_init(&t->connect_timer, on_connect_timeout, (double)timeout_ms / 1000.0, 0.);
	if (timeout_ms) /* 0: as long as the kernel tries */
		ev_timer_start(agent->loop, &t->connect_timer);
	connect_next(t);
	return RA_REPLY_LATER;
}

static ra_err find_connected(ra_session *s, const ra_request *req, tunnel **out, ra_why *why)
{
	uint64_t id = 0;
	ra_err rc = ra_arg_u64(req, "tunnel", true, UINT32_MAX, &id, why);
	if (rc)
		return rc;
	tunnel *t = find_tunnel(s, id);
	if (!t || !t->connected)
		return ra_fail(why, RA_ERR_NOT_FOUND, "no open tunnel %llu on this connection", (unsigned long long)id);
	*out = t;
	return RA_OK;
}

ra_err ra_op_port_send(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	tunnel *t = NULL;
	const uint8_t *data = NULL;
	uint32_t len = 0;
	bool present = false, eof = false;
	ra_err rc;
	if ((rc = find_connected(s, req, &t, why)) || (rc = ra_arg_bytes(req, "data", &data, &len, &present, why)) ||
	    (rc = ra_arg_bool(req, "eof", &eof, why)))
		return rc;
	if (t->client_eof && (len || !eof))
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "tunnel %u: nothing can be sent after eof", t->id);
	/* Bytes, and the memory holding them (a million one-byte sends must not cost a chunk each). */
	if (t->queued + len > RA_TUNNEL_QUEUE_MAX || t->queued_mem + sizeof(chunk) + len > RA_TUNNEL_QUEUE_MEM_MAX)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED,
			       "tunnel %u: %zu bytes are waiting for the port already; wait for the replies of earlier sends",
			       t->id, t->queued);
	bool answered = true;
	size_t written = 0;
	if (len && !t->q_head) { /* straight to the port when nothing waits: no copy */
		ssize_t n = write(t->fd, data, len);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			uint32_t id = t->id;
			tunnel_end(t, errno); /* the port went away: its closed message says why */
			return ra_fail(why, RA_ERR_UNAVAILABLE, "tunnel %u closed", id);
		}
		if (n > 0) {
			written = (size_t)n;
			t->bytes_in += written;
			ra_lifecycle_touch();
		}
	}
	if (len > written && queue_bytes(t, data + written, len - written, req->id, &answered)) {
		if (!written)
			return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
		/* Some bytes reached the port and the rest cannot wait: a retry would send those twice. */
		uint32_t id = t->id;
		tunnel_end(t, ENOMEM);
		return ra_fail(why, RA_ERR_UNAVAILABLE, "tunnel %u closed: out of memory after a partial write", id);
	}
	t->client_eof = t->client_eof || eof;
	if (!answered) { /* the queued chunk owns the reply now: sent when written, or an error if the tunnel ends */
		if (flush_queue(t))
			finish_client_eof(t);
		return RA_REPLY_LATER;
	}
	uint32_t id = t->id;
	if (!flush_queue(t)) /* the tunnel ended: its closed message says why */
		return ra_fail(why, RA_ERR_UNAVAILABLE, "tunnel %u closed", id);
	enc_sent(reply, req->id, id, t->queued);
	ra_session_send(s, reply); /* before the closed message that finishing may cause */
	finish_client_eof(t);      /* may end the tunnel: t is not used after it */
	return RA_REPLY_LATER;
}

ra_err ra_op_port_disconnect(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	uint64_t id = 0;
	ra_err rc = ra_arg_u64(req, "tunnel", true, UINT32_MAX, &id, why);
	if (rc)
		return rc;
	tunnel *t = find_tunnel(s, id);
	if (!t)
		return ra_fail(why, RA_ERR_NOT_FOUND, "no tunnel %llu on this connection", (unsigned long long)id);
	if (!t->connected) {
		send_reply_error(s, t->connect_req, RA_ERR_UNAVAILABLE, "disconnected before the connection was made");
	}
	ra_enc_reply_begin(reply, req->id, 3);
	ra_enc_str(reply, "tunnel");
	ra_enc_u64(reply, id);
	ra_enc_str(reply, "bytesIn");
	ra_enc_u64(reply, t->bytes_in);
	ra_enc_str(reply, "bytesOut");
	ra_enc_u64(reply, t->bytes_out);
	tunnel_free(t, true);
	return RA_OK;
}

/* ---- connections ---- */

void ra_tunnel_session_drained(ra_session *s)
{
	for (tunnel *t = tunnels; t; t = t->next)
		if (t->s == s && t->connected && !t->reading && !t->peer_eof)
			set_reading(t, true);
}

void ra_tunnel_session_closed(ra_session *s)
{
	for (tunnel *t = tunnels, *next; t; t = next) {
		next = t->next;
		if (t->s == s)
			tunnel_free(t, false);
	}
}

unsigned ra_tunnel_close_all(void)
{
	unsigned n = 0;
	while (tunnels) {
		tunnel *t = tunnels;
		if (t->connected)
			send_closed(t, ECONNABORTED);
		else
			send_reply_error(t->s, t->connect_req, RA_ERR_UNAVAILABLE, "the sandbox was reset");
		tunnel_free(t, true);
		n++;
	}
	return n;
}

void ra_tunnel_init(ra_agent *a) { agent = a; }

void ra_tunnel_shutdown(void)
{
	while (tunnels)
		tunnel_free(tunnels, false);
}
