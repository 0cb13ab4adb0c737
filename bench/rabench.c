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
 *   upload PORT TOKEN FILE SHA256 TARGET SERVER_PID CHUNK_KIB INFLIGHT
 *                                             file.upload.open/chunk/commit of FILE to TARGET, INFLIGHT chunks
 *                                             unanswered at most: MiB/s, chunks, then as stream
 *   download PORT TOKEN FILE SHA256 OUT SERVER_PID
 *                                             file.read of FILE with stream: true, every byte compared with FILE
 *                                             and written over OUT in place: MiB/s, messages, then as stream
 *   fileup FILE CHUNK_KIB CPU PROG [ARG...]   send FILE to what "PROG ARG... PORT" receives, until it closes:
 *                                             MiB/s, PROG's VmHWM KiB, PROG's CPU ms, sender CPU %
 *   filedown FILE OUT CPU PROG [ARG...]       receive what "PROG ARG... PORT" sends, as download does: as
 *                                             fileup, with the receiver's CPU %
 *   evlat PORT TOKEN DIR WARMUP COUNT         make DIR (in a watched tree), then files in it one at a time, each
 *                                             awaited as a file.created event: p50 p99 min mean, µs
 *   inotlat DIR WARMUP COUNT                  the same read from our own inotify instance
 *   relaylat DIR WARMUP COUNT CPU PROG [ARG...]
 *                                             the same read from a relay ("PROG ARG... PORT", inotify_relay.c)
 *   evtput PORT TOKEN DIR DIRS FILES SERVER_PID
 *                                             a child creates FILES files in DIRS new directories of DIR, we
 *                                             count their file.created events: events/s, delivered, files,
 *                                             overflows, rescans, gaps, skipped seqs, creates/s, server CPU ms,
 *                                             client CPU %
 *   relaytput DIR DIRS FILES CPU PROG [ARG...]  the same counted from the relay's lines
 *   evburst PORT TOKEN DIR DIRS BURST BURSTS SERVER_PID
 *                                             BURSTS times: the agent stopped, BURST files created, the agent
 *                                             continued and the burst's events counted: events/s while
 *                                             draining, delivered, files, overflows, rescans, gaps, skipped
 *                                             seqs, drain ms, server CPU ms
 *   relayburst DIR DIRS BURST BURSTS CPU PROG [ARG...]  the same with the relay
 *   wadd PORT TOKEN DIR RUNS DIRS SERVER_PID  watch.add {path: DIR, recursive: true} and watch.remove, RUNS
 *                                             times: median add ms, median remove ms, VmRSS growth KiB, each add
 *   inotwalk DIR RUNS                         the tree walked with inotify_add_watch on every directory: median
 *                                             ms, directories, each run
 *   tunsend PORT TOKEN SINK_PORT BYTES CHUNK_KIB INFLIGHT SERVER_PID PEER_PID
 *                                             port.connect to the sink of tunnel_peer.c, BYTES in port.sends
 *                                             of CHUNK_KIB (INFLIGHT unanswered at most), eof, its answer:
 *                                             MiB/s, sends, then as stream, then the peer's CPU ms
 *   tunrecv PORT TOKEN SOURCE_PORT BYTES SERVER_PID PEER_PID
 *                                             port.connect to the source, its BYTES until eof: MiB/s, tunnel
 *                                             messages, then as tunsend
 *   tcpsend SINK_PORT BYTES CHUNK_KIB PEER_PID  the same bytes straight to the sink: MiB/s, peer's CPU ms,
 *                                             client CPU %
 *   tcprecv SOURCE_PORT BYTES PEER_PID        the same bytes straight from the source: as tcpsend
 *   portlat PORT TOKEN COUNT SCAN_MS SERVER_PID
 *                                             one idle child through the agent, then COUNT listeners, each timed
 *                                             from listen() to its port.opened: p50 p99 min mean ms, the agent's
 *                                             wake-ups/s and CPU µs/s with that child
 *   cmdrtt WARMUP COUNT PROG [ARG...]         PROG run and awaited COUNT times after WARMUP, each must exit 0
 *                                             (ssh ... true): p50 p99 min mean, µs
 *   cmdcopy BYTES SERVER_PID PROG [ARG...]    one run of a transfer tool (scp, sftp), start to exit: MiB/s,
 *                                             CPU ms of SERVER_PID's reaped children, the tool's CPU ms
 *   wsstream PORT BYTES SERVER_PID            a WebSocket to websocketd (which starts its command for it),
 *                                             its binary messages counted until it closes: as stream
 *
 * TOKEN "-" means the peer is the TCP echo server: same frames, no handshake. CPU -1: no pinning. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
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
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"
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

/* Two consecutive time fields of /proc/PID/stat, the first being field `first` (1-based), in clock ticks
 * (10 ms), summed: 14 = utime+stime, 16 = cutime+cstime. */
static double proc_stat_ticks(pid_t pid, int first)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	for (int field = 2; p && field < first; field++) /* ")" ends field 2; each space starts the next */
		p = strchr(p + 1, ' ');
	long a, b;
	if (!p || sscanf(p, " %ld %ld", &a, &b) != 2)
		die("cannot read %s", path);
	return (double)(a + b);
}

/* utime+stime of a process, in clock ticks (10 ms). */
static double proc_cpu_ticks(pid_t pid) { return proc_stat_ticks(pid, 14); }

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

/* Counts one stream message: on the expected stream only, each chunk starting where the last one ended. */
static void take_chunk(const msg_info *m, uint64_t id, const char *stream, uint64_t *got)
{
	if (!m->has_id || m->id != id || !m->data)
		die("stream message without the request's id or data");
	if (!m->stream || m->stream_len != strlen(stream) || memcmp(m->stream, stream, m->stream_len) != 0)
		die("output on %.*s: %.*s", (int)m->stream_len, m->stream, (int)(m->data_len < 200 ? m->data_len : 200),
		    (const char *)m->data);
	if (!m->has_offset || m->offset != *got)
		die("stream offset %llu, expected %llu", (unsigned long long)m->offset, (unsigned long long)*got);
	*got += m->data_len;
}

/* What the server costs during one transfer: its peak RSS (VmHWM reset at the start, and VmRSS sampled every
 * 10 ms as a check on it, or as the figure when it cannot be reset), its CPU and ours. */
typedef struct {
	pid_t server;
	const char *what;
	bool hwm_ok;
	unsigned long rss_peak;
	double cpu0, srv0;
	uint64_t t0, next_sample, deadline;
} watch;

static void watch_start(watch *w, pid_t server, const char *what)
{
	w->server = server;
	w->what = what;
	w->hwm_ok = reset_hwm(server);
	w->rss_peak = proc_status_kib(server, "VmRSS");
	w->cpu0 = self_cpu_s();
	w->srv0 = proc_cpu_ticks(server);
	w->t0 = w->next_sample = now_ns();
	w->deadline = w->t0 + 60000000000u;
}

/* Called for every message: samples VmRSS if 10 ms have passed, and ends a run that takes over 60 s. */
static void watch_sample(watch *w)
{
	uint64_t now = now_ns();
	if (now < w->next_sample)
		return;
	unsigned long rss = proc_status_kib(w->server, "VmRSS");
	w->rss_peak = rss > w->rss_peak ? rss : w->rss_peak;
	w->next_sample = now + 10000000u;
	if (now > w->deadline)
		die("%s: over 60 s", w->what);
}

/* "MiB/s messages VmHWM_KiB sampled_peak_VmRSS_KiB server_CPU_ms client_CPU_%" for bytes moved by t1, without
 * the end of the line. */
static void watch_fields(const watch *w, uint64_t bytes, uint64_t messages, uint64_t t1)
{
	double secs = (double)(t1 - w->t0) / 1e9;
	unsigned long hwm = w->hwm_ok ? proc_status_kib(w->server, "VmHWM") : w->rss_peak;
	printf("%.1f %llu %lu %lu %.0f %.0f", mib_per_s(bytes, t1 - w->t0), (unsigned long long)messages, hwm,
	       w->rss_peak, (proc_cpu_ticks(w->server) - w->srv0) / (double)sysconf(_SC_CLK_TCK) * 1e3,
	       (self_cpu_s() - w->cpu0) / secs * 100);
}

static void watch_print(const watch *w, uint64_t bytes, uint64_t messages, uint64_t t1)
{
	watch_fields(w, bytes, messages, t1);
	printf("\n");
}

static int cmd_stream(char **argv)
{
	static conn c;
	uint64_t bytes = num(argv[2], "bytes"), got = 0, messages = 0;
	pid_t server = (pid_t)num(argv[3], "pid");
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "head -c %llu /dev/zero", (unsigned long long)bytes);
	conn_open_sized(&c, (uint16_t)num(argv[0], "port"), argv[1], CONN_BIG_BUF_BYTES);
	watch w;
	watch_start(&w, server, "stream");
	msg_info m;
	conn_send_exec(&c, 1, NULL, cmd);
	for (;;) {
		conn_wait(&c, &m);
		watch_sample(&w);
		if (!msg_is(&m, "stream"))
			break;
		take_chunk(&m, 1, "stdout", &got);
		messages++;
	}
	uint64_t t1 = now_ns();
	check_exec_reply(&c, &m);
	if (got != bytes)
		die("stream: %llu bytes, expected %llu", (unsigned long long)got, (unsigned long long)bytes);
	watch_print(&w, got, messages, t1);
	conn_close(&c);
	return 0;
}

/* The baselines' other end: listens on a free loopback port, starts "PROG ARG... PORT" pinned like the agent
 * with its stdout on a pipe (*report), and accepts its connection (within 5 s, or PROG failed). */
