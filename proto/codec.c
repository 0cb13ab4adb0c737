/* Request decoding and message encoding (the envelope of docs/protocol.md). */
#include <string.h>

#include "proto.h"
#include "ra_limits.h"

const msgpack_object *ra_map_get(const msgpack_object_map *map, const char *key)
{
	size_t klen = strlen(key);
	for (uint32_t i = 0; i < map->size; i++) {
		const msgpack_object *k = &map->ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen && memcmp(k->via.str.ptr, key, klen) == 0)
			return &map->ptr[i].val;
	}
	return NULL;
}

static ra_err invalid(const char **why, const char *text)
{
	*why = text;
	return RA_ERR_INVALID_MESSAGE;
}

static ra_err decode_envelope(ra_request *req, const char **why)
{
	const msgpack_object *root = &req->unpacked.data;
	if (root->type != MSGPACK_OBJECT_MAP)
		return invalid(why, "a message must be a msgpack map");
	req->map = &root->via.map;

	const msgpack_object *id = ra_map_get(req->map, "id");
	if (!id)
		return invalid(why, "missing id");
	if (id->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return invalid(why, "id must be an unsigned integer");
	req->has_id = true;
	req->id = id->via.u64;

	const msgpack_object *op = ra_map_get(req->map, "op");
	if (!op || op->type != MSGPACK_OBJECT_STR)
		return invalid(why, "op must be a string");
	if (op->via.str.size == 0 || op->via.str.size > RA_PROTO_MAX_OP_LEN)
		return invalid(why, "op is empty or too long");
	req->op = op->via.str.ptr;
	req->op_len = op->via.str.size;
	return RA_OK;
}

ra_err ra_request_decode(ra_request *req, const uint8_t *buf, size_t len, const char **why)
{
	memset(req, 0, sizeof(*req));
	msgpack_unpacked_init(&req->unpacked);
	*why = "";

	ra_scan_result scanned = ra_scan(buf, len);
	if (scanned != RA_SCAN_OK)
		return invalid(why, ra_scan_describe(scanned));

	size_t off = 0;
	msgpack_unpack_return r = msgpack_unpack_next(&req->unpacked, (const char *)buf, len, &off);
	if (r != MSGPACK_UNPACK_SUCCESS || off != len)
		return invalid(why, "not valid msgpack");
	return decode_envelope(req, why);
}

void ra_request_free(ra_request *req) { msgpack_unpacked_destroy(&req->unpacked); }

bool ra_request_op_is(const ra_request *req, const char *op)
{
	return req->op && strlen(op) == req->op_len && memcmp(req->op, op, req->op_len) == 0;
}

/* ---- encoding ---- */

static int enc_write(void *data, const char *p, size_t n) { return ra_buf_append(data, p, n) ? -1 : 0; }

void ra_enc_init(ra_enc *e, size_t headroom, size_t cap)
{
	ra_buf_init(&e->buf, headroom, cap);
	msgpack_packer_init(&e->pk, &e->buf, enc_write);
}

void ra_enc_free(ra_enc *e) { ra_buf_free(&e->buf); }

/* msgpack's pack functions report failure through their return value; the buffer's sticky flag already
 * records it, so the encoder is checked once, at the end (ra_enc_failed). */
void ra_enc_map(ra_enc *e, uint32_t n) { (void)msgpack_pack_map(&e->pk, n); }
void ra_enc_array(ra_enc *e, uint32_t n) { (void)msgpack_pack_array(&e->pk, n); }
void ra_enc_str(ra_enc *e, const char *s) { ra_enc_strn(e, s, strlen(s)); }
void ra_enc_u64(ra_enc *e, uint64_t v) { (void)msgpack_pack_uint64(&e->pk, v); }
void ra_enc_i64(ra_enc *e, int64_t v) { (void)msgpack_pack_int64(&e->pk, v); }
void ra_enc_nil(ra_enc *e) { (void)msgpack_pack_nil(&e->pk); }
void ra_enc_object(ra_enc *e, const msgpack_object *o) { (void)msgpack_pack_object(&e->pk, *o); }

void ra_enc_f64(ra_enc *e, double v) { (void)msgpack_pack_double(&e->pk, v); }

void ra_enc_bool(ra_enc *e, bool v)
{
	if (v)
		(void)msgpack_pack_true(&e->pk);
	else
		(void)msgpack_pack_false(&e->pk);
}

void ra_enc_strn(ra_enc *e, const char *s, size_t n)
{
	if (n > UINT32_MAX) { /* msgpack-c would silently truncate the length */
		e->buf.failed = true;
		return;
	}
	(void)msgpack_pack_str_with_body(&e->pk, s, n);
}

void ra_enc_bin(ra_enc *e, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		e->buf.failed = true;
		return;
	}
	(void)msgpack_pack_bin_with_body(&e->pk, p, n);
}

void ra_enc_reply_begin(ra_enc *e, uint64_t id, uint32_t result_entries)
{
	ra_enc_map(e, 3);
	ra_enc_str(e, "type");
	ra_enc_str(e, "reply");
	ra_enc_str(e, "id");
	ra_enc_u64(e, id);
	ra_enc_str(e, "result");
	ra_enc_map(e, result_entries);
}

void ra_enc_error(ra_enc *e, bool has_id, uint64_t id, ra_err code, const char *message)
{
	size_t mlen = strnlen(message, RA_PROTO_MAX_ERROR_MESSAGE);
	if (mlen == RA_PROTO_MAX_ERROR_MESSAGE) /* cut at a UTF-8 character boundary */
		while (mlen > 0 && ((unsigned char)message[mlen] & 0xc0) == 0x80)
			mlen--;
	ra_enc_map(e, has_id ? 3 : 2);
	ra_enc_str(e, "type");
	ra_enc_str(e, "reply");
	if (has_id) {
		ra_enc_str(e, "id");
		ra_enc_u64(e, id);
	}
	ra_enc_str(e, "error");
	ra_enc_map(e, 3);
	ra_enc_str(e, "code");
	ra_enc_str(e, ra_err_name(code));
	ra_enc_str(e, "message");
	ra_enc_strn(e, message, mlen);
	ra_enc_str(e, "retryable");
	ra_enc_bool(e, ra_err_retryable(code));
}
