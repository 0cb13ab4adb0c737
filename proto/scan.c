/* A pre-scan of untrusted msgpack. msgpack-c 4.0.0 trusts declared array/map counts and allocates for them
 * before reading a single element (msgpack/msgpack-c#1013: five bytes can ask for ~96 GB), and
 * msgpack_unpack_next() accepts trailing bytes. This walks the headers without allocating and accepts only
 * one complete object whose containers are shallow, few, and no larger than the bytes left to fill them. */
#include "proto.h"
#include "ra_limits.h"

typedef struct {
	size_t skip;       /* header plus payload bytes */
	uint64_t children; /* objects that follow inside this one (2 per map entry) */
} scan_header;

static uint64_t read_be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* A header of `lenbytes` length bytes followed by a payload of that length (plus `extra` fixed bytes). */
static ra_scan_result sized(const uint8_t *p, size_t avail, unsigned lenbytes, unsigned extra, scan_header *h)
{
	if (avail < 1 + (size_t)lenbytes)
		return RA_SCAN_TRUNCATED;
	uint64_t payload = read_be(p + 1, lenbytes) + extra;
	if (payload > avail - 1 - lenbytes)
		return RA_SCAN_TRUNCATED;
	h->skip = 1 + lenbytes + (size_t)payload;
	return RA_SCAN_OK;
}

static ra_scan_result fixed(size_t avail, size_t size, scan_header *h)
{
	if (avail < size)
		return RA_SCAN_TRUNCATED;
	h->skip = size;
	return RA_SCAN_OK;
}

static ra_scan_result container(const uint8_t *p, size_t avail, unsigned lenbytes, unsigned per_entry,
				scan_header *h)
{
	if (avail < 1 + (size_t)lenbytes)
		return RA_SCAN_TRUNCATED;
	h->skip = 1 + lenbytes;
	h->children = read_be(p + 1, lenbytes) * per_entry;
	return RA_SCAN_OK;
}

static ra_scan_result read_header(const uint8_t *p, size_t avail, scan_header *h)
{
	uint8_t b = p[0];
	h->children = 0;
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
		return fixed(avail, 1, h);
	if (b <= 0x8f) {
		h->skip = 1;
		h->children = 2u * (b & 0x0fu);
		return RA_SCAN_OK;
	}
	if (b <= 0x9f) {
		h->skip = 1;
		h->children = b & 0x0fu;
		return RA_SCAN_OK;
	}
	if (b <= 0xbf)
		return fixed(avail, 1 + (size_t)(b & 0x1fu), h);
	switch (b) {
	case 0xc4: case 0xd9: return sized(p, avail, 1, 0, h);  /* bin8, str8 */
	case 0xc5: case 0xda: return sized(p, avail, 2, 0, h);  /* bin16, str16 */
	case 0xc6: case 0xdb: return sized(p, avail, 4, 0, h);  /* bin32, str32 */
	case 0xc7: return sized(p, avail, 1, 1, h);             /* ext8: length, type, data */
	case 0xc8: return sized(p, avail, 2, 1, h);
	case 0xc9: return sized(p, avail, 4, 1, h);
	case 0xcc: case 0xd0: return fixed(avail, 2, h);
	case 0xcd: case 0xd1: return fixed(avail, 3, h);
	case 0xca: case 0xce: case 0xd2: return fixed(avail, 5, h);
	case 0xcb: case 0xcf: case 0xd3: return fixed(avail, 9, h);
	case 0xd4: return fixed(avail, 3, h);                   /* fixext1..16: marker, type, data */
	case 0xd5: return fixed(avail, 4, h);
	case 0xd6: return fixed(avail, 6, h);
	case 0xd7: return fixed(avail, 10, h);
	case 0xd8: return fixed(avail, 18, h);
	case 0xdc: return container(p, avail, 2, 1, h);
	case 0xdd: return container(p, avail, 4, 1, h);
	case 0xde: return container(p, avail, 2, 2, h);
	case 0xdf: return container(p, avail, 4, 2, h);
	default: return RA_SCAN_BAD_BYTE;                       /* 0xc1 is never used */
	}
}

ra_scan_result ra_scan(const uint8_t *buf, size_t len)
{
	uint64_t remaining[RA_PROTO_MAX_DEPTH + 1];
	int depth = 0;
	size_t pos = 0;
	uint64_t elements = 0;

	remaining[0] = 1;
	while (depth >= 0) {
		if (remaining[depth] == 0) {
			depth--;
			continue;
		}
		if (pos >= len)
			return RA_SCAN_TRUNCATED;
		remaining[depth]--;
		scan_header h;
		ra_scan_result r = read_header(buf + pos, len - pos, &h);
		if (r != RA_SCAN_OK)
			return r;
		pos += h.skip;
		if (h.children == 0)
			continue;
		if (h.children > len - pos)
			return RA_SCAN_COUNT_EXCEEDS_INPUT;
		elements += h.children;
		if (elements > RA_PROTO_MAX_ELEMENTS)
			return RA_SCAN_TOO_MANY;
		if (depth + 1 > RA_PROTO_MAX_DEPTH)
			return RA_SCAN_TOO_DEEP;
		remaining[++depth] = h.children;
	}
	return pos == len ? RA_SCAN_OK : RA_SCAN_TRAILING;
}

const char *ra_scan_describe(ra_scan_result r)
{
	switch (r) {
	case RA_SCAN_OK: return "ok";
	case RA_SCAN_TRUNCATED: return "msgpack ends in the middle of an object";
	case RA_SCAN_TRAILING: return "bytes follow the msgpack object";
	case RA_SCAN_BAD_BYTE: return "invalid msgpack type byte";
	case RA_SCAN_TOO_DEEP: return "msgpack nested too deeply";
	case RA_SCAN_TOO_MANY: return "msgpack declares too many elements";
	case RA_SCAN_COUNT_EXCEEDS_INPUT: return "msgpack container count exceeds the message size";
	}
	return "invalid msgpack";
}
