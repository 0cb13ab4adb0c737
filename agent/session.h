/* session: the protocol state of one WebSocket connection, independent of libwebsockets: reassembly of
 * inbound fragments into one capped message, and the queue of outbound messages. The transport feeds it
 * bytes and drains its queue; dispatch reads complete messages and queues replies.
 *
 * Memory is bounded both ways: an inbound message never buffers more than max_message bytes, and the
 * outbound queue never holds more than RA_SESSION_OUT_QUEUE_CAP (a client that does not read is dropped). */
#ifndef RA_SESSION_H
#define RA_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto/proto.h"

typedef struct ra_out_msg {
	struct ra_out_msg *next;
	uint8_t *data; /* headroom bytes, then len payload bytes */
	size_t len;
	size_t alloc;  /* bytes allocated after the headroom */
	size_t sent;   /* payload bytes already handed to the transport */
} ra_out_msg;

typedef struct ra_session ra_session;
typedef void (*ra_session_wake_fn)(ra_session *s);

struct ra_session {
	ra_session *prev, *next; /* registry of live sessions */
	uint64_t serial;
	void *transport;         /* the transport's handle (an lws wsi); only the transport uses it */
	ra_session_wake_fn wake; /* asks the transport for a writable callback */
	size_t headroom;         /* bytes the transport needs in front of each outbound payload */
	uint32_t max_message;
	uint64_t hard_ceiling;

	/* inbound reassembly */
	const uint8_t *message; /* after RA_RX_MESSAGE: the message (in the inbox, or where it arrived whole) */
	size_t message_len;
	ra_buf inbox;
	bool in_message;
	bool inbox_text;
	bool inbox_oversize;
	uint64_t inbox_total;

	/* outbound queue */
	ra_out_msg *out_head, *out_tail;
	size_t out_bytes;
	bool out_overflow; /* the queue cap was hit: the transport closes the connection (1008) */
	bool out_broken;   /* a message could not be queued (no memory): the transport closes it (1011) */

	uint64_t messages_in, messages_out;
	/* request rate limit (dispatch.c): a token bucket */
	double rate_tokens, rate_at;

	/* event subscriptions and delivery cursor (events.c) */
	void *events;
	/* this connection's process attachments (exec.c) */
	void *attachments;
};

typedef enum {
	RA_RX_MORE,            /* wait for more fragments */
	RA_RX_MESSAGE,         /* message / message_len is one complete binary message, until ra_session_rx_done */
	RA_RX_TEXT,            /* a text message was received (and discarded) */
	RA_RX_TOO_LARGE,       /* a message over max_message was received (and discarded) */
	RA_RX_CLOSE_TOO_LARGE, /* past the hard ceiling: close with 1009 */
} ra_rx_result;

void ra_session_init(ra_session *s, void *transport, ra_session_wake_fn wake, size_t headroom,
		     uint32_t max_message);
/* Frees buffers and queue and leaves the registry. */
void ra_session_destroy(ra_session *s);

/* Feeds one received chunk. `binary` is read at the start of a message; `final` says the chunk ends it. */
ra_rx_result ra_session_rx(ra_session *s, const void *data, size_t len, bool binary, bool final);
/* Ends the current inbound message; the inbox buffer is kept for small messages, released for big ones. */
void ra_session_rx_done(ra_session *s);

/* Starts an outbound message encoder with the session's headroom. */
void ra_session_enc_init(const ra_session *s, ra_enc *e);
/* The same, for a message of about `payload` bytes: its buffer allocated (or reused) at once. */
void ra_session_enc_init_sized(const ra_session *s, ra_enc *e, size_t payload);
/* Queues the encoded message (taking its buffer) and wakes the transport. Returns 0, -EMSGSIZE if the
 * encoding failed (nothing queued), -ENOBUFS if the queue is full (out_overflow set), or -ENOMEM
 * (out_broken set). Frees e. */
int ra_session_send(ra_session *s, ra_enc *e);
/* Encodes and sends an error reply. */
int ra_session_send_error(ra_session *s, bool has_id, uint64_t id, ra_err code, const char *message);

ra_out_msg *ra_session_out_head(ra_session *s);
/* Marks n more payload bytes of the head message as sent; drops it when complete. */
void ra_session_out_advance(ra_session *s, size_t n);

size_t ra_session_count(void);
ra_session *ra_session_first(void);

#endif
