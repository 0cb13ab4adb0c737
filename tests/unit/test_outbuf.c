/* Unit tests of procmgr/outbuf.c: offsets, wrap-around, loss, and the hold that throttles a writer. */
#include <stdbool.h>

#include "../../procmgr/outbuf.c"
#include "test.h"

/* Appends as the process's reader does: reserve, fill, commit, until all is in (the oldest overwritten). */
static void put(ra_outbuf *b, const void *data, size_t n)
{
	const uint8_t *src = data;
	while (n) {
		uint8_t *p;
		size_t room = ra_outbuf_reserve(b, n, &p);
		if (room == 0) {
			FAILED_AT();
			fprintf(stderr, "no room\n");
			test_failures++;
			return;
		}
		memcpy(p, src, room);
		ra_outbuf_commit(b, room);
		src += room;
		n -= room;
	}
}

static size_t peek_all(const ra_outbuf *b, uint64_t from, uint8_t *dst, uint64_t *first)
{
	size_t n = 0;
	const uint8_t *p;
	uint64_t start;
	bool first_run = true;
	size_t run;
	while ((run = ra_outbuf_peek(b, from, &p, &start)) > 0) {
		if (first_run)
			*first = start;
		first_run = false;
		memcpy(dst + n, p, run);
		n += run;
		from = start + run;
	}
	return n;
}

static void test_linear_then_wrap(void)
{
	ra_outbuf b;
	ra_outbuf_init(&b, 8);
	put(&b, "abcde", 5);
	CHECK_INT(ra_outbuf_oldest(&b), 0);
	uint8_t out[16];
	uint64_t first = 99;
	CHECK_INT(peek_all(&b, 0, out, &first), 5);
	CHECK(memcmp(out, "abcde", 5) == 0 && first == 0);
	put(&b, "fghij", 5); /* 10 written, 8 kept */
	CHECK_INT(b.total, 10);
	CHECK_INT(ra_outbuf_oldest(&b), 2);
	CHECK_INT(peek_all(&b, 0, out, &first), 8); /* asked for 0: starts at 2, two bytes lost */
	CHECK(memcmp(out, "cdefghij", 8) == 0 && first == 2);
	CHECK_INT(peek_all(&b, 7, out, &first), 3);
	CHECK(memcmp(out, "hij", 3) == 0 && first == 7);
	CHECK_INT(peek_all(&b, 10, out, &first), 0);
	ra_outbuf_free(&b);
}

static void test_write_larger_than_cap(void)
{
	ra_outbuf b;
	ra_outbuf_init(&b, 4);
	put(&b, "0123456789", 10);
	CHECK_INT(b.total, 10);
	uint8_t out[8];
	uint64_t first;
	CHECK_INT(peek_all(&b, 0, out, &first), 4);
	CHECK(memcmp(out, "6789", 4) == 0 && first == 6);
	ra_outbuf_free(&b);
}

static void test_hold_limits_space(void)
{
	ra_outbuf b;
	ra_outbuf_init(&b, 8);
	CHECK(ra_outbuf_space(&b, RA_OUTBUF_NO_HOLD) == SIZE_MAX);
	CHECK_INT(ra_outbuf_space(&b, 0), 8);
	put(&b, "abcdef", 6);
	CHECK_INT(ra_outbuf_space(&b, 0), 2);  /* a reader at 0 still needs all six */
	CHECK_INT(ra_outbuf_space(&b, 4), 6);  /* a reader at 4 needs two */
	CHECK_INT(ra_outbuf_space(&b, 6), 8);
	put(&b, "gh", 2);
	CHECK_INT(ra_outbuf_space(&b, 0), 0);  /* full for that reader: the writer must stop */
	ra_outbuf_free(&b);
}

static void test_lazy_allocation(void)
{
	ra_outbuf b;
	ra_outbuf_init(&b, 1 << 20);
	CHECK(b.data == NULL);
	put(&b, "x", 1);
	CHECK(b.alloc >= 1 && b.alloc < (1 << 20));
	uint8_t big[70000];
	memset(big, 'y', sizeof(big));
	put(&b, big, sizeof(big));
	CHECK(b.alloc >= 70001);
	uint8_t *out = malloc(80000);
	uint64_t first;
	CHECK_INT(peek_all(&b, 0, out, &first), 70001);
	CHECK(out[0] == 'x' && out[70000] == 'y');
	free(out);
	ra_outbuf_free(&b);
}

static void test_reserve_and_commit(void)
{
	ra_outbuf b;
	ra_outbuf_init(&b, 8);
	uint8_t *p;
	size_t room = ra_outbuf_reserve(&b, 5, &p);
	CHECK_INT(room, 5);
	memcpy(p, "abcde", 5);
	ra_outbuf_commit(&b, 5);
	room = ra_outbuf_reserve(&b, 100, &p); /* up to the end of the ring: 3 */
	CHECK_INT(room, 3);
	memcpy(p, "fgh", 3);
	ra_outbuf_commit(&b, 3);
	room = ra_outbuf_reserve(&b, 100, &p); /* wraps to the start */
	CHECK_INT(room, 8);
	memcpy(p, "ij", 2);
	ra_outbuf_commit(&b, 2);
	uint8_t out[16];
	uint64_t first;
	CHECK_INT(peek_all(&b, 0, out, &first), 8);
	CHECK(memcmp(out, "cdefghij", 8) == 0 && first == 2);
	ra_outbuf_free(&b);
}

int main(void)
{
	RUN(test_reserve_and_commit);
	RUN(test_linear_then_wrap);
	RUN(test_write_larger_than_cap);
	RUN(test_hold_limits_space);
	RUN(test_lazy_allocation);
	TEST_EXIT();
}
