/* tunnel: TCP byte streams to ports inside the sandbox, carried on the client's WebSocket (port.connect,
 * port.send, port.disconnect; {type:"tunnel"} messages back). This is how a control-plane proxy (or
 * `runra-agent forward`) reaches any port, a server bound only to 127.0.0.1 or ::1 included, even where the
 * sandbox has no routable network.
 *
 * Flow control both ways: the socket is read only while the connection's queue is below
 * RA_STREAM_QUEUE_HIGH; port.send is answered once the bytes not yet written to the socket are below
 * RA_TUNNEL_WINDOW_BYTES (a client keeps a few sends in flight and waits for replies), and refused past
 * RA_TUNNEL_QUEUE_MAX. A tunnel belongs to its connection and ends with it. */
#ifndef RA_TUNNEL_H
#define RA_TUNNEL_H

#include "agent.h"
#include "session.h"

void ra_tunnel_init(ra_agent *a);
void ra_tunnel_shutdown(void);
void ra_tunnel_session_drained(ra_session *s);
void ra_tunnel_session_closed(ra_session *s);
/* Closes every tunnel; each client hears a closed message (error UNAVAILABLE, "reset"). How many. */
unsigned ra_tunnel_close_all(void);

ra_err ra_op_port_connect(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_port_send(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_port_disconnect(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);

#endif
