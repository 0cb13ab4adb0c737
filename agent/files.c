#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../fsops/fsops.h"
#include "../proto/ra_limits.h"
#include "../proto/sha256.h"
#include "pid1.h"

static ra_agent *agent;

void ra_files_init(ra_agent *a) { agent = a; }

/* What the agent creates belongs to the default user, when one is configured; NULL: to the agent. */
static const ra_fs_owner *default_owner(void)
{
	static ra_fs_owner owner;
	if (!agent->config->default_user[0])
		return NULL;
	owner.uid = agent->config->default_uid;
	owner.gid = agent->config->default_gid;
	return &owner;
}

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
		ra_enc_str(e, st->target ? st->target : "");
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
	ra_fs_stat_free(&st);
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
	ra_fs_stat_free(&st);
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
	bool created = false;
	int r = ra_fs_mkdir(path, mode, recursive, default_owner(), &created);
	if (r)
		return fs_error(why, r, "mkdir", path);
	bool existed = !created;
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
	if (r == -EXDEV)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "delete '%s': another filesystem is mounted inside; not entered",
			       path);
	struct stat on_the_way;
	if (r == -ELOOP && lstat(path, &on_the_way) == 0) /* not a symlink loop on the way: the tree's depth */
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "delete '%s': nested deeper than 512 directories", path);
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
		return ra_fail(why, RA_ERR_UNSUPPORTED, "move '%s' to '%s': only regular files move across filesystems",
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
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "list '%s': more than %u entries (list with a smaller depth)",
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

static ra_err start_download(ra_session *s, const ra_request *req, int fd, uint64_t size, const char *path,
			     uint64_t offset, uint64_t length, bool has_length, bool digest, ra_why *why);

ra_err ra_op_file_read(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	char path[RA_FS_PATH_MAX];
	uint64_t offset = 0, length = UINT64_MAX;
	bool stream = false, digest = false;
	ra_err rc;
	if ((rc = path_arg(req, "path", path, why)) || (rc = ra_arg_u64(req, "offset", false, INT64_MAX, &offset, why)) ||
	    (rc = ra_arg_u64(req, "length", false, INT64_MAX, &length, why)) ||
	    (rc = ra_arg_bool(req, "stream", &stream, why)) || (rc = ra_arg_bool(req, "sha256", &digest, why)))
		return rc;
	bool has_length = length != UINT64_MAX;
	int fd = ra_fs_open_regular(path); /* opened once: what is measured is what is read */
	if (fd >= 0 && ra_fd_in_reserve(fd)) { /* kept for new connections and process pipes */
		close(fd);
		fd = -EMFILE;
	}
	if (fd == -EINVAL)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "read '%s': not a regular file", path);
	if (fd < 0)
		return fs_error(why, fd, "read", path);
	struct stat st;
	if (fstat(fd, &st)) {
		int err = errno;
		close(fd);
		return fs_error(why, -err, "read", path);
	}
	uint64_t size = (uint64_t)st.st_size;
	uint64_t wanted = size > offset ? size - offset : 0;
	if (has_length && length < wanted)
		wanted = length;
	if (stream || wanted > RA_FILE_INLINE_MAX) /* large: in chunks */
		return start_download(s, req, fd, size, path, offset, length, has_length, digest, why);
	/* inline: at most the cap, and no bigger a buffer than the file can fill; a size that says nothing
	 * (0: empty, past the end, or /proc) gets a small one */
	if (length > RA_FILE_INLINE_MAX)
		length = RA_FILE_INLINE_MAX;
	if (wanted > 0 && wanted < length)
		length = wanted;
	else if (wanted == 0 && length > RA_FILE_UNSIZED_READ)
		length = RA_FILE_UNSIZED_READ;
	uint8_t *buf = malloc(length ? (size_t)length : 1);
	size_t got = 0;
	int r = buf ? ra_fs_pread(fd, offset, (size_t)length, buf, &got) : -ENOMEM;
	close(fd);
	if (r) {
		free(buf);
		return fs_error(why, r, "read", path);
	}
	ra_enc_reply_begin(reply, req->id, digest ? 6 : 5);
	if (digest) {
		char hex[65];
		ra_sha256 sha;
		ra_sha256_init(&sha);
		ra_sha256_update(&sha, buf, got);
		ra_sha256_hex(&sha, hex);
		ra_enc_str(reply, "sha256");
		ra_enc_str(reply, hex);
	}
	ra_enc_str(reply, "path");
	ra_enc_str(reply, path);
	ra_enc_str(reply, "size");
	ra_enc_u64(reply, size);
	ra_enc_str(reply, "offset");
	ra_enc_u64(reply, offset);
	ra_enc_str(reply, "data");
	ra_enc_bin(reply, buf, got);
	ra_enc_str(reply, "eof"); /* a short read is the end too; a size of 0 (/proc) says nothing */
	ra_enc_bool(reply, got < length || (size > 0 && offset + got >= size));
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
	int r = ra_fs_write(path, data, len, mode, has_mode, append, mkdirs, default_owner(), &created);
	if (r == -EINVAL)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "write '%s': not a regular file", path);
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

