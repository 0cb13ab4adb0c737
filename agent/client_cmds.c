/* The debug client's commands: health, ping, info, exec, ps, kill, the file commands and watch. Each builds
 * its request when the agent is ready and turns the answers into output for people (or JSON with --json) and
 * an exit status. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../proto/sha256.h"
#include "client_internal.h"
#include "config.h"

#define REQUEST_ID 1

static double sent_at;

/* ---- shared: one request, one reply ---- */

static const msgpack_object *reply_result(const msgpack_object_map *m)
{
	if (!client_str_is(ra_map_get(m, "type"), "reply"))
		return NULL;
	const msgpack_object *id = ra_map_get(m, "id");
	if (!id || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER || id->via.u64 != REQUEST_ID)
		return NULL;
	const msgpack_object *err = ra_map_get(m, "error");
	if (err) {
		client_report_error(err);
		return NULL;
	}
	return ra_map_get(m, "result");
}

static void print_json_result(const msgpack_object *result)
{
	printf("{\"rttMs\":%.3f,\"result\":", (client_now() - sent_at) * 1000.0);
	client_print_json(stdout, result);
	printf("}\n");
}

/* The reply's result when it is to be shown to people; NULL when it was an error (reported) or --json
 * printed it (and the command is finished). */
static const msgpack_object *result_for_people(const msgpack_object_map *m)
{
	const msgpack_object *r = reply_result(m);
	if (r && client_json()) {
		print_json_result(r);
		client_finish(0);
		return NULL;
	}
	return r;
}

static void print_kv(const msgpack_object *map)
{
	for (uint32_t i = 0; map->type == MSGPACK_OBJECT_MAP && i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		printf("%.*s: ", (int)kv->key.via.str.size, kv->key.via.str.ptr);
		if (kv->val.type == MSGPACK_OBJECT_STR)
			printf("%.*s", (int)kv->val.via.str.size, kv->val.via.str.ptr);
		else
			client_print_json(stdout, &kv->val);
		putchar('\n');
	}
}

static int no_arguments(int argc, char **argv)
{
	(void)argv;
	return argc == 1 ? 0 : 2;
}

static void send_simple(const char *op)
{
	sent_at = client_now();
	client_send(client_request(REQUEST_ID, op, 0));
}

/* ---- health ---- */

static void health_start(void) {}
static void health_message(const msgpack_object_map *m) { (void)m; }

void client_health_result(int status, const char *body, size_t len)
{
	int n = (int)len;
	while (n && body[n - 1] == '\n')
		n--;
	if (status != 200) {
		char msg[200];
		snprintf(msg, sizeof(msg), "HTTP %d: %.*s", status, n > 150 ? 150 : n, body);
		client_fail("UNAVAILABLE", msg);
		return;
	}
	printf(client_json() ? "%.*s\n" : "healthy: %.*s\n", n, body);
	client_finish(0);
}

/* ---- ping, info ---- */

static void ping_start(void) { send_simple("ping"); }
static void info_start(void) { send_simple("info"); }

static void ping_message(const msgpack_object_map *m)
{
	const msgpack_object *r = reply_result(m);
	if (!r)
		return;
	if (client_json())
		print_json_result(r);
	else
		printf("pong from %s in %.3f ms\n", client_url(), (client_now() - sent_at) * 1000.0);
	client_finish(0);
}

static void info_message(const msgpack_object_map *m)
{
	const msgpack_object *r = result_for_people(m);
	if (!r)
		return;
	print_kv(r);
	client_finish(0);
}

/* ---- ps ---- */

static void ps_start(void) { send_simple("proc.list"); }

static void print_cell(const msgpack_object *status, const char *key, int width)
{
	const msgpack_object *v = ra_map_get(&status->via.map, key);
	if (!v || v->type == MSGPACK_OBJECT_NIL)
		printf("%-*s ", width, "-");
	else if (v->type == MSGPACK_OBJECT_STR)
		printf("%-*.*s ", width, (int)v->via.str.size, v->via.str.ptr);
	else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		printf("%-*llu ", width, (unsigned long long)v->via.u64);
	else
		printf("%-*lld ", width, (long long)v->via.i64);
}