static int start_peer(char **prog, long cpu, pid_t *pid, int *report)
{
	char port[16];
	size_t nargs = 0;
	while (prog[nargs])
		nargs++;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), out[2];
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof(a);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) || pipe2(out, O_CLOEXEC))
		die("%s: listen: %s", prog[0], strerror(errno));
	snprintf(port, sizeof(port), "%u", ntohs(a.sin_port));
	char **args = calloc(nargs + 2, sizeof(char *));
	memcpy(args, prog, nargs * sizeof(char *));
	args[nargs] = port;
	*pid = fork();
	if (*pid < 0)
		die("fork: %s", strerror(errno));
	if (*pid == 0) {
		pin_self(cpu);
		dup2(out[1], 1);
		execv(args[0], args);
		_exit(127);
	}
	close(out[1]);
	free(args);
	if (poll(&(struct pollfd){.fd = lfd, .events = POLLIN}, 1, 5000) != 1) {
		stop(*pid);
		die("%s did not connect", prog[0]);
	}
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), one = 1;
	if (fd < 0)
		die("accept: %s", strerror(errno));
	close(lfd);
	/* as tcp_connect does for the agent's client: a stalled peer must end the run, not hang it */
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*report = out[0];
	return fd;
}

/* Waits for PROG and reads the numbers of its report line into v; dies unless it exited 0 with want of them. */
static void peer_report(pid_t pid, int report, const char *name, unsigned long *v, int want)
{
	char line[128] = "";
	ssize_t n = read(report, line, sizeof(line) - 1);
	int st, got = n > 0 ? sscanf(line, "%lu %lu %lu", &v[0], &v[1], &v[2]) : 0;
	waitpid(pid, &st, 0);
	close(report);
	if (got < want || !WIFEXITED(st) || WEXITSTATUS(st))
		die("%s failed (status %d)", name, st);
}

/* A baseline's line: MiB/s, the peer's VmHWM KiB and CPU ms, and our CPU % over the copy. */
static void print_copy(uint64_t bytes, uint64_t ns, double cpu_s, unsigned long hwm, unsigned long cpu_ms)
{
	printf("%.1f %lu %lu %.0f\n", mib_per_s(bytes, ns), hwm, cpu_ms, cpu_s / ((double)ns / 1e9) * 100);
}

/* The baseline of streaming: every byte that "PROG ARG... PORT" sends, read until EOF, timed from accept. */
static int cmd_copy(char **argv)
{
	uint64_t bytes = num(argv[0], "bytes"), got = 0;
	pid_t pid;
	int report, fd = start_peer(argv + 2, strtol(argv[1], NULL, 10), &pid, &report);
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
	unsigned long v[3]; /* VmHWM_KiB CPU_ms */
	peer_report(pid, report, argv[2], v, 2);
	if (got != bytes)
		die("copy: %llu bytes, expected %llu", (unsigned long long)got, (unsigned long long)bytes);
	print_copy(got, t1 - t0, cpu1 - cpu0, v[0], v[1]);
	close(fd);
	return 0;
}

/* ---- file transfers ---- */

static void pread_full(int fd, uint8_t *buf, size_t n, uint64_t at)
{
	while (n) {
		ssize_t r = pread(fd, buf, n, (off_t)at);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read: %s", r < 0 ? strerror(errno) : "the file shrank");
		buf += r;
		n -= (size_t)r;
		at += (uint64_t)r;
	}
}

/* The source file, mapped and faulted in before anything is timed: every byte downloaded is compared with it. */
static const uint8_t *map_file(const char *path, uint64_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || !st.st_size)
		die("%s: %s", path, fd < 0 || !st.st_size ? strerror(errno) : "empty");
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (p == MAP_FAILED)
		die("mmap %s: %s", path, strerror(errno));
	close(fd);
	*size = (uint64_t)st.st_size;
	return p;
}

static void pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t at)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write: %s", w < 0 ? strerror(errno) : "short");
		p += w;
		n -= (size_t)w;
		at += (uint64_t)w;
	}
}

/* What a download's receiver does with each piece, the agent's client and the baseline's alike: checks it
 * against the source and writes it to the output file, in place. */
static void take_bytes(const uint8_t *src, uint64_t size, int out, uint64_t at, const uint8_t *data, size_t len)
{
	if (at + len > size || memcmp(src + at, data, len) != 0)
		die("download: the bytes at %llu..%llu differ from the file", (unsigned long long)at,
		    (unsigned long long)(at + len));
	pwrite_all(out, data, len, at);
}

/* A download's output: one file, filled once (untimed) and then overwritten in place by every download. In
 * a VM, writing a gigabyte into page cache that is not there yet costs ~2.5 s of CPU (first touch of memory
 * the host took back), which would make the receiver, not the sender, what the download figures measure. */
static int open_out(const char *path, const uint8_t *src, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	struct stat st;
	if (fd < 0 || fstat(fd, &st))
		die("%s: %s", path, strerror(errno));
	if ((uint64_t)st.st_size != size) {
		pwrite_all(fd, src, size, 0);
		if (ftruncate(fd, (off_t)size))
			die("%s: %s", path, strerror(errno));
	}
	return fd;
}

/* After the clock stops: a dirty gigabyte left behind would be written back during a later measurement. */
static void close_out(int fd)
{
	if (fdatasync(fd) || close(fd))
		die("download output: %s", strerror(errno));
}

static void check_sha(const msg_info *m, const char *want)
{
	const char *sha;
	size_t len;
	if (!msg_result_str(m, (const char *const[]){"sha256", NULL}, &sha, &len) || len != 64 ||
	    strncasecmp(sha, want, 64) != 0)
		die("sha256 %.*s, expected %s", (int)(len <= 64 ? len : 64), sha, want);
}

static void check_result_u64(const msg_info *m, const char *key, uint64_t want)
{
	uint64_t v;
	if (!msg_result_uint(m, (const char *const[]){key, NULL}, &v) || v != want)
		die("reply %s %llu, expected %llu", key, (unsigned long long)v, (unsigned long long)want);
}

/* file.upload.open; returns the upload's id in id. */
static void upload_open(conn *c, const char *target, char id[24])
{
	msg_info m;
	const char *s;
	size_t len;
	conn_send_op(c, 1, "file.upload.open", (const char *const[]){"path", target, NULL});
	conn_wait(c, &m);
	check_op_reply(c, &m);
	if (!msg_result_str(&m, (const char *const[]){"upload", NULL}, &s, &len) || !len || len > 23)
		die("file.upload.open: no upload id in the reply");
	memcpy(id, s, len);
	id[len] = 0;
}

/* Chunks of the file, in order, with up to inflight of them unanswered; returns the chunks. */
static uint64_t upload_chunks(conn *c, watch *w, int fd, uint64_t size, const char *id, size_t chunk,
			      size_t inflight)
{
	uint8_t *buf = malloc(chunk);
	uint64_t sent = 0, acked = 0, next = 2, want = 2; /* ids: 1 was the open */
	msg_info m;
	if (!buf)
		die("out of memory");
	while (acked < size) {
		for (; sent < size && next - want < inflight; next++) {
			size_t n = size - sent < chunk ? (size_t)(size - sent) : chunk;
			pread_full(fd, buf, n, sent);
			conn_send_chunk(c, next, id, sent, buf, n);
			sent += n;
		}
		conn_wait(c, &m);
		c->want_id = want++; /* replies come in request order */
		check_op_reply(c, &m);
		acked = size - acked < chunk ? size : acked + chunk;
		check_result_u64(&m, "received", acked);
		watch_sample(w);
	}
	free(buf);
	return next - 2;
}

/* upload PORT TOKEN FILE SHA256 TARGET SERVER_PID CHUNK_KIB INFLIGHT */
static int cmd_upload(char **argv)
{
	static conn c;
	const char *sha = argv[3];
	size_t chunk = num(argv[6], "chunk KiB") << 10, inflight = num(argv[7], "chunks in flight");
	int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || !chunk || !inflight || strlen(sha) != 64)
		die("upload: %s: bad arguments or no such file", argv[2]);
	uint64_t size = (uint64_t)st.st_size;
	conn_open(&c, (uint16_t)num(argv[0], "port"), argv[1]);
	watch w;
	watch_start(&w, (pid_t)num(argv[5], "pid"), "upload");
	char id[24];
	msg_info m;
	upload_open(&c, argv[4], id);
	uint64_t chunks = upload_chunks(&c, &w, fd, size, id, chunk, inflight);
	conn_send_op(&c, chunks + 2, "file.upload.commit", (const char *const[]){"upload", id, "sha256", sha, NULL});
	conn_wait(&c, &m);
	uint64_t t1 = now_ns();
	check_op_reply(&c, &m);
	check_result_u64(&m, "size", size);
	check_sha(&m, sha);
	watch_print(&w, size, chunks, t1);
	close(fd);
	conn_close(&c);
	return 0;
}

/* download PORT TOKEN FILE SHA256 OUT SERVER_PID */
static int cmd_download(char **argv)
{
	static conn c;
	uint64_t size, got = 0, messages = 0;
	const uint8_t *src = map_file(argv[2], &size);
	int out = open_out(argv[4], src, size);
	conn_open_sized(&c, (uint16_t)num(argv[0], "port"), argv[1], CONN_BIG_BUF_BYTES);
	watch w;
	watch_start(&w, (pid_t)num(argv[5], "pid"), "download");
	msg_info m;
	conn_send_op(&c, 1, "file.read", (const char *const[]){"path", argv[2], "stream", WIRE_TRUE, NULL});
	for (;;) {
		conn_wait(&c, &m);
		watch_sample(&w);
		if (!msg_is(&m, "stream"))
			break;
		uint64_t at = got;
		take_chunk(&m, 1, "file", &got);
		take_bytes(src, size, out, at, m.data, m.data_len);
		messages++;
	}
	uint64_t t1 = now_ns();
	check_op_reply(&c, &m);
	check_result_u64(&m, "size", size);
	check_result_u64(&m, "bytes", size);
	(void)argv[3]; /* the digest is not asked for (it costs the agent more than the transfer); every byte was
		       * compared with the source above instead */
	if (got != size || !msg_result_true(&m, (const char *const[]){"eof", NULL}))
		die("download: %llu bytes of %llu, or no eof", (unsigned long long)got, (unsigned long long)size);
	watch_print(&w, got, messages, t1);
	close_out(out);
	conn_close(&c);
	return 0;
}

