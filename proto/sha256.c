#include "sha256.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const uint32_t k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static void compress_portable(ra_sha256 *c, const uint8_t *p)
{
	uint32_t w[64];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6],
		 h = c->h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
		uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = cc;
		cc = b;
		b = a;
		a = t1 + t2;
	}
	c->h[0] += a;
	c->h[1] += b;
	c->h[2] += cc;
	c->h[3] += d;
	c->h[4] += e;
	c->h[5] += f;
	c->h[6] += g;
	c->h[7] += h;
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

/* The SHA extensions (SHA-NI) do four rounds per pair of instructions: several times the portable code,
 * which otherwise bounds a streamed transfer's speed. Chosen at run time; the two are tested alike. */
__attribute__((target("sha,sse4.1,ssse3"))) static void compress_shani(ra_sha256 *c, const uint8_t *p)
{
	const __m128i byteswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&c->h[0]), 0xB1); /* CDAB */
	__m128i state1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&c->h[4]), 0x1B); /* EFGH */
	__m128i state0 = _mm_alignr_epi8(tmp, state1, 8);                                   /* ABEF */
	state1 = _mm_blend_epi16(state1, tmp, 0xF0);                                         /* CDGH */
	const __m128i abef = state0, cdgh = state1;
	__m128i w[4];
	for (int g = 0; g < 16; g++) { /* 16 groups of 4 rounds; w[g % 4] holds this group's message words */
		if (g < 4)
			w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), byteswap);
		__m128i msg = _mm_add_epi32(w[g % 4], _mm_loadu_si128((const __m128i *)&k[4 * g]));
		state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
		if (g >= 3 && g < 15) { /* the schedule for group g + 1 */
			__m128i prev = _mm_alignr_epi8(w[g % 4], w[(g + 3) % 4], 4);
			w[(g + 1) % 4] = _mm_sha256msg2_epu32(_mm_add_epi32(w[(g + 1) % 4], prev), w[g % 4]);
		}
		state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
		if (g >= 1 && g < 13)
			w[(g + 3) % 4] = _mm_sha256msg1_epu32(w[(g + 3) % 4], w[g % 4]);
	}
	state0 = _mm_add_epi32(state0, abef);
	state1 = _mm_add_epi32(state1, cdgh);
	tmp = _mm_shuffle_epi32(state0, 0x1B);                                  /* FEBA */
	state1 = _mm_shuffle_epi32(state1, 0xB1);                               /* DCHG */
	_mm_storeu_si128((__m128i *)&c->h[0], _mm_blend_epi16(tmp, state1, 0xF0)); /* DCBA */
	_mm_storeu_si128((__m128i *)&c->h[4], _mm_alignr_epi8(state1, tmp, 8));    /* HGFE */
}

static bool cpu_has_shani(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3))
		return false;
	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)); /* CPUID.7.0:EBX.SHA */
}
#endif

static void (*compress)(ra_sha256 *c, const uint8_t *p);

/* For tests: false forces the portable code. */
void ra_sha256_use_hardware(bool on)
{
#if defined(__x86_64__)
	compress = on && cpu_has_shani() ? compress_shani : compress_portable;
#else
	(void)on;
	compress = compress_portable;
#endif
}

void ra_sha256_init(ra_sha256 *c)
{
	static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
				       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	memcpy(c->h, iv, sizeof(iv));
	if (!compress)
		ra_sha256_use_hardware(true);
	c->bytes = 0;
	c->used = 0;
}

void ra_sha256_update(ra_sha256 *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	c->bytes += len;
	if (c->used) {
		size_t take = 64 - c->used < len ? 64 - c->used : len;
		memcpy(c->block + c->used, p, take);
		c->used += take;
		p += take;
		len -= take;
		if (c->used < 64)
			return;
		compress(c, c->block);
		c->used = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		compress(c, p);
	memcpy(c->block, p, len);
	c->used = len;
}

void ra_sha256_hex(ra_sha256 *c, char out[65])
{
	uint64_t bits = c->bytes * 8;
	uint8_t pad[72] = {0x80};
	size_t padlen = (c->used < 56 ? 56 : 120) - c->used;
	for (int i = 0; i < 8; i++)
		pad[padlen + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
	uint64_t keep = c->bytes;
	ra_sha256_update(c, pad, padlen + 8);
	c->bytes = keep;
	for (int i = 0; i < 8; i++)
		snprintf(out + 8 * i, 9, "%08x", c->h[i]);
}
