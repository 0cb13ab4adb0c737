/* The debug client's commands: health, ping, info, exec, ps, kill, the file commands, watch, the port
 * commands (ports, expose, unexpose, forward), metrics and shutdown. Each builds its request when the agent
 * is ready and turns the answers into output for people (or JSON with --json) and an exit status. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../proto/ra_limits.h"
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

/* ---- ports, expose PORT [--wait MS], unexpose PORT ---- */

static unsigned long port_arg; /* the sandbox port of expose, unexpose and forward */
static unsigned long wait_ms; /* expose --wait */
static bool has_wait;

static int expose_parse(int argc, char **argv)
{
	bool has_port = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc && !has_wait &&
		    !ra_parse_uint(argv[i + 1], 0, RA_PORT_WAIT_MAX_MS, &wait_ms))
			has_wait = true, i++;
		else if (!has_port && !ra_parse_uint(argv[i], 1, 65535, &port_arg))
			has_port = true;
		else
			return 2;
	}
	return has_port ? 0 : 2;
}

static int unexpose_parse(int argc, char **argv)
{
	return argc == 2 && !ra_parse_uint(argv[1], 1, 65535, &port_arg) ? 0 : 2;
}

static void ports_start(void) { send_simple("port.list"); }

static void expose_start(void)
{
	ra_enc *e = client_request(REQUEST_ID, "port.expose", has_wait ? 2 : 1);
	if (!e)
		return;
	ra_enc_str(e, "port");
	ra_enc_u64(e, port_arg);
	if (has_wait) {
		ra_enc_str(e, "waitMs");
		ra_enc_u64(e, wait_ms);
		client_set_timeout_ms((double)wait_ms + RA_CLIENT_TIMEOUT_MS); /* the agent answers by then */
	}
	sent_at = client_now();
	client_send(e);
}

static void unexpose_start(void)
{
	ra_enc *e = client_request(REQUEST_ID, "port.close", 1);
	if (!e)
		return;
	ra_enc_str(e, "port");
	ra_enc_u64(e, port_arg);
	sent_at = client_now();
	client_send(e);
}

/* A map's value at key as a string for a table cell: str as it is, a number in decimal, "-" for nil or
 * absent; arrays of strings joined with commas. */
static void cell_text(const msgpack_object *map, const char *key, char *out, size_t cap)
{
	const msgpack_object *v = map->type == MSGPACK_OBJECT_MAP ? ra_map_get(&map->via.map, key) : NULL;
	snprintf(out, cap, "-");
	if (!v)
		return;
	if (v->type == MSGPACK_OBJECT_STR) {
		snprintf(out, cap, "%.*s", (int)v->via.str.size, v->via.str.ptr);
	} else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		snprintf(out, cap, "%llu", (unsigned long long)v->via.u64);
	} else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		snprintf(out, cap, "%lld", (long long)v->via.i64);
	} else if (v->type == MSGPACK_OBJECT_BOOLEAN) {
		snprintf(out, cap, "%s", v->via.boolean ? "yes" : "no");
	} else if (v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size) {
		size_t n = 0;
		out[0] = '\0';
		for (uint32_t i = 0; i < v->via.array.size && n < cap; i++) {
			const msgpack_object *a = &v->via.array.ptr[i];
			if (a->type == MSGPACK_OBJECT_STR)
				n += (size_t)snprintf(out + n, cap - n, "%s%.*s", i ? "," : "", (int)a->via.str.size,
						      a->via.str.ptr);
		}
	}
}

#define PORT_COLUMNS 7

/* One row of the ports table: PORT LISTEN EXPOSED ADDRESSES PID URL COMMAND (the command last, as in ps:
 * it is the long one). */
static void port_cells(const msgpack_object *p, char cells[PORT_COLUMNS][300])
{
	static const char *keys[PORT_COLUMNS] = {"port", "listening", "exposed", "addresses", "pid", "url", "command"};
	for (int c = 0; c < PORT_COLUMNS; c++)
		cell_text(p, keys[c], cells[c], sizeof(cells[c]));
}

