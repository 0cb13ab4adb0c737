/* Unit tests of proto/: the pre-scan, request decoding (valid, malformed and hostile input), encoding and
 * the error table. */
#include <errno.h>

#include "../../proto/proto.h"
#include "../../proto/ra_limits.h"
#include "../../proto/sha256.h"
#include "test.h"

typedef struct {
	uint8_t b[256];
	size_t n;
} bytes;

static bytes hex(const char *s)
{
	bytes out = {.n = 0};
	while (s[0] && s[1] && out.n < sizeof(out.b)) {
		unsigned v;
		sscanf(s, "%2x", &v);
		out.b[out.n++] = (uint8_t)v;
		s += 2;
		while (*s == ' ')
			s++;
	}
	return out;
}

static ra_err decode_hex(const char *h, ra_request *req, const char **why)
{
	bytes b = hex(h);
	return ra_request_decode(req, b.b, b.n, why);
}

static ra_enc encode_request(uint64_t id, const char *op)
{
	ra_enc e;
	ra_enc_init(&e, 0, 1 << 20);
	ra_enc_map(&e, 2);
	ra_enc_str(&e, "id");
	ra_enc_u64(&e, id);
	ra_enc_str(&e, "op");
	ra_enc_str(&e, op);
	return e;
}

static void test_valid_request(void)
{
	ra_enc e = encode_request(42, "ping");
	ra_request req;
	const char *why;
	CHECK_INT(ra_request_decode(&req, ra_buf_payload(&e.buf), e.buf.len, &why), RA_OK);
	CHECK(req.has_id);
	CHECK_INT(req.id, 42);
	CHECK(ra_request_op_is(&req, "ping"));
	CHECK(!ra_request_op_is(&req, "pin"));
	CHECK(!ra_request_op_is(&req, "pingx"));
	ra_request_free(&req);
	ra_enc_free(&e);
}

static void test_large_id(void)
{
	ra_enc e = encode_request(UINT64_MAX, "info");
	ra_request req;
	const char *why;
	CHECK_INT(ra_request_decode(&req, ra_buf_payload(&e.buf), e.buf.len, &why), RA_OK);
	CHECK(req.id == UINT64_MAX);
	ra_request_free(&req);
	ra_enc_free(&e);
}

static void expect_invalid(const char *h, int expect_id, const char *why_part)
{
	ra_request req;
	const char *why;
	ra_err code = decode_hex(h, &req, &why);
	CHECK_INT(code, RA_ERR_INVALID_MESSAGE);
	CHECK_INT(req.has_id, expect_id);
	if (!strstr(why, why_part)) {
		FAILED_AT();
		fprintf(stderr, "input %s: reason \"%s\" lacks \"%s\"\n", h, why, why_part);
		test_failures++;
	}
	ra_request_free(&req);
}

static void test_malformed(void)
{
	expect_invalid("", 0, "ends in the middle");
	expect_invalid("c1", 0, "invalid msgpack type");
	expect_invalid("92 01 02", 0, "must be a msgpack map");             /* [1, 2] */
	expect_invalid("a4 70 69 6e 67", 0, "must be a msgpack map");       /* "ping" */
	expect_invalid("81 a2 6f 70 a4 70 69 6e 67", 0, "missing id");     /* {op:"ping"} */
	expect_invalid("82 a2 69 64 ff a2 6f 70 a4 70 69 6e 67", 0, "unsigned integer"); /* id: -1 */
	expect_invalid("82 a2 69 64 a1 31 a2 6f 70 a4 70 69 6e 67", 0, "unsigned integer"); /* id: "1" */
	expect_invalid("81 a2 69 64 07", 1, "op must be a string");          /* {id:7} */
	expect_invalid("82 a2 69 64 07 a2 6f 70 07", 1, "op must be a string");
	expect_invalid("82 a2 69 64 07 a2 6f 70 a0", 1, "empty or too long");
	expect_invalid("81 a2 69 64 07 00", 0, "bytes follow");             /* trailing byte */
	expect_invalid("82 a2 69 64 07 a2 6f", 0, "ends in the middle");       /* truncated string */
	expect_invalid("82 a2 69 64", 0, "exceeds the message size");        /* 4 objects declared, 3 bytes */
	expect_invalid("db ff ff ff ff 41", 0, "ends in the middle");       /* str32 claiming 4 GiB */
}

static void test_hostile_counts(void)
{
	/* msgpack-c#1013: a 5-byte map32 claiming 4 billion entries must not reach the allocator. */
	expect_invalid("dd ff 00 00 00", 0, "exceeds the message size");
	expect_invalid("df ff ff ff ff", 0, "exceeds the message size");
	expect_invalid("dc ff ff", 0, "exceeds the message size");
}

static void test_depth_limit(void)
{
	uint8_t buf[64];
	size_t n = 0;
	for (int i = 0; i < RA_PROTO_MAX_DEPTH; i++)
		buf[n++] = 0x91; /* [ [ [ ... */
	buf[n++] = 0xc0;
	CHECK_INT(ra_scan(buf, n), RA_SCAN_OK);
	n = 0;
	for (int i = 0; i < RA_PROTO_MAX_DEPTH + 1; i++)
		buf[n++] = 0x91;
	buf[n++] = 0xc0;
	CHECK_INT(ra_scan(buf, n), RA_SCAN_TOO_DEEP);
}

