/* proto: the runra wire protocol (docs/protocol.md). Every WebSocket message is one msgpack map.
 *
 * Pure: encodes and decodes, validates types and sizes, never does I/O and keeps no globals, so it can be
 * unit-tested and fuzzed alone. Decoding untrusted bytes is bounded (depth, element count, sizes) before
 * msgpack-c sees them. Encoding writes into an ra_buf, created with a cap and with headroom the transport
 * needs in front of the payload (the caller's business, not ours). */
#ifndef RA_PROTO_H
#define RA_PROTO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RA_PROTO_VERSION 1
#define RA_PROTO_SUBPROTOCOL "runra.agent.v1"

/* ---- error codes: the stable table of docs/protocol.md ---- */
typedef enum {
	RA_REPLY_LATER = -1,       /* not a wire code: the op answers later (a long-running request) */
	RA_OK = 0,
	RA_ERR_INVALID_CONFIG,     /* an argument or setting is wrong (the SDK's INVALID_CONFIG) */
	RA_ERR_INVALID_MESSAGE,    /* not a decodable msgpack map, or the envelope is wrong */
	RA_ERR_MESSAGE_TOO_LARGE,  /* over the per-message size limit */
	RA_ERR_UNKNOWN_OP,         /* no such op */
	RA_ERR_UNSUPPORTED,        /* a reserved op this agent does not implement yet */
	RA_ERR_NOT_FOUND,
	RA_ERR_ALREADY_EXISTS,
	RA_ERR_PERMISSION_DENIED,
	RA_ERR_TIMEOUT,
	RA_ERR_RESOURCE_EXHAUSTED,
	RA_ERR_RATE_LIMITED,
	RA_ERR_UNAUTHENTICATED,
	RA_ERR_UNAVAILABLE,        /* the agent is shutting down or cannot serve now */
	RA_ERR_INTERNAL,
	RA_ERR__COUNT
} ra_err;

const char *ra_err_name(ra_err code);
bool ra_err_retryable(ra_err code);
/* The one table from errno to protocol code. */
ra_err ra_err_from_errno(int err);

/* ---- a growable byte buffer with a hard cap and reserved headroom ---- */
typedef struct {
	uint8_t *data;   /* headroom bytes, then len bytes of payload */
	size_t headroom; /* bytes reserved in front of the payload (e.g. for a frame header) */
	size_t len;      /* payload bytes */
	size_t alloc;    /* bytes allocated after the headroom */
	size_t cap;      /* payload may never exceed this */
	bool failed;     /* sticky: an append was refused (cap or memory); the content is incomplete */
} ra_buf;

void ra_buf_init(ra_buf *b, size_t headroom, size_t cap);
/* Appends n bytes; 0, or -ENOMEM / -EMSGSIZE (and b->failed set). */
int ra_buf_append(ra_buf *b, const void *p, size_t n);
static inline uint8_t *ra_buf_payload(const ra_buf *b) { return b->data ? b->data + b->headroom : NULL; }
void ra_buf_reset(ra_buf *b);
/* Allocates room for n payload bytes at once (one allocation instead of doubling); 0 or -errno. */
int ra_buf_reserve(ra_buf *b, size_t n);
void ra_buf_free(ra_buf *b);
/* Hands the allocation over to the caller (payload at headroom; *alloc bytes after it); b is left empty. */
uint8_t *ra_buf_steal(ra_buf *b, size_t *len, size_t *alloc);
/* Gives an empty buffer an existing allocation of headroom + alloc bytes (from ra_buf_steal). */
void ra_buf_adopt(ra_buf *b, uint8_t *data, size_t alloc);

/* The length (1 to 4) of the well-formed UTF-8 character at s (n bytes available), or 0: overlong forms,
 * surrogates and code points past U+10FFFF count as malformed, as a strict JSON parser would reject them. */
size_t ra_utf8_char_length(const unsigned char *s, size_t n);

/* ---- decoding a request ---- */
typedef enum {
	RA_SCAN_OK = 0,
	RA_SCAN_TRUNCATED,
	RA_SCAN_TRAILING,
	RA_SCAN_BAD_BYTE,
	RA_SCAN_TOO_DEEP,
	RA_SCAN_TOO_MANY,
	RA_SCAN_COUNT_EXCEEDS_INPUT,
} ra_scan_result;