/* fileup FILE CHUNK_KIB CPU PROG [ARG...]: the upload's baseline. Sends FILE as the agent's client does
 * (pread, CHUNK_KIB at a time) to PROG, which writes and fsyncs it; timed from accept until PROG, done,
 * closes the connection. Prints MiB/s, PROG's VmHWM KiB and CPU ms, our CPU %. */
static int cmd_fileup(char **argv)
{
	size_t chunk = num(argv[1], "chunk KiB") << 10;
	int fd = open(argv[0], O_RDONLY | O_CLOEXEC), report;
	struct stat st;
	uint8_t *buf = malloc(chunk);
	if (fd < 0 || fstat(fd, &st) || !buf || !chunk)
		die("fileup: %s: bad arguments or no such file", argv[0]);
	uint64_t size = (uint64_t)st.st_size;
	pid_t pid;
	int sock = start_peer(argv + 3, strtol(argv[2], NULL, 10), &pid, &report);
	double cpu0 = self_cpu_s();
	uint64_t t0 = now_ns();
	for (uint64_t sent = 0; sent < size;) {
		size_t n = size - sent < chunk ? (size_t)(size - sent) : chunk;
		pread_full(fd, buf, n, sent);
		write_all(sock, buf, n);
		sent += n;
	}
	shutdown(sock, SHUT_WR);
	/* EOF once PROG has fsynced and closed; its fsync may outlast the socket's 5 s timeout, poll's does not */
	char byte;
	if (poll(&(struct pollfd){.fd = sock, .events = POLLIN}, 1, 60000) != 1 || read(sock, &byte, 1) != 0)
		die("fileup: %s did not finish within 60 s", argv[3]);
	uint64_t t1 = now_ns();
	double cpu1 = self_cpu_s();
	unsigned long v[3]; /* bytes VmHWM_KiB CPU_ms */
	peer_report(pid, report, argv[3], v, 3);
	if (v[0] != size)
		die("fileup: %s received %lu bytes, expected %llu", argv[3], v[0], (unsigned long long)size);
	print_copy(size, t1 - t0, cpu1 - cpu0, v[1], v[2]);
	close(sock);
	close(fd);
	free(buf);
	return 0;
}

/* filedown FILE OUT CPU PROG [ARG...]: the download's baseline. Receives what PROG sends until EOF and does
 * with it what the agent's client does (take_bytes); timed from accept. Prints as fileup. */
static int cmd_filedown(char **argv)
{
	uint64_t size, got = 0;
	const uint8_t *src = map_file(argv[0], &size);
	int out = open_out(argv[1], src, size), report;
	pid_t pid;
	int sock = start_peer(argv + 3, strtol(argv[2], NULL, 10), &pid, &report);
	static uint8_t buf[CONN_BIG_BUF_BYTES]; /* what the agent's client reads at a time */
	double cpu0 = self_cpu_s();
	uint64_t t0 = now_ns();
	for (ssize_t r; (r = read(sock, buf, sizeof(buf))) != 0;) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("filedown: read: %s", strerror(errno));
		take_bytes(src, size, out, got, buf, (size_t)r);
		got += (uint64_t)r;
	}
	uint64_t t1 = now_ns();
	double cpu1 = self_cpu_s();
	unsigned long v[3];
	peer_report(pid, report, argv[3], v, 3);
	if (got != size || v[0] != size)
		die("filedown: %llu bytes, expected %llu", (unsigned long long)got, (unsigned long long)size);
	print_copy(size, t1 - t0, cpu1 - cpu0, v[1], v[2]);
	close_out(out);
	close(sock);
	return 0;
}

/* ---- file events ---- */

/* The agent's inotify mask (fsops/watch_inotify.c), so that the kernel queues the same events for the
 * baselines as for the agent: a create by open(O_CREAT) + close queues two, IN_CREATE and IN_CLOSE_WRITE. */
#define AGENT_INOTIFY_MASK                                                                                 \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF | \
	 IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)
#define EV_PATH_MAX 4096

/* A directory of our own: it must be new, so that every file made in it is new too. */
static void make_dir(const char *path)
{
	if (mkdir(path, 0755))
		die("mkdir %s: %s", path, strerror(errno));
}

/* The create every event figure starts from: open(O_CREAT) and close, as `touch` does. O_EXCL: an existing
 * file would give no IN_CREATE, and the wait for its event would never end. */
static void create_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || close(fd))
		die("create %s: %s", path, strerror(errno));
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* file.created under dir, which the figures count; and watch.overflow and watch.rescanned without a path
 * (an overflow has none), so that a loss is seen as one and not only as a shortfall. Gap messages come
 * whatever was subscribed. */
static void subscribe_created(conn *c, const char *dir)
{
	static const char *const created[] = {"file.created", NULL};
	static const char *const watch_events[] = {"watch.overflow", "watch.rescanned", NULL};
	const char *const paths[] = {dir, NULL};
	msg_info m;
	conn_send_req(c, 1, "subscribe",
		      (const wire_arg[]){{.key = "events", .type = ARG_STRS, .strs = created},
					 {.key = "paths", .type = ARG_STRS, .strs = paths}},
		      2);
	conn_wait(c, &m);
	check_op_reply(c, &m);
	conn_send_req(c, 2, "subscribe", (const wire_arg[]){{.key = "events", .type = ARG_STRS, .strs = watch_events}},
		      1);
	conn_wait(c, &m);
	check_op_reply(c, &m);
}

typedef enum { EV_OTHER, EV_CREATED, EV_OVERFLOW, EV_RESCANNED, EV_GAP } ev_kind;

static ev_kind ev_classify(const msg_info *m)
{
	if (msg_is(m, "gap"))
		return EV_GAP;
	if (!msg_is(m, "event"))
		return EV_OTHER;
	if (msg_str_is(m, "event", "file.created"))
		return EV_CREATED;
	if (msg_str_is(m, "event", "watch.overflow"))
		return EV_OVERFLOW;
	return msg_str_is(m, "event", "watch.rescanned") ? EV_RESCANNED : EV_OTHER;
}

/* Waits for the file.created event of path. Other creations (the directory's own, in a latency run) are
 * passed over; an overflow or a gap ends the run: one event at a time must never lose any. */
static void wait_created(conn *c, const char *path)
{
	msg_info m;
	for (;;) {
		conn_wait(c, &m);
		ev_kind k = ev_classify(&m);
		if (k == EV_CREATED && msg_str_is(&m, "path", path))
			return;
		if (k == EV_OVERFLOW || k == EV_GAP)
			die("%s while waiting for the event of %s", k == EV_GAP ? "a gap" : "watch.overflow", path);
	}
}

/* Runs warmup + count timed creates of DIR/cNNNNNN, each awaited by wait_for before the next; prints the
 * latencies as print_latencies does. */
static void create_and_time(const char *dir, size_t warmup, size_t count, void (*wait_for)(void *, const char *),
			    void *arg)
{
	uint64_t *lat = calloc(count, sizeof(*lat)), sum = 0;
	uint64_t deadline = now_ns() + 60000000000u;
	char path[EV_PATH_MAX];
	if (!lat || !count)
		die("no memory, or a count of 0");
	for (size_t i = 0; i < warmup + count; i++) {
		snprintf(path, sizeof(path), "%s/c%06zu", dir, i);
		uint64_t t0 = now_ns(); /* just before the create, as the figure is defined */
		create_file(path);
		wait_for(arg, path);
		uint64_t t1 = now_ns();
		if (i >= warmup)
			sum += lat[i - warmup] = t1 - t0;
		if (t1 > deadline)
			die("event latency: over 60 s");
	}
	print_latencies(lat, count, sum);
}

static void agent_wait_for(void *c, const char *path) { wait_created(c, path); }

/* evlat PORT TOKEN DIR WARMUP COUNT: DIR is made here, inside a watched tree; its own event says the agent
 * watches it. */
static int cmd_evlat(char **argv)
{
	static conn c;
	const char *dir = argv[2];
	conn_open(&c, (uint16_t)num(argv[0], "port"), argv[1]);
	subscribe_created(&c, dir);
	make_dir(dir);
	wait_created(&c, dir);
	create_and_time(dir, num(argv[3], "warmup"), num(argv[4], "count"), agent_wait_for, &c);
	conn_close(&c);
	return 0;
}

/* The kernel's part alone: our own inotify instance, read by the thread that made the file. */
static void inotify_wait_for(void *arg, const char *path)
{
	static char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
	int fd = *(int *)arg;
	const char *name = base_name(path);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("inotify read: %s", n < 0 ? strerror(errno) : "EOF");
		bool found = false;
		for (ssize_t off = 0; off < n;) {
			const struct inotify_event *ie = (const struct inotify_event *)(buf + off);
			off += (ssize_t)(sizeof(*ie) + ie->len);
			if (ie->mask & IN_Q_OVERFLOW)
				die("inotify queue overflow");
			found |= (ie->mask & IN_CREATE) && ie->len && strcmp(ie->name, name) == 0;
		}
		if (found)
			return; /* its IN_CLOSE_WRITE, if not read with it, is passed over by the next wait */
	}
}

/* inotlat DIR WARMUP COUNT */
static int cmd_inotlat(char **argv)
{
	const char *dir = argv[0];
	make_dir(dir);
	int fd = inotify_init1(IN_CLOEXEC);
	if (fd < 0 || inotify_add_watch(fd, dir, AGENT_INOTIFY_MASK) < 0)
		die("inotify %s: %s", dir, strerror(errno));
	create_and_time(dir, num(argv[1], "warmup"), num(argv[2], "count"), inotify_wait_for, &fd);
	close(fd);
	return 0;
}