static void test_element_budget(void)
{
	size_t count = RA_PROTO_MAX_ELEMENTS + 1;
	size_t len = 5 + count;
	uint8_t *buf = malloc(len);
	buf[0] = 0xdd;
	buf[1] = (uint8_t)(count >> 24);
	buf[2] = (uint8_t)(count >> 16);
	buf[3] = (uint8_t)(count >> 8);
	buf[4] = (uint8_t)count;
	memset(buf + 5, 0xc0, count);
	CHECK_INT(ra_scan(buf, len), RA_SCAN_TOO_MANY);
	CHECK_INT(ra_scan(buf, len - 1), RA_SCAN_COUNT_EXCEEDS_INPUT);
	free(buf);
}

static void test_scan_all_types(void)
{
	/* One of each msgpack type, inside an array: every header length must be walked exactly. */
	bytes b = hex("dc 00 17 c0 c2 c3 7f e0 cc ff cd ff ff ce 00 00 00 01 cf 00 00 00 00 00 00 00 01"
		      " d0 80 d1 80 00 d2 80 00 00 00 d3 80 00 00 00 00 00 00 00 ca 00 00 00 00"
		      " cb 00 00 00 00 00 00 00 00 a1 41 d9 01 41 c4 01 00 d4 01 00 c7 01 05 00"
		      " 80 90 81 01 02");
	CHECK_INT(ra_scan(b.b, b.n), RA_SCAN_OK);
	for (size_t cut = 0; cut < b.n; cut++) {
		ra_scan_result r = ra_scan(b.b, cut);
		CHECK(r == RA_SCAN_TRUNCATED || r == RA_SCAN_COUNT_EXCEEDS_INPUT);
	}
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	size_t off = 0;
	CHECK_INT(msgpack_unpack_next(&up, (const char *)b.b, b.n, &off), MSGPACK_UNPACK_SUCCESS);
	CHECK_INT(off, b.n);
	CHECK_INT(up.data.via.array.size, 23);
	msgpack_unpacked_destroy(&up);
}

static ra_err decode_enc(ra_enc *e, msgpack_unpacked *up)
{
	size_t off = 0;
	msgpack_unpacked_init(up);
	if (ra_scan(ra_buf_payload(&e->buf), e->buf.len) != RA_SCAN_OK)
		return RA_ERR_INVALID_MESSAGE;
	if (msgpack_unpack_next(up, (const char *)ra_buf_payload(&e->buf), e->buf.len, &off) != MSGPACK_UNPACK_SUCCESS)
		return RA_ERR_INVALID_MESSAGE;
	return off == e->buf.len ? RA_OK : RA_ERR_INVALID_MESSAGE;
}