static void ps_message(const msgpack_object_map *m)
{
	const msgpack_object *r = result_for_people(m);
	if (!r)
		return;
	const msgpack_object *list = ra_map_get(&r->via.map, "processes");
	printf("%-16s %-8s %-8s %-5s %s\n", "PROC", "PID", "STATE", "EXIT", "COMMAND");
	for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size; i++) {
		const msgpack_object *p = &list->via.array.ptr[i];
		print_cell(p, "proc", 16);
		print_cell(p, "pid", 8);
		print_cell(p, "state", 8);
		print_cell(p, "exitCode", 5);
		const msgpack_object *cmd = ra_map_get(&p->via.map, "command");
		printf("%.*s\n", cmd ? (int)cmd->via.str.size : 0, cmd ? cmd->via.str.ptr : "");
	}
	client_finish(0);
}

/* ---- kill [-SIGNAL] PROC ---- */

static const char *kill_signal = "SIGTERM";
static const char *kill_proc;

static int kill_parse(int argc, char **argv)
{
	int i = 1;
	if (i < argc && argv[i][0] == '-' && argv[i][1])
		kill_signal = argv[i++] + 1;
	if (argc - i != 1)
		return 2;
	kill_proc = argv[i];
	return 0;
}

static void kill_start(void)
{
	ra_enc *e = client_request(REQUEST_ID, "proc.kill", 2);
	if (!e)
		return;
	ra_enc_str(e, "proc");
	ra_enc_str(e, kill_proc);
	ra_enc_str(e, "signal");
	unsigned long number;
	if (ra_parse_uint(kill_signal, 1, 64, &number) == 0)
		ra_enc_u64(e, number); /* real-time signals have numbers, not names */
	else
		ra_enc_str(e, kill_signal);
	sent_at = client_now();
	client_send(e);
}

static void kill_message(const msgpack_object_map *m)
{
	const msgpack_object *r = result_for_people(m);
	if (!r)
		return;
	print_kv(r);
	client_finish(0);
}

/* ---- exec [--cwd DIR] [--env K=V]... [--timeout MS] [--user U] [--tty] [-i] -- CMD... ---- */

#define STDIN_IN_FLIGHT 8

static struct {
	const char *cwd, *user;
	char **env;
	int env_count;
	unsigned long timeout_ms;
	bool tty, forward_stdin;
	char **argv;
	int argc;
	char proc_id[64];
	ev_io stdin_watch;
	ev_signal winch;
	int stdin_in_flight;
	bool stdin_done; /* EOF sent */
	uint64_t next_id;
	bool raw_mode;
	struct termios saved_termios;
} ex = {.next_id = REQUEST_ID + 1};

static int exec_parse(int argc, char **argv)
{
	ex.env = calloc((size_t)argc, sizeof(char *));
	int i = 1;
	for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
		bool has_value = i + 1 < argc;
		if (strcmp(argv[i], "--cwd") == 0 && has_value)
			ex.cwd = argv[++i];
		else if (strcmp(argv[i], "--user") == 0 && has_value)
			ex.user = argv[++i];
		else if (strcmp(argv[i], "--env") == 0 && has_value && strchr(argv[i + 1], '=') && ex.env)
			ex.env[ex.env_count++] = argv[++i];
		else if (strcmp(argv[i], "--timeout") == 0 && has_value && !ra_parse_uint(argv[i + 1], 1, 604800000, &ex.timeout_ms))
			i++;
		else if (strcmp(argv[i], "--tty") == 0 || strcmp(argv[i], "-t") == 0)
			ex.tty = true;
		else if (strcmp(argv[i], "--stdin") == 0 || strcmp(argv[i], "-i") == 0)
			ex.forward_stdin = true;
		else
			return 2;
	}
	if (i + 1 >= argc)
		return 2; /* "--" and at least one word are required */
	ex.argv = argv + i + 1;
	ex.argc = argc - i - 1;
	snprintf(ex.proc_id, sizeof(ex.proc_id), "cli-%d-%ld", (int)getpid(), (long)time(NULL));
	return 0;
}

