#include "outbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ra_outbuf_init(ra_outbuf *b, size_t cap)
{
	memset(b, 0, sizeof(*b));
	b->cap = cap;
}

void ra_outbuf_free(ra_outbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->alloc = 0;
}

uint64_t ra_outbuf_oldest(const ra_outbuf *b) { return b->total > b->cap ? b->total - b->cap : 0; }

size_t ra_outbuf_space(const ra_outbuf *b, uint64_t hold)
{
	if (hold == RA_OUTBUF_NO_HOLD || hold >= b->total)
		return hold == RA_OUTBUF_NO_HOLD ? SIZE_MAX : b->cap;
	uint64_t unread = b->total - hold;
	return unread >= b->cap ? 0 : b->cap - (size_t)unread;
}

/* While total < cap the bytes sit at their offsets; grow the allocation before they would not fit. */
static int grow_for(ra_outbuf *b, uint64_t end)
{
	if (end <= b->alloc || b->alloc == b->cap)
		return 0;
	size_t want = b->alloc ? b->alloc : 4096;
	while (want < end && want < b->cap)
		want = want > b->cap / 2 ? b->cap : want * 2;
	if (want > b->cap)
		want = b->cap;
	uint8_t *p = realloc(b->data, want);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->alloc = want;
	return 0;
}

size_t ra_outbuf_reserve(ra_outbuf *b, size_t max, uint8_t **p)
{
	if (b->cap == 0)
		return 0;
	size_t want = max < b->cap ? max : b->cap;
	if (grow_for(b, b->total + want))
		return 0;
	size_t at = (size_t)(b->total % b->cap);
	size_t run = b->cap - at;
	if (b->alloc < b->cap && b->alloc - at < run) /* still growing: only what is allocated */
		run = b->alloc - at;
	*p = b->data + at;
	return run < want ? run : want;
}

void ra_outbuf_commit(ra_outbuf *b, size_t n) { b->total += n; }

size_t ra_outbuf_peek(const ra_outbuf *b, uint64_t from, const uint8_t **p, uint64_t *start)
{
	uint64_t oldest = ra_outbuf_oldest(b);
	if (from < oldest)
		from = oldest;
	*start = from;
	if (from >= b->total || !b->data)
		return 0;
	size_t at = (size_t)(from % b->cap);
	uint64_t avail = b->total - from;
	size_t run = b->cap - at;
	*p = b->data + at;
	return avail < run ? (size_t)avail : run;
}
