/* rabench: the measuring client of bench/run.sh. Each subcommand prints one line of numbers on stdout and
 * exits non-zero (with a message on stderr) when the measurement cannot be made.
 *
 *   freeport                                  a free loopback TCP port
 *   probe PORT EXPECT TIMEOUT_MS              wait until GET /healthz is answered with EXPECT...
 *   start RUNS PORT EXPECT CPU PROG [ARG...]  median/min/max µs from fork to the first good probe
 *   hold PORT TOKEN SECONDS                   one idle WebSocket: prints "ready", then holds it open
 *   rtt PORT TOKEN WARMUP COUNT               sequential pings: p50 p99 min mean, µs
 *   tput PORT TOKEN CONNS SECONDS SERVER_PID  median 1 s window: replies/s, client CPU %, server CPU %
 *   exec PORT TOKEN WARMUP COUNT              sequential execs of argv ["true"]: p50 p99 min mean, µs
 *   spawn WARMUP COUNT                        the same with posix_spawnp("true") + waitpid, no agent
 *   xtput PORT TOKEN CONNS SECONDS SERVER_PID as tput, with one exec of "true" in flight per connection
 *   spawntput THREADS SECONDS                 median 1 s window of THREADS posix_spawnp+waitpid loops:
 *                                             spawns/s, our CPU %
 *   stream PORT TOKEN BYTES SERVER_PID        exec "head -c BYTES /dev/zero", read its stdout stream: MiB/s,
 *                                             messages, server VmHWM KiB, sampled peak VmRSS KiB, server CPU
 *                                             ms, client CPU %
 *   copy BYTES CPU PROG [ARG...]              receive what "PROG ARG... PORT" sends to our port until EOF:
 *                                             MiB/s, PROG's VmHWM KiB, PROG's CPU ms, receiver CPU %
 *
 * TOKEN "-" means the peer is the TCP echo server: same frames, no handshake. CPU -1: no pinning. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

extern char **environ;

static unsigned long num(const char *s, const char *what)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || !*s || *end)
		die("bad %s '%s'", what, s);
	return v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t pct(const uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)n + 0.999999);
	return v[i ? i - 1 : 0];
}

static void sleep_ns(long ns) { nanosleep(&(struct timespec){.tv_nsec = ns}, NULL); }

static int cmd_freeport(void)
{
	/* Port 0 makes the kernel pick; the race with someone else taking it before us is harmless here. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || getsockname(fd, (struct sockaddr *)&a, &len))
		die("no free port: %s", strerror(errno));
	printf("%u\n", ntohs(a.sin_port));
	close(fd);
	return 0;
}

/* One try: connect, GET /healthz, and the first bytes back must be EXPECT. The echo server answers with the
 * request itself, so for it EXPECT is "GET /healthz": either way the server has accepted, read and written. */
static bool probe_once(uint16_t port, const char *expect)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	int fd = tcp_connect(port);
	if (fd < 0)
		return false; /* not listening yet */
	char got[64] = "";
	size_t want = strlen(expect), n = 0;
	if (want >= sizeof(got))
		die("EXPECT too long");
	if (write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1)
		while (n < want) {
			ssize_t r = read(fd, got + n, want - n);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
	close(fd);
	return n == want && memcmp(got, expect, want) == 0;
}

/* Polls until the probe succeeds; returns its time, or 0 after timeout_ns or when child (if > 0) exits. */
static uint64_t wait_ready(uint16_t port, const char *expect, uint64_t timeout_ns, pid_t child)
{
	uint64_t deadline = now_ns() + timeout_ns;
	for (;;) {
		if (probe_once(port, expect))
			return now_ns();
		if (now_ns() > deadline || (child > 0 && waitpid(child, NULL, WNOHANG) == child))
			return 0;
		sleep_ns(20000); /* refused connects cost microseconds: poll often, the resolution is what we get */
	}
}

static int cmd_probe(char **argv)
{
	uint16_t port = (uint16_t)num(argv[0], "port");
	if (!wait_ready(port, argv[1], num(argv[2], "timeout") * 1000000u, 0))
		die("127.0.0.1:%u: no answer starting with '%s' within %s ms", port, argv[1], argv[2]);
	return 0;
}