static void restore_terminal(void)
{
	if (ex.raw_mode)
		tcsetattr(STDIN_FILENO, TCSANOW, &ex.saved_termios);
	ex.raw_mode = false;
}

static void enc_pty(ra_enc *e)
{
	struct winsize ws = {.ws_row = 24, .ws_col = 80};
	ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws);
	ra_enc_map(e, 2);
	ra_enc_str(e, "cols");
	ra_enc_u64(e, ws.ws_col ? ws.ws_col : 80);
	ra_enc_str(e, "rows");
	ra_enc_u64(e, ws.ws_row ? ws.ws_row : 24);
}

static void enc_command(ra_enc *e)
{
	if (ex.argc == 1) { /* one word: a shell command line */
		ra_enc_str(e, "cmd");
		ra_enc_str(e, ex.argv[0]);
		return;
	}
	ra_enc_str(e, "argv");
	ra_enc_array(e, (uint32_t)ex.argc);
	for (int i = 0; i < ex.argc; i++)
		ra_enc_str(e, ex.argv[i]);
}

static void send_stdin(const void *data, size_t n, bool eof)
{
	ra_enc *e = client_request(ex.next_id++, "proc.stdin", 2);
	if (!e)
		return;
	ra_enc_str(e, "proc");
	ra_enc_str(e, ex.proc_id);
	if (eof) {
		ra_enc_str(e, "eof");
		ra_enc_bool(e, true);
	} else {
		ra_enc_str(e, "data");
		ra_enc_bin(e, data, n);
	}
	ex.stdin_in_flight++;
	client_send(e);
}

static void on_stdin(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	char buf[32768];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		ev_io_stop(loop, w);
		ex.stdin_done = true;
		send_stdin(NULL, 0, true);
		return;
	}
	send_stdin(buf, (size_t)n, false);
	if (ex.stdin_in_flight >= STDIN_IN_FLIGHT)
		ev_io_stop(loop, w); /* resumed as the agent acknowledges */
}

static void on_winch(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	ra_enc *e = client_request(ex.next_id++, "proc.resize", 3);
	if (!e)
		return;
	struct winsize ws = {.ws_row = 24, .ws_col = 80};
	ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws);
	ra_enc_str(e, "proc");
	ra_enc_str(e, ex.proc_id);
	ra_enc_str(e, "cols");
	ra_enc_u64(e, ws.ws_col ? ws.ws_col : 80);
	ra_enc_str(e, "rows");
	ra_enc_u64(e, ws.ws_row ? ws.ws_row : 24);
	client_send(e);
}

static void start_local_terminal(void)
{
	if (ex.tty && ex.forward_stdin && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &ex.saved_termios) == 0) {
		struct termios raw = ex.saved_termios;
		cfmakeraw(&raw);
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
			ex.raw_mode = true;
		atexit(restore_terminal);
	}
	if (ex.tty) {
		ev_signal_init(&ex.winch, on_winch, SIGWINCH);
		ev_signal_start(client_loop(), &ex.winch);
	}
	if (ex.forward_stdin) {
		ev_io_init(&ex.stdin_watch, on_stdin, STDIN_FILENO, EV_READ);
		ev_io_start(client_loop(), &ex.stdin_watch);
	}
}

