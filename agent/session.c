#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/ra_limits.h"
#include "log.h"
#include "spares.h"

/* Inbound buffers up to this size are kept between messages (an upload's 1 MiB chunks then reuse one
 * buffer instead of allocating and freeing each); larger ones are released, so an idle connection holds
 * at most this much. */
#define INBOX_KEEP_BYTES (2u << 20)

static ra_session *registry;
static size_t registry_count;
static uint64_t next_serial = 1;

size_t ra_session_count(void) { return registry_count; }
ra_session *ra_session_first(void) { return registry; }

void ra_session_init(ra_session *s, void *transport, ra_session_wake_fn wake, size_t headroom,
		     uint32_t max_message)
{
	memset(s, 0, sizeof(*s));
	s->serial = next_serial++;
	s->transport = transport;
	s->wake = wake;
	s->headroom = headroom;
	s->max_message = max_message;
	s->hard_ceiling = (uint64_t)max_message * RA_MESSAGE_HARD_CEILING_FACTOR;
	ra_buf_init(&s->inbox, 0, max_message);
	s->next = registry;
	if (registry)
		registry->prev = s;
	registry = s;
	registry_count++;
}

void ra_session_destroy(ra_session *s)
{
	ra_buf_free(&s->inbox);
	while (s->out_head)
		ra_session_out_advance(s, s->out_head->len - s->out_head->sent);
	if (s->prev)
		s->prev->next = s->next;
	else if (registry == s)
		registry = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	registry_count--;
}

static void rx_begin(ra_session *s, bool binary)
{
	ra_buf_reset(&s->inbox);
	s->in_message = true;
	s->inbox_text = !binary;
	s->inbox_oversize = false;
	s->inbox_total = 0;
}

ra_rx_result ra_session_rx(ra_session *s, const void *data, size_t len, bool binary, bool final)
{
	if (!s->in_message && final && binary && len <= s->max_message) {
		/* The whole message in one piece, the usual case: used where it lies, not copied. */
		s->messages_in++;
		s->message = data;
		s->message_len = len;
		return RA_RX_MESSAGE;
	}
	if (!s->in_message)
		rx_begin(s, binary);
	s->inbox_total += len;
	if (s->inbox_total > s->hard_ceiling)
		return RA_RX_CLOSE_TOO_LARGE;
	if (!s->inbox_text && !s->inbox_oversize) {
		if (s->inbox_total > s->max_message) {
			s->inbox_oversize = true;
			ra_buf_free(&s->inbox);
		} else if (ra_buf_append(&s->inbox, data, len)) {
			s->inbox_oversize = true; /* out of memory: treated like too large, the message is lost */
			ra_buf_free(&s->inbox);
		}
	}
	if (!final)
		return RA_RX_MORE;
	s->messages_in++;
	if (s->inbox_text)
		return RA_RX_TEXT;
	s->message = ra_buf_payload(&s->inbox);
	s->message_len = s->inbox.len;
	return s->inbox_oversize ? RA_RX_TOO_LARGE : RA_RX_MESSAGE;
}

void ra_session_rx_done(ra_session *s)
{
	s->in_message = false;
	s->message = NULL;
	s->message_len = 0;
	if (s->inbox.alloc > INBOX_KEEP_BYTES)
		ra_buf_free(&s->inbox);
	else
		ra_buf_reset(&s->inbox);
}

void ra_session_enc_init(const ra_session *s, ra_enc *e) { ra_enc_init(e, s->headroom, RA_SESSION_OUT_QUEUE_CAP); }

/* Large message buffers come from the spares (see spares.h); their sizes there count the headroom. */
void ra_session_enc_init_sized(const ra_session *s, ra_enc *e, size_t payload)
{
	ra_session_enc_init(s, e);
	size_t alloc = 0;
	uint8_t *kept = ra_spare_take(s->headroom + payload, SIZE_MAX, &alloc);
	if (kept) {
		ra_buf_adopt(&e->buf, kept, alloc - s->headroom);
		return;
	}
	/* one allocation of a reusable size, not a doubling series */
	ra_buf_reserve(&e->buf, ra_spare_size_for(s->headroom + payload) - s->headroom);
}

int ra_session_send(ra_session *s, ra_enc *e)
{
	if (ra_enc_failed(e) || e->buf.len == 0) {
		ra_enc_free(e);
		return -EMSGSIZE;
	}
	if (s->out_overflow || e->buf.len > RA_SESSION_OUT_QUEUE_CAP - s->out_bytes) {
		if (!s->out_overflow)
			ra_log(RA_LOG_WARN, "session.overflow", "session %llu: client does not read, closing",
			       (unsigned long long)s->serial);
		s->out_overflow = true;
		ra_enc_free(e);
		if (s->wake)
			s->wake(s);
		return -ENOBUFS;
	}
	ra_out_msg *m = malloc(sizeof(*m));
	if (!m) {
		/* A reply that cannot be queued must not vanish while the connection goes on: close it. */
		ra_log(RA_LOG_ERROR, "session.nomem", "session %llu: out of memory, closing", (unsigned long long)s->serial);
		s->out_broken = true;
		ra_enc_free(e);
		if (s->wake)
			s->wake(s);
		return -ENOMEM;
	}
	m->next = NULL;
	m->sent = 0;
	m->data = ra_buf_steal(&e->buf, &m->len, &m->alloc);
	if (s->out_tail)
		s->out_tail->next = m;
	else
		s->out_head = m;
	s->out_tail = m;
	s->out_bytes += m->len;
	s->messages_out++;
	if (s->wake)
		s->wake(s);
	return 0;
}

int ra_session_send_error(ra_session *s, bool has_id, uint64_t id, ra_err code, const char *message)
{
	ra_enc e;
	ra_session_enc_init(s, &e);
	ra_enc_error(&e, has_id, id, code, message);
	return ra_session_send(s, &e);
}

ra_out_msg *ra_session_out_head(ra_session *s) { return s->out_head; }

void ra_session_out_advance(ra_session *s, size_t n)
{
	ra_out_msg *m = s->out_head;
	if (!m)
		return;
	m->sent += n;
	if (m->sent < m->len)
		return;
	s->out_head = m->next;
	if (!s->out_head)
		s->out_tail = NULL;
	s->out_bytes -= m->len;
	ra_spare_give(m->data, s->headroom + m->alloc);
	free(m);
}
