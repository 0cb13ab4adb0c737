#include "files.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../fsops/fsops.h"
#include "../proto/ra_limits.h"

static ra_agent *agent;

void ra_files_init(ra_agent *a) { agent = a; }

static ra_err fs_error(ra_why *why, int rc, const char *op, const char *path)
{
	return ra_fail(why, ra_err_from_errno(-rc), "%s '%s': %s", op, path, strerror(-rc));
}

/* The argument `key` as an absolute, normalized path (relative paths are under the workdir). */
static ra_err path_arg(const ra_request *req, const char *key, char *out, ra_why *why)
{
	const msgpack_object *o = ra_map_get(req->map, key);
	if (!o || o->type != MSGPACK_OBJECT_STR)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "%s must be a path (a string)", key);
	int rc = ra_fs_resolve(agent->config->workdir, o->via.str.ptr, o->via.str.size, out, RA_FS_PATH_MAX);
	if (rc == -ENAMETOOLONG)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "%s is longer than %d bytes", key, RA_FS_PATH_MAX - 1);
	if (rc)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "%s must be a non-empty path without NUL bytes", key);
	return RA_OK;
}

static ra_err mode_arg(const ra_request *req, bool *present, uint32_t *mode, ra_why *why)
{
	uint64_t m = UINT64_MAX;
	ra_err rc = ra_arg_u64(req, "mode", false, 07777, &m, why);
	*present = m != UINT64_MAX;
	if (*present)
		*mode = (uint32_t)m;
	return rc;
}

/* {path, name, type, size, mode, mtime, uid, gid[, target]} plus `extra` entries the caller adds. */
static void enc_stat(ra_enc *e, const char *path, const char *name, const ra_fs_stat *st, uint32_t extra)
{
	bool link = st->type == RA_FS_SYMLINK;
	ra_enc_map(e, 8u + (link ? 1u : 0u) + extra);
	ra_enc_str(e, "path");
	ra_enc_str(e, path);
	ra_enc_str(e, "name");
	ra_enc_str(e, name);
	ra_enc_str(e, "type");
	ra_enc_str(e, ra_fs_type_name(st->type));
	ra_enc_str(e, "size");
	ra_enc_u64(e, st->size);
	ra_enc_str(e, "mode");
	ra_enc_u64(e, st->mode);
	ra_enc_str(e, "mtime");
	ra_enc_i64(e, st->mtime_ms);
	ra_enc_str(e, "uid");
	ra_enc_u64(e, st->uid);
	ra_enc_str(e, "gid");
	ra_enc_u64(e, st->gid);
	if (link) {
		ra_enc_str(e, "target");
		ra_enc_str(e, st->target);
	}
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash && slash[1] ? slash + 1 : path;
}

ra_err ra_op_file_stat(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	char path[RA_FS_PATH_MAX];
	bool follow = false;
	ra_err rc;
	if ((rc = path_arg(req, "path", path, why)) || (rc = ra_arg_bool(req, "follow", &follow, why)))
		return rc;
	ra_fs_stat st;
	int r = ra_fs_stat_path(path, follow, &st);
	if (r)
		return fs_error(why, r, "stat", path);
	/* {type:"reply", id, result: <the stat map>} */
	ra_enc_map(reply, 3);
	ra_enc_str(reply, "type");
	ra_enc_str(reply, "reply");
	ra_enc_str(reply, "id");
	ra_enc_u64(reply, req->id);
	ra_enc_str(reply, "result");
	enc_stat(reply, path, base_name(path), &st, 0);
	return RA_OK;
}

ra_err ra_op_file_exists(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	char path[RA_FS_PATH_MAX];
	ra_err rc = path_arg(req, "path", path, why);
	if (rc)
		return rc;
	ra_fs_stat st;
	int r = ra_fs_stat_path(path, false, &st);
	if (r && r != -ENOENT && r != -ENOTDIR)
		return fs_error(why, r, "exists", path);
	ra_enc_reply_begin(reply, req->id, r ? 2 : 3);
	ra_enc_str(reply, "path");
	ra_enc_str(reply, path);
	ra_enc_str(reply, "exists");
	ra_enc_bool(reply, r == 0);
	if (!r) {
		ra_enc_str(reply, "type");
		ra_enc_str(reply, ra_fs_type_name(st.type));
	}
	return RA_OK;
}