/* ---- transfers: streamed reads and uploads, owned by their connection ---- */

typedef struct download {
	struct download *next;
	ra_session *s;
	uint64_t req_id;
	int fd;
	char *path;
	uint64_t start, offset, end, size;
	bool hit_eof; /* a read returned 0: the real end, whatever the size said */
	bool digest;  /* sha256 asked for: it costs the agent more CPU than the transfer itself */
	ra_sha256 sha;
} download;

typedef struct upload {
	struct upload *next;
	ra_session *s;
	char id[24];
	char *path;
	char tmp[RA_FS_PATH_MAX + 64];
	int fd;
	uint32_t mode;
	bool overwrite, existed;
	uint64_t received, written_back;
	ra_sha256 sha;
} upload;

static download *downloads;
static upload *uploads;
static uint64_t next_upload_id = 1;
static uint8_t chunk_buf[RA_STREAM_CHUNK_BYTES];

static void download_free(download *d)
{
	for (download **at = &downloads; *at; at = &(*at)->next)
		if (*at == d) {
			*at = d->next;
			break;
		}
	close(d->fd);
	free(d->path);
	free(d);
}

static void download_finish(download *d)
{
	char hex[65];
	ra_sha256_hex(&d->sha, hex);
	ra_enc e;
	ra_session_enc_init(d->s, &e);
	ra_enc_reply_begin(&e, d->req_id, d->digest ? 6 : 5);
	ra_enc_str(&e, "path");
	ra_enc_str(&e, d->path);
	ra_enc_str(&e, "size");
	ra_enc_u64(&e, d->size);
	ra_enc_str(&e, "offset");
	ra_enc_u64(&e, d->start);
	ra_enc_str(&e, "bytes");
	ra_enc_u64(&e, d->offset - d->start);
	if (d->digest) {
		ra_enc_str(&e, "sha256");
		ra_enc_str(&e, hex);
	}
	ra_enc_str(&e, "eof");
	ra_enc_bool(&e, d->hit_eof || (d->size > 0 && d->offset >= d->size));
	ra_session_send(d->s, &e);
	download_free(d);
}

static void send_file_chunk(download *d, size_t n)
{
	ra_enc e;
	ra_session_enc_init_sized(d->s, &e, n + 128 + strlen(d->path));
	ra_enc_map(&e, 6);
	ra_enc_str(&e, "type");
	ra_enc_str(&e, "stream");
	ra_enc_str(&e, "id");
	ra_enc_u64(&e, d->req_id);
	ra_enc_str(&e, "path");
	ra_enc_str(&e, d->path);
	ra_enc_str(&e, "stream");
	ra_enc_str(&e, "file");
	ra_enc_str(&e, "offset");
	ra_enc_u64(&e, d->offset);
	ra_enc_str(&e, "data");
	ra_enc_bin(&e, chunk_buf, n);
	ra_session_send(d->s, &e);
}

/* Sends chunks while the connection's queue is short: a big file never sits in memory, and the loop is
 * never held for more than one chunk's read. */
static void download_pump(download *d)
{
	while (d->offset < d->end && d->s->out_bytes < RA_STREAM_QUEUE_HIGH && !d->s->out_overflow) {
		size_t want = d->end - d->offset < sizeof(chunk_buf) ? (size_t)(d->end - d->offset) : sizeof(chunk_buf);
		ssize_t n = pread(d->fd, chunk_buf, want, (off_t)d->offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			char what[RA_FS_PATH_MAX + 8];
			snprintf(what, sizeof(what), "read '%s': %s", d->path, strerror(errno));
			ra_session_send_error(d->s, true, d->req_id, ra_err_from_errno(errno), what);
			download_free(d);
			return;
		}
		if (n == 0) { /* the end: the file shrank, or its size was not its length (/proc, /sys) */
			d->end = d->offset;
			d->hit_eof = true;
			break;
		}
		if (d->digest)
			ra_sha256_update(&d->sha, chunk_buf, (size_t)n);
		send_file_chunk(d, (size_t)n);
		d->offset += (uint64_t)n;
	}
	if (d->offset >= d->end)
		download_finish(d);
}

