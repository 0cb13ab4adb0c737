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
#include <sys/uio.h>
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

/* writev until everything is out; a stall of SO_SNDTIMEO (5 s) without a byte sent ends the run. */
static void writev_all(int fd, struct iovec *iov, int n)
{
	while (n) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write: %s", w < 0 ? strerror(errno) : "short");
		size_t done = (size_t)w;
		for (; n && done >= iov->iov_len; iov++, n--)
			done -= iov->iov_len;
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
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

/* Reads a bin header (stream data): sets *d and *len, returns the end, or NULL if it is not a bin. */
static const uint8_t *mp_bin(const uint8_t *p, const uint8_t *end, const uint8_t **d, size_t *len)
{
	const uint8_t *e = mp_skip(p, end, 0);
	int hdr = !e ? 0 : *p == 0xc4 ? 2 : *p == 0xc5 ? 3 : *p == 0xc6 ? 5 : 0;
	if (!hdr)
		return NULL;
	*d = p + hdr;
	*len = (size_t)(e - p) - (size_t)hdr;
	return e;
}

/* A non-negative integer in any of msgpack's integer forms. */
static bool mp_uint(const uint8_t *v, const uint8_t *end, uint64_t *out)
{
	if (!mp_skip(v, end, 0))
		return false;
	if (*v <= 0x7f)
		*out = *v;
	else if (*v >= 0xcc && *v <= 0xcf)
		*out = be(v + 1, 1 << (*v - 0xcc));
	else if (*v >= 0xd0 && *v <= 0xd3 && !(v[1] & 0x80)) /* a signed form holding a value >= 0 */
		*out = be(v + 1, 1 << (*v - 0xd0));
	else
		return false;
	return true;
}

/* The value under key in the map at p, or NULL. */
static const uint8_t *mp_lookup(const uint8_t *p, const uint8_t *end, const char *key)
{
	uint64_t pairs;
	if (p >= end)
		return NULL;
	if ((*p & 0xf0) == 0x80)
		pairs = *p++ & 0x0f;
	else if (*p == 0xde && end - p >= 3) {
		pairs = be(p + 1, 2);
		p += 3;
	} else
		return NULL;
	size_t want = strlen(key);
	while (pairs-- && p) {
		const char *k;
		size_t klen;
		const uint8_t *v = mp_str(p, end, &k, &klen);
		if (!v)
			return NULL;
		if (klen == want && memcmp(k, key, want) == 0)
			return v;
		p = mp_skip(v, end, 0);
	}
	return NULL;
}

static bool key_is(const char *k, size_t klen, const char *want)
{
	return klen == strlen(want) && memcmp(k, want, klen) == 0;
}

static bool parse_msg(const uint8_t *p, const uint8_t *end, msg_info *m)
{
	memset(m, 0, sizeof(*m));
	m->start = p;
	m->end = end;
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
		if (key_is(k, klen, "id")) {
			if (!mp_uint(v, end, &m->id))
				return false;
			m->has_id = true;
		} else if (key_is(k, klen, "type") && !mp_str(v, end, &m->type, &m->type_len)) {
			return false;
		} else if (key_is(k, klen, "offset")) {
			if (!mp_uint(v, end, &m->offset))
				return false;
			m->has_offset = true;
		} else if (key_is(k, klen, "stream") && !mp_str(v, end, &m->stream, &m->stream_len)) {
			return false;
		} else if (key_is(k, klen, "data") && !mp_bin(v, end, &m->data, &m->data_len)) {
			return false;
		} else if (key_is(k, klen, "result") || key_is(k, klen, "error")) {
			m->result = v; /* an error reply keeps its error map here; check_exec_reply tells them apart */
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

/* One masked binary frame around a msgpack message (at most 1 KiB: requests are small). */
static void send_frame(conn *c, const uint8_t *msg, size_t n)
{
	static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
	uint8_t f[8 + 1024];
	size_t h = 0;
	if (n > 1024)
		die("request of %zu bytes: too large for send_frame", n);
	f[h++] = 0x82;
	if (n < 126) {
		f[h++] = (uint8_t)(0x80 | n);
	} else {
		f[h++] = 0x80 | 126;
		f[h++] = (uint8_t)(n >> 8);
		f[h++] = (uint8_t)n;
	}
	memcpy(f + h, key, 4);
	h += 4;
	for (size_t i = 0; i < n; i++)
		f[h + i] = msg[i] ^ key[i & 3];
	write_all(c->fd, f, h + n);
}

/* A msgpack writer for requests: only the forms they use. */
typedef struct {
	uint8_t b[1024];
	size_t n;
} mpw;

static void w_byte(mpw *w, uint8_t b)
{
	if (w->n == sizeof(w->b))
		die("request too large");
	w->b[w->n++] = b;
}

static void w_str(mpw *w, const char *s)
{
	size_t len = strlen(s);
	if (len < 32) {
		w_byte(w, (uint8_t)(0xa0 | len));
	} else if (len < 65536) {
		w_byte(w, 0xda);
		w_byte(w, (uint8_t)(len >> 8));
		w_byte(w, (uint8_t)len);
	} else {
		die("string too long");
	}
	for (size_t i = 0; i < len; i++)
		w_byte(w, (uint8_t)s[i]);
}

/* Always as uint64 (0xcf), as in ping. */
static void w_u64(mpw *w, uint64_t v)
{
	w_byte(w, 0xcf);
	for (int i = 0; i < 8; i++)
		w_byte(w, (uint8_t)(v >> (56 - 8 * i)));
}

void conn_send_exec(conn *c, uint64_t id, const char *const *argv, const char *cmd)
{
	mpw w = {.n = 0};
	size_t argc = 0;
	while (argv && argv[argc])
		argc++;
	if (argc > 15)
		die("too many arguments");
	w_byte(&w, 0x83);
	w_str(&w, "id");
	w_u64(&w, id);
	w_str(&w, "op");
	w_str(&w, "exec");
	if (argv) {
		w_str(&w, "argv");
		w_byte(&w, (uint8_t)(0x90 | argc));
		for (size_t i = 0; i < argc; i++)
			w_str(&w, argv[i]);
	} else {
		w_str(&w, "cmd");
		w_str(&w, cmd);
	}
	c->want_id = id;
	send_frame(c, w.b, w.n);
}

const char WIRE_TRUE[] = "true";

void conn_send_op(conn *c, uint64_t id, const char *op, const char *const *kv)
{
	wire_arg args[13];
	size_t n = 0;
	for (; kv && kv[2 * n]; n++) {
		if (n == 13) /* a fixmap holds 15 entries, id and op included */
			die("too many arguments");
		args[n] = (wire_arg){.key = kv[2 * n], .type = kv[2 * n + 1] == WIRE_TRUE ? ARG_TRUE : ARG_STR,
				     .str = kv[2 * n + 1]};
	}
	conn_send_req(c, id, op, args, n);
}

void conn_send_req(conn *c, uint64_t id, const char *op, const wire_arg *args, size_t n)
{
	mpw w = {.n = 0};
	if (n > 13) /* a fixmap holds 15 entries, id and op included */
		die("too many arguments");
	w_byte(&w, (uint8_t)(0x80 | (n + 2)));
	w_str(&w, "id");
	w_u64(&w, id);
	w_str(&w, "op");
	w_str(&w, op);
	for (size_t i = 0; i < n; i++) {
		w_str(&w, args[i].key);
		switch (args[i].type) {
		case ARG_STR:
			w_str(&w, args[i].str);
			break;
		case ARG_TRUE:
			w_byte(&w, 0xc3);
			break;
		case ARG_U64:
			w_u64(&w, args[i].u64);
			break;
		case ARG_STRS: {
			size_t k = 0;
			while (args[i].strs[k])
				k++;
			if (k > 15)
				die("an array of more than 15 strings");
			w_byte(&w, (uint8_t)(0x90 | k));
			for (size_t j = 0; j < k; j++)
				w_str(&w, args[i].strs[j]);
			break;
		}
		}
	}
	c->want_id = id;
	send_frame(c, w.b, w.n);
}

/* XORs p with the mask key; phase is the payload index of p[0]. Eight bytes at a time: byte by byte, masking
 * a gigabyte would cost the client more than unmasking it costs the agent. */
static void mask(uint8_t *p, size_t n, const uint8_t key[4], size_t phase)
{
	uint8_t k8[8];
	uint64_t k, v;
	for (size_t i = 0; i < 8; i++)
		k8[i] = key[(phase + i) & 3];
	memcpy(&k, k8, 8);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		memcpy(&v, p + i, 8);
		v ^= k;
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] ^= k8[i & 7];
}

/* A masked binary frame's header for a payload of n bytes, in the shortest form (RFC 6455 5.2); its size. */
static size_t frame_header(uint8_t h[14], uint64_t n, const uint8_t key[4])
{
	size_t at = 2;
	h[0] = 0x82;
	if (n < 126) {
		h[1] = (uint8_t)(0x80 | n);
	} else if (n < 65536) {
		h[1] = 0x80 | 126;
		h[at++] = (uint8_t)(n >> 8);
		h[at++] = (uint8_t)n;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[at++] = (uint8_t)(n >> (56 - 8 * i));
	}
	memcpy(h + at, key, 4);
	return at + 4;
}

/* The request's head ({"id", "op", args..., bin_key: bin32 header}) into w; the payload follows it. */
static void w_request_head(mpw *w, uint64_t id, const char *op, const wire_arg *args, size_t n, const char *bin_key,
			   size_t len)
{
	if (n > 12) /* a fixmap holds 15 entries: id, op and the bin included */
		die("too many arguments");
	if (len > UINT32_MAX)
		die("a bin of %zu bytes: too large", len);
	w_byte(w, (uint8_t)(0x80 | (n + 3)));
	w_str(w, "id");
	w_u64(w, id);
	w_str(w, "op");
	w_str(w, op);
	for (size_t i = 0; i < n; i++) {
		if (args[i].type != ARG_STR && args[i].type != ARG_U64)
			die("conn_send_bin takes strings and integers only");
		w_str(w, args[i].key);
		if (args[i].type == ARG_STR)
			w_str(w, args[i].str);
		else
			w_u64(w, args[i].u64);
	}
	w_str(w, bin_key);
	w_byte(w, 0xc6); /* bin32 */
	for (int i = 0; i < 4; i++)
		w_byte(w, (uint8_t)(len >> (24 - 8 * i)));
}

void conn_send_bin(conn *c, uint64_t id, const char *op, const wire_arg *args, size_t n, const char *bin_key,
		   uint8_t *data, size_t len)
{
	/* Not all zero: lws skips unmasking for a zero key, which a real client (a browser) never sends. */
	static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
	mpw w = {.n = 0};
	w_request_head(&w, id, op, args, n, bin_key, len);
	uint8_t h[14];
	size_t hn = frame_header(h, w.n + len, key);
	mask(w.b, w.n, key, 0);
	mask(data, len, key, w.n);
	/* One writev, so that the small head does not go out as a segment of its own (TCP_NODELAY is on). */
	struct iovec iov[3] = {{h, hn}, {w.b, w.n}, {data, len}};
	writev_all(c->fd, iov, 3);
}

void conn_send_chunk(conn *c, uint64_t id, const char *upload, uint64_t offset, uint8_t *data, size_t len)
{
	const wire_arg args[] = {{.key = "upload", .type = ARG_STR, .str = upload},
				 {.key = "offset", .type = ARG_U64, .u64 = offset}};
	conn_send_bin(c, id, "file.upload.chunk", args, 2, "data", data, len);
}

bool conn_fill(conn *c)
{
	if (c->in_frag) { /* keep the payload assembled so far, drop the frame headers between its parts */
		memmove(c->buf, c->buf + c->frag_at, c->frag_len);
		memmove(c->buf + c->frag_len, c->buf + c->off, c->len - c->off);
		c->len = c->frag_len + (c->len - c->off);
		c->off = c->frag_len;
		c->frag_at = 0;
	} else if (c->off) { /* the caller is done with everything before off */
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == c->cap)
		die("a message larger than %zu bytes", c->cap);
	ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
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
		if (len > c->cap || (uint64_t)(c->buf + c->len - payload) < len)
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
		bool fin = p[0] & 0x80;
		if (op == 0x2 && !c->in_frag && !fin) { /* the first part of a fragmented message */
			c->in_frag = true;
			c->frag_at = (size_t)(payload - c->buf);
			c->frag_len = len;
			continue;
		}
		if (op == 0x0 && c->in_frag) { /* a continuation: joined to what came before */
			memmove(c->buf + c->frag_at + c->frag_len, payload, len);
			c->frag_len += len;
			if (!fin)
				continue;
			c->in_frag = false;
			payload = c->buf + c->frag_at;
			len = c->frag_len;
		} else if (op != 0x2 || c->in_frag) {
			die("unexpected frame 0x%02x (text, or out of sequence)", p[0]);
		}
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

bool msg_is(const msg_info *m, const char *type)
{
	return m->type && key_is(m->type, m->type_len, type);
}

bool msg_str(const msg_info *m, const char *key, const char **s, size_t *len)
{
	const uint8_t *v = m->start ? mp_lookup(m->start, m->end, key) : NULL;
	return v && mp_str(v, m->end, s, len);
}

bool msg_uint(const msg_info *m, const char *key, uint64_t *out)
{
	const uint8_t *v = m->start ? mp_lookup(m->start, m->end, key) : NULL;
	return v && mp_uint(v, m->end, out);
}

bool msg_str_is(const msg_info *m, const char *key, const char *want)
{
	const char *s;
	size_t len;
	return msg_str(m, key, &s, &len) && key_is(s, len, want);
}

bool msg_true(const msg_info *m, const char *key)
{
	const uint8_t *v = m->start ? mp_lookup(m->start, m->end, key) : NULL;
	return v && v < m->end && *v == 0xc3;
}

bool msg_nil(const msg_info *m, const char *key)
{
	const uint8_t *v = m->start ? mp_lookup(m->start, m->end, key) : NULL;
	return v && v < m->end && *v == 0xc0;
}

/* The value under a path of map keys in the result, or NULL. */
static const uint8_t *result_at(const msg_info *m, const char *const *path)
{
	const uint8_t *v = m->result;
	for (; v && *path; path++)
		v = mp_lookup(v, m->end, *path);
	return v;
}

bool msg_result_uint(const msg_info *m, const char *const *path, uint64_t *out)
{
	const uint8_t *v = result_at(m, path);
	return v && mp_uint(v, m->end, out);
}

bool msg_result_str(const msg_info *m, const char *const *path, const char **s, size_t *len)
{
	const uint8_t *v = result_at(m, path);
	return v && mp_str(v, m->end, s, len);
}

bool msg_result_true(const msg_info *m, const char *const *path)
{
	const uint8_t *v = result_at(m, path);
	return v && v < m->end && *v == 0xc3;
}

/* Prints the error reply's code and message, if that is what m is. */
static void die_if_error(const msg_info *m)
{
	const char *code = "?", *text = "?";
	size_t code_len = 1, text_len = 1;
	const uint8_t *v = m->result ? mp_lookup(m->result, m->end, "code") : NULL;
	if (!v)
		return;
	mp_str(v, m->end, &code, &code_len);
	if ((v = mp_lookup(m->result, m->end, "message")))
		mp_str(v, m->end, &text, &text_len);
	die("error reply %.*s: %.*s", (int)code_len, code, (int)text_len, text);
}

void check_op_reply(conn *c, const msg_info *m)
{
	check_reply(c, m);
	die_if_error(m);
}

void check_exec_reply(conn *c, const msg_info *m)
{
	check_reply(c, m);
	die_if_error(m);
	uint64_t code, lost_out, lost_err;
	if (!msg_result_uint(m, (const char *const[]){"status", "exitCode", NULL}, &code) ||
	    !msg_result_uint(m, (const char *const[]){"stdoutLost", NULL}, &lost_out) ||
	    !msg_result_uint(m, (const char *const[]){"stderrLost", NULL}, &lost_err))
		die("exec reply %llu without status.exitCode, stdoutLost or stderrLost", (unsigned long long)m->id);
	if (code || lost_out || lost_err)
		die("exec %llu: exit code %llu, %llu + %llu bytes of output lost", (unsigned long long)m->id,
		    (unsigned long long)code, (unsigned long long)lost_out, (unsigned long long)lost_err);
}

/* conn_fill, dying at EOF or at the second read in a row that timed out (*empty counts them). */
static void fill_or_die(conn *c, int *empty)
{
	size_t before = c->len - c->off; /* compaction keeps this: it changes only when bytes came */
	if (!conn_fill(c))
		die("peer closed the connection");
	*empty = c->len - c->off == before ? *empty + 1 : 0;
	if (*empty >= 2)
		die("nothing received for 10 s");
}

void conn_wait(conn *c, msg_info *m)
{
	int empty = 0;
	while (!conn_next(c, m))
		fill_or_die(c, &empty);
}

void conn_ping(conn *c, uint64_t id)
{
	msg_info m;
	conn_send_ping(c, id);
	conn_wait(c, &m);
	check_reply(c, &m);
}

/* ---- opening ---- */

void conn_open(conn *c, uint16_t port, const char *token) { conn_open_sized(c, port, token, CONN_BUF_BYTES); }

void conn_close(conn *c)
{
	close(c->fd);
	free(c->buf);
	c->buf = NULL;
}

void conn_open_sized(conn *c, uint16_t port, const char *token, size_t cap)
{
	memset(c, 0, sizeof(*c));
	c->cap = cap;
	if (!(c->buf = malloc(cap)))
		die("out of memory");
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
	int empty = 0;
	while (!eoh) {
		if (c->len == c->cap - 1)
			die("no upgrade response");
		fill_or_die(c, &empty);
		c->buf[c->len] = 0;
		eoh = strstr((char *)c->buf, "\r\n\r\n");
	}
	if (strncmp((char *)c->buf, "HTTP/1.1 101", 12) != 0)
		die("upgrade refused: %.*s", (int)strcspn((char *)c->buf, "\r\n"), (char *)c->buf);
	c->off = (size_t)(eoh + 4 - (char *)c->buf);
	msg_info m;
	conn_wait(c, &m);
	if (!m.type || m.type_len != 5 || memcmp(m.type, "ready", 5) != 0)
		die("the first message is not \"ready\"");
}
