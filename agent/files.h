/* files: the file ops (file.*) on top of fsops: argument checks, paths resolved against the workdir,
 * errno mapped to protocol codes with the op and the path in the message. */
#ifndef RA_FILES_H
#define RA_FILES_H

#include "agent.h"
#include "session.h"

void ra_files_init(ra_agent *agent);

ra_err ra_op_file_stat(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_exists(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_mkdir(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_delete(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_move(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_chmod(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_list(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_read(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_write(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_upload_open(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_upload_chunk(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_upload_commit(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);
ra_err ra_op_file_upload_abort(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);

/* The connection's queue has room again: send more of its streamed reads. */
void ra_files_session_drained(ra_session *s);
/* The connection is gone: its streamed reads stop, its uploads are discarded (no temporary file stays). */
void ra_files_session_closed(ra_session *s);

#endif