ra_err ra_op_file_mkdir(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	char path[RA_FS_PATH_MAX];
	bool recursive = true, has_mode;
	uint32_t mode = 0755;
	ra_err rc;
	if ((rc = path_arg(req, "path", path, why)) || (rc = ra_arg_bool(req, "recursive", &recursive, why)) ||
	    (rc = mode_arg(req, &has_mode, &mode, why)))
		return rc;
	ra_fs_stat st;
	bool existed = ra_fs_stat_path(path, true, &st) == 0 && st.type == RA_FS_DIR;
	int r = ra_fs_mkdir(path, mode, recursive);
	if (r)
		return fs_error(why, r, "mkdir", path);
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "path");
	ra_enc_str(reply, path);
	ra_enc_str(reply, "created");
	ra_enc_bool(reply, !existed);
	return RA_OK;
}

ra_err ra_op_file_delete(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	char path[RA_FS_PATH_MAX];
	bool recursive = false;
	ra_err rc;
	if ((rc = path_arg(req, "path", path, why)) || (rc = ra_arg_bool(req, "recursive", &recursive, why)))
		return rc;
	if (strcmp(path, "/") == 0)
		return ra_fail(why, RA_ERR_PERMISSION_DENIED, "delete '/': refused");
	int r = ra_fs_delete(path, recursive);
	if (r == -ENOTEMPTY || r == -EEXIST)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "delete '%s': directory not empty (use recursive: true)", path);
	if (r)
		return fs_error(why, r, "delete", path);
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "path");
	ra_enc_str(reply, path);
	ra_enc_str(reply, "deleted");
	ra_enc_bool(reply, true);
	return RA_OK;
}

ra_err ra_op_file_move(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	char from[RA_FS_PATH_MAX], to[RA_FS_PATH_MAX];
	bool overwrite = false;
	ra_err rc;
	if ((rc = path_arg(req, "from", from, why)) || (rc = path_arg(req, "to", to, why)) ||
	    (rc = ra_arg_bool(req, "overwrite", &overwrite, why)))
		return rc;
	int r = ra_fs_move(from, to, overwrite);
	if (r == -EEXIST)
		return ra_fail(why, RA_ERR_ALREADY_EXISTS, "move to '%s': it exists (use overwrite: true)", to);
	if (r == -EXDEV)
		return ra_fail(why, RA_ERR_UNSUPPORTED, "move '%s' to '%s': a directory cannot move across filesystems",
			       from, to);
	if (r)
		return fs_error(why, r, "move", from);
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "from");
	ra_enc_str(reply, from);
	ra_enc_str(reply, "to");
	ra_enc_str(reply, to);
	return RA_OK;
}

ra_err ra_op_file_chmod(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	char path[RA_FS_PATH_MAX];
	bool has_mode;
	uint32_t mode = 0;
	ra_err rc;
	if ((rc = path_arg(req, "path", path, why)) || (rc = mode_arg(req, &has_mode, &mode, why)))
		return rc;
	if (!has_mode)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "mode is required (e.g. 493 for 0755)");
	int r = ra_fs_chmod(path, mode);
	if (r)
		return fs_error(why, r, "chmod", path);
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "path");
	ra_enc_str(reply, path);
	ra_enc_str(reply, "mode");
	ra_enc_u64(reply, mode);
	return RA_OK;
}