/* Lines from the relay (inotify_relay.c): names of created entries, "!overflow". */
typedef struct {
	int fd;
	size_t off, len;
	char buf[65536];
} line_reader;

/* One read() into the buffer; false at EOF. The socket's 5 s timeout ends a stalled run. */
static bool lines_fill(line_reader *l)
{
	memmove(l->buf, l->buf + l->off, l->len - l->off);
	l->len -= l->off;
	l->off = 0;
	if (l->len == sizeof(l->buf))
		die("relay: a line of 64 KiB");
	for (;;) {
		ssize_t r = read(l->fd, l->buf + l->len, sizeof(l->buf) - l->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("relay: read: %s", errno == EAGAIN ? "nothing for 5 s" : strerror(errno));
		l->len += (size_t)r;
		return r > 0;
	}
}

/* The next complete line, NUL-terminated in place, or NULL if none is buffered. */
static char *lines_next(line_reader *l)
{
	char *s = l->buf + l->off, *nl = memchr(s, '\n', l->len - l->off);
	if (!nl)
		return NULL;
	*nl = '\0';
	l->off = (size_t)(nl + 1 - l->buf);
	return s;
}

static void relay_wait_for(void *arg, const char *path)
{
	line_reader *l = arg;
	const char *name = base_name(path);
	for (;;) {
		char *s;
		while ((s = lines_next(l))) {
			if (strcmp(s, "!overflow") == 0)
				die("the relay's inotify queue overflowed");
			if (strcmp(s, name) == 0)
				return;
		}
		if (!lines_fill(l))
			die("the relay closed the connection");
	}
}

/* relaylat DIR WARMUP COUNT CPU PROG [ARG...]: PROG is the relay, started (by start_peer) once DIR exists. */
static int cmd_relaylat(char **argv)
{
	static line_reader l;
	const char *dir = argv[0];
	pid_t pid;
	int report;
	make_dir(dir);
	l.fd = start_peer(argv + 4, strtol(argv[3], NULL, 10), &pid, &report);
	create_and_time(dir, num(argv[1], "warmup"), num(argv[2], "count"), relay_wait_for, &l);
	stop(pid);
	close(report);
	close(l.fd);
	return 0;
}

/* ---- event throughput ---- */

/* The load: a child creating `files` files under dir, file i in directory dir/dNNN with NNN = i % dirs, as
 * fast as it can. When done it writes the time it took (ns) to *report. */
static pid_t start_creator(const char *dir, size_t dirs, size_t files, int *report)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		char path[EV_PATH_MAX];
		uint64_t t0 = now_ns();
		for (size_t i = 0; i < files; i++) {
			snprintf(path, sizeof(path), "%s/d%03zu/f%06zu", dir, i % dirs, i);
			create_file(path);
		}
		uint64_t ns = now_ns() - t0;
		_exit(write(p[1], &ns, sizeof(ns)) == sizeof(ns) ? 0 : 1);
	}
	close(p[1]);
	*report = p[0];
	return pid;
}

/* What a throughput run saw. */
typedef struct {
	uint64_t delivered;          /* file.created events (relay: names) of the files */
	uint64_t overflows, rescans; /* watch.overflow, watch.rescanned (relay: "!overflow" lines, 0) */
	uint64_t gaps, gap_seqs;     /* gap messages, and the seqs they say were skipped */
	uint64_t first, last;        /* when the first and the last counted event came */
} ev_tally;

static void tally_event(ev_tally *t)
{
	t->last = now_ns();
	if (!t->delivered++)
		t->first = t->last;
}

static void tally_msg(ev_tally *t, const msg_info *m)
{
	uint64_t from = 0, to = 0;
	switch (ev_classify(m)) {
	case EV_CREATED:
		if (msg_str_is(m, "kind", "file"))
			tally_event(t);
		break;
	case EV_OVERFLOW:
		t->overflows++;
		break;
	case EV_RESCANNED:
		t->rescans++;
		break;
	case EV_GAP:
		t->gaps++;
		if (msg_uint(m, "from", &from) && msg_uint(m, "to", &to) && to >= from)
			t->gap_seqs += to - from + 1;
		break;
	default:
		break;
	}
}

/* One read of the event source, and everything complete in it counted; false when the peer closed. */
typedef bool (*ev_take_fn)(void *src, ev_tally *t);

static bool agent_take(void *src, ev_tally *t)
{
	conn *c = src;
	msg_info m;
	if (!conn_fill(c))
		return false;
	while (conn_next(c, &m))
		tally_msg(t, &m);
	return true;
}

static bool relay_take(void *src, ev_tally *t)
{
	line_reader *l = src;
	char *s;
	if (!lines_fill(l))
		return false;
	while ((s = lines_next(l))) {
		if (strcmp(s, "!overflow") == 0)
			t->overflows++;
		else
			tally_event(t);
	}
	return true;
}

/* Starts the creator and counts until every file's event came, or the creator is done and nothing came for
 * 2 s (events were lost). Prints "events/s delivered files overflows rescans gaps gap_seqs creates/s
 * server_CPU_ms client_CPU_%"; events/s is from the first counted event to the last. */
static void count_events(int fd, ev_take_fn take, void *src, const char *dir, size_t dirs, size_t files,
			 pid_t server)
{
	ev_tally t = {0};
	int report;
	uint64_t creator_ns = 0, last_rx = now_ns(), deadline = last_rx + 120000000000u;
	double cpu0 = self_cpu_s(), srv0 = proc_cpu_ticks(server);
	uint64_t t0 = now_ns();
	pid_t creator = start_creator(dir, dirs, files, &report);
	bool creator_done = false;
	while (t.delivered < files) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int k = poll(&p, 1, 100);
		if (k < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (k > 0) {
			if (!take(src, &t))
				die("the event source closed the connection");
			last_rx = now_ns();
		}
		int st;
		if (!creator_done && waitpid(creator, &st, WNOHANG) == creator) {
			if (!WIFEXITED(st) || WEXITSTATUS(st) ||
			    read(report, &creator_ns, sizeof(creator_ns)) != sizeof(creator_ns))
				die("the file creator failed (status %d)", st);
			creator_done = true;
		}
		uint64_t now = now_ns();
		if (creator_done && now - last_rx > 2000000000u)
			break;
		if (now > deadline)
			die("event throughput: over 120 s (%llu of %zu events)", (unsigned long long)t.delivered,
			    files);
	}
	uint64_t t1 = now_ns();
	double cpu1 = self_cpu_s(), srv1 = proc_cpu_ticks(server);
	if (!creator_done) { /* every event came before we saw it exit */
		int st;
		if (waitpid(creator, &st, 0) != creator || !WIFEXITED(st) || WEXITSTATUS(st) ||
		    read(report, &creator_ns, sizeof(creator_ns)) != sizeof(creator_ns))
			die("the file creator failed");
	}
	close(report);
	double span = (double)(t.last - t.first) / 1e9;
	printf("%.0f %llu %zu %llu %llu %llu %llu %.0f %.0f %.0f\n",
	       t.delivered > 1 && span > 0 ? (double)(t.delivered - 1) / span : 0, (unsigned long long)t.delivered,
	       files, (unsigned long long)t.overflows, (unsigned long long)t.rescans, (unsigned long long)t.gaps,
	       (unsigned long long)t.gap_seqs, creator_ns ? (double)files / ((double)creator_ns / 1e9) : 0,
	       (srv1 - srv0) / (double)sysconf(_SC_CLK_TCK) * 1e3, (cpu1 - cpu0) / ((double)(t1 - t0) / 1e9) * 100);
}

static void make_tput_dirs(const char *dir, size_t dirs)
{
	char path[EV_PATH_MAX];
	make_dir(dir);
	for (size_t i = 0; i < dirs; i++) {
		snprintf(path, sizeof(path), "%s/d%03zu", dir, i);
		make_dir(path);
	}
}

/* The events of the directories make_tput_dirs made: once they came, the agent watches them all. */
static void wait_dir_events(conn *c, size_t dirs)
{
	msg_info m;
	for (size_t seen = 0; seen < dirs;) {
		conn_wait(c, &m);
		ev_kind k = ev_classify(&m);
		if (k == EV_OVERFLOW || k == EV_GAP)
			die("an overflow or a gap while the directories were made");
		seen += k == EV_CREATED && msg_str_is(&m, "kind", "dir");
	}
}

/* evtput PORT TOKEN DIR DIRS FILES SERVER_PID: DIR and its DIRS directories are made here, inside a watched
 * tree, and their DIRS + 1 events awaited (the agent then watches them all) before the creator starts. */
static int cmd_evtput(char **argv)
{
	static conn c;
	const char *dir = argv[2];
	size_t dirs = num(argv[3], "dirs"), files = num(argv[4], "files");
	if (!dirs || dirs > 1000 || !files || files > 1000000)
		die("evtput: 1 to 1000 directories and 1 to 1,000,000 files");
	conn_open_sized(&c, (uint16_t)num(argv[0], "port"), argv[1], CONN_BIG_BUF_BYTES);
	subscribe_created(&c, dir);
	make_tput_dirs(dir, dirs);
	wait_dir_events(&c, dirs + 1);
	count_events(c.fd, agent_take, &c, dir, dirs, files, (pid_t)num(argv[5], "pid"));
	conn_close(&c);
	return 0;
}

/* relaytput DIR DIRS FILES CPU PROG [ARG...]: the same load, counted from the relay's lines. */
static int cmd_relaytput(char **argv)
{
	static line_reader l;
	const char *dir = argv[0];
	size_t dirs = num(argv[1], "dirs"), files = num(argv[2], "files");
	if (!dirs || dirs > 1000 || !files || files > 1000000)
		die("relaytput: 1 to 1000 directories and 1 to 1,000,000 files");
	make_tput_dirs(dir, dirs);
	pid_t pid;
	int report;
	l.fd = start_peer(argv + 4, strtol(argv[3], NULL, 10), &pid, &report);
	count_events(l.fd, relay_take, &l, dir, dirs, files, pid);
	stop(pid);
	close(report);
	close(l.fd);
	return 0;
}

