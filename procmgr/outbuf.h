/* outbuf: the retained output of one stream of one process, addressed by absolute byte offsets.
 *
 * It keeps the last `cap` bytes ever written (allocated lazily, so a quiet process costs nothing). Readers
 * keep their own offsets; a reader whose offset has already been overwritten is told how much it lost. A
 * writer that must not overwrite what a reader still needs asks ra_outbuf_space() with that reader's offset
 * (the "hold") and stops writing at zero: that is how a slow client throttles a process instead of making
 * the agent buffer without bound. Pure: no I/O. */
#ifndef RA_OUTBUF_H
#define RA_OUTBUF_H

#include <stddef.h>
#include <stdint.h>

#define RA_OUTBUF_NO_HOLD UINT64_MAX

typedef struct {
	uint8_t *data;
	size_t cap;     /* bytes retained at most */
	size_t alloc;   /* bytes allocated so far (grows to cap) */
	uint64_t total; /* bytes ever written: the offset of the next byte */
} ra_outbuf;

void ra_outbuf_init(ra_outbuf *b, size_t cap);
void ra_outbuf_free(ra_outbuf *b);
/* The oldest offset still retained. */
uint64_t ra_outbuf_oldest(const ra_outbuf *b);
/* Bytes that may be written without overwriting offsets at or after `hold` (unbounded for NO_HOLD). */
size_t ra_outbuf_space(const ra_outbuf *b, uint64_t hold);
/* Room for the next bytes, for reading straight into the ring: up to max contiguous bytes at *p (0 when
 * memory ran out). Then ra_outbuf_commit with what was filled. */
size_t ra_outbuf_reserve(ra_outbuf *b, size_t max, uint8_t **p);
void ra_outbuf_commit(ra_outbuf *b, size_t n);
/* The longest contiguous run of retained bytes starting at max(from, oldest): *start is its offset. Returns
 * its length (0 when from >= total). */
size_t ra_outbuf_peek(const ra_outbuf *b, uint64_t from, const uint8_t **p, uint64_t *start);

#endif
