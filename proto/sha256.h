/* sha256 (FIPS 180-4), incremental: transfers report the digest of exactly the bytes that went through. */
#ifndef RA_SHA256_H
#define RA_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint32_t h[8];
	uint64_t bytes;
	uint8_t block[64];
	size_t used;
} ra_sha256;

void ra_sha256_init(ra_sha256 *c);
void ra_sha256_update(ra_sha256 *c, const void *data, size_t len);
/* Use the CPU's SHA instructions when it has them (the default), or not (tests compare the two). */
void ra_sha256_use_hardware(bool on);
/* 64 lowercase hex digits and a NUL. */
void ra_sha256_hex(ra_sha256 *c, char out[65]);

#endif
