/* pattern.h: the bytes of the tunnel figure (15). A fixed pseudo-random sequence that repeats every
 * PATTERN_PERIOD bytes: the sender and the receiver both make it, so every byte can be checked with a memcmp
 * and without a copy of what was sent. The period is odd, so a piece of a power-of-two size lost, doubled or
 * moved shows as a mismatch. Header-only: tunnel_peer.c stays one static program. */
#ifndef RA_BENCH_PATTERN_H
#define RA_BENCH_PATTERN_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PATTERN_PERIOD ((1u << 20) + 4093u)
#define PATTERN_SLICE_MAX (1u << 20) /* the longest piece pattern_at gives in one */

/* The sequence, with its first PATTERN_SLICE_MAX bytes repeated after it, so that any piece of up to that
 * many bytes is contiguous; NULL without memory. */
static inline uint8_t *pattern_make(void)
{
	uint8_t *p = malloc(PATTERN_PERIOD + PATTERN_SLICE_MAX);
	uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift64 */
	if (!p)
		return NULL;
	for (uint32_t i = 0; i < PATTERN_PERIOD; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 32);
	}
	memcpy(p + PATTERN_PERIOD, p, PATTERN_SLICE_MAX);
	return p;
}

/* The pattern's bytes from stream offset off on: valid for PATTERN_SLICE_MAX bytes. */
static inline const uint8_t *pattern_at(const uint8_t *p, uint64_t off) { return p + off % PATTERN_PERIOD; }

/* Whether data (len bytes received at stream offset off) is the pattern; on a mismatch *bad is the offset
 * of the first piece that differs. */
static inline int pattern_check(const uint8_t *p, uint64_t off, const uint8_t *data, size_t len, uint64_t *bad)
{
	while (len) {
		size_t n = len < PATTERN_SLICE_MAX ? len : PATTERN_SLICE_MAX;
		if (memcmp(data, pattern_at(p, off), n) != 0) {
			*bad = off;
			return 0;
		}
		data += n, off += n, len -= n;
	}
	return 1;
}

#endif