static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 300; i++) { /* 3 s for a graceful exit */
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return;
		sleep_ns(10000000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void pin_self(long cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET((int)cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static int cmd_start(char **argv)
{
	size_t runs = num(argv[0], "runs");
	uint16_t port = (uint16_t)num(argv[1], "port");
	const char *expect = argv[2];
	long cpu = strtol(argv[3], NULL, 10);
	char **prog = argv + 4;
	uint64_t *t = calloc(runs, sizeof(*t));
	prctl(PR_SET_TIMERSLACK, 1UL); /* our 20 µs polling sleeps would otherwise round up to 50 µs+ */
	for (size_t r = 0; r < runs; r++) {
		uint64_t t0 = now_ns();
		pid_t pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			pin_self(cpu); /* here rather than by taskset so that no extra exec is timed */
			int null = open("/dev/null", O_WRONLY);
			dup2(null, 1);
			execv(prog[0], prog);
			_exit(127);
		}
		uint64_t t1 = wait_ready(port, expect, 5000000000u, pid);
		if (!t1) {
			stop(pid);
			die("%s did not answer on 127.0.0.1:%u within 5 s (run %zu)", prog[0], port, r + 1);
		}
		t[r] = t1 - t0;
		stop(pid);
	}
	qsort(t, runs, sizeof(*t), cmp_u64);
	printf("%.0f %.0f %.0f\n", pct(t, runs, 0.5) / 1e3, t[0] / 1e3, t[runs - 1] / 1e3);
	return 0;
}

static int cmd_hold(char **argv)
{
	static conn c;
	conn_open(&c, (uint16_t)num(argv[0], "port"), argv[1]);
	printf("ready\n");
	fflush(stdout);
	uint64_t end = now_ns() + num(argv[2], "seconds") * 1000000000u;
	for (uint64_t now; (now = now_ns()) < end;) {
		struct pollfd p = {.fd = c.fd, .events = POLLIN};
		if (poll(&p, 1, (int)((end - now) / 1000000u) + 1) > 0) {
			msg_info m;
			if (!conn_fill(&c))
				die("the agent closed the idle connection");
			while (conn_next(&c, &m)) /* answers keepalive PINGs; nothing else is expected */
				;
		}
	}
	return 0;
}

static const char *token_arg(const char *s) { return strcmp(s, "-") == 0 ? NULL : s; }

static int cmd_rtt(char **argv)
{
	static conn c;
	size_t warmup = num(argv[2], "warmup"), count = num(argv[3], "count");
	uint64_t *lat = calloc(count, sizeof(*lat)), sum = 0;
	conn_open(&c, (uint16_t)num(argv[0], "port"), token_arg(argv[1]));
	uint64_t deadline = now_ns() + 60000000000u;
	for (size_t i = 0; i < warmup + count; i++) {
		uint64_t t0 = now_ns();
		conn_ping(&c, i + 1);
		uint64_t t1 = now_ns();
		if (i >= warmup)
			sum += lat[i - warmup] = t1 - t0;
		if (t1 > deadline)
			die("rtt: over 60 s");
	}
	qsort(lat, count, sizeof(*lat), cmp_u64);
	printf("%.1f %.1f %.1f %.1f\n", pct(lat, count, 0.5) / 1e3, pct(lat, count, 0.99) / 1e3, lat[0] / 1e3,
	       (double)sum / (double)count / 1e3);
	return 0;
}

/* utime+stime of a process, in clock ticks (10 ms). */
static double proc_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	unsigned long ut, st;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		die("cannot read %s", path);
	return (double)(ut + st);
}

static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static const char *const true_argv[] = {"true", NULL};

/* The request the load sends: a ping, or (exec) an exec of "true". */
static void send_req(conn *c, uint64_t id, bool exec)
{
	if (exec)
		conn_send_exec(c, id, true_argv, NULL);
	else
		conn_send_ping(c, id);
}

/* Runs the load until the deadline: answers every reply with the next request on its connection, so that
 * each connection keeps exactly one in flight. Returns the replies. */
static uint64_t pump(int ep, uint64_t deadline, uint64_t *next_id, bool exec)
{
	uint64_t replies = 0;
	while (now_ns() < deadline) {
		struct epoll_event evs[512];
		int k = epoll_wait(ep, evs, 512, 100);
		if (k < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < k; i++) {
			conn *c = evs[i].data.ptr;
			msg_info m;
			if (!conn_fill(c))
				die("the server closed a connection");
			while (conn_next(c, &m)) {
				if (exec && msg_is(&m, "stream"))
					continue; /* "true" prints nothing; if it did, the output is not what we count */
				if (exec)
					check_exec_reply(c, &m);
				else
					check_reply(c, &m);
				replies++;
				send_req(c, ++*next_id, exec);
			}
		}
	}
	return replies;
}

typedef struct {
	double rate, client, server; /* replies/s, CPU % */
} window;

static int cmp_window(const void *a, const void *b)
{
	double x = ((const window *)a)->rate, y = ((const window *)b)->rate;
	return x < y ? -1 : x > y;
}

static int tput(char **argv, bool exec)
{
	uint16_t port = (uint16_t)num(argv[0], "port");
	size_t n = num(argv[2], "conns"), windows = num(argv[3], "seconds");
	pid_t server = (pid_t)num(argv[4], "pid");
	conn *cs = calloc(n, sizeof(*cs));
	window *w = calloc(windows, sizeof(*w));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!windows || !cs || !w || ep < 0)
		die("tput: bad arguments or no memory");
	for (size_t i = 0; i < n; i++) { /* handshakes one by one, blocking: simple, and not measured */
		conn_open(&cs[i], port, token_arg(argv[1]));
		fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev))
			die("epoll_ctl: %s", strerror(errno));
	}
	uint64_t next_id = 0;
	for (size_t i = 0; i < n; i++)
		send_req(&cs[i], ++next_id, exec);
	pump(ep, now_ns() + 500000000u, &next_id, exec); /* warm-up: caches, TCP windows, the agent's buffers */
	/* One-second windows, and the median of them: a hiccup of the host (this may be a VM) spoils one window
	 * instead of the figure. */
	for (size_t i = 0; i < windows; i++) {
		uint64_t t0 = now_ns();
		double cpu0 = self_cpu_s(), srv0 = proc_cpu_ticks(server);
		uint64_t replies = pump(ep, t0 + 1000000000u, &next_id, exec);
		double secs = (double)(now_ns() - t0) / 1e9;
		w[i].rate = (double)replies / secs;
		w[i].client = (self_cpu_s() - cpu0) / secs * 100;
		w[i].server = (proc_cpu_ticks(server) - srv0) / (double)sysconf(_SC_CLK_TCK) / secs * 100;
	}
	qsort(w, windows, sizeof(*w), cmp_window);
	printf("%.0f %.0f %.0f\n", w[windows / 2].rate, w[windows / 2].client, w[windows / 2].server);
	for (size_t i = 0; i < n; i++)
		conn_close(&cs[i]);
	return 0;
}

