/* ports: listening TCP ports (port.opened / port.closed events from a periodic scan), and the exposures the
 * control plane asks for (port.expose / port.list / port.close, port.exposed events, URLs from a template).
 *
 * The scan runs every portScanMs while the agent has a child process (nothing else in the sandbox can open
 * a listener) or a port.expose is waiting; with no process it stops, so an idle sandbox costs no wake-ups. */
#ifndef RA_PORTS_H
#define RA_PORTS_H

#include "agent.h"
#include "session.h"

void ra_ports_init(ra_agent *a);
void ra_ports_shutdown(void);
/* A process was started: scan from now on. */
void ra_ports_kick(void);
void ra_ports_session_closed(ra_session *s);
/* Ends every exposure (port.closed, reason "unexposed"); how many. */
unsigned ra_ports_unexpose_all(void);

ra_err ra_op_port_expose(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_port_list(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_port_close(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);

#endif