static void exec_start(void)
{
	uint32_t args = 2u + (ex.cwd ? 1u : 0u) + (ex.user ? 1u : 0u) + (ex.env_count ? 1u : 0u) +
			(ex.timeout_ms ? 1u : 0u) + (ex.tty ? 1u : 0u) + (ex.forward_stdin ? 1u : 0u);
	ra_enc *e = client_request(REQUEST_ID, "exec", args);
	if (!e)
		return;
	enc_command(e);
	ra_enc_str(e, "procId");
	ra_enc_str(e, ex.proc_id);
	if (ex.cwd) {
		ra_enc_str(e, "cwd");
		ra_enc_str(e, ex.cwd);
	}
	if (ex.user) {
		ra_enc_str(e, "user");
		ra_enc_str(e, ex.user);
	}
	if (ex.env_count) {
		ra_enc_str(e, "env");
		ra_enc_map(e, (uint32_t)ex.env_count);
		for (int i = 0; i < ex.env_count; i++) {
			const char *eq = strchr(ex.env[i], '=');
			ra_enc_strn(e, ex.env[i], (size_t)(eq - ex.env[i]));
			ra_enc_str(e, eq + 1);
		}
	}
	if (ex.timeout_ms) {
		ra_enc_str(e, "timeoutMs");
		ra_enc_u64(e, ex.timeout_ms);
	}
	if (ex.tty) {
		ra_enc_str(e, "pty");
		enc_pty(e);
	}
	if (ex.forward_stdin) {
		ra_enc_str(e, "stdinStream");
		ra_enc_bool(e, true);
	}
	client_send(e);
	start_local_terminal();
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere to write (a closed pipe): drop it */
		p += w;
		n -= (size_t)w;
	}
}

static void exec_stream(const msgpack_object_map *m)
{
	const msgpack_object *data = ra_map_get(m, "data");
	if (!data || data->type != MSGPACK_OBJECT_BIN)
		return;
	int fd = client_str_is(ra_map_get(m, "stream"), "stderr") ? STDERR_FILENO : STDOUT_FILENO;
	write_all(fd, data->via.bin.ptr, data->via.bin.size);
}

/* Replies to proc.stdin and proc.resize: only their errors matter. */
static void exec_side_reply(const msgpack_object_map *m)
{
	if (ex.stdin_in_flight > 0 && --ex.stdin_in_flight < STDIN_IN_FLIGHT && ex.forward_stdin && !ex.stdin_done &&
	    !ev_is_active(&ex.stdin_watch))
		ev_io_start(client_loop(), &ex.stdin_watch);
	const msgpack_object *err = ra_map_get(m, "error");
	const msgpack_object *msg = err && err->type == MSGPACK_OBJECT_MAP ? ra_map_get(&err->via.map, "message") : NULL;
	if (msg && msg->type == MSGPACK_OBJECT_STR)
		fprintf(stderr, "runra-agent exec: %.*s\n", (int)msg->via.str.size, msg->via.str.ptr);
}

static void exec_message(const msgpack_object_map *m)
{
	const msgpack_object *type = ra_map_get(m, "type");
	const msgpack_object *id = ra_map_get(m, "id");
	bool ours = id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER && id->via.u64 == REQUEST_ID;
	if (client_str_is(type, "stream") && ours) {
		exec_stream(m);
		return;
	}
	if (!client_str_is(type, "reply"))
		return;
	if (!ours) {
		exec_side_reply(m);
		return;
	}
	restore_terminal();
	const msgpack_object *r = reply_result(m);
	if (!r)
		return;
	const msgpack_object *status = ra_map_get(&r->via.map, "status");
	const msgpack_object *code = status ? ra_map_get(&status->via.map, "exitCode") : NULL;
	if (client_json()) {
		client_print_json(stdout, r);
		putchar('\n');
	}
	client_finish(code && code->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int)code->via.u64 : 1);
}

/* ---- files: ls, cat, rm, mkdir, mv (agent-side paths), cp (":PATH" is the agent's side) ---- */

static const char *fs_args[2];
static bool fs_flag; /* -r for rm, -p for mkdir */

static int one_path_parse(int argc, char **argv, const char *flag)
{
	int i = 1;
	if (flag && i < argc && strcmp(argv[i], flag) == 0) {
		fs_flag = true;
		i++;
	}
	if (argc - i != 1)
		return 2;
	fs_args[0] = argv[i];
	return 0;
}