static bool obj_str_is(const msgpack_object *o, const char *s)
{
	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static void test_error_reply_encoding(void)
{
	ra_enc e;
	ra_enc_init(&e, 16, 4096);
	ra_enc_error(&e, true, 9, RA_ERR_RATE_LIMITED, "slow down");
	CHECK(!ra_enc_failed(&e));
	CHECK_INT(e.buf.headroom, 16);
	msgpack_unpacked up;
	CHECK_INT(decode_enc(&e, &up), RA_OK);
	const msgpack_object_map *m = &up.data.via.map;
	CHECK(obj_str_is(ra_map_get(m, "type"), "reply"));
	CHECK_INT(ra_map_get(m, "id")->via.u64, 9);
	const msgpack_object *err = ra_map_get(m, "error");
	CHECK(err && err->type == MSGPACK_OBJECT_MAP);
	CHECK(obj_str_is(ra_map_get(&err->via.map, "code"), "RATE_LIMITED"));
	CHECK(obj_str_is(ra_map_get(&err->via.map, "message"), "slow down"));
	CHECK(ra_map_get(&err->via.map, "retryable")->via.boolean);
	msgpack_unpacked_destroy(&up);
	ra_enc_free(&e);

	ra_enc_init(&e, 0, 4096);
	ra_enc_error(&e, false, 0, RA_ERR_INVALID_MESSAGE, "bad");
	CHECK_INT(decode_enc(&e, &up), RA_OK);
	CHECK(ra_map_get(&up.data.via.map, "id") == NULL);
	msgpack_unpacked_destroy(&up);
	ra_enc_free(&e);
}

static void test_reply_encoding(void)
{
	ra_enc e;
	ra_enc_init(&e, 0, 4096);
	ra_enc_reply_begin(&e, 3, 2);
	ra_enc_str(&e, "a");
	ra_enc_i64(&e, -5);
	ra_enc_str(&e, "b");
	ra_enc_bin(&e, "\0\1\2", 3);
	msgpack_unpacked up;
	CHECK_INT(decode_enc(&e, &up), RA_OK);
	const msgpack_object *result = ra_map_get(&up.data.via.map, "result");
	CHECK(result && result->type == MSGPACK_OBJECT_MAP && result->via.map.size == 2);
	CHECK_INT(ra_map_get(&result->via.map, "a")->via.i64, -5);
	CHECK_INT(ra_map_get(&result->via.map, "b")->via.bin.size, 3);
	msgpack_unpacked_destroy(&up);
	ra_enc_free(&e);
}

static void test_encoder_cap(void)
{
	ra_enc e;
	ra_enc_init(&e, 0, 64);
	char big[100];
	memset(big, 'x', sizeof(big));
	ra_enc_strn(&e, big, sizeof(big));
	CHECK(ra_enc_failed(&e));
	ra_enc_free(&e);
}

static void test_buf(void)
{
	ra_buf b;
	ra_buf_init(&b, 8, 10);
	CHECK_INT(ra_buf_append(&b, "hello", 5), 0);
	CHECK_INT(ra_buf_append(&b, "world", 5), 0);
	CHECK_INT(b.len, 10);
	CHECK(memcmp(ra_buf_payload(&b), "helloworld", 10) == 0);
	CHECK_INT(ra_buf_append(&b, "!", 1), -EMSGSIZE);
	CHECK(b.failed);
	CHECK_INT(ra_buf_append(&b, "", 0), -EMSGSIZE); /* sticky */
	ra_buf_reset(&b);
	CHECK(!b.failed);
	CHECK_INT(ra_buf_append(&b, "x", 1), 0);
	size_t len, alloc;
	uint8_t *p = ra_buf_steal(&b, &len, &alloc);
	CHECK(alloc >= 1);
	CHECK_INT(len, 1);
	CHECK_INT(p[8], 'x');
	CHECK(b.data == NULL);
	free(p);
	ra_buf_free(&b);
}

static void test_error_table(void)
{
	CHECK_STR(ra_err_name(RA_ERR_INVALID_CONFIG), "INVALID_CONFIG");
	CHECK_STR(ra_err_name(RA_ERR_UNAUTHENTICATED), "UNAUTHENTICATED");
	CHECK_STR(ra_err_name((ra_err)999), "INTERNAL");
	CHECK(ra_err_retryable(RA_ERR_RATE_LIMITED));
	CHECK(ra_err_retryable(RA_ERR_RESOURCE_EXHAUSTED));
	CHECK(!ra_err_retryable(RA_ERR_INVALID_CONFIG));
	CHECK(!ra_err_retryable(RA_ERR_NOT_FOUND));
	CHECK_INT(ra_err_from_errno(ENOENT), RA_ERR_NOT_FOUND);
	CHECK_INT(ra_err_from_errno(EEXIST), RA_ERR_ALREADY_EXISTS);
	CHECK_INT(ra_err_from_errno(EACCES), RA_ERR_PERMISSION_DENIED);
	CHECK_INT(ra_err_from_errno(ENOSPC), RA_ERR_RESOURCE_EXHAUSTED);
	CHECK_INT(ra_err_from_errno(EIO), RA_ERR_INTERNAL);
	CHECK_INT(ra_err_from_errno(ECONNRESET), RA_ERR_UNAVAILABLE);
	CHECK_INT(ra_err_from_errno(ECONNREFUSED), RA_ERR_UNAVAILABLE);
	for (int c = 0; c < RA_ERR__COUNT; c++)
		CHECK(ra_err_name((ra_err)c) != NULL && ra_err_name((ra_err)c)[0]);
}

static const char *digest_of(const void *data, size_t len, size_t step)
{
	static char hex[65];
	ra_sha256 c;
	ra_sha256_init(&c);
	for (size_t at = 0; at < len; at += step)
		ra_sha256_update(&c, (const uint8_t *)data + at, len - at < step ? len - at : step);
	ra_sha256_hex(&c, hex);
	return hex;
}

static void sha256_vectors(void)
{
	CHECK_STR(digest_of("", 0, 1), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	CHECK_STR(digest_of("abc", 3, 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	CHECK_STR(digest_of(two, strlen(two), 7), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	static char a[1000000];
	memset(a, 'a', sizeof(a));
	for (size_t step = 1; step <= 4096; step *= 64) /* the same digest whatever the chunking */
		CHECK_STR(digest_of(a, sizeof(a), step), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* The same vectors through the SHA instructions (where the CPU has them) and through the portable code. */
static void test_sha256_hardware(void)
{
	ra_sha256_use_hardware(true);
	sha256_vectors();
}

static void test_sha256_portable(void)
{
	ra_sha256_use_hardware(false);
	sha256_vectors();
	ra_sha256_use_hardware(true);
}

int main(void)
{
	RUN(test_sha256_hardware);
	RUN(test_sha256_portable);
	RUN(test_valid_request);
	RUN(test_large_id);
	RUN(test_malformed);
	RUN(test_hostile_counts);
	RUN(test_depth_limit);
	RUN(test_element_budget);
	RUN(test_scan_all_types);
	RUN(test_error_reply_encoding);
	RUN(test_reply_encoding);
	RUN(test_encoder_cap);
	RUN(test_buf);
	RUN(test_error_table);
	TEST_EXIT();
}
