/* wire.h: the least of TCP, WebSocket and msgpack that the benchmark client needs. No libraries: the
 * client must be cheap and its cost obvious, so that it measures the agent and not itself. */
#ifndef BENCH_WIRE_H
#define BENCH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One message frame we send: 2 header bytes + 4 mask bytes + 21 msgpack bytes. */
#define PING_FRAME_BYTES 27
#define CONN_BUF_BYTES 65536

/* A client connection. echo: the peer is the TCP echo server, so there is no handshake and what comes back
 * is our own masked frame; it goes through the same parser as the agent's replies. */
typedef struct {
	int fd;
	bool echo;
	uint8_t buf[CONN_BUF_BYTES];
	size_t off, len; /* buf[off..len) is not parsed yet */
	uint64_t want_id; /* the id of the ping in flight (0: none) */
} conn;

/* What a message holds, as far as we care. type is not NUL-terminated. */
typedef struct {
	bool has_id;
	uint64_t id;
	const char *type;
	size_t type_len;
} msg_info;

uint64_t now_ns(void);
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

int tcp_connect(uint16_t port); /* blocking, TCP_NODELAY; -1 with errno when refused */
void write_all(int fd, const void *p, size_t n);

/* Opens a connection: for the agent, the upgrade and the wait for the ready message; token NULL means echo. */
void conn_open(conn *c, uint16_t port, const char *token);
void conn_send_ping(conn *c, uint64_t id);
/* One read(); false at EOF. Nonblocking callers get true and nothing new on EAGAIN. */
bool conn_fill(conn *c);
/* Takes the next complete data message out of buf into *m: 1 got one, 0 need more bytes. Answers PINGs and
 * dies on CLOSE or malformed frames. The payload stays valid until the next call. */
int conn_next(conn *c, msg_info *m);
/* Dies unless m is the reply to the ping in flight (right id, and no "type" other than "reply"). */
void check_reply(conn *c, const msg_info *m);
/* Blocking: sends ping id and waits for its reply. */
void conn_ping(conn *c, uint64_t id);

#endif