static int ls_parse(int argc, char **argv) { return argc == 1 ? (fs_args[0] = ".", 0) : one_path_parse(argc, argv, NULL); }
static int cat_parse(int argc, char **argv) { return one_path_parse(argc, argv, NULL); }
static int rm_parse(int argc, char **argv) { return one_path_parse(argc, argv, "-r"); }
static int mkdir_parse(int argc, char **argv) { return one_path_parse(argc, argv, "-p"); }

static int two_paths_parse(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	fs_args[0] = argv[1];
	fs_args[1] = argv[2];
	return 0;
}

static void send_path_op(const char *op, const char *flag_name, uint32_t extra)
{
	ra_enc *e = client_request(REQUEST_ID, op, 1 + (flag_name ? 1u : 0u) + extra);
	if (!e)
		return;
	ra_enc_str(e, "path");
	ra_enc_str(e, fs_args[0]);
	if (flag_name) {
		ra_enc_str(e, flag_name);
		ra_enc_bool(e, fs_flag);
	}
	sent_at = client_now();
	client_send(e);
}

static void ls_start(void) { send_path_op("file.list", NULL, 0); }
static void rm_start(void) { send_path_op("file.delete", "recursive", 0); }
static void mkdir_start(void) { send_path_op("file.mkdir", "recursive", 0); }

static void mv_start(void)
{
	ra_enc *e = client_request(REQUEST_ID, "file.move", 2);
	if (!e)
		return;
	ra_enc_str(e, "from");
	ra_enc_str(e, fs_args[0]);
	ra_enc_str(e, "to");
	ra_enc_str(e, fs_args[1]);
	client_send(e);
}

static void quiet_message(const msgpack_object_map *m)
{
	const msgpack_object *r = reply_result(m);
	if (!r)
		return;
	if (client_json())
		print_json_result(r);
	client_finish(0);
}

static void ls_message(const msgpack_object_map *m)
{
	const msgpack_object *r = result_for_people(m);
	if (!r)
		return;
	const msgpack_object *list = ra_map_get(&r->via.map, "entries");
	for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size; i++) {
		const msgpack_object_map *e = &list->via.array.ptr[i].via.map;
		const msgpack_object *type = ra_map_get(e, "type"), *size = ra_map_get(e, "size"),
				     *name = ra_map_get(e, "name"), *mode = ra_map_get(e, "mode");
		char t = client_str_is(type, "dir") ? 'd' : client_str_is(type, "symlink") ? 'l' : client_str_is(type, "file") ? '-' : '?';
		printf("%c%04llo %12llu %.*s\n", t, mode ? (unsigned long long)mode->via.u64 : 0ull,
		       size ? (unsigned long long)size->via.u64 : 0ull, name ? (int)name->via.str.size : 0,
		       name ? name->via.str.ptr : "");
	}
	const msgpack_object *next = ra_map_get(&r->via.map, "next");
	if (next && next->type == MSGPACK_OBJECT_STR)
		printf("... more entries after %.*s\n", (int)next->via.str.size, next->via.str.ptr);
	client_finish(0);
}

/* cat and cp from the agent: a streamed read into a file descriptor, checked against the agent's sha256. */
static struct {
	int fd;
	ra_sha256 sha;
	uint64_t bytes;
	const char *local;
	char local_tmp[4200];
} dl = {.fd = -1};

static void download_start(const char *path)
{
	ra_sha256_init(&dl.sha);
	ra_enc *e = client_request(REQUEST_ID, "file.read", 3);
	if (!e)
		return;
	ra_enc_str(e, "path");
	ra_enc_str(e, path);
	ra_enc_str(e, "stream");
	ra_enc_bool(e, true);
	ra_enc_str(e, "sha256"); /* checked against what arrived */
	ra_enc_bool(e, true);
	client_send(e);
}

static void cat_start(void)
{
	dl.fd = STDOUT_FILENO;
	download_start(fs_args[0]);
}

