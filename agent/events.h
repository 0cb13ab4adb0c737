/* events: the event bus. Every event (watcher, processes, ports, lifecycle) gets a global monotonic seq and
 * a timestamp, is encoded once and kept in a ring bounded by count and bytes. Each connection has a cursor
 * into that ring and up to RA_SUBSCRIPTIONS_MAX filters (event-name patterns, path prefixes, process ids):
 * events move from the ring into its queue while the queue is below RA_EVENT_QUEUE_HIGH, so a connection
 * that does not read costs no memory beyond the ring. A connection whose cursor falls off the ring, or that
 * asks (sinceSeq) for events the ring no longer holds, gets a `gap` message naming the seqs it missed. */
#ifndef RA_EVENTS_H
#define RA_EVENTS_H

#include <stdint.h>

#include "../proto/proto.h"
#include "session.h"

/* What filters see of an event. The strings need only live for the call (they are copied). */
typedef struct {
	const char *name;  /* "file.created" */
	const char *path;  /* the entry, or a move's destination; NULL if none */
	const char *path2; /* a move's source */
	const char *proc;  /* the process id; NULL if none */
	bool path_is_scope; /* path is a tree the event is about (a watch's root): a prefix inside it matches */
} ra_event_meta;

/* Writes the event's own fields (exactly `fields` key/value pairs) into the message. */
typedef void (*ra_event_fill_fn)(ra_enc *e, const void *ctx);

void ra_events_init(uint32_t ring_events, uint32_t ring_bytes, const char *workdir);
void ra_events_shutdown(void);

/* {type:"event", event:name, seq, ts, ...fields}. Returns the seq given to the event. */
uint64_t ra_events_emit(const ra_event_meta *m, uint32_t fields, ra_event_fill_fn fill, const void *ctx);

void ra_events_session_drained(ra_session *s);
void ra_events_session_closed(ra_session *s);

ra_err ra_op_subscribe(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_unsubscribe(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);

#endif
