/* events: the event bus. Every event gets a global monotonic seq and a timestamp and goes to each session
 * whose subscription matches its name ("exec.*", "*", or an exact name). A session subscribes to nothing
 * on connect. (Replay of missed events and finer filters come with the events issue.) */
#ifndef RA_EVENTS_H
#define RA_EVENTS_H

#include <stdint.h>

#include "../proto/proto.h"
#include "session.h"

/* Writes the event's own fields (exactly `fields` key/value pairs) into the message. */
typedef void (*ra_event_fill_fn)(ra_enc *e, const void *ctx);

/* {type:"event", event:name, seq, ts, ...fields}. Returns the seq given to the event. */
uint64_t ra_events_emit(const char *name, uint32_t fields, ra_event_fill_fn fill, const void *ctx);

ra_err ra_op_subscribe(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_unsubscribe(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);

#endif
