/* Unit tests of agent/session.c: reassembly of fragments, size limits, text frames, and the outbound queue.
 * The .c is included so the test needs no WebSocket. */
#include "../../agent/log.c"
#include "../../agent/session.c"
#include "../../agent/spares.c"
#include "test.h"

static int wakes;
static void count_wake(ra_session *s)
{
	(void)s;
	wakes++;
}

static void test_reassembly(void)
{
	ra_session s;
	ra_session_init(&s, NULL, count_wake, 16, 1024);
	CHECK_INT(ra_session_rx(&s, "ab", 2, true, false), RA_RX_MORE);
	CHECK_INT(ra_session_rx(&s, "cd", 2, false /* continuation frames keep the message's type */, false), RA_RX_MORE);
	CHECK_INT(ra_session_rx(&s, "e", 1, true, true), RA_RX_MESSAGE);
	CHECK_INT(s.inbox.len, 5);
	CHECK_INT(s.message_len, 5);
	CHECK(memcmp(ra_buf_payload(&s.inbox), "abcde", 5) == 0);
	ra_session_rx_done(&s);
	CHECK_INT(ra_session_rx(&s, "x", 1, true, true), RA_RX_MESSAGE);
	CHECK_INT(s.message_len, 1);
	CHECK_INT(s.inbox.len, 0); /* whole in one piece: not copied */
	ra_session_rx_done(&s);
	CHECK_INT(s.messages_in, 2);
	ra_session_destroy(&s);
}

static void test_text_is_flagged(void)
{
	ra_session s;
	ra_session_init(&s, NULL, count_wake, 0, 1024);
	CHECK_INT(ra_session_rx(&s, "hi", 2, false, true), RA_RX_TEXT);
	ra_session_rx_done(&s);
	CHECK_INT(ra_session_rx(&s, "\x80", 1, true, true), RA_RX_MESSAGE); /* next message is fine */
	ra_session_rx_done(&s);
	ra_session_destroy(&s);
}

static void test_size_limits(void)
{
	ra_session s;
	uint8_t chunk[2048];
	memset(chunk, 0, sizeof(chunk));
	ra_session_init(&s, NULL, count_wake, 0, 2048);
	CHECK_INT(ra_session_rx(&s, chunk, 1024, true, false), RA_RX_MORE);
	CHECK_INT(ra_session_rx(&s, chunk, 1024, true, false), RA_RX_MORE); /* exactly the limit */
	CHECK_INT(ra_session_rx(&s, chunk, 1, true, true), RA_RX_TOO_LARGE);
	CHECK(s.inbox.data == NULL); /* the oversized message is not kept */
	ra_session_rx_done(&s);
	CHECK_INT(ra_session_rx(&s, chunk, 2048, true, true), RA_RX_MESSAGE);
	ra_session_rx_done(&s);
	/* past 4x the limit the connection must close */
	for (int i = 0; i < 8; i++)
		CHECK_INT(ra_session_rx(&s, chunk, 1024, true, false), RA_RX_MORE);
	CHECK_INT(ra_session_rx(&s, chunk, 1, true, false), RA_RX_CLOSE_TOO_LARGE);
	ra_session_destroy(&s);
}

static void test_out_queue(void)
{
	ra_session s;
	wakes = 0;
	ra_session_init(&s, NULL, count_wake, 8, 1024);
	for (int i = 0; i < 3; i++) {
		ra_enc e;
		ra_session_enc_init(&s, &e);
		ra_enc_u64(&e, (uint64_t)i);
		CHECK_INT(ra_session_send(&s, &e), 0);
	}
	CHECK_INT(wakes, 3);
	CHECK_INT(s.out_bytes, 3);
	ra_out_msg *m = ra_session_out_head(&s);
	CHECK(m != NULL && m->len == 1 && m->data[8] == 0);
	ra_session_out_advance(&s, 1);
	m = ra_session_out_head(&s);
	CHECK(m != NULL && m->data[8] == 1);
	CHECK_INT(s.out_bytes, 2);
	ra_session_destroy(&s); /* frees what is still queued */
}

static void test_failed_encoding_is_not_sent(void)
{
	ra_session s;
	ra_session_init(&s, NULL, count_wake, 0, 1024);
	ra_enc e;
	ra_enc_init(&e, 0, 4);
	ra_enc_str(&e, "too long for four bytes");
	CHECK_INT(ra_session_send(&s, &e), -EMSGSIZE);
	CHECK(ra_session_out_head(&s) == NULL);
	ra_session_destroy(&s);
}

static void test_registry(void)
{
	ra_session a, b, c;
	size_t before = ra_session_count();
	ra_session_init(&a, NULL, NULL, 0, 1024);
	ra_session_init(&b, NULL, NULL, 0, 1024);
	ra_session_init(&c, NULL, NULL, 0, 1024);
	CHECK_INT(ra_session_count(), before + 3);
	CHECK(a.serial < b.serial && b.serial < c.serial);
	ra_session_destroy(&b);
	CHECK_INT(ra_session_count(), before + 2);
	CHECK(ra_session_first() == &c && c.next == &a && a.prev == &c);
	ra_session_destroy(&c);
	ra_session_destroy(&a);
	CHECK_INT(ra_session_count(), before);
	CHECK(ra_session_first() == NULL);
}

int main(void)
{
	RUN(test_reassembly);
	RUN(test_text_is_flagged);
	RUN(test_size_limits);
	RUN(test_out_queue);
	RUN(test_failed_encoding_is_not_sent);
	RUN(test_registry);
	TEST_EXIT();
}
