/* exec: the process ops (exec, proc.*) on top of procmgr, and the delivery of process output to the
 * connections attached to it.
 *
 * An attachment ties a connection to a process for one long-running request (exec in the foreground,
 * proc.attach, proc.wait): output goes out as stream messages tagged with that request's id, each with its
 * byte offset, and the request's reply comes last. Output is pulled from the process's ring only while the
 * connection's queue is short; the ring holds what the slowest attached reader still needs, and when it is
 * full the process is throttled (procmgr stops reading its pipes). */
#ifndef RA_EXEC_H
#define RA_EXEC_H

#include "agent.h"
#include "session.h"

void ra_exec_init(ra_agent *agent);
/* SIGTERM to every live process group (the start of a shutdown). */
/* SIGKILL to what is left, and free everything. */
void ra_exec_shutdown(void);

/* The connection's queue has room again: send it more output. */
void ra_exec_session_drained(ra_session *s);
/* The connection is gone: drop its attachments, kill what it asked to be killed on disconnect. */
void ra_exec_session_closed(ra_session *s);

ra_err ra_op_exec(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_proc_list(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_proc_get(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_proc_kill(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_proc_stdin(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_proc_close_stdin(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_proc_wait(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_proc_attach(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_proc_detach(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_proc_resize(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);

#endif