ra_err ra_op_file_list(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	char path[RA_FS_PATH_MAX];
	char *after = NULL;
	uint64_t depth = 1, limit = RA_FILE_LIST_DEFAULT;
	ra_err rc;
	if ((rc = path_arg(req, "path", path, why)) || (rc = ra_arg_u64(req, "depth", false, RA_FILE_LIST_MAX_DEPTH, &depth, why)) ||
	    (rc = ra_arg_u64(req, "limit", false, RA_FILE_LIST_MAX, &limit, why)) ||
	    (rc = ra_arg_cstr(req, "after", false, RA_FS_PATH_MAX - 1, &after, why)))
		return rc;
	if (!depth || !limit) {
		free(after);
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "depth and limit must be at least 1");
	}
	ra_fs_listing l;
	int r = ra_fs_list(path, (unsigned)depth, after, (size_t)limit, RA_FILE_LIST_MAX_SCAN, &l);
	free(after);
	if (r == -E2BIG)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "list '%s': more than %u entries (list with a smaller depth)",
			       path, RA_FILE_LIST_MAX_SCAN);
	if (r)
		return fs_error(why, r, "list", path);
	ra_enc_reply_begin(reply, req->id, 3);
	ra_enc_str(reply, "path");
	ra_enc_str(reply, path);
	ra_enc_str(reply, "entries");
	ra_enc_array(reply, (uint32_t)l.count);
	for (size_t i = 0; i < l.count; i++)
		enc_stat(reply, l.entries[i].path, l.entries[i].name, &l.entries[i].st, 0);
	ra_enc_str(reply, "next"); /* pass as `after` for the next page; nil on the last */
	if (l.more && l.count)
		ra_enc_str(reply, l.entries[l.count - 1].path);
	else
		ra_enc_nil(reply);
	ra_fs_listing_free(&l);
	return RA_OK;
}

ra_err ra_op_file_read(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	char path[RA_FS_PATH_MAX];
	uint64_t offset = 0, length = RA_FILE_INLINE_MAX;
	ra_err rc;
	if ((rc = path_arg(req, "path", path, why)) || (rc = ra_arg_u64(req, "offset", false, INT64_MAX, &offset, why)) ||
	    (rc = ra_arg_u64(req, "length", false, RA_FILE_INLINE_MAX, &length, why)))
		return rc;
	uint8_t *buf = malloc(length ? (size_t)length : 1);
	if (!buf)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	size_t got;
	uint64_t size;
	int r = ra_fs_read(path, offset, (size_t)length, buf, &got, &size);
	if (r) {
		free(buf);
		return fs_error(why, r, "read", path);
	}
	ra_enc_reply_begin(reply, req->id, 5);
	ra_enc_str(reply, "path");
	ra_enc_str(reply, path);
	ra_enc_str(reply, "size");
	ra_enc_u64(reply, size);
	ra_enc_str(reply, "offset");
	ra_enc_u64(reply, offset);
	ra_enc_str(reply, "data");
	ra_enc_bin(reply, buf, got);
	ra_enc_str(reply, "eof");
	ra_enc_bool(reply, offset + got >= size);
	free(buf);
	return RA_OK;
}

ra_err ra_op_file_write(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	char path[RA_FS_PATH_MAX];
	const uint8_t *data = NULL;
	uint32_t len = 0, mode = 0644;
	bool present, append = false, mkdirs = false, has_mode;
	ra_err rc;
	if ((rc = path_arg(req, "path", path, why)) || (rc = ra_arg_bytes(req, "data", &data, &len, &present, why)) ||
	    (rc = ra_arg_bool(req, "append", &append, why)) || (rc = ra_arg_bool(req, "mkdirs", &mkdirs, why)) ||
	    (rc = mode_arg(req, &has_mode, &mode, why)))
		return rc;
	if (!present)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "data is required (bin or string; empty for an empty file)");
	bool created;
	int r = ra_fs_write(path, data, len, mode, has_mode, append, mkdirs, &created);
	if (r)
		return fs_error(why, r, "write", path);
	ra_enc_reply_begin(reply, req->id, 3);
	ra_enc_str(reply, "path");
	ra_enc_str(reply, path);
	ra_enc_str(reply, "written");
	ra_enc_u64(reply, len);
	ra_enc_str(reply, "created");
	ra_enc_bool(reply, created);
	return RA_OK;
}