static void download_message(const msgpack_object_map *m)
{
	const msgpack_object *data = ra_map_get(m, "data");
	if (client_str_is(ra_map_get(m, "type"), "stream") && data && data->type == MSGPACK_OBJECT_BIN) {
		ra_sha256_update(&dl.sha, data->via.bin.ptr, data->via.bin.size);
		dl.bytes += data->via.bin.size;
		write_all(dl.fd, data->via.bin.ptr, data->via.bin.size);
		return;
	}
	const msgpack_object *r = reply_result(m);
	if (!r)
		return;
	char hex[65];
	ra_sha256_hex(&dl.sha, hex);
	if (!client_str_is(ra_map_get(&r->via.map, "sha256"), hex)) {
		client_fail("INTERNAL", "the data received does not match the agent's sha256");
		return;
	}
	if (dl.local) { /* cp: the local file appears whole, or not at all */
		if (fsync(dl.fd) || close(dl.fd) || rename(dl.local_tmp, dl.local)) {
			client_fail("INTERNAL", strerror(errno));
			return;
		}
		dl.fd = -1;
		if (!client_json())
			printf("%llu bytes to %s (sha256 %s)\n", (unsigned long long)dl.bytes, dl.local, hex);
	}
	if (client_json())
		print_json_result(r);
	client_finish(0);
}

/* cp to the agent: pipelined chunks, then a commit with the sha256 of what was sent. */
#define UPLOAD_CHUNK (1u << 20)
#define UPLOAD_IN_FLIGHT 8

static struct {
	int fd;
	char upload[32];
	uint64_t sent;
	int in_flight;
	bool eof, committed;
	ra_sha256 sha;
	uint64_t next_id;
} ul = {.fd = -1, .next_id = REQUEST_ID + 1};

static void upload_send_chunks(void)
{
	static uint8_t buf[UPLOAD_CHUNK];
	while (!ul.eof && ul.in_flight < UPLOAD_IN_FLIGHT) {
		ssize_t n = read(ul.fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			client_fail("INTERNAL", strerror(errno));
			return;
		}
		if (n == 0) {
			ul.eof = true;
			break;
		}
		ra_enc *e = client_request(ul.next_id++, "file.upload.chunk", 3);
		if (!e)
			return;
		ra_enc_str(e, "upload");
		ra_enc_str(e, ul.upload);
		ra_enc_str(e, "offset");
		ra_enc_u64(e, ul.sent);
		ra_enc_str(e, "data");
		ra_enc_bin(e, buf, (size_t)n);
		client_send(e);
		ra_sha256_update(&ul.sha, buf, (size_t)n);
		ul.sent += (uint64_t)n;
		ul.in_flight++;
	}
	if (ul.eof && ul.in_flight == 0 && !ul.committed) {
		char hex[65];
		ra_sha256_hex(&ul.sha, hex);
		ra_enc *e = client_request(REQUEST_ID, "file.upload.commit", 2);
		if (!e)
			return;
		ra_enc_str(e, "upload");
		ra_enc_str(e, ul.upload);
		ra_enc_str(e, "sha256");
		ra_enc_str(e, hex);
		ul.committed = true;
		client_send(e);
	}
}

static void upload_message(const msgpack_object_map *m)
{
	const msgpack_object *id = ra_map_get(m, "id");
	if (!client_str_is(ra_map_get(m, "type"), "reply") || !id)
		return;
	if (id->via.u64 != REQUEST_ID) { /* a chunk's answer */
		const msgpack_object *err = ra_map_get(m, "error");
		if (err) {
			client_report_error(err);
			return;
		}
		ul.in_flight--;
		upload_send_chunks();
		return;
	}
	const msgpack_object *r = reply_result(m);
	if (!r)
		return;
	if (!ul.committed) { /* the open's answer */
		const msgpack_object *u = ra_map_get(&r->via.map, "upload");
		snprintf(ul.upload, sizeof(ul.upload), "%.*s", u ? (int)u->via.str.size : 0, u ? u->via.str.ptr : "");
		upload_send_chunks();
		return;
	}
	if (client_json())
		print_json_result(r);
	else
		printf("%llu bytes to :%s\n", (unsigned long long)ul.sent, fs_args[1] + 1);
	client_finish(0);
}

