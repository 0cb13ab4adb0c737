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

#endif
