#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("rabench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

int tcp_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	/* Without it, Nagle holds back a small write while an earlier one is unacknowledged. */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A peer that stops answering must end the run, not hang it. */
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

void write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) /* EAGAIN included: a frame this small never fills an idle socket buffer */
			die("write: %s", w < 0 ? strerror(errno) : "short");
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
	}
}

/* ---- msgpack: just enough to walk a map and read "id" and "type" ---- */

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Returns the end of the object at p, or NULL when it does not fit before end. */
static const uint8_t *mp_skip(const uint8_t *p, const uint8_t *end, int depth)
{
	if (p >= end || depth > 32)
		return NULL;
	uint8_t t = *p++;
	uint64_t n = 0, items = 0; /* n: bytes of payload; items: objects that follow */
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
		return p;
	if ((t & 0xf0) == 0x80)
		items = 2u * (t & 0x0f);
	else if ((t & 0xf0) == 0x90)
		items = t & 0x0f;
	else if ((t & 0xe0) == 0xa0)
		n = t & 0x1f;
	else if (t >= 0xcc && t <= 0xcf)
		n = 1u << (t - 0xcc);
	else if (t >= 0xd0 && t <= 0xd3)
		n = 1u << (t - 0xd0);
	else if (t == 0xca || t == 0xcb)
		n = t == 0xca ? 4 : 8;
	else if (t >= 0xd4 && t <= 0xd8)
		n = 1 + (1u << (t - 0xd4)); /* fixext: type byte + data */
	else {
		int w; /* width of the length field */
		switch (t) {
		case 0xc4: case 0xc7: case 0xd9: w = 1; break; /* bin8 ext8 str8 */
		case 0xc5: case 0xc8: case 0xda: case 0xdc: case 0xde: w = 2; break;
		case 0xc6: case 0xc9: case 0xdb: case 0xdd: case 0xdf: w = 4; break;
		default: return NULL;
		}
		if (end - p < w)
			return NULL;
		uint64_t len = be(p, w);
		p += w;
		if (t == 0xdc || t == 0xdd)
			items = len;
		else if (t == 0xde || t == 0xdf)
			items = 2 * len;
		else
			n = len + (t >= 0xc7 && t <= 0xc9); /* ext has a type byte */
	}
	if ((uint64_t)(end - p) < n)
		return NULL;
	p += n;
	while (items-- && p)
		p = mp_skip(p, end, depth + 1);
	return p;
}

/* Reads a string header: sets *s and *len, returns the end, or NULL if it is not a string. */
static const uint8_t *mp_str(const uint8_t *p, const uint8_t *end, const char **s, size_t *len)
{
	const uint8_t *e = mp_skip(p, end, 0);
	if (!e)
		return NULL;
	int hdr = (*p & 0xe0) == 0xa0 ? 1 : *p == 0xd9 ? 2 : *p == 0xda ? 3 : *p == 0xdb ? 5 : 0;
	if (!hdr)
		return NULL;
	*s = (const char *)p + hdr;
	*len = (size_t)(e - p) - (size_t)hdr;
	return e;
}

static bool parse_msg(const uint8_t *p, const uint8_t *end, msg_info *m)
{
	memset(m, 0, sizeof(*m));
	uint64_t pairs;
	if ((*p & 0xf0) == 0x80)
		pairs = *p++ & 0x0f;
	else if (*p == 0xde && end - p >= 3) {
		pairs = be(p + 1, 2);
		p += 3;
	} else
		return false;
	while (pairs--) {
		const char *k;
		size_t klen;
		const uint8_t *v = mp_str(p, end, &k, &klen);
		if (!v)
			return false;
		const uint8_t *next = mp_skip(v, end, 0);
		if (!next)
			return false;
		if (klen == 2 && memcmp(k, "id", 2) == 0) {
			if (*v <= 0x7f)
				m->id = *v;
			else if (*v >= 0xcc && *v <= 0xcf)
				m->id = be(v + 1, 1 << (*v - 0xcc));
			else
				return false;
			m->has_id = true;
		} else if (klen == 4 && memcmp(k, "type", 4) == 0 && !mp_str(v, end, &m->type, &m->type_len)) {
			return false;
		}
		p = next;
	}
	return true;
}

/* ---- WebSocket frames ---- */