static void print_port_row(char cells[PORT_COLUMNS][300], const int width[PORT_COLUMNS])
{
	for (int c = 0; c + 1 < PORT_COLUMNS; c++)
		printf("%-*s ", width[c], cells[c]);
	printf("%s\n", cells[PORT_COLUMNS - 1]);
}

static void ports_message(const msgpack_object_map *m)
{
	const msgpack_object *r = result_for_people(m);
	if (!r)
		return;
	const msgpack_object *list = ra_map_get(&r->via.map, "ports");
	uint32_t n = list && list->type == MSGPACK_OBJECT_ARRAY ? list->via.array.size : 0;
	char cells[PORT_COLUMNS][300] = {"PORT", "LISTEN", "EXPOSED", "ADDRESSES", "PID", "URL", "COMMAND"};
	int width[PORT_COLUMNS];
	for (int c = 0; c < PORT_COLUMNS; c++)
		width[c] = (int)strlen(cells[c]);
	for (uint32_t i = 0; i < n; i++) { /* the widths first, so that the columns line up */
		char row[PORT_COLUMNS][300];
		port_cells(&list->via.array.ptr[i], row);
		for (int c = 0; c < PORT_COLUMNS; c++)
			if ((int)strlen(row[c]) > width[c])
				width[c] = (int)strlen(row[c]);
	}
	print_port_row(cells, width);
	for (uint32_t i = 0; i < n; i++) {
		port_cells(&list->via.array.ptr[i], cells);
		print_port_row(cells, width);
	}
	client_finish(0);
}

/* expose: the URL (or that there is none) on the first line, so `| head -n1` is the URL; then the state. */
static void expose_message(const msgpack_object_map *m)
{
	const msgpack_object *r = result_for_people(m);
	if (!r)
		return;
	const msgpack_object *p = ra_map_get(&r->via.map, "port");
	if (!p || p->type != MSGPACK_OBJECT_MAP) {
		client_fail("INVALID_MESSAGE", "the agent's reply has no port");
		return;
	}
	const msgpack_object *listening = ra_map_get(&p->via.map, "listening");
	char url[300], addresses[300];
	cell_text(p, "url", url, sizeof(url));
	cell_text(p, "addresses", addresses, sizeof(addresses));
	if (strcmp(url, "-") == 0)
		printf("exposed, no URL template configured\n");
	else
		printf("%s\n", url);
	if (listening && listening->type == MSGPACK_OBJECT_BOOLEAN && listening->via.boolean)
		printf("port %lu: listening on %s\n", port_arg, addresses);
	else if (has_wait && wait_ms)
		printf("port %lu: not listening (waited %lu ms)\n", port_arg, wait_ms);
	else
		printf("port %lu: not listening yet\n", port_arg);
	client_finish(0);
}

static void unexpose_message(const msgpack_object_map *m)
{
	const msgpack_object *r = result_for_people(m);
	if (!r)
		return;
	printf("port %lu: no longer exposed\n", port_arg);
	client_finish(0);
}

/* ---- metrics ---- */

static void metrics_start(void) { send_simple("metrics"); }

/* result.group.key as a number (0 if absent); group NULL: result.key. */
static uint64_t metric(const msgpack_object *r, const char *group, const char *key)
{
	const msgpack_object *g = group ? ra_map_get(&r->via.map, group) : r;
	const msgpack_object *v = g && g->type == MSGPACK_OBJECT_MAP ? ra_map_get(&g->via.map, key) : NULL;
	return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

/* 1536 -> "1.5 KiB"; one decimal from KiB up. */
static const char *human_bytes(uint64_t n, char *out, size_t cap)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n;
	unsigned u = 0;
	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0]))
		v /= 1024.0, u++;
	if (u == 0)
		snprintf(out, cap, "%llu B", (unsigned long long)n);
	else
		snprintf(out, cap, "%.1f %s", v, units[u]);
	return out;
}