/* Walks exactly one msgpack object spanning all of buf without allocating; rejects what msgpack-c would
 * over-allocate for. */
ra_scan_result ra_scan(const uint8_t *buf, size_t len);
const char *ra_scan_describe(ra_scan_result r);

typedef struct {
	msgpack_unpacked unpacked; /* owns the object tree; strings point into the caller's input buffer */
	const msgpack_object_map *map;
	bool has_id;
	uint64_t id;
	const char *op; /* not NUL-terminated: op_len bytes */
	uint32_t op_len;
} ra_request;

/* Decodes a request. On error returns the code and sets *why to a static description; req->has_id tells
 * whether the reply may carry an id. Always call ra_request_free afterwards. The input buffer must outlive
 * req. */
ra_err ra_request_decode(ra_request *req, const uint8_t *buf, size_t len, const char **why);
void ra_request_free(ra_request *req);
bool ra_request_op_is(const ra_request *req, const char *op);

/* Argument access: NULL when the key is absent. */
const msgpack_object *ra_map_get(const msgpack_object_map *map, const char *key);

/* ---- op arguments ---- */

/* The reason an op failed, written by the op, sent as the error's message. */
typedef struct {
	char text[512];
} ra_why;

ra_err ra_fail(ra_why *why, ra_err code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Typed access to a request's arguments. Each returns RA_OK, or RA_ERR_INVALID_CONFIG with a message naming
 * the key. `required` false: an absent (or nil) key leaves *out untouched. */
ra_err ra_arg_u64(const ra_request *req, const char *key, bool required, uint64_t max, uint64_t *out, ra_why *why);
/* The same, from min: "KEY must be an integer from MIN to MAX". */
ra_err ra_arg_u64_range(const ra_request *req, const char *key, bool required, uint64_t min, uint64_t max,
			uint64_t *out, ra_why *why);
ra_err ra_arg_bool(const ra_request *req, const char *key, bool *out, ra_why *why);
/* A str without NUL bytes, copied NUL-terminated (malloc'd; *out stays NULL when absent). */
ra_err ra_arg_cstr(const ra_request *req, const char *key, bool required, size_t max_len, char **out,
		   ra_why *why);
/* bin or str, not copied. */
ra_err ra_arg_bytes(const ra_request *req, const char *key, const uint8_t **out, uint32_t *len, bool *present,
		    ra_why *why);
/* Copies a msgpack str into a NUL-terminated malloc'd string; NULL if it holds a NUL byte (or no memory). */
char *ra_obj_cstr(const msgpack_object *o);

/* ---- encoding ---- */
typedef struct {
	ra_buf buf;
	msgpack_packer pk;
} ra_enc;

void ra_enc_init(ra_enc *e, size_t headroom, size_t cap);
void ra_enc_free(ra_enc *e);
static inline bool ra_enc_failed(const ra_enc *e) { return e->buf.failed; }

void ra_enc_map(ra_enc *e, uint32_t n);
void ra_enc_array(ra_enc *e, uint32_t n);
void ra_enc_str(ra_enc *e, const char *s);
void ra_enc_strn(ra_enc *e, const char *s, size_t n);
void ra_enc_u64(ra_enc *e, uint64_t v);
void ra_enc_i64(ra_enc *e, int64_t v);
void ra_enc_bool(ra_enc *e, bool v);
void ra_enc_f64(ra_enc *e, double v);
void ra_enc_nil(ra_enc *e);
void ra_enc_bin(ra_enc *e, const void *p, size_t n);
/* Copies one decoded object verbatim (used to echo a ping payload). */
void ra_enc_object(ra_enc *e, const msgpack_object *o);

/* {type:"reply", id, result:{ ...n entries the caller packs next... }} */
void ra_enc_reply_begin(ra_enc *e, uint64_t id, uint32_t result_entries);
/* {type:"reply", [id,] error:{code, message, retryable}} */
void ra_enc_error(ra_enc *e, bool has_id, uint64_t id, ra_err code, const char *message);

#endif