static int cmd_tput(char **argv) { return tput(argv, false); }
static int cmd_xtput(char **argv) { return tput(argv, true); }

/* ---- processes ---- */

/* Prints p50 p99 min mean (µs) of count latencies, and frees them. */
static void print_latencies(uint64_t *lat, size_t count, uint64_t sum)
{
	qsort(lat, count, sizeof(*lat), cmp_u64);
	printf("%.1f %.1f %.1f %.1f\n", pct(lat, count, 0.5) / 1e3, pct(lat, count, 0.99) / 1e3, lat[0] / 1e3,
	       (double)sum / (double)count / 1e3);
	free(lat);
}

/* One exec of "true", waiting for its reply; stream messages (there should be none) are skipped. */
static void conn_exec_true(conn *c, uint64_t id)
{
	msg_info m;
	conn_send_exec(c, id, true_argv, NULL);
	do
		conn_wait(c, &m);
	while (msg_is(&m, "stream"));
	check_exec_reply(c, &m);
}

static int cmd_exec(char **argv)
{
	static conn c;
	size_t warmup = num(argv[2], "warmup"), count = num(argv[3], "count");
	uint64_t *lat = calloc(count, sizeof(*lat)), sum = 0;
	conn_open(&c, (uint16_t)num(argv[0], "port"), argv[1]);
	uint64_t deadline = now_ns() + 60000000000u;
	for (size_t i = 0; i < warmup + count; i++) {
		uint64_t t0 = now_ns();
		conn_exec_true(&c, i + 1);
		uint64_t t1 = now_ns();
		if (i >= warmup)
			sum += lat[i - warmup] = t1 - t0;
		if (t1 > deadline)
			die("exec: over 60 s");
	}
	print_latencies(lat, count, sum);
	conn_close(&c);
	return 0;
}

/* The baseline of exec: what starting and reaping "true" costs without anything around it. posix_spawnp
 * searches PATH as the agent does for argv ["true"], and glibc's posix_spawn uses vfork-style clone. */
static void spawn_true(void)
{
	pid_t pid;
	int st, rc = posix_spawnp(&pid, "true", NULL, NULL, (char *const *)true_argv, environ);
	if (rc)
		die("posix_spawnp true: %s", strerror(rc));
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("true failed: status %d", st);
}

