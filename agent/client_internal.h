/* client (internal): the connection layer of the debug client and the commands built on it. */
#ifndef RA_CLIENT_INTERNAL_H
#define RA_CLIENT_INTERNAL_H

#include <ev.h>
#include <stdbool.h>
#include <stdio.h>

#include "../proto/proto.h"

/* One debug command: what it sends once the agent is ready, and what it does with each message. */
typedef struct client_command {
	const char *name;
	bool http_health; /* GET /healthz instead of a WebSocket */
	bool no_timeout;  /* runs as long as the remote process (exec) */
	bool until_signal; /* runs until SIGINT or SIGTERM, which end it with status 0 (watch) */
	int (*parse)(int argc, char **argv);            /* its own options; 0, or 2 on a usage error */
	void (*start)(void);                            /* the agent is ready: send the request(s) */
	void (*on_message)(const msgpack_object_map *m); /* every message after ready */
	const char *usage;
} client_command;

extern const client_command client_commands[];

/* connection layer (client.c) */
bool client_json(void);
const char *client_url(void);
struct ev_loop *client_loop(void);
/* Starts a request {id, op, ...}: the caller adds `args` more key/value pairs, then calls client_send. */
ra_enc *client_request(uint64_t id, const char *op, uint32_t args);
void client_send(ra_enc *e);
double client_now(void);
/* The agent's maxMessageBytes from its ready message; 0 before it, or if it did not say. */
uint64_t client_max_message_bytes(void);
/* Gives up ms from now instead (a request the agent may hold longer, like port.expose with waitMs). */
void client_set_timeout_ms(double ms);
void client_finish(int exit_code);
/* CODE: message on stderr (JSON with --json), as client_fail does, but the command goes on. */
void client_warn(const char *code, const char *message);
void client_fail(const char *code, const char *message);
/* An error reply's code and message, reported like client_fail. */
void client_report_error(const msgpack_object *err);
/* The same, as client_warn: the command goes on. suffix is appended to the message ("" for none). */
void client_warn_error(const msgpack_object *err, const char *suffix);
/* Always valid JSON: invalid UTF-8 bytes in strings become U+FFFD, bin is a base64 string, a non-string map
 * key is the JSON text of its value as a string, NaN and infinities are null. */
void client_print_json(FILE *out, const msgpack_object *o);
bool client_str_is(const msgpack_object *o, const char *s);
/* The body of an HTTP /healthz answer (health command). */
void client_health_result(int status, const char *body, size_t len);

#endif