/* ---- event drain rate ---- */

/* The server we stopped, continued again should we die: a stopped process would not act on run.sh's
 * SIGTERM, and its wait would never end. */
static pid_t stopped_server;

static void continue_stopped(void)
{
	if (stopped_server > 0)
		kill(stopped_server, SIGCONT);
}

/* Stops pid and waits (1 s at most) until /proc says it is stopped. */
static void stop_server(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	stopped_server = pid;
	if (kill(pid, SIGSTOP))
		die("SIGSTOP %d: %s", (int)pid, strerror(errno));
	for (int i = 0; i < 1000; i++) {
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = '\0';
		char *p = strrchr(buf, ')');
		if (p && (p[2] == 'T' || p[2] == 't'))
			return;
		sleep_ns(1000000);
	}
	die("%d did not stop", (int)pid);
}

/* BURSTS times: the server stopped, BURST files created (by us, in dir's dirs directories, after the files
 * of the bursts before), the server continued, and the events counted until the burst's last came (or
 * nothing came for 2 s). The kernel queues the events while the server is stopped, so what is timed, from
 * SIGCONT to the burst's last event, is how fast the server drains a full backlog. Prints "events/s
 * delivered files overflows rescans gaps gap_seqs drain_ms server_CPU_ms". */
static void count_bursts(int fd, ev_take_fn take, void *src, const char *dir, size_t dirs, size_t burst,
			 size_t bursts, pid_t server)
{
	ev_tally t = {0};
	uint64_t drain_ns = 0;
	char path[EV_PATH_MAX];
	double srv0 = proc_cpu_ticks(server);
	atexit(continue_stopped);
	for (size_t b = 0; b < bursts; b++) {
		stop_server(server);
		for (size_t i = b * burst; i < (b + 1) * burst; i++) {
			snprintf(path, sizeof(path), "%s/d%03zu/f%06zu", dir, i % dirs, i);
			create_file(path);
		}
		uint64_t want = t.delivered + burst, t0 = now_ns(), last_rx = t0;
		t.last = 0;
		if (kill(server, SIGCONT))
			die("SIGCONT %d: %s", (int)server, strerror(errno));
		stopped_server = 0;
		while (t.delivered < want && now_ns() - last_rx < 2000000000u) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			int k = poll(&p, 1, 100);
			if (k < 0 && errno != EINTR)
				die("poll: %s", strerror(errno));
			if (k > 0) {
				if (!take(src, &t))
					die("the event source closed the connection");
				last_rx = now_ns();
			}
		}
		if (t.last)
			drain_ns += t.last - t0;
	}
	double srv1 = proc_cpu_ticks(server);
	printf("%.0f %llu %zu %llu %llu %llu %llu %.1f %.0f\n",
	       drain_ns ? (double)t.delivered / ((double)drain_ns / 1e9) : 0, (unsigned long long)t.delivered,
	       burst * bursts, (unsigned long long)t.overflows, (unsigned long long)t.rescans,
	       (unsigned long long)t.gaps, (unsigned long long)t.gap_seqs, (double)drain_ns / 1e6,
	       (srv1 - srv0) / (double)sysconf(_SC_CLK_TCK) * 1e3);
}

/* evburst PORT TOKEN DIR DIRS BURST BURSTS SERVER_PID: as evtput, with count_bursts for the creator. */
static int cmd_evburst(char **argv)
{
	static conn c;
	const char *dir = argv[2];
	size_t dirs = num(argv[3], "dirs"), burst = num(argv[4], "burst"), bursts = num(argv[5], "bursts");
	if (!dirs || dirs > 1000 || !burst || !bursts || burst * bursts > 1000000)
		die("evburst: 1 to 1000 directories and 1 to 1,000,000 files");
	conn_open_sized(&c, (uint16_t)num(argv[0], "port"), argv[1], CONN_BIG_BUF_BYTES);
	subscribe_created(&c, dir);
	make_tput_dirs(dir, dirs);
	wait_dir_events(&c, dirs + 1);
	count_bursts(c.fd, agent_take, &c, dir, dirs, burst, bursts, (pid_t)num(argv[6], "pid"));
	conn_close(&c);
	return 0;
}

/* relayburst DIR DIRS BURST BURSTS CPU PROG [ARG...] */
static int cmd_relayburst(char **argv)
{
	static line_reader l;
	const char *dir = argv[0];
	size_t dirs = num(argv[1], "dirs"), burst = num(argv[2], "burst"), bursts = num(argv[3], "bursts");
	if (!dirs || dirs > 1000 || !burst || !bursts || burst * bursts > 1000000)
		die("relayburst: 1 to 1000 directories and 1 to 1,000,000 files");
	make_tput_dirs(dir, dirs);
	pid_t pid;
	int report;
	l.fd = start_peer(argv + 5, strtol(argv[4], NULL, 10), &pid, &report);
	count_bursts(l.fd, relay_take, &l, dir, dirs, burst, bursts, pid);
	stop(pid);
	close(report);
	close(l.fd);
	return 0;
}

/* ---- recursive watch setup ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* "median" then every run, in ms: what wadd and inotwalk print after their own fields. */
static void print_runs_ms(double *ms, size_t runs)
{
	for (size_t i = 0; i < runs; i++)
		printf(" %.1f", ms[i]);
	printf("\n");
}

static double median_ms(const double *ms, size_t runs)
{
	double *s = malloc(runs * sizeof(*s));
	if (!s)
		die("out of memory");
	memcpy(s, ms, runs * sizeof(*s));
	qsort(s, runs, sizeof(*s), cmp_double);
	double m = s[runs / 2];
	free(s);
	return m;
}

/* wadd PORT TOKEN DIR RUNS DIRS SERVER_PID: RUNS times watch.add {path: DIR, recursive: true}, timed from the
 * request to its reply, which must say DIRS directories; then watch.remove, timed too. Prints the median
 * add, the median remove (ms), the agent's VmRSS growth over the first add (KiB), then each add. */
static int cmd_wadd(char **argv)
{
	static conn c;
	const char *dir = argv[2];
	size_t runs = num(argv[3], "runs");
	uint64_t dirs = num(argv[4], "dirs");
	pid_t server = (pid_t)num(argv[5], "pid");
	double *add = calloc(runs, sizeof(*add)), *rm = calloc(runs, sizeof(*rm));
	long rss_growth = 0;
	if (!runs || !add || !rm)
		die("wadd: bad arguments or no memory");
	conn_open(&c, (uint16_t)num(argv[0], "port"), argv[1]);
	for (size_t r = 0; r < runs; r++) {
		msg_info m;
		uint64_t id = 0, got = 0;
		unsigned long rss0 = proc_status_kib(server, "VmRSS");
		uint64_t t0 = now_ns();
		conn_send_req(&c, 2 * r + 1, "watch.add",
			      (const wire_arg[]){{.key = "path", .type = ARG_STR, .str = dir},
						 {.key = "recursive", .type = ARG_TRUE}},
			      2);
		conn_wait(&c, &m);
		uint64_t t1 = now_ns();
		check_op_reply(&c, &m);
		if (!msg_result_uint(&m, (const char *const[]){"watch", "dirs", NULL}, &got) || got != dirs ||
		    !msg_result_uint(&m, (const char *const[]){"watch", "watch", NULL}, &id))
			die("watch.add: %llu directories watched, expected %llu", (unsigned long long)got,
			    (unsigned long long)dirs);
		if (r == 0)
			rss_growth = (long)proc_status_kib(server, "VmRSS") - (long)rss0;
		uint64_t t2 = now_ns();
		conn_send_req(&c, 2 * r + 2, "watch.remove",
			      (const wire_arg[]){{.key = "watch", .type = ARG_U64, .u64 = id}}, 1);
		conn_wait(&c, &m);
		uint64_t t3 = now_ns();
		check_op_reply(&c, &m);
		add[r] = (double)(t1 - t0) / 1e6;
		rm[r] = (double)(t3 - t2) / 1e6;
		sleep_ns(200000000); /* the agent reads the removed watches' IN_IGNORED before the next add */
	}
	printf("%.1f %.1f %ld", median_ms(add, runs), median_ms(rm, runs), rss_growth);
	print_runs_ms(add, runs);
	conn_close(&c);
	return 0;
}

/* The baseline's walk: what the agent does for a recursive root, minus its bookkeeping and exclusions. */
static uint64_t walk_watch(int ifd, char *path, size_t len, bool top)
{
	if (inotify_add_watch(ifd, path, AGENT_INOTIFY_MASK | (top ? 0 : IN_DONT_FOLLOW)) < 0)
		die("inotify_add_watch %s: %s", path, strerror(errno));
	uint64_t n = 1;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d)
		die("opendir %s: %s", path, strerror(errno));
	for (struct dirent *de; (de = readdir(d));) {
		size_t nl = strlen(de->d_name);
		if (de->d_type != DT_DIR || (de->d_name[0] == '.' && (nl == 1 || (nl == 2 && de->d_name[1] == '.'))))
			continue;
		if (len + 1 + nl >= EV_PATH_MAX)
			die("a path too long under %s", path);
		path[len] = '/';
		memcpy(path + len + 1, de->d_name, nl + 1);
		n += walk_watch(ifd, path, len + 1 + nl, false);
		path[len] = '\0';
	}
	closedir(d);
	return n;
}

/* inotwalk DIR RUNS: RUNS times a fresh inotify instance, and the tree walked with inotify_add_watch on every
 * directory, timed from the first add to the last. Prints the median (ms), the directories, then each run. */