static int cmd_spawn(char **argv)
{
	size_t warmup = num(argv[0], "warmup"), count = num(argv[1], "count");
	uint64_t *lat = calloc(count, sizeof(*lat)), sum = 0;
	uint64_t deadline = now_ns() + 60000000000u;
	for (size_t i = 0; i < warmup + count; i++) {
		uint64_t t0 = now_ns();
		spawn_true();
		uint64_t t1 = now_ns();
		if (i >= warmup)
			sum += lat[i - warmup] = t1 - t0;
		if (t1 > deadline)
			die("spawn: over 60 s");
	}
	print_latencies(lat, count, sum);
	return 0;
}

static atomic_ulong spawns_done;
static atomic_bool spawns_stop;

static void *spawn_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&spawns_stop)) {
		spawn_true();
		atomic_fetch_add(&spawns_done, 1);
	}
	return NULL;
}

static int cmd_spawntput(char **argv)
{
	size_t n = num(argv[0], "threads"), windows = num(argv[1], "seconds");
	pthread_t *t = calloc(n, sizeof(*t));
	window *w = calloc(windows, sizeof(*w));
	if (!n || !windows || !t || !w)
		die("spawntput: bad arguments or no memory");
	for (size_t i = 0; i < n; i++)
		if ((errno = pthread_create(&t[i], NULL, spawn_loop, NULL)))
			die("pthread_create: %s", strerror(errno));
	sleep_ns(500000000); /* warm-up, as in tput */
	for (size_t i = 0; i < windows; i++) { /* the same 1 s windows and median as tput */
		uint64_t t0 = now_ns();
		unsigned long c0 = atomic_load(&spawns_done);
		double cpu0 = self_cpu_s();
		nanosleep(&(struct timespec){.tv_sec = 1}, NULL);
		double secs = (double)(now_ns() - t0) / 1e9;
		w[i].rate = (double)(atomic_load(&spawns_done) - c0) / secs;
		w[i].client = (self_cpu_s() - cpu0) / secs * 100;
	}
	atomic_store(&spawns_stop, true);
	for (size_t i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	qsort(w, windows, sizeof(*w), cmp_window);
	printf("%.0f %.0f\n", w[windows / 2].rate, w[windows / 2].client);
	return 0;
}

/* ---- streaming ---- */

/* A "Vm...:" line of /proc/PID/status in KiB, or 0. */
static unsigned long proc_status_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	unsigned long v = 0;
	size_t n = strlen(field);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			v = strtoul(line + n + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return v;
}

/* Sets the peak RSS (VmHWM) back to the current RSS, so that it then holds the peak of what follows. */
static bool reset_hwm(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	bool ok = fd >= 0 && write(fd, "5", 1) == 1;
	if (fd >= 0)
		close(fd);
	return ok;
}

static double mib_per_s(uint64_t bytes, uint64_t ns) { return (double)bytes / 1048576.0 / ((double)ns / 1e9); }

/* Counts one stream message: stdout only, each chunk starting where the last one ended. */
static void take_chunk(const msg_info *m, uint64_t id, uint64_t *got)
{
	if (!m->has_id || m->id != id || !m->data)
		die("stream message without the exec's id or data");
	if (!m->stream || m->stream_len != 6 || memcmp(m->stream, "stdout", 6) != 0)
		die("output on %.*s: %.*s", (int)m->stream_len, m->stream, (int)(m->data_len < 200 ? m->data_len : 200),
		    (const char *)m->data);
	if (!m->has_offset || m->offset != *got)
		die("stream offset %llu, expected %llu", (unsigned long long)m->offset, (unsigned long long)*got);
	*got += m->data_len;
}

static int cmd_stream(char **argv)
{
	static conn c;
	uint64_t bytes = num(argv[2], "bytes"), got = 0, messages = 0;
	pid_t server = (pid_t)num(argv[3], "pid");
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "head -c %llu /dev/zero", (unsigned long long)bytes);
	conn_open_sized(&c, (uint16_t)num(argv[0], "port"), argv[1], CONN_BIG_BUF_BYTES);
	bool hwm_ok = reset_hwm(server);
	unsigned long rss_peak = proc_status_kib(server, "VmRSS");
	double cpu0 = self_cpu_s(), srv0 = proc_cpu_ticks(server);
	uint64_t t0 = now_ns(), next_sample = t0, deadline = t0 + 60000000000u;
	msg_info m;
	conn_send_exec(&c, 1, NULL, cmd);
	for (;;) {
		conn_wait(&c, &m);
		uint64_t now = now_ns();
		if (now >= next_sample) { /* VmRSS every 10 ms: a check on VmHWM, and the figure if it cannot be reset */
			unsigned long rss = proc_status_kib(server, "VmRSS");
			rss_peak = rss > rss_peak ? rss : rss_peak;
			next_sample = now + 10000000u;
			if (now > deadline)
				die("stream: over 60 s");
		}
		if (!msg_is(&m, "stream"))
			break;
		take_chunk(&m, 1, &got);
		messages++;
	}
	uint64_t t1 = now_ns();
	check_exec_reply(&c, &m);
	if (got != bytes)
		die("stream: %llu bytes, expected %llu", (unsigned long long)got, (unsigned long long)bytes);
	double secs = (double)(t1 - t0) / 1e9;
	unsigned long hwm = hwm_ok ? proc_status_kib(server, "VmHWM") : rss_peak;
	printf("%.1f %llu %lu %lu %.0f %.0f\n", mib_per_s(got, t1 - t0), (unsigned long long)messages, hwm, rss_peak,
	       (proc_cpu_ticks(server) - srv0) / (double)sysconf(_SC_CLK_TCK) * 1e3,
	       (self_cpu_s() - cpu0) / secs * 100);
	conn_close(&c);
	return 0;
}