/* 93784000 -> "1d2h3m4s"; under a minute with tenths: "4.2s". */
static const char *human_duration(uint64_t ms, char *out, size_t cap)
{
	uint64_t s = ms / 1000, d = s / 86400, h = s / 3600 % 24, mi = s / 60 % 60;
	if (s < 60)
		snprintf(out, cap, "%.1fs", (double)ms / 1000.0);
	else if (d)
		snprintf(out, cap, "%llud%lluh%llum%llus", (unsigned long long)d, (unsigned long long)h,
			 (unsigned long long)mi, (unsigned long long)(s % 60));
	else if (h)
		snprintf(out, cap, "%lluh%llum%llus", (unsigned long long)h, (unsigned long long)mi,
			 (unsigned long long)(s % 60));
	else
		snprintf(out, cap, "%llum%llus", (unsigned long long)mi, (unsigned long long)(s % 60));
	return out;
}

static void metrics_message(const msgpack_object_map *m)
{
	const msgpack_object *r = result_for_people(m);
	if (!r)
		return;
	char a[32], b[32], c[32];
	const msgpack_object *mem = ra_map_get(&r->via.map, "memory"), *disk = ra_map_get(&r->via.map, "disk");
	char source[32], path[300];
	cell_text(mem ? mem : r, "source", source, sizeof(source));
	cell_text(disk ? disk : r, "path", path, sizeof(path));
	printf("cpu:       %llu%% of %llu cores (%s of CPU time in all)\n",
	       (unsigned long long)metric(r, "cpu", "percent"), (unsigned long long)metric(r, "cpu", "cores"),
	       human_duration(metric(r, "cpu", "usageMs"), a, sizeof(a)));
	printf("memory:    %s used of %s (%s)\n", human_bytes(metric(r, "memory", "usedBytes"), a, sizeof(a)),
	       human_bytes(metric(r, "memory", "limitBytes"), b, sizeof(b)), source);
	printf("disk:      %s used of %s, %s free (%s)\n", human_bytes(metric(r, "disk", "usedBytes"), a, sizeof(a)),
	       human_bytes(metric(r, "disk", "totalBytes"), b, sizeof(b)),
	       human_bytes(metric(r, "disk", "freeBytes"), c, sizeof(c)), path);
	printf("network:   rx %s, tx %s\n", human_bytes(metric(r, "network", "rxBytes"), a, sizeof(a)),
	       human_bytes(metric(r, "network", "txBytes"), b, sizeof(b)));
	printf("processes: %llu\n", (unsigned long long)metric(r, NULL, "processes"));
	printf("agent:     rss %s, %llu fds, up %s\n", human_bytes(metric(r, "agent", "rssBytes"), a, sizeof(a)),
	       (unsigned long long)metric(r, "agent", "fds"), human_duration(metric(r, "agent", "uptimeMs"), b, sizeof(b)));
	client_finish(0);
}

/* ---- shutdown [--grace-ms N] ---- */

static unsigned long grace_ms;
static bool has_grace;

static int shutdown_parse(int argc, char **argv)
{
	if (argc == 1)
		return 0;
	if (argc == 3 && strcmp(argv[1], "--grace-ms") == 0 && !ra_parse_uint(argv[2], 0, RA_SHUTDOWN_GRACE_MS_MAX, &grace_ms))
		return has_grace = true, 0;
	return 2;
}

static void shutdown_start(void)
{
	ra_enc *e = client_request(REQUEST_ID, "shutdown", has_grace ? 1 : 0);
	if (!e)
		return;
	if (has_grace) {
		ra_enc_str(e, "graceMs");
		ra_enc_u64(e, grace_ms);
	}
	sent_at = client_now();
	client_send(e);
}

/* Done once the agent said yes: the 1001 close that follows is the shutdown itself, not a failure (and comes
 * after client_finish, so it is not reported). */