static int cmd_inotwalk(char **argv)
{
	size_t runs = num(argv[1], "runs"), len = strlen(argv[0]);
	double *ms = calloc(runs, sizeof(*ms));
	uint64_t dirs = 0;
	char path[EV_PATH_MAX];
	if (!runs || !ms || len >= sizeof(path))
		die("inotwalk: bad arguments or no memory");
	for (size_t r = 0; r < runs; r++) {
		int ifd = inotify_init1(IN_CLOEXEC);
		if (ifd < 0)
			die("inotify_init1: %s", strerror(errno));
		memcpy(path, argv[0], len + 1);
		uint64_t t0 = now_ns();
		dirs = walk_watch(ifd, path, len, true);
		ms[r] = (double)(now_ns() - t0) / 1e6;
		close(ifd); /* drops every watch, untimed */
	}
	printf("%.1f %llu", median_ms(ms, runs), (unsigned long long)dirs);
	print_runs_ms(ms, runs);
	return 0;
}

/* ---- tunnels (port.connect) ---- */

#define TUN_INFLIGHT_MAX 32

/* One tunnel on the client's side: the port.send requests not answered yet, and what came from the port. */
typedef struct {
	uint64_t id;                           /* the tunnel's */
	uint64_t pending[TUN_INFLIGHT_MAX + 1]; /* ids of unanswered port.sends (an eof send as well); 0: free */
	size_t outstanding;
	const uint8_t *pat; /* data from the port is checked against the pattern; NULL: kept in answer */
	uint64_t got, messages;
	char answer[64]; /* a sink's answer line */
	size_t answer_len;
	uint64_t answer_at; /* when its '\n' came; 0: not yet */
	bool eof, closed;
	uint64_t bytes_in, bytes_out; /* of the closed message */
} tun;

static void tun_pend(tun *t, uint64_t id)
{
	for (size_t i = 0; i <= TUN_INFLIGHT_MAX; i++)
		if (!t->pending[i]) {
			t->pending[i] = id;
			t->outstanding++;
			return;
		}
	die("more than %d port.sends in flight", TUN_INFLIGHT_MAX + 1);
}

/* The data of a tunnel message: checked against the pattern, or added to the answer line. */
static void tun_data(tun *t, const msg_info *m)
{
	uint64_t bad;
	if (t->pat && !pattern_check(t->pat, t->got, m->data, m->data_len, &bad))
		die("tunnel: the bytes at %llu differ from what the source sent", (unsigned long long)bad);
	if (!t->pat) {
		if (t->answer_len + m->data_len >= sizeof(t->answer))
			die("tunnel: an answer of more than %zu bytes from the sink", sizeof(t->answer) - 1);
		memcpy(t->answer + t->answer_len, m->data, m->data_len);
		t->answer_len += m->data_len;
		t->answer[t->answer_len] = '\0';
		if (memchr(m->data, '\n', m->data_len))
			t->answer_at = now_ns();
	}
	t->got += m->data_len;
	t->messages++;
}

/* One message on a tunnel's connection: a tunnel message, or the reply to one of its port.sends. These
 * replies may come in any order: a send over the agent's window is answered when its bytes are written, a
 * later one that fits at once. */
static void tun_take(conn *c, tun *t, const msg_info *m)
{
	uint64_t id;
	if (msg_is(m, "tunnel")) {
		if (!msg_uint(m, "tunnel", &id) || id != t->id)
			die("a tunnel message for tunnel %llu, expected %llu", (unsigned long long)id,
			    (unsigned long long)t->id);
		if (t->closed)
			die("a tunnel message after closed");
		if (m->data) {
			if (t->eof)
				die("tunnel data after eof");
			tun_data(t, m);
		} else if (msg_true(m, "eof")) {
			t->eof = true;
		} else if (msg_true(m, "closed")) {
			t->closed = true;
			if (!msg_uint(m, "bytesIn", &t->bytes_in) || !msg_uint(m, "bytesOut", &t->bytes_out) ||
			    !msg_nil(m, "error"))
				die("tunnel closed with an error, or without bytesIn and bytesOut");
		} else {
			die("a tunnel message with neither data, eof nor closed");
		}
		return;
	}
	size_t i = 0;
	while (i <= TUN_INFLIGHT_MAX && (!m->has_id || t->pending[i] != m->id))
		i++;
	if (i > TUN_INFLIGHT_MAX)
		die("a message of type \"%.*s\", id %llu: not a reply to a port.send in flight", (int)m->type_len,
		    m->type ? m->type : "", (unsigned long long)m->id);
	c->want_id = m->id;
	check_op_reply(c, m);
	if (!msg_result_uint(m, (const char *const[]){"tunnel", NULL}, &id) || id != t->id)
		die("port.send reply for tunnel %llu, expected %llu", (unsigned long long)id, (unsigned long long)t->id);
	t->pending[i] = 0;
	t->outstanding--;
}

/* port.connect to 127.0.0.1:port (request id 1); returns the tunnel's id. */
static uint64_t tun_connect(conn *c, uint16_t port)
{
	msg_info m;
	uint64_t id;
	conn_send_req(c, 1, "port.connect", (const wire_arg[]){{.key = "port", .type = ARG_U64, .u64 = port}}, 1);
	conn_wait(c, &m);
	check_op_reply(c, &m);
	if (!msg_result_uint(&m, (const char *const[]){"tunnel", NULL}, &id))
		die("port.connect: no tunnel in the reply");
	return id;
}

/* port.send {tunnel, eof: true}, answered like any send. */
static void tun_send_eof(conn *c, tun *t, uint64_t id)
{
	conn_send_req(c, id, "port.send",
		      (const wire_arg[]){{.key = "tunnel", .type = ARG_U64, .u64 = t->id}, {.key = "eof", .type = ARG_TRUE}},
		      2);
	tun_pend(t, id);
}

static double cpu_ms_since(pid_t pid, double ticks0)
{
	return (proc_cpu_ticks(pid) - ticks0) / (double)sysconf(_SC_CLK_TCK) * 1e3;
}

/* tunsend PORT TOKEN SINK_PORT BYTES CHUNK_KIB INFLIGHT SERVER_PID PEER_PID: port.connect to the sink, BYTES
 * of the pattern in port.sends of CHUNK_KIB (INFLIGHT unanswered at most), port.send eof, then the sink's
 * answer, timed from the connect request to the answer's arrival; then the closed message, whose bytesIn must
 * be BYTES. Prints "MiB/s sends VmHWM_KiB sampled_RSS_KiB agent_CPU_ms client_CPU_% peer_CPU_ms". */
static int cmd_tunsend(char **argv)
{
	static conn c;
	static tun t;
	uint16_t sink = (uint16_t)num(argv[2], "sink port");
	uint64_t bytes = num(argv[3], "bytes"), sent = 0, next_id = 2, sends = 0;
	size_t chunk = num(argv[4], "chunk KiB") << 10, inflight = num(argv[5], "sends in flight");
	pid_t server = (pid_t)num(argv[6], "pid"), peer = (pid_t)num(argv[7], "peer pid");
	const uint8_t *pat = pattern_make();
	uint8_t *buf = malloc(chunk);
	if (!pat || !buf || !chunk || chunk > PATTERN_SLICE_MAX || !inflight || inflight > TUN_INFLIGHT_MAX)
		die("tunsend: chunks of 1 to %u KiB, 1 to %d in flight", PATTERN_SLICE_MAX >> 10, TUN_INFLIGHT_MAX);
	conn_open(&c, (uint16_t)num(argv[0], "port"), argv[1]);
	double peer0 = proc_cpu_ticks(peer);
	watch w;
	watch_start(&w, server, "tunnel send");
	t.id = tun_connect(&c, sink);
	msg_info m;
	while (!t.answer_at) {
		for (; sent < bytes && t.outstanding < inflight; sends++) {
			size_t n = bytes - sent < chunk ? (size_t)(bytes - sent) : chunk;
			memcpy(buf, pattern_at(pat, sent), n); /* conn_send_bin masks it in place */
			conn_send_bin(&c, next_id, "port.send",
				      (const wire_arg[]){{.key = "tunnel", .type = ARG_U64, .u64 = t.id}}, 1, "data", buf,
				      n);
			tun_pend(&t, next_id++);
			if ((sent += n) == bytes)
				tun_send_eof(&c, &t, next_id++);
		}
		conn_wait(&c, &m);
		watch_sample(&w);
		tun_take(&c, &t, &m);
		if (t.eof && !t.answer_at)
			die("tunnel: the sink closed without an answer");
	}
	while (!t.closed || t.outstanding) {
		conn_wait(&c, &m);
		tun_take(&c, &t, &m);
	}
	char want[64];
	snprintf(want, sizeof(want), "%llu ok\n", (unsigned long long)bytes);
	if (strcmp(t.answer, want) != 0)
		die("tunnel: the sink answered '%.*s', expected '%llu ok'", (int)strcspn(t.answer, "\n"), t.answer,
		    (unsigned long long)bytes);
	if (t.bytes_in != bytes || t.bytes_out != t.answer_len)
		die("tunnel closed with bytesIn %llu, bytesOut %llu; expected %llu and %zu",
		    (unsigned long long)t.bytes_in, (unsigned long long)t.bytes_out, (unsigned long long)bytes,
		    t.answer_len);
	watch_fields(&w, bytes, sends, t.answer_at);
	printf(" %.0f\n", cpu_ms_since(peer, peer0));
	conn_close(&c);
	return 0;
}

/* tunrecv PORT TOKEN SOURCE_PORT BYTES SERVER_PID PEER_PID: port.connect to the source, its tunnel messages
 * (every byte checked against the pattern) until eof, timed from the connect request; then port.send eof and
 * the closed message, whose bytesOut must be BYTES. Prints as tunsend, with tunnel messages for sends. */