/* A copy that did not complete leaves nothing behind: the partial local file goes with the process. */
static void remove_partial_download(void)
{
	if (dl.fd >= 0 && dl.local) {
		close(dl.fd);
		unlink(dl.local_tmp);
	}
}

static int cp_parse(int argc, char **argv)
{
	if (two_paths_parse(argc, argv))
		return 2;
	bool src_remote = fs_args[0][0] == ':', dst_remote = fs_args[1][0] == ':';
	return src_remote != dst_remote && fs_args[src_remote ? 0 : 1][1] ? 0 : 2; /* exactly one side is ":PATH" */
}

static void cp_start(void)
{
	if (fs_args[0][0] == ':') {
		dl.local = fs_args[1];
		snprintf(dl.local_tmp, sizeof(dl.local_tmp), "%s.runra-part", dl.local);
		dl.fd = open(dl.local_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (dl.fd < 0) {
			client_fail("INVALID_CONFIG", strerror(errno));
			return;
		}
		atexit(remove_partial_download);
		download_start(fs_args[0] + 1);
		return;
	}
	ul.fd = open(fs_args[0], O_RDONLY | O_CLOEXEC);
	if (ul.fd < 0) {
		client_fail("NOT_FOUND", strerror(errno));
		return;
	}
	ra_sha256_init(&ul.sha);
	ra_enc *e = client_request(REQUEST_ID, "file.upload.open", 1);
	if (!e)
		return;
	ra_enc_str(e, "path");
	ra_enc_str(e, fs_args[1] + 1);
	client_send(e);
}

static void cp_message(const msgpack_object_map *m)
{
	if (fs_args[0][0] == ':')
		download_message(m);
	else
		upload_message(m);
}

/* ---- watch [--type PATTERN]... [--path PREFIX]... [--proc ID]... [--since SEQ] ---- */

/* Every watch option takes a value, so its argv alternates option and value; start reads the values from
 * there, and parse only counts them. */
static struct {
	char **argv;
	int argc;
	uint32_t types, paths, procs;
	bool has_since;
	unsigned long since;
} wt;

static int watch_parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i += 2) {
		const char *option = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
		if (!value)
			return 2;
		if (strcmp(option, "--type") == 0)
			wt.types++;
		else if (strcmp(option, "--path") == 0)
			wt.paths++;
		else if (strcmp(option, "--proc") == 0)
			wt.procs++;
		else if (strcmp(option, "--since") == 0 && !wt.has_since &&
			 !ra_parse_uint(value, 0, ULONG_MAX - 1, &wt.since)) /* the agent's sinceSeq stops there too */
			wt.has_since = true;
		else
			return 2;
	}
	wt.argv = argv;
	wt.argc = argc;
	return 0;
}

/* key: [the value of every `option` in argv]; the agent checks them (sizes, counts), not us. */
static void enc_option_values(ra_enc *e, const char *key, const char *option, uint32_t count)
{
	ra_enc_str(e, key);
	ra_enc_array(e, count);
	for (int i = 1; i + 1 < wt.argc; i += 2)
		if (strcmp(wt.argv[i], option) == 0)
			ra_enc_str(e, wt.argv[i + 1]);
}

static void watch_start(void)
{
	signal(SIGPIPE, SIG_IGN); /* a reader that went away (`| head`) shows up as EPIPE from fflush */
	uint32_t args = 1u + (wt.paths ? 1u : 0u) + (wt.procs ? 1u : 0u) + (wt.has_since ? 1u : 0u);
	ra_enc *e = client_request(REQUEST_ID, "subscribe", args);
	if (!e)
		return;
	if (wt.types) {
		enc_option_values(e, "events", "--type", wt.types);
	} else {
		ra_enc_str(e, "events");
		ra_enc_array(e, 1);
		ra_enc_str(e, "*");
	}
	if (wt.paths)
		enc_option_values(e, "paths", "--path", wt.paths);
	if (wt.procs)
		enc_option_values(e, "procs", "--proc", wt.procs);
	if (wt.has_since) {
		ra_enc_str(e, "sinceSeq");
		ra_enc_u64(e, wt.since);
	}
	client_send(e);
}