static void shutdown_message(const msgpack_object_map *m)
{
	const msgpack_object *r = result_for_people(m);
	if (!r)
		return;
	printf("shutting down (grace %llu ms)\n", (unsigned long long)metric(r, NULL, "graceMs"));
	client_finish(0);
}

/* ---- forward [--bind ADDR] [LOCALPORT:]PORT [--host HOST] ---- */

/* Each accepted local connection is one tunnel (port.connect) on the one WebSocket, relayed both ways until
 * both are done. Local to agent: port.send of up to FORWARD_CHUNK bytes, at most FORWARD_SENDS_IN_FLIGHT
 * unanswered per tunnel; the agent holds its answer while the port is slow, and the local socket is not
 * read meanwhile: that is the flow control. Agent to local: the agent reads the port as fast as this client
 * reads the WebSocket, which carries every tunnel; a local reader that falls behind is not waited for (that
 * would stall the others): its bytes wait here, up to FORWARD_LOCAL_BUFFER_MAX, past which its tunnel is
 * closed. */
#define FORWARD_CHUNK (256u << 10)
#define FORWARD_SENDS_IN_FLIGHT 8
#define FORWARD_LOCAL_BUFFER_MAX (4u << 20)
#define FORWARD_ENVELOPE_BYTES 128u  /* a port.send's bytes besides its data */
#define FORWARD_ACCEPT_RETRY_S 0.1  /* after running out of file descriptors */

typedef struct fwd_conn {
	struct fwd_conn *next;
	uint64_t serial;    /* the ids of this connection's requests are serial << 32 | n */
	uint32_t requests;  /* the n of its last request */
	uint64_t tunnel;    /* the agent's tunnel id, once port.connect answered */
	bool connected;     /* port.connect answered with a tunnel; until then the socket is not read */
	int fd;             /* the local connection */
	ev_io rio, wio;
	int sends_in_flight;
	bool local_eof;     /* the local side sent EOF, and port.send {eof} went out */
	bool remote_eof;    /* the port sent EOF: the local write side is shut once to_local is written */
	bool remote_closed; /* the tunnel is gone: the socket closes once to_local is written */
	bool shut_wr;
	ra_buf to_local;    /* bytes from the port the local side has not taken yet, from to_local_off */
	size_t to_local_off;
	char name[64];      /* the local peer, for messages */
} fwd_conn;

static struct {
	const char *bind_text;
	struct sockaddr_storage bind;
	socklen_t bind_len;
	unsigned long local_port;
	const char *host; /* --host: where the agent connects (default 127.0.0.1, then ::1) */
	size_t chunk;     /* FORWARD_CHUNK, or less when the agent's messages must be smaller */
	int listen_fd;
	ev_io accept_watch;
	ev_timer accept_retry;
	fwd_conn *conns;
	uint64_t serials;
} fw = {.bind_text = "127.0.0.1", .listen_fd = -1};

/* "LOCALPORT:PORT", or "PORT" for the same number on both sides; LOCALPORT 0 is any free port. */
static int parse_forward_spec(const char *spec)
{
	const char *colon = strchr(spec, ':');
	if (!colon)
		return ra_parse_uint(spec, 1, 65535, &port_arg) || ra_parse_uint(spec, 1, 65535, &fw.local_port);
	char local[8];
	if ((size_t)(colon - spec) >= sizeof(local))
		return -1;
	snprintf(local, sizeof(local), "%.*s", (int)(colon - spec), spec);
	return ra_parse_uint(local, 0, 65535, &fw.local_port) || ra_parse_uint(colon + 1, 1, 65535, &port_arg);
}

/* An IPv4 or IPv6 address (or "localhost": 127.0.0.1); names are not looked up. */
static int parse_bind_address(void)
{
	const char *a = strcmp(fw.bind_text, "localhost") == 0 ? "127.0.0.1" : fw.bind_text;
	struct sockaddr_in *in = (struct sockaddr_in *)&fw.bind;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&fw.bind;
	memset(&fw.bind, 0, sizeof(fw.bind));
	if (inet_pton(AF_INET, a, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)fw.local_port);
		fw.bind_len = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, a, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)fw.local_port);
		fw.bind_len = sizeof(*in6);
		return 0;
	}
	return -1;
}

