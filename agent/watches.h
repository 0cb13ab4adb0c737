/* watches: the watch.* ops, and the watcher's changes as file.* and watch.* events on the bus. */
#ifndef RA_WATCHES_H
#define RA_WATCHES_H

#include "agent.h"
#include "session.h"

/* Creates the inotify instance and, unless configured off, watches the workdir. Failures are logged: the
 * agent serves without a watcher rather than not at all. */
void ra_watches_init(ra_agent *a);
void ra_watches_shutdown(void);

ra_err ra_op_watch_add(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_watch_remove(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_watch_list(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);

#endif