/* Takes fd (the opened regular file of `size` bytes). */
static ra_err start_download(ra_session *s, const ra_request *req, int fd, uint64_t size, const char *path,
			     uint64_t offset, uint64_t length, bool has_length, bool digest, ra_why *why)
{
	unsigned here = 0;
	for (download *o = downloads; o; o = o->next)
		here += o->s == s;
	if (here >= RA_DOWNLOADS_PER_CONNECTION) {
		close(fd);
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED,
			       "at most %u streamed reads in progress per connection: read the ones under way first",
			       RA_DOWNLOADS_PER_CONNECTION);
	}
	download *d = calloc(1, sizeof(*d));
	if (!d || !(d->path = strdup(path))) {
		free(d);
		close(fd);
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	}
	d->s = s;
	d->req_id = req->id;
	d->fd = fd;
	d->size = size;
	d->start = d->offset = offset;
	if (d->size == 0) /* unsized (/proc): read to the end, or to length */
		d->end = has_length ? offset + length : UINT64_MAX;
	else
		d->end = offset >= d->size ? offset : has_length && length < d->size - offset ? offset + length : d->size;
	d->digest = digest;
	ra_sha256_init(&d->sha);
	d->next = downloads;
	downloads = d;
	download_pump(d);
	return RA_REPLY_LATER;
}

void ra_files_session_drained(ra_session *s)
{
	for (download *d = downloads, *next; d; d = next) {
		next = d->next;
		if (d->s == s)
			download_pump(d);
	}
}

static void upload_free(upload *u, bool discard)
{
	for (upload **at = &uploads; *at; at = &(*at)->next)
		if (*at == u) {
			*at = u->next;
			break;
		}
	if (discard)
		ra_fs_temp_discard(u->fd, u->tmp);
	free(u->path);
	free(u);
}

/* A connection that goes away takes its transfers with it: no partial target, no temporary debris. */
void ra_files_session_closed(ra_session *s)
{
	for (download *d = downloads, *next; d; d = next) {
		next = d->next;
		if (d->s == s)
			download_free(d);
	}
	for (upload *u = uploads, *next; u; u = next) {
		next = u->next;
		if (u->s == s)
			upload_free(u, true);
	}
}

static ra_err find_upload(ra_session *s, const ra_request *req, upload **out, ra_why *why)
{
	char *id = NULL;
	ra_err rc = ra_arg_cstr(req, "upload", true, 23, &id, why);
	if (rc)
		return rc;
	*out = NULL;
	for (upload *u = uploads; u && !*out; u = u->next)
		if (u->s == s && strcmp(u->id, id) == 0)
			*out = u;
	rc = *out ? RA_OK : ra_fail(why, RA_ERR_NOT_FOUND, "no upload '%s' on this connection", id);
	free(id);
	return rc;
}

ra_err ra_op_file_upload_open(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	char path[RA_FS_PATH_MAX];
	bool mkdirs = false, overwrite = true, has_mode, exists;
	uint32_t mode = 0644;
	mode_t existing;
	uid_t owner_uid;
	gid_t owner_gid;
	ra_err rc;
	if ((rc = path_arg(req, "path", path, why)) || (rc = ra_arg_bool(req, "mkdirs", &mkdirs, why)) ||
	    (rc = ra_arg_bool(req, "overwrite", &overwrite, why)) || (rc = mode_arg(req, &has_mode, &mode, why)))
		return rc;
	int r = ra_fs_prepare_target(path, mkdirs, &exists, &existing, &owner_uid, &owner_gid);
	if (r)
		return fs_error(why, r, "upload", path);
	if (exists && !overwrite)
		return ra_fail(why, RA_ERR_ALREADY_EXISTS, "upload '%s': it exists (use overwrite: true)", path);
	unsigned open_here = 0;
	for (upload *u = uploads; u; u = u->next)
		open_here += u->s == s;
	if (open_here >= RA_UPLOADS_PER_CONNECTION)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "at most %u uploads open per connection",
			       RA_UPLOADS_PER_CONNECTION);
	upload *u = calloc(1, sizeof(*u));
	if (!u || !(u->path = strdup(path))) {
		free(u);
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	}
	u->fd = ra_fs_temp_create(path, 0600, u->tmp, sizeof(u->tmp));
	if (u->fd >= 0 && ra_fd_in_reserve(u->fd)) { /* kept for new connections and process pipes */
		ra_fs_temp_discard(u->fd, u->tmp);
		u->fd = -EMFILE;
	}
	if (u->fd < 0) {
		r = u->fd;
		free(u->path);
		free(u);
		return fs_error(why, r, "upload", path);
	}
	/* the replaced file keeps its owner; a new one is the default user's, before it has a name */
	const ra_fs_owner *fresh = default_owner();
	if (exists)
		r = ra_fs_temp_owner(u->fd, owner_uid, owner_gid);
	else
		r = fresh ? ra_fs_temp_owner(u->fd, fresh->uid, fresh->gid) : 0;
	if (r) {
		ra_fs_temp_discard(u->fd, u->tmp);
		free(u->path);
		free(u);
		return fs_error(why, r, "upload", path);
	}
	u->s = s;
	u->mode = has_mode || !exists ? mode : (uint32_t)existing;
	u->overwrite = overwrite;
	u->existed = exists;
	snprintf(u->id, sizeof(u->id), "u%llu", (unsigned long long)next_upload_id++);
	ra_sha256_init(&u->sha);
	u->next = uploads;
	uploads = u;
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "upload");
	ra_enc_str(reply, u->id);
	ra_enc_str(reply, "path");
	ra_enc_str(reply, path);
	return RA_OK;
}

