/* lifecycle: the sandbox's life as the agent sees it. sandbox.started once; one shutdown path for SIGTERM,
 * the shutdown op and the hard timeout (SIGTERM to every process, a grace period, SIGKILL, sync,
 * sandbox.terminated, connections closed, exit 0); pause.prepare / resume and clock-jump detection
 * (sandbox.resumed); sandbox.reset for pools; idle and hard timeouts (sandbox.idle, sandbox.timeout). */
#ifndef RA_LIFECYCLE_H
#define RA_LIFECYCLE_H

#include "agent.h"
#include "session.h"

void ra_lifecycle_init(ra_agent *a, void (*stop_serving)(void));
void ra_lifecycle_shutdown(void);
/* Something happened (a request, process output, a connection): the idle clock starts again. Also looks
 * for a clock jump that says the sandbox was paused. Cheap. */
void ra_lifecycle_touch(void);
/* The touch of a request arriving: a pause it reveals is the one a `resume` request reports. */
void ra_lifecycle_message(void);
/* Starts the shutdown path (once). reason: "signal", "request", "timeout". */
void ra_lifecycle_begin_shutdown(const char *reason, uint32_t grace_ms);

ra_err ra_op_shutdown(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_pause_prepare(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_resume(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_sandbox_reset(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_lifecycle_configure(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_timeout_extend(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
void ra_lifecycle_session_closed(ra_session *s);

#endif
