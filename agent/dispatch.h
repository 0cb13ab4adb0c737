/* dispatch: decodes one request, finds its op and runs it; every outcome is a reply (or an error reply) on
 * the same session. The op table is here, including the ops reserved for later versions. */
#ifndef RA_DISPATCH_H
#define RA_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "session.h"

void ra_dispatch_init(ra_agent *agent);
/* Handles one complete inbound message (the bytes stay owned by the caller). */
void ra_dispatch_message(ra_session *s, const uint8_t *msg, size_t len);
/* The session's outbound queue is short again (long-running requests may send more). */
void ra_dispatch_session_drained(ra_session *s);
/* The session is closing: release what its requests hold. */
void ra_dispatch_session_closed(ra_session *s);
/* Queues the ready message that opens every connection. */
void ra_dispatch_send_ready(ra_session *s);

#endif