void conn_send_ping(conn *c, uint64_t id)
{
	/* Client frames must be masked (RFC 6455 5.3); a fixed key is as good as any for a benchmark. */
	static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
	uint8_t f[PING_FRAME_BYTES] = {0x82, 0x80 | 21, 0x12, 0x34, 0x56, 0x78};
	uint8_t *m = f + 6;
	/* {"id": id, "op": "ping"}; id always as uint64 (0xcf) so every frame has the same size */
	static const uint8_t head[] = {0x82, 0xa2, 'i', 'd', 0xcf};
	static const uint8_t tail[] = {0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g'};
	memcpy(m, head, sizeof(head));
	for (int i = 0; i < 8; i++)
		m[5 + i] = (uint8_t)(id >> (56 - 8 * i));
	memcpy(m + 13, tail, sizeof(tail));
	for (int i = 0; i < 21; i++)
		m[i] ^= key[i & 3];
	c->want_id = id;
	write_all(c->fd, f, sizeof(f));
}

bool conn_fill(conn *c)
{
	if (c->off) { /* the caller is done with everything before off */
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == sizeof(c->buf))
		die("a message larger than %zu bytes", sizeof(c->buf));
	ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (r < 0)
		die("read: %s", strerror(errno));
	c->len += (size_t)r;
	return r > 0;
}

int conn_next(conn *c, msg_info *m)
{
	for (;;) {
		uint8_t *p = c->buf + c->off;
		size_t avail = c->len - c->off, hdr = 2;
		if (avail < 2)
			return 0;
		uint64_t len = p[1] & 0x7f;
		bool masked = p[1] & 0x80; /* only the echo server sends masked frames: our own, back */
		if (len == 126)
			hdr = 4;
		else if (len == 127)
			hdr = 10;
		if (avail < hdr + (masked ? 4 : 0))
			return 0;
		if (hdr > 2)
			len = be(p + 2, (int)hdr - 2);
		uint8_t *payload = p + hdr + (masked ? 4 : 0);
		if (len > sizeof(c->buf) || (uint64_t)(c->buf + c->len - payload) < len)
			return 0;
		if (masked)
			for (uint64_t i = 0; i < len; i++)
				payload[i] ^= p[hdr + (i & 3)];
		c->off = (size_t)(payload - c->buf) + len;
		int op = p[0] & 0x0f;
		if (op == 0x9) { /* PING: lws sends one after 20 s of silence; answer it or be hung up on */
			if (len > 125)
				die("PING too long");
			uint8_t pong[6 + 125] = {0x8a, (uint8_t)(0x80 | len)}; /* zero mask */
			memcpy(pong + 6, payload, len);
			write_all(c->fd, pong, 6 + len);
			continue;
		}
		if (op == 0xa)
			continue;
		if (op == 0x8)
			die("peer closed the WebSocket");
		if (op != 0x2 || !(p[0] & 0x80))
			die("unexpected frame 0x%02x (text or fragmented)", p[0]);
		if (!len || !parse_msg(payload, payload + len, m))
			die("message is not a msgpack map");
		return 1;
	}
}

void check_reply(conn *c, const msg_info *m)
{
	if (m->type && !(m->type_len == 5 && memcmp(m->type, "reply", 5) == 0))
		die("expected a reply, got type \"%.*s\"", (int)m->type_len, m->type);
	if (!m->has_id || m->id != c->want_id)
		die("reply id %llu, expected %llu", (unsigned long long)m->id, (unsigned long long)c->want_id);
	c->want_id = 0;
}

void conn_ping(conn *c, uint64_t id)
{
	msg_info m;
	conn_send_ping(c, id);
	while (!conn_next(c, &m))
		if (!conn_fill(c))
			die("peer closed the connection");
	check_reply(c, &m);
}

/* ---- opening ---- */

void conn_open(conn *c, uint16_t port, const char *token)
{
	memset(c, 0, sizeof(*c));
	c->echo = token == NULL;
	c->fd = tcp_connect(port);
	if (c->fd < 0)
		die("connect 127.0.0.1:%u: %s", port, strerror(errno));
	if (c->echo)
		return;
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
			 "Sec-WebSocket-Protocol: runra.agent.v1\r\nAuthorization: Bearer %s\r\n\r\n",
			 port, token);
	if (n < 0 || (size_t)n >= sizeof(req))
		die("token too long");
	write_all(c->fd, req, (size_t)n);
	/* The 101 response; bytes after its blank line are already frames (often the ready message). */
	char *eoh = NULL;
	while (!eoh) {
		if (c->len == sizeof(c->buf) - 1 || !conn_fill(c))
			die("no upgrade response");
		c->buf[c->len] = 0;
		eoh = strstr((char *)c->buf, "\r\n\r\n");
	}
	if (strncmp((char *)c->buf, "HTTP/1.1 101", 12) != 0)
		die("upgrade refused: %.*s", (int)strcspn((char *)c->buf, "\r\n"), (char *)c->buf);
	c->off = (size_t)(eoh + 4 - (char *)c->buf);
	msg_info m;
	while (!conn_next(c, &m))
		if (!conn_fill(c))
			die("closed before the ready message");
	if (!m.type || m.type_len != 5 || memcmp(m.type, "ready", 5) != 0)
		die("the first message is not \"ready\"");
}