/* The baseline's receiving end: a listening socket, PROG started with its port as last argument and pinned
 * like the agent, every byte read until EOF, and PROG's own report ("VmHWM_KiB CPU_ms") on its stdout. */
static int cmd_copy(char **argv)
{
	uint64_t bytes = num(argv[0], "bytes"), got = 0;
	long cpu = strtol(argv[1], NULL, 10);
	char **prog = argv + 2, port[16];
	size_t nargs = 0;
	while (prog[nargs])
		nargs++;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), out[2];
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof(a);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) || pipe2(out, O_CLOEXEC))
		die("copy: listen: %s", strerror(errno));
	snprintf(port, sizeof(port), "%u", ntohs(a.sin_port));
	char **args = calloc(nargs + 2, sizeof(char *));
	memcpy(args, prog, nargs * sizeof(char *));
	args[nargs] = port;
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		pin_self(cpu);
		dup2(out[1], 1);
		execv(args[0], args);
		_exit(127);
	}
	close(out[1]);
	/* accept within 5 s, or the program failed */
	if (poll(&(struct pollfd){.fd = lfd, .events = POLLIN}, 1, 5000) != 1) {
		stop(pid);
		die("copy: %s did not connect", prog[0]);
	}
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	static uint8_t buf[CONN_BIG_BUF_BYTES];
	double cpu0 = self_cpu_s();
	uint64_t t0 = now_ns();
	for (ssize_t r; (r = read(fd, buf, sizeof(buf))) != 0;) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("copy: read: %s", strerror(errno));
		got += (uint64_t)r;
	}
	uint64_t t1 = now_ns();
	double cpu1 = self_cpu_s();
	char report[128] = "";
	ssize_t rn = read(out[0], report, sizeof(report) - 1);
	int st;
	waitpid(pid, &st, 0);
	unsigned long hwm, cpu_ms;
	if (rn <= 0 || sscanf(report, "%lu %lu", &hwm, &cpu_ms) != 2 || !WIFEXITED(st) || WEXITSTATUS(st))
		die("copy: %s failed (status %d)", prog[0], st);
	if (got != bytes)
		die("copy: %llu bytes, expected %llu", (unsigned long long)got, (unsigned long long)bytes);
	printf("%.1f %lu %lu %.0f\n", mib_per_s(got, t1 - t0), hwm, cpu_ms,
	       (cpu1 - cpu0) / ((double)(t1 - t0) / 1e9) * 100);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int args; /* at least */
		int (*run)(char **);
	} cmds[] = {{"probe", 3, cmd_probe},   {"start", 5, cmd_start},         {"hold", 3, cmd_hold},
		    {"rtt", 4, cmd_rtt},       {"tput", 5, cmd_tput},           {"exec", 4, cmd_exec},
		    {"spawn", 2, cmd_spawn},   {"xtput", 5, cmd_xtput},         {"spawntput", 2, cmd_spawntput},
		    {"stream", 4, cmd_stream}, {"copy", 3, cmd_copy}};
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "freeport") == 0)
		return cmd_freeport();
	for (size_t i = 0; argc > 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0) {
			if (argc - 2 < cmds[i].args)
				die("%s: too few arguments (see the top of rabench.c)", cmds[i].name);
			return cmds[i].run(argv + 2);
		}
	die("usage: rabench freeport|probe|start|hold|rtt|tput|exec|spawn|xtput|spawntput|stream|copy ... (see the "
	    "top of rabench.c)");
}