static int forward_parse(int argc, char **argv)
{
	const char *spec = NULL;
	for (int i = 1; i < argc; i++) {
		bool has_value = i + 1 < argc;
		if (strcmp(argv[i], "--bind") == 0 && has_value)
			fw.bind_text = argv[++i];
		else if (strcmp(argv[i], "--host") == 0 && has_value)
			fw.host = argv[++i];
		else if (!spec && argv[i][0] != '-')
			spec = argv[i];
		else
			return 2;
	}
	return spec && !parse_forward_spec(spec) && !parse_bind_address() ? 0 : 2;
}

/* 127.0.0.1:8080, [::1]:8080. */
static void format_endpoint(const struct sockaddr_storage *a, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		const struct sockaddr_in *in = (const struct sockaddr_in *)a;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, ntohs(in->sin_port));
	}
}

static uint64_t conn_request_id(fwd_conn *c) { return c->serial << 32 | ++c->requests; }

static fwd_conn *find_by_serial(uint64_t serial)
{
	for (fwd_conn *c = fw.conns; c; c = c->next)
		if (c->serial == serial)
			return c;
	return NULL;
}

static fwd_conn *find_by_tunnel(uint64_t tunnel)
{
	for (fwd_conn *c = fw.conns; c; c = c->next)
		if (c->connected && c->tunnel == tunnel)
			return c;
	return NULL;
}

/* Closes the local connection and forgets it; the agent's later messages about it are ignored. */
static void forward_free(fwd_conn *c)
{
	for (fwd_conn **pp = &fw.conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	ev_io_stop(client_loop(), &c->rio);
	ev_io_stop(client_loop(), &c->wio);
	close(c->fd);
	ra_buf_free(&c->to_local);
	free(c);
}

/* Ends a connection from this side (the local peer went, or fell too far behind): the agent closes its end
 * of the tunnel on port.disconnect. Frees c. */
static void forward_drop(fwd_conn *c)
{
	if (c->connected && !c->remote_closed) {
		ra_enc *e = client_request(conn_request_id(c), "port.disconnect", 1);
		if (e) {
			ra_enc_str(e, "tunnel");
			ra_enc_u64(e, c->tunnel);
			client_send(e);
		}
	}
	forward_free(c);
}

static void forward_send(fwd_conn *c, const void *data, size_t n, bool eof)
{
	ra_enc *e = client_request(conn_request_id(c), "port.send", 2);
	if (!e)
		return;
	ra_enc_str(e, "tunnel");
	ra_enc_u64(e, c->tunnel);
	if (eof) {
		ra_enc_str(e, "eof");
		ra_enc_bool(e, true);
	} else {
		ra_enc_str(e, "data");
		ra_enc_bin(e, data, n);
	}
	c->sends_in_flight++;
	client_send(e);
}

static void resume_local_reading(fwd_conn *c)
{
	if (c->connected && !c->local_eof && !c->remote_closed && c->sends_in_flight < FORWARD_SENDS_IN_FLIGHT)
		ev_io_start(client_loop(), &c->rio);
}

static void on_local_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	fwd_conn *c = (fwd_conn *)((char *)w - offsetof(fwd_conn, rio));
	static uint8_t buf[FORWARD_CHUNK];
	ssize_t n = read(c->fd, buf, fw.chunk);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			forward_drop(c); /* reset by the local peer */
		return;
	}
	if (n == 0) {
		ev_io_stop(loop, w);
		c->local_eof = true;
		forward_send(c, NULL, 0, true);
		return;
	}
	forward_send(c, buf, (size_t)n, false);
	if (c->sends_in_flight >= FORWARD_SENDS_IN_FLIGHT)
		ev_io_stop(loop, w); /* until the agent answers */
}

/* Writes what waits for the local side, then shuts its write side or closes it as the tunnel says. Frees c
 * when the connection is over. */