ra_err ra_op_file_upload_chunk(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	upload *u;
	uint64_t offset = UINT64_MAX;
	const uint8_t *data = NULL;
	uint32_t len = 0;
	bool present;
	ra_err rc;
	if ((rc = find_upload(s, req, &u, why)) || (rc = ra_arg_u64(req, "offset", true, INT64_MAX, &offset, why)) ||
	    (rc = ra_arg_bytes(req, "data", &data, &len, &present, why)))
		return rc;
	if (!present)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "data is required");
	if (offset != u->received) /* chunks come in order: a gap or a repeat is the client's bug, not data */
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "upload '%s': chunk at offset %llu, expected %llu", u->id,
			       (unsigned long long)offset, (unsigned long long)u->received);
	int r = ra_fs_write_all(u->fd, data, len);
	if (r) { /* a failed write ends the upload: the old target stays as it was */
		rc = fs_error(why, r, "upload", u->path);
		upload_free(u, true);
		return rc;
	}
	ra_sha256_update(&u->sha, data, len);
	u->received += len;
	if (u->received - u->written_back >= RA_UPLOAD_WRITEBACK_BYTES) {
		ra_fs_start_writeback(u->fd, u->written_back, u->received - u->written_back);
		u->written_back = u->received;
	}
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "upload");
	ra_enc_str(reply, u->id);
	ra_enc_str(reply, "received");
	ra_enc_u64(reply, u->received);
	return RA_OK;
}

ra_err ra_op_file_upload_commit(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	upload *u;
	char *expected = NULL;
	ra_err rc;
	if ((rc = find_upload(s, req, &u, why)) || (rc = ra_arg_cstr(req, "sha256", false, 64, &expected, why)))
		return rc;
	char hex[65];
	ra_sha256_hex(&u->sha, hex);
	if (expected && strcasecmp(expected, hex) != 0) {
		rc = ra_fail(why, RA_ERR_INVALID_CONFIG, "upload '%s': sha256 mismatch (received %s): nothing replaced",
			     u->id, hex);
		free(expected);
		upload_free(u, true);
		return rc;
	}
	free(expected);
	int r = ra_fs_temp_commit(u->fd, u->tmp, u->path, u->mode, u->overwrite);
	u->fd = -1; /* committed or discarded by ra_fs_temp_commit */
	if (r) {
		rc = r == -EEXIST ? ra_fail(why, RA_ERR_ALREADY_EXISTS, "upload '%s': it exists now", u->path)
				  : fs_error(why, r, "upload", u->path);
		upload_free(u, false);
		return rc;
	}
	ra_enc_reply_begin(reply, req->id, 4);
	ra_enc_str(reply, "path");
	ra_enc_str(reply, u->path);
	ra_enc_str(reply, "size");
	ra_enc_u64(reply, u->received);
	ra_enc_str(reply, "sha256");
	ra_enc_str(reply, hex);
	ra_enc_str(reply, "created");
	ra_enc_bool(reply, !u->existed);
	upload_free(u, false);
	return RA_OK;
}

ra_err ra_op_file_upload_abort(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	upload *u;
	ra_err rc = find_upload(s, req, &u, why);
	if (rc)
		return rc;
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "upload");
	ra_enc_str(reply, u->id);
	ra_enc_str(reply, "aborted");
	ra_enc_bool(reply, true);
	upload_free(u, true);
	return RA_OK;
}
