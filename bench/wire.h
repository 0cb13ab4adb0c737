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
/* Enough for several stream messages (64 KiB of output + ~60 bytes each) per read(). */
#define CONN_BIG_BUF_BYTES (256u << 10)

/* A client connection. echo: the peer is the TCP echo server, so there is no handshake and what comes back
 * is our own masked frame; it goes through the same parser as the agent's replies. */
typedef struct {
	int fd;
	bool echo;
	uint8_t *buf;
	size_t cap;
	size_t off, len; /* buf[off..len) is not parsed yet */
	/* A message that came in fragments is reassembled in place at buf[frag_at..frag_at+frag_len). */
	bool in_frag;
	size_t frag_at, frag_len;
	uint64_t want_id; /* the id of the request in flight (0: none) */
} conn;

/* What a message holds, as far as we care. Strings are not NUL-terminated; pointers stay valid until the
 * next conn_next or conn_fill. */
typedef struct {
	bool has_id, has_offset;
	uint64_t id, offset;
	const char *type, *stream;
	size_t type_len, stream_len;
	const uint8_t *data; /* "data" (bin) */
	size_t data_len;
	const uint8_t *result, *end; /* the raw "result" value (NULL: none), and the end of the message */
	const uint8_t *start;        /* the message's map, for msg_str and msg_uint */
} msg_info;

uint64_t now_ns(void);
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

int tcp_connect(uint16_t port); /* blocking, TCP_NODELAY; -1 with errno when refused */
void write_all(int fd, const void *p, size_t n);

/* Opens a connection: for the agent, the upgrade and the wait for the ready message; token NULL means echo.
 * conn_open_sized takes the buffer size: the largest message it can hold. */
void conn_open(conn *c, uint16_t port, const char *token);
void conn_open_sized(conn *c, uint16_t port, const char *token, size_t cap);
void conn_close(conn *c);
void conn_send_ping(conn *c, uint64_t id);
/* {"id": id, "op": "exec", "argv": [argv...]} or, with argv NULL, {"id", "op": "exec", "cmd": cmd}. */
void conn_send_exec(conn *c, uint64_t id, const char *const *argv, const char *cmd);
/* Marks a true (bool) value among conn_send_op's string pairs. */
extern const char WIRE_TRUE[];
/* {"id": id, "op": op, key: value...}: kv holds key, value pairs, NULL-terminated; every value is a string,
 * or WIRE_TRUE for true. The request must fit in 1 KiB. */
void conn_send_op(conn *c, uint64_t id, const char *op, const char *const *kv);
/* One argument of conn_send_req: a string, true, an unsigned integer or an array of strings. */
typedef struct {
	const char *key;
	enum { ARG_STR, ARG_TRUE, ARG_U64, ARG_STRS } type;
	const char *str;
	uint64_t u64;
	const char *const *strs; /* NULL-terminated, at most 15 */
} wire_arg;
/* conn_send_op with typed arguments: {"id": id, "op": op, args[0].key: args[0]'s value, ...}. */
void conn_send_req(conn *c, uint64_t id, const char *op, const wire_arg *args, size_t n);
/* {"id": id, "op": op, args (strings and integers only, 12 at most)..., bin_key: data as bin} in one frame.
 * Masks data in place: the caller's buffer holds garbage afterwards. Does not set want_id: several such
 * requests may be in flight. */
void conn_send_bin(conn *c, uint64_t id, const char *op, const wire_arg *args, size_t n, const char *bin_key,
		   uint8_t *data, size_t len);
/* {"id", "op": "file.upload.chunk", "upload", "offset", "data": bin}: conn_send_bin. */
void conn_send_chunk(conn *c, uint64_t id, const char *upload, uint64_t offset, uint8_t *data, size_t len);
/* One read(); false at EOF. Nonblocking callers get true and nothing new on EAGAIN. */
bool conn_fill(conn *c);
/* Takes the next complete data message out of buf into *m: 1 got one, 0 need more bytes. Answers PINGs and
 * dies on CLOSE or malformed frames. The payload stays valid until the next call. */
int conn_next(conn *c, msg_info *m);
/* Dies unless m is the reply to the ping in flight (right id, and no "type" other than "reply"). */
void check_reply(conn *c, const msg_info *m);
bool msg_is(const msg_info *m, const char *type);
/* A string or an unsigned integer at the top level of the message (an event's "event", "path", "seq"; a
 * gap's "from" and "to"); false if absent or another type. */
bool msg_str(const msg_info *m, const char *key, const char **s, size_t *len);
bool msg_uint(const msg_info *m, const char *key, uint64_t *out);
/* Whether the top-level string under key is exactly want. */
bool msg_str_is(const msg_info *m, const char *key, const char *want);
/* Whether the top-level value under key is true (a tunnel message's "eof", "closed"), or nil ("error"). */
bool msg_true(const msg_info *m, const char *key);
bool msg_nil(const msg_info *m, const char *key);
/* An unsigned integer in the reply's result, under a path of map keys (NULL-terminated); false if absent. */
bool msg_result_uint(const msg_info *m, const char *const *path, uint64_t *out);
/* A string or a true bool in the reply's result, under a path of map keys; false if absent or another type. */
bool msg_result_str(const msg_info *m, const char *const *path, const char **s, size_t *len);
bool msg_result_true(const msg_info *m, const char *const *path);
/* check_reply, and dies with its code and message if m is an error reply. */
void check_op_reply(conn *c, const msg_info *m);
/* Dies unless m is the reply to the exec in flight and says exit code 0 with no output lost. */
void check_exec_reply(conn *c, const msg_info *m);
/* Blocking: the next message into *m. Dies when the peer closes, or when nothing came for 10 s (a read that
 * times out after the socket's 5 s returns nothing; a stalled peer must end the run, not hang it). */
void conn_wait(conn *c, msg_info *m);
/* Blocking: sends ping id and waits for its reply. */
void conn_ping(conn *c, uint64_t id);

#endif