static int cmd_tunrecv(char **argv)
{
	static conn c;
	static tun t;
	uint16_t source = (uint16_t)num(argv[2], "source port");
	uint64_t bytes = num(argv[3], "bytes");
	pid_t server = (pid_t)num(argv[4], "pid"), peer = (pid_t)num(argv[5], "peer pid");
	if (!(t.pat = pattern_make()))
		die("out of memory");
	conn_open_sized(&c, (uint16_t)num(argv[0], "port"), argv[1], CONN_BIG_BUF_BYTES);
	double peer0 = proc_cpu_ticks(peer);
	watch w;
	watch_start(&w, server, "tunnel receive");
	t.id = tun_connect(&c, source);
	msg_info m;
	while (!t.eof) {
		conn_wait(&c, &m);
		watch_sample(&w);
		tun_take(&c, &t, &m);
		if (t.closed)
			die("tunnel closed before eof");
	}
	uint64_t t1 = now_ns();
	tun_send_eof(&c, &t, 2);
	while (!t.closed || t.outstanding) {
		conn_wait(&c, &m);
		tun_take(&c, &t, &m);
	}
	if (t.got != bytes || t.bytes_out != bytes || t.bytes_in != 0)
		die("tunnel: %llu bytes received; closed with bytesIn %llu, bytesOut %llu; expected %llu",
		    (unsigned long long)t.got, (unsigned long long)t.bytes_in, (unsigned long long)t.bytes_out,
		    (unsigned long long)bytes);
	watch_fields(&w, bytes, t.messages, t1);
	printf(" %.0f\n", cpu_ms_since(peer, peer0));
	conn_close(&c);
	return 0;
}

/* tcpsend SINK_PORT BYTES CHUNK_KIB PEER_PID: the baseline of tunsend, straight to the sink: BYTES of the
 * pattern written CHUNK_KIB at a time, the sending side shut down, and the answer read; timed from connect
 * to the answer. Prints "MiB/s peer_CPU_ms client_CPU_%". */
static int cmd_tcpsend(char **argv)
{
	uint64_t bytes = num(argv[1], "bytes");
	size_t chunk = num(argv[2], "chunk KiB") << 10, len = 0;
	pid_t peer = (pid_t)num(argv[3], "peer pid");
	const uint8_t *pat = pattern_make();
	char answer[64];
	if (!pat || !chunk || chunk > PATTERN_SLICE_MAX)
		die("tcpsend: chunks of 1 to %u KiB", PATTERN_SLICE_MAX >> 10);
	double peer0 = proc_cpu_ticks(peer), cpu0 = self_cpu_s();
	uint64_t t0 = now_ns();
	int fd = tcp_connect((uint16_t)num(argv[0], "sink port"));
	if (fd < 0)
		die("connect to the sink: %s", strerror(errno));
	for (uint64_t sent = 0; sent < bytes;) {
		size_t n = bytes - sent < chunk ? (size_t)(bytes - sent) : chunk;
		write_all(fd, pattern_at(pat, sent), n);
		sent += n;
	}
	shutdown(fd, SHUT_WR);
	while (!memchr(answer, '\n', len)) {
		ssize_t r = read(fd, answer + len, sizeof(answer) - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (len += (size_t)r) == sizeof(answer) - 1)
			die("tcpsend: no answer from the sink (%s)", r < 0 ? strerror(errno) : "closed, or too long");
	}
	uint64_t t1 = now_ns();
	double cpu1 = self_cpu_s();
	answer[len] = '\0';
	if (strtoull(answer, NULL, 10) != bytes || !strstr(answer, " ok\n"))
		die("tcpsend: the sink answered '%.*s', expected '%llu ok'", (int)strcspn(answer, "\n"), answer,
		    (unsigned long long)bytes);
	close(fd);
	printf("%.1f %.0f %.0f\n", mib_per_s(bytes, t1 - t0), cpu_ms_since(peer, peer0),
	       (cpu1 - cpu0) / ((double)(t1 - t0) / 1e9) * 100);
	return 0;
}

/* tcprecv SOURCE_PORT BYTES PEER_PID: the baseline of tunrecv, straight from the source: read until EOF into
 * the buffer the agent's client reads into, every byte checked; timed from connect. Prints as tcpsend. */
static int cmd_tcprecv(char **argv)
{
	uint64_t bytes = num(argv[1], "bytes"), got = 0, bad;
	pid_t peer = (pid_t)num(argv[2], "peer pid");
	const uint8_t *pat = pattern_make();
	static uint8_t buf[CONN_BIG_BUF_BYTES];
	if (!pat)
		die("out of memory");
	double peer0 = proc_cpu_ticks(peer), cpu0 = self_cpu_s();
	uint64_t t0 = now_ns();
	int fd = tcp_connect((uint16_t)num(argv[0], "source port"));
	if (fd < 0)
		die("connect to the source: %s", strerror(errno));
	for (ssize_t r; (r = read(fd, buf, sizeof(buf))) != 0;) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("tcprecv: read: %s", strerror(errno));
		if (!pattern_check(pat, got, buf, (size_t)r, &bad))
			die("tcprecv: the bytes at %llu differ from what the source sent", (unsigned long long)bad);
		got += (uint64_t)r;
	}
	uint64_t t1 = now_ns();
	double cpu1 = self_cpu_s();
	close(fd);
	if (got != bytes)
		die("tcprecv: %llu bytes, expected %llu", (unsigned long long)got, (unsigned long long)bytes);
	printf("%.1f %.0f %.0f\n", mib_per_s(bytes, t1 - t0), cpu_ms_since(peer, peer0),
	       (cpu1 - cpu0) / ((double)(t1 - t0) / 1e9) * 100);
	return 0;
}

/* ---- port detection ---- */

/* Context switches of every thread of pid (each a wake-up from sleep, or a preemption). */
static uint64_t proc_ctxsw(pid_t pid)
{
	char path[64], line[256];
	uint64_t sum = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		die("%s: %s", path, strerror(errno));
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		char status[400];
		snprintf(status, sizeof(status), "%s/%s/status", path, de->d_name);
		FILE *f = fopen(status, "r");
		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, "ctxt_switches:"))
				sum += strtoull(strchr(line, ':') + 1, NULL, 10);
		if (f)
			fclose(f);
	}
	closedir(d);
	return sum;
}

/* CPU time of pid in ns, from /proc/PID/schedstat: finer than stat's 10 ms ticks, for a few scans' worth. */
static uint64_t proc_cpu_ns(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;
	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f || fscanf(f, "%llu", &ns) != 1)
		die("cannot read %s", path);
	fclose(f);
	return ns;
}

/* Waits for the port event (port.opened or port.closed) of port; the events of other ports are passed over,
 * a gap ends the run. */
static void wait_port_event(conn *c, const char *event, uint16_t port)
{
	msg_info m;
	uint64_t p;
	for (;;) {
		conn_wait(c, &m);
		if (msg_is(&m, "gap"))
			die("a gap while waiting for %s of port %u", event, port);
		if (msg_is(&m, "event") && msg_str_is(&m, "event", event) && msg_uint(&m, "port", &p) && p == port)
			return;
	}
}

/* A listening socket on a free 127.0.0.1 port, and the time just before its listen(). */
static int listen_timed(uint16_t *port, uint64_t *t0)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || getsockname(fd, (struct sockaddr *)&a, &len))
		die("bind: %s", strerror(errno));
	*port = ntohs(a.sin_port);
	*t0 = now_ns();
	if (listen(fd, 16))
		die("listen: %s", strerror(errno));
	return fd;
}

/* portlat PORT TOKEN COUNT SCAN_MS SERVER_PID: subscribes to port.opened and port.closed, starts one idle
 * child through the agent (exec of "sleep 3600", background, killed when we disconnect: the agent scans for
 * listeners only while it has a child), measures the agent's wake-ups and CPU over 2 s of that, then COUNT
 * times: waits a random 0 to SCAN_MS ms (a listener comes at any point of the scan interval), listens on a
 * free port, and times from just before listen() to its port.opened; closes it and waits for its port.closed
 * before the next. Prints "p50 p99 min mean" (ms), then the idle wake-ups/s and CPU µs/s with the child. */
static int cmd_portlat(char **argv)
{
	static conn c;
	static const char *const events[] = {"port.opened", "port.closed", NULL};
	static const char *const sleeper[] = {"sleep", "3600", NULL};
	size_t count = num(argv[2], "count");
	unsigned long scan_ms = num(argv[3], "scan ms");
	pid_t server = (pid_t)num(argv[4], "pid");
	uint64_t *lat = calloc(count, sizeof(*lat)), sum = 0;
	if (!lat || !count || !scan_ms)
		die("portlat: bad arguments or no memory");
	conn_open(&c, (uint16_t)num(argv[0], "port"), argv[1]);
	msg_info m;
	conn_send_req(&c, 1, "subscribe", (const wire_arg[]){{.key = "events", .type = ARG_STRS, .strs = events}}, 1);
	conn_wait(&c, &m);
	check_op_reply(&c, &m);
	conn_send_req(&c, 2, "exec",
		      (const wire_arg[]){{.key = "argv", .type = ARG_STRS, .strs = sleeper},
					 {.key = "background", .type = ARG_TRUE},
					 {.key = "killOnDisconnect", .type = ARG_TRUE}},
		      3);
	do /* events of listeners that were there before (the first scan reports them) may come first */
		conn_wait(&c, &m);
	while (msg_is(&m, "event"));
	check_op_reply(&c, &m);
	sleep_ns(500000000);
	uint64_t cs0 = proc_ctxsw(server), cpu0 = proc_cpu_ns(server), i0 = now_ns();
	nanosleep(&(struct timespec){.tv_sec = 2}, NULL);
	uint64_t cs1 = proc_ctxsw(server), cpu1 = proc_cpu_ns(server);
	double idle_s = (double)(now_ns() - i0) / 1e9;
	srandom((unsigned)now_ns());
	uint64_t deadline = now_ns() + 120000000000u;
	for (size_t i = 0; i < count; i++) {
		uint16_t port;
		uint64_t t0;
		sleep_ns((long)(random() % (long)(scan_ms * 1000)) * 1000);
		int fd = listen_timed(&port, &t0);
		wait_port_event(&c, "port.opened", port);
		sum += lat[i] = now_ns() - t0;
		close(fd);
		wait_port_event(&c, "port.closed", port);
		if (now_ns() > deadline)
			die("port detection: over 120 s");
	}
	qsort(lat, count, sizeof(*lat), cmp_u64);
	printf("%.1f %.1f %.1f %.1f %.1f %.0f\n", pct(lat, count, 0.5) / 1e6, pct(lat, count, 0.99) / 1e6, lat[0] / 1e6,
	       (double)sum / (double)count / 1e6, (double)(cs1 - cs0) / idle_s, (double)(cpu1 - cpu0) / 1e3 / idle_s);
	free(lat);
	conn_close(&c);
	return 0;
}

