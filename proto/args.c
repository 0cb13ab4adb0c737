/* Typed access to op arguments: every wrong type, range or shape is one INVALID_CONFIG naming the key. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* The longest prefix of s[0..len) that does not end inside a UTF-8 sequence. */
static size_t utf8_whole_prefix(const char *s, size_t len)
{
	size_t start = len;
	while (start > 0 && ((unsigned char)s[start - 1] & 0xc0) == 0x80)
		start--;
	if (start == 0)
		return len;
	unsigned char lead = (unsigned char)s[start - 1];
	size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	return len - (start - 1) >= need ? len : start - 1;
}

ra_err ra_fail(ra_why *why, ra_err code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(why->text, sizeof(why->text), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(why->text)) /* cut: never in the middle of a UTF-8 character */
		why->text[utf8_whole_prefix(why->text, sizeof(why->text) - 1)] = '\0';
	return code;
}

static const msgpack_object *arg(const ra_request *req, const char *key)
{
	const msgpack_object *o = ra_map_get(req->map, key);
	return o && o->type != MSGPACK_OBJECT_NIL ? o : NULL;
}

static ra_err missing(ra_why *why, const char *key) { return ra_fail(why, RA_ERR_INVALID_CONFIG, "%s is required", key); }

ra_err ra_arg_u64_range(const ra_request *req, const char *key, bool required, uint64_t min, uint64_t max,
			uint64_t *out, ra_why *why)
{
	const msgpack_object *o = arg(req, key);
	if (!o)
		return required ? missing(why, key) : RA_OK;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 < min || o->via.u64 > max)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "%s must be an integer from %llu to %llu", key,
			       (unsigned long long)min, (unsigned long long)max);
	*out = o->via.u64;
	return RA_OK;
}

ra_err ra_arg_u64(const ra_request *req, const char *key, bool required, uint64_t max, uint64_t *out, ra_why *why)
{
	return ra_arg_u64_range(req, key, required, 0, max, out, why);
}

ra_err ra_arg_bool(const ra_request *req, const char *key, bool *out, ra_why *why)
{
	const msgpack_object *o = arg(req, key);
	if (!o)
		return RA_OK;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "%s must be true or false", key);
	*out = o->via.boolean;
	return RA_OK;
}

char *ra_obj_cstr(const msgpack_object *o)
{
	if (o->type != MSGPACK_OBJECT_STR || memchr(o->via.str.ptr, 0, o->via.str.size))
		return NULL;
	char *s = malloc((size_t)o->via.str.size + 1);
	if (!s)
		return NULL;
	memcpy(s, o->via.str.ptr, o->via.str.size);
	s[o->via.str.size] = '\0';
	return s;
}

ra_err ra_arg_cstr(const ra_request *req, const char *key, bool required, size_t max_len, char **out, ra_why *why)
{
	const msgpack_object *o = arg(req, key);
	if (!o)
		return required ? missing(why, key) : RA_OK;
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max_len)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "%s must be a string of at most %zu bytes", key, max_len);
	*out = ra_obj_cstr(o);
	if (!*out)
		return memchr(o->via.str.ptr, 0, o->via.str.size)
			       ? ra_fail(why, RA_ERR_INVALID_CONFIG, "%s must not contain NUL bytes", key)
			       : ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	return RA_OK;
}

ra_err ra_arg_bytes(const ra_request *req, const char *key, const uint8_t **out, uint32_t *len, bool *present,
		    ra_why *why)
{
	const msgpack_object *o = arg(req, key);
	*present = o != NULL;
	if (!o)
		return RA_OK;
	if (o->type == MSGPACK_OBJECT_BIN) {
		*out = (const uint8_t *)o->via.bin.ptr;
		*len = o->via.bin.size;
	} else if (o->type == MSGPACK_OBJECT_STR) {
		*out = (const uint8_t *)o->via.str.ptr;
		*len = o->via.str.size;
	} else {
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "%s must be bytes (bin) or a string", key);
	}
	return RA_OK;
}