static void forward_flush_local(fwd_conn *c)
{
	ra_buf *b = &c->to_local;
	while (c->to_local_off < b->len) {
		ssize_t n = send(c->fd, ra_buf_payload(b) + c->to_local_off, b->len - c->to_local_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(client_loop(), &c->wio);
			return;
		}
		if (n < 0) {
			forward_drop(c); /* the local peer is gone */
			return;
		}
		c->to_local_off += (size_t)n;
	}
	ra_buf_reset(b);
	c->to_local_off = 0;
	ev_io_stop(client_loop(), &c->wio);
	if (c->remote_closed) {
		forward_free(c);
		return;
	}
	if (c->remote_eof && !c->shut_wr) {
		shutdown(c->fd, SHUT_WR);
		c->shut_wr = true;
	}
}

static void on_local_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop, (void)revents;
	forward_flush_local((fwd_conn *)((char *)w - offsetof(fwd_conn, wio)));
}

/* Queues bytes for the local side: room is made at the front before the buffer grows. */
static int forward_buffer(fwd_conn *c, const void *p, size_t n)
{
	ra_buf *b = &c->to_local;
	if (c->to_local_off && b->len + n > b->alloc) {
		memmove(ra_buf_payload(b), ra_buf_payload(b) + c->to_local_off, b->len - c->to_local_off);
		b->len -= c->to_local_off;
		c->to_local_off = 0;
	}
	return ra_buf_append(b, p, n);
}

static void forward_data(fwd_conn *c, const char *p, size_t n)
{
	if (c->shut_wr)
		return; /* nothing comes after the port's EOF */
	if (c->to_local_off == c->to_local.len) { /* nothing waits: straight to the socket */
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			forward_drop(c);
			return;
		}
		if (w > 0)
			p += w, n -= (size_t)w;
		if (!n)
			return;
	}
	if (forward_buffer(c, p, n)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s reads too slowly: more than %u MiB from port %lu waited for it; closed",
			 c->name, FORWARD_LOCAL_BUFFER_MAX >> 20, port_arg);
		client_warn("RESOURCE_EXHAUSTED", msg);
		forward_drop(c);
		return;
	}
	ev_io_start(client_loop(), &c->wio);
}

static void forward_tunnel_message(const msgpack_object_map *m)
{
	const msgpack_object *id = ra_map_get(m, "tunnel");
	fwd_conn *c = id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? find_by_tunnel(id->via.u64) : NULL;
	if (!c || c->remote_closed)
		return; /* one this side dropped: the agent had not heard yet */
	const msgpack_object *data = ra_map_get(m, "data"), *closed = ra_map_get(m, "closed"),
			     *eof = ra_map_get(m, "eof");
	if (data && data->type == MSGPACK_OBJECT_BIN) {
		forward_data(c, data->via.bin.ptr, data->via.bin.size);
	} else if (closed && closed->type == MSGPACK_OBJECT_BOOLEAN && closed->via.boolean) {
		const msgpack_object *err = ra_map_get(m, "error");
		if (err && err->type == MSGPACK_OBJECT_MAP) { /* the port failed (reset...); a clean end says nothing */
			char suffix[100];
			snprintf(suffix, sizeof(suffix), " (port %lu, for %s)", port_arg, c->name);
			client_warn_error(err, suffix);
		}
		c->remote_closed = true; /* what port.send still has in flight is answered with errors: ignored */
		ev_io_stop(client_loop(), &c->rio);
		forward_flush_local(c);
	} else if (eof && eof->type == MSGPACK_OBJECT_BOOLEAN && eof->via.boolean) {
		c->remote_eof = true;
		forward_flush_local(c);
	}
}