/* ---- other servers: OpenSSH and websocketd ---- */

/* utime+stime of the waited-for children of a process, in clock ticks (10 ms): what sshd's per-connection
 * processes cost, since the listener reaps them (and they their own children) once they are done. */
static double proc_children_ticks(pid_t pid) { return proc_stat_ticks(pid, 16); }

/* Waits (up to 5 s) until pid has no child left: the connection's server side has ended and been reaped. */
static void wait_childless(pid_t pid)
{
	char path[80], buf[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
		if (f)
			fclose(f);
		if (!f || n == 0)
			return;
		sleep_ns(10000000);
	}
	die("pid %d still has children 5 s after its client ended", (int)pid);
}

/* Runs PROG ARG... (found through PATH) with stdin and stdout on /dev/null and our stderr, and waits for it;
 * dies unless it exits 0. Returns its wall time in ns; adds its CPU, its reaped children's included (scp's
 * ssh), to *cpu_s. */
static uint64_t run_cmd(char **prog, double *cpu_s)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st;
	struct rusage ru;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	uint64_t t0 = now_ns();
	int rc = posix_spawnp(&pid, prog[0], &fa, NULL, prog, environ);
	if (rc)
		die("posix_spawnp %s: %s", prog[0], strerror(rc));
	while (wait4(pid, &st, 0, &ru) < 0)
		if (errno != EINTR)
			die("wait4: %s", strerror(errno));
	uint64_t t1 = now_ns();
	posix_spawn_file_actions_destroy(&fa);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("%s failed: %s %d", prog[0], WIFEXITED(st) ? "exit code" : "signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	*cpu_s += (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	return t1 - t0;
}

/* cmdrtt WARMUP COUNT PROG [ARG...]: the exec baseline through another tool (ssh ... true), run and awaited
 * COUNT times after WARMUP; every run must exit 0. Prints p50 p99 min mean, µs, as exec does. */
static int cmd_cmdrtt(char **argv)
{
	size_t warmup = num(argv[0], "warmup"), count = num(argv[1], "count");
	uint64_t *lat = calloc(count, sizeof(*lat)), sum = 0;
	uint64_t deadline = now_ns() + 120000000000u;
	double cpu = 0;
	if (!lat || !count)
		die("cmdrtt: bad count or no memory");
	for (size_t i = 0; i < warmup + count; i++) {
		uint64_t ns = run_cmd(argv + 2, &cpu);
		if (i >= warmup)
			sum += lat[i - warmup] = ns;
		if (now_ns() > deadline)
			die("cmdrtt: over 120 s");
	}
	print_latencies(lat, count, sum);
	return 0;
}

/* cmdcopy BYTES SERVER_PID PROG [ARG...]: a transfer through another tool (scp, sftp), timed from its start
 * to its exit. Prints MiB/s, the CPU ms of SERVER_PID's children over the run (sshd's per-connection
 * processes, the sftp-server and the shell included), and the tool's own CPU ms (ssh included). */
static int cmd_cmdcopy(char **argv)
{
	uint64_t bytes = num(argv[0], "bytes");
	pid_t server = (pid_t)num(argv[1], "pid");
	double cpu = 0;
	wait_childless(server); /* a connection before ours (a probe) must not count */
	double srv0 = proc_children_ticks(server);
	uint64_t ns = run_cmd(argv + 2, &cpu);
	wait_childless(server);
	double srv_ms = (proc_children_ticks(server) - srv0) / (double)sysconf(_SC_CLK_TCK) * 1e3;
	printf("%.1f %.0f %.0f\n", mib_per_s(bytes, ns), srv_ms, cpu * 1e3);
	return 0;
}

/* wsstream PORT BYTES SERVER_PID: the stream figure through websocketd, which starts its command for each
 * WebSocket it accepts and sends the command's stdout as binary messages (in --binary mode), then closes.
 * Timed from the upgrade request (which starts the command) until the close (frame or EOF); every data byte
 * is counted, as stream does (zeros, not checked), and there must be exactly BYTES. Prints as stream. */
static int cmd_wsstream(char **argv)
{
	uint16_t port = (uint16_t)num(argv[0], "port");
	uint64_t bytes = num(argv[1], "bytes"), got = 0, messages = 0, left = 0; /* left: of the frame's payload */
	static uint8_t buf[CONN_BIG_BUF_BYTES];
	size_t off = 0, len = 0;
	bool data_frame = false, fin = false;
	int fd = tcp_connect(port);
	if (fd < 0)
		die("connect 127.0.0.1:%u: %s", port, strerror(errno));
	char req[256];
	int n = snprintf(req, sizeof(req),
			 "GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
			 port);
	watch w;
	watch_start(&w, (pid_t)num(argv[2], "pid"), "websocketd stream");
	write_all(fd, req, (size_t)n);
	for (char *eoh = NULL; !eoh;) { /* the 101 response; what follows its blank line is frames */
		ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			die("websocketd: no upgrade response");
		len += (size_t)r;
		buf[len] = 0;
		if ((eoh = strstr((char *)buf, "\r\n\r\n")))
			off = (size_t)(eoh + 4 - (char *)buf);
	}
	if (strncmp((char *)buf, "HTTP/1.1 101", 12) != 0)
		die("websocketd refused the upgrade: %.*s", (int)strcspn((char *)buf, "\r\n"), (char *)buf);
	for (bool closed = false; !closed;) {
		if (left) { /* inside a payload: count what is here */
			size_t take = len - off < left ? len - off : (size_t)left;
			if (data_frame)
				got += take;
			off += take;
			left -= take;
			if (!left && data_frame && fin)
				messages++;
		} else if (len - off >= 2) { /* a frame header, if all of it is here */
			uint8_t *p = buf + off;
			size_t hdr = (p[1] & 0x7f) == 126 ? 4 : (p[1] & 0x7f) == 127 ? 10 : 2;
			if (len - off >= hdr) {
				int op = p[0] & 0x0f;
				if (p[1] & 0x80)
					die("websocketd sent a masked frame");
				if (op == 0x1)
					die("websocketd sent a text frame: not in --binary mode?");
				left = hdr == 2 ? (uint64_t)(p[1] & 0x7f) : 0;
				for (size_t i = 2; i < hdr; i++)
					left = left << 8 | p[i];
				data_frame = op == 0x2 || op == 0x0;
				fin = p[0] & 0x80;
				closed = op == 0x8;
				off += hdr;
				if (!left && data_frame && fin)
					messages++;
				continue;
			}
		}
		if (off == len || (!left && len - off < 10)) { /* need more bytes */
			memmove(buf, buf + off, len - off);
			len -= off;
			off = 0;
			ssize_t r = read(fd, buf + len, sizeof(buf) - len);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				die("websocketd stream: read: %s", strerror(errno));
			if (r == 0)
				break; /* websocketd hangs up without a close frame when the command ends */
			len += (size_t)r;
			watch_sample(&w);
		}
	}
	uint64_t t1 = now_ns();
	if (got != bytes)
		die("websocketd stream: %llu bytes, expected %llu", (unsigned long long)got, (unsigned long long)bytes);
	watch_print(&w, got, messages, t1);
	close(fd);
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
		    {"stream", 4, cmd_stream}, {"copy", 3, cmd_copy},       {"upload", 8, cmd_upload},
		    {"download", 6, cmd_download}, {"fileup", 4, cmd_fileup}, {"filedown", 4, cmd_filedown},
		    {"evlat", 5, cmd_evlat},   {"inotlat", 3, cmd_inotlat},     {"relaylat", 5, cmd_relaylat},
		    {"evtput", 6, cmd_evtput}, {"relaytput", 5, cmd_relaytput}, {"wadd", 6, cmd_wadd},
		    {"evburst", 7, cmd_evburst}, {"relayburst", 6, cmd_relayburst}, {"inotwalk", 2, cmd_inotwalk},
		    {"tunsend", 8, cmd_tunsend}, {"tunrecv", 6, cmd_tunrecv}, {"tcpsend", 4, cmd_tcpsend},
		    {"tcprecv", 3, cmd_tcprecv}, {"portlat", 5, cmd_portlat}, {"cmdrtt", 3, cmd_cmdrtt},
		    {"cmdcopy", 3, cmd_cmdcopy}, {"wsstream", 3, cmd_wsstream}};
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "freeport") == 0)
		return cmd_freeport();
	for (size_t i = 0; argc > 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0) {
			if (argc - 2 < cmds[i].args)
				die("%s: too few arguments (see the top of rabench.c)", cmds[i].name);
			return cmds[i].run(argv + 2);
		}
	die("usage: rabench freeport|probe|start|hold|rtt|tput|exec|spawn|xtput|spawntput|stream|copy|upload|download|"
	    "fileup|filedown|evlat|inotlat|relaylat|evtput|relaytput|evburst|relayburst|wadd|inotwalk|tunsend|tunrecv|"
	    "tcpsend|tcprecv|portlat|cmdrtt|cmdcopy|wsstream ... "
	    "(see the top of rabench.c)");
}
