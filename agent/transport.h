/* transport: libwebsockets on the libev default loop. The only module that includes <libwebsockets.h>.
 *
 * One vhost serves a WebSocket endpoint (subprotocol runra.agent.v1, bearer token checked at the upgrade:
 * HTTP 401 and no upgrade when it is wrong) and GET /healthz (no auth). TCP and unix sockets are lws's own
 * listeners; a vsock listener is ours, and its accepted sockets are adopted by lws. Each connection's
 * protocol state is a session (session.h); complete messages go to dispatch. */
#ifndef RA_TRANSPORT_H
#define RA_TRANSPORT_H

#include "agent.h"

/* Creates the context and starts listening; 0, or -1 after logging why. */
int ra_transport_start(ra_agent *agent);
/* Starts a graceful close of every connection (close code 1001); done() runs once they are gone or after
 * grace_ms, whichever is first. */
void ra_transport_shutdown(unsigned grace_ms, void (*done)(void));
/* Destroys the context; no lws watcher remains on the loop. */
void ra_transport_destroy(void);

#endif