static void forward_connect_reply(fwd_conn *c, const msgpack_object_map *m)
{
	const msgpack_object *err = ra_map_get(m, "error"), *r = ra_map_get(m, "result");
	const msgpack_object *t = r && r->type == MSGPACK_OBJECT_MAP ? ra_map_get(&r->via.map, "tunnel") : NULL;
	if (err || !t || t->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		char suffix[100];
		snprintf(suffix, sizeof(suffix), " (for %s)", c->name);
		msgpack_object none = {.type = MSGPACK_OBJECT_NIL};
		client_warn_error(err ? err : &none, suffix); /* and go on forwarding the next connections */
		forward_free(c);
		return;
	}
	c->tunnel = t->via.u64;
	c->connected = true;
	resume_local_reading(c);
}

static void forward_send_reply(fwd_conn *c, const msgpack_object_map *m)
{
	c->sends_in_flight--;
	const msgpack_object *err = ra_map_get(m, "error");
	if (err && !c->remote_closed) { /* bytes were lost: the stream cannot go on */
		char suffix[100];
		snprintf(suffix, sizeof(suffix), " (for %s)", c->name);
		client_warn_error(err, suffix);
		forward_drop(c);
		return;
	}
	resume_local_reading(c);
}

static void forward_message(const msgpack_object_map *m)
{
	const msgpack_object *type = ra_map_get(m, "type");
	if (client_str_is(type, "tunnel")) {
		forward_tunnel_message(m);
		return;
	}
	if (!client_str_is(type, "reply"))
		return;
	const msgpack_object *id = ra_map_get(m, "id"), *err = ra_map_get(m, "error");
	if (!id || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (err) /* the agent could not read a request of ours: nothing here can go on sanely */
			client_report_error(err);
		return;
	}
	fwd_conn *c = find_by_serial(id->via.u64 >> 32);
	if (!c)
		return; /* late answers for a connection already closed here (port.disconnect's among them) */
	if (!c->connected)
		forward_connect_reply(c, m); /* nothing else is sent for a connection before its tunnel exists */
	else
		forward_send_reply(c, m);
}

static void forward_open(int fd, const struct sockaddr_storage *peer)
{
	fwd_conn *c = calloc(1, sizeof(*c));
	ra_enc *e = c ? client_request(((uint64_t)++fw.serials) << 32 | 1, "port.connect", fw.host ? 2 : 1) : NULL;
	if (!e) {
		client_warn("RESOURCE_EXHAUSTED", "out of memory: a local connection was refused");
		free(c);
		close(fd);
		return;
	}
	c->serial = fw.serials;
	c->requests = 1;
	c->fd = fd;
	format_endpoint(peer, c->name, sizeof(c->name));
	ra_buf_init(&c->to_local, 0, FORWARD_LOCAL_BUFFER_MAX);
	ev_io_init(&c->rio, on_local_readable, fd, EV_READ);
	ev_io_init(&c->wio, on_local_writable, fd, EV_WRITE);
	c->next = fw.conns;
	fw.conns = c;
	ra_enc_str(e, "port");
	ra_enc_u64(e, port_arg);
	if (fw.host) {
		ra_enc_str(e, "host");
		ra_enc_str(e, fw.host);
	}
	client_send(e);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(fw.listen_fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			forward_open(fd, &peer);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* the listener stays readable: pause rather than spin until connections end */
			char msg[200];
			snprintf(msg, sizeof(msg), "cannot accept a connection: %s; trying again shortly", strerror(errno));
			client_warn("RESOURCE_EXHAUSTED", msg);
			ev_io_stop(loop, w);
			ev_timer_start(loop, &fw.accept_retry);
		}
		return; /* EAGAIN: all taken */
	}
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t, (void)revents;
	ev_io_start(loop, &fw.accept_watch);
}

static void forward_cleanup(void)
{
	while (fw.conns)
		forward_free(fw.conns);
	if (fw.listen_fd >= 0)
		close(fw.listen_fd);
	fw.listen_fd = -1;
}