/* One message, one line, flushed at once: whoever reads the pipe sees each event as it happens. */
static void print_line(const msgpack_object_map *m)
{
	msgpack_object whole = {.type = MSGPACK_OBJECT_MAP, .via = {.map = *m}};
	client_print_json(stdout, &whole);
	putchar('\n');
	if (fflush(stdout) == 0 && !ferror(stdout))
		return;
	if (errno == EPIPE) {
		client_finish(0); /* nobody reads any more: the end of the watch, not a failure */
		return;
	}
	char msg[200];
	snprintf(msg, sizeof(msg), "cannot write to stdout: %s", strerror(errno));
	client_fail("INTERNAL", msg);
}

static void watch_message(const msgpack_object_map *m)
{
	const msgpack_object *type = ra_map_get(m, "type");
	if (client_str_is(type, "event") || client_str_is(type, "gap")) {
		print_line(m);
		return;
	}
	/* The subscribe is the only request: its success needs no output, and any error is its error. */
	const msgpack_object *err = ra_map_get(m, "error");
	if (client_str_is(type, "reply") && err)
		client_report_error(err);
}

/* ---- the table ---- */

const client_command client_commands[] = {
	{"health", true, false, false, no_arguments, health_start, health_message, "health [--url URL] [--json]"},
	{"ping", false, false, false, no_arguments, ping_start, ping_message, "ping [--url URL] [--token T] [--json]"},
	{"info", false, false, false, no_arguments, info_start, info_message, "info [--url URL] [--token T] [--json]"},
	{"ps", false, false, false, no_arguments, ps_start, ps_message, "ps [--url URL] [--token T] [--json]"},
	{"kill", false, false, false, kill_parse, kill_start, kill_message, "kill [-SIGNAL] PROC   (default SIGTERM)"},
	{"exec", false, true, false, exec_parse, exec_start, exec_message,
	 "exec [--cwd DIR] [--env K=V]... [--timeout MS] [--user U] [--tty] [-i|--stdin] -- CMD...\n"
	 "  one word after -- is a shell command line (sh -c); several are a program and its arguments.\n"
	 "  exits with the process's exit code (128+N when a signal N ended it)"},
	{"ls", false, false, false, ls_parse, ls_start, ls_message, "ls [PATH]   (agent-side path, default the workdir)"},
	{"cat", false, true, false, cat_parse, cat_start, download_message, "cat PATH   (agent-side path)"},
	{"rm", false, false, false, rm_parse, rm_start, quiet_message, "rm [-r] PATH"},
	{"mkdir", false, false, false, mkdir_parse, mkdir_start, quiet_message, "mkdir [-p] PATH"},
	{"mv", false, false, false, two_paths_parse, mv_start, quiet_message, "mv FROM TO   (agent-side paths)"},
	{"cp", false, true, false, cp_parse, cp_start, cp_message,
	 "cp SRC DST   (one of them :PATH on the agent, e.g. cp ./app.tar :/workspace/app.tar)"},
	{"watch", false, true, true, watch_parse, watch_start, watch_message,
	 "watch [--type PATTERN]... [--path PREFIX]... [--proc ID]... [--since SEQ]\n"
	 "  prints each event, and each gap (events this client lost), as one JSON object per line, until\n"
	 "  interrupted (exit 0) or the connection ends (exit 1).\n"
	 "  --type PATTERN  an event name, or a prefix like file.* (default *: every event); repeatable\n"
	 "  --path PREFIX   only events at or under this agent-side path (relative: to its workdir); repeatable\n"
	 "  --proc ID       only the events of this process; repeatable\n"
	 "  --since SEQ     first the events after SEQ that the agent still holds (a line's seq resumes there)\n"
	 "  in the JSON, bin values are base64 strings and bytes that are not UTF-8 become U+FFFD"},
	{NULL, false, false, false, NULL, NULL, NULL, NULL},
};
