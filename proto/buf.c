/* ra_buf: a growable buffer that never grows past its cap. Used for message reassembly, output queues and
 * encoding, so no untrusted length can make the agent allocate without bound. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

void ra_buf_init(ra_buf *b, size_t headroom, size_t cap)
{
	memset(b, 0, sizeof(*b));
	b->headroom = headroom;
	b->cap = cap;
}

static int buf_fail(ra_buf *b, int err)
{
	b->failed = true;
	return -err;
}

static int buf_reserve(ra_buf *b, size_t need)
{
	if (need <= b->alloc)
		return 0;
	size_t want = b->alloc ? b->alloc : 256;
	if (!b->alloc && need > want) /* the first allocation fits the first need exactly */
		want = need;
	while (want < need)
		want = want > b->cap / 2 ? b->cap : want * 2;
	uint8_t *p = realloc(b->data, b->headroom + want);
	if (!p)
		return buf_fail(b, ENOMEM);
	b->data = p;
	b->alloc = want;
	return 0;
}

int ra_buf_reserve(ra_buf *b, size_t n)
{
	if (n > b->cap)
		return buf_fail(b, EMSGSIZE);
	return buf_reserve(b, n);
}

int ra_buf_append(ra_buf *b, const void *p, size_t n)
{
	if (b->failed)
		return -EMSGSIZE;
	if (n > b->cap - b->len)
		return buf_fail(b, EMSGSIZE);
	if (n == 0)
		return 0;
	int rc = buf_reserve(b, b->len + n);
	if (rc)
		return rc;
	memcpy(b->data + b->headroom + b->len, p, n);
	b->len += n;
	return 0;
}

void ra_buf_reset(ra_buf *b)
{
	b->len = 0;
	b->failed = false;
}

void ra_buf_free(ra_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->alloc = 0;
	ra_buf_reset(b);
}

void ra_buf_adopt(ra_buf *b, uint8_t *data, size_t alloc)
{
	free(b->data);
	b->data = data;
	b->alloc = alloc;
	b->len = 0;
}

uint8_t *ra_buf_steal(ra_buf *b, size_t *len, size_t *alloc)
{
	uint8_t *p = b->data;
	*len = b->len;
	*alloc = b->alloc;
	b->data = NULL;
	b->alloc = 0;
	ra_buf_reset(b);
	return p;
}