static int forward_listen(void)
{
	char where[80];
	format_endpoint(&fw.bind, where, sizeof(where));
	int fd = socket(fw.bind.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (const struct sockaddr *)&fw.bind, fw.bind_len) || listen(fd, SOMAXCONN)) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		char msg[200];
		snprintf(msg, sizeof(msg), "cannot listen on %s: %s", where, strerror(err));
		client_fail(err == EACCES ? "PERMISSION_DENIED" : "UNAVAILABLE", msg);
		return -1;
	}
	socklen_t len = sizeof(fw.bind); /* the port it got, for LOCALPORT 0 */
	getsockname(fd, (struct sockaddr *)&fw.bind, &len);
	fw.listen_fd = fd;
	atexit(forward_cleanup);
	ev_io_init(&fw.accept_watch, on_accept, fd, EV_READ);
	ev_io_start(client_loop(), &fw.accept_watch);
	ev_timer_init(&fw.accept_retry, on_accept_retry, FORWARD_ACCEPT_RETRY_S, 0);
	return 0;
}

static void forward_start(void)
{
	uint64_t max = client_max_message_bytes();
	fw.chunk = FORWARD_CHUNK;
	if (max && max < FORWARD_CHUNK + FORWARD_ENVELOPE_BYTES) /* an agent run with --max-message-bytes small */
		fw.chunk = max > 2 * FORWARD_ENVELOPE_BYTES ? (size_t)max - FORWARD_ENVELOPE_BYTES : FORWARD_ENVELOPE_BYTES;
	if (forward_listen())
		return;
	char where[80];
	format_endpoint(&fw.bind, where, sizeof(where));
	if (client_json()) {
		printf("{\"forwarding\":\"%s\",\"port\":%lu,\"host\":", where, port_arg);
		if (fw.host) {
			msgpack_object h = {.type = MSGPACK_OBJECT_STR,
					    .via = {.str = {.size = (uint32_t)strlen(fw.host), .ptr = fw.host}}};
			client_print_json(stdout, &h);
		} else {
			fputs("null", stdout);
		}
		fputs("}\n", stdout);
	} else {
		printf("forwarding %s -> sandbox port %lu%s%s\n", where, port_arg, fw.host ? " on " : "", fw.host ? fw.host : "");
	}
	fflush(stdout);
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
	{"ports", false, false, false, no_arguments, ports_start, ports_message,
	 "ports   (TCP ports listening in the sandbox, and those exposed)"},
	{"expose", false, false, false, expose_parse, expose_start, expose_message,
	 "expose PORT [--wait MS]\n"
	 "  exposes a sandbox port; prints its URL (from the agent's URL template) on the first line, then whether\n"
	 "  it listens. --wait MS: first wait up to MS for something to listen on it (not listening then is no error)"},
	{"unexpose", false, false, false, unexpose_parse, unexpose_start, unexpose_message, "unexpose PORT"},
	{"forward", false, true, true, forward_parse, forward_start, forward_message,
	 "forward [--bind ADDR] [LOCALPORT:]PORT [--host HOST]\n"
	 "  listens on ADDR:LOCALPORT (default 127.0.0.1; LOCALPORT 0: any free port, printed) and carries each\n"
	 "  connection to PORT inside the sandbox through the agent connection, until interrupted (exit 0).\n"
	 "  --host HOST  where the agent connects: an IP address (default 127.0.0.1, then ::1)\n"
	 "  a connection the agent cannot make is closed, its error on stderr, and forwarding goes on.\n"
	 "  bytes from the port wait here for a local reader that falls behind, up to 4 MiB per connection;\n"
	 "  past that the connection is closed (one slow reader must not stall the others, which share the\n"
	 "  agent connection)"},
	{"metrics", false, false, false, no_arguments, metrics_start, metrics_message,
	 "metrics   (CPU, memory, disk of the workdir, network, processes, the agent itself)"},
	{"shutdown", false, false, false, shutdown_parse, shutdown_start, shutdown_message,
	 "shutdown [--grace-ms N]\n"
	 "  the agent sends SIGTERM to every process, SIGKILL after N ms (default: its configured grace), and exits"},
	{NULL, false, false, false, NULL, NULL, NULL, NULL},
};
