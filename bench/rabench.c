/* rabench: the measuring client of bench/run.sh. Each subcommand prints one line of numbers on stdout and
 * exits non-zero (with a message on stderr) when the measurement cannot be made.
 *
 *   freeport                                  a free loopback TCP port
 *   probe PORT EXPECT TIMEOUT_MS              wait until GET /healthz is answered with EXPECT...
 *   start RUNS PORT EXPECT CPU PROG [ARG...]  median/min/max µs from fork to the first good probe
 *   hold PORT TOKEN SECONDS                   one idle WebSocket: prints "ready", then holds it open
 *   rtt PORT TOKEN WARMUP COUNT               sequential pings: p50 p99 min mean, µs
 *   tput PORT TOKEN CONNS SECONDS SERVER_PID  median 1 s window: replies/s, client CPU %, server CPU %
 *
 * TOKEN "-" means the peer is the TCP echo server: same frames, no handshake. CPU -1: no pinning. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
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
			if (cpu >= 0) { /* pinned here rather than by taskset so that no extra exec is timed */
				cpu_set_t set;
				CPU_ZERO(&set);
				CPU_SET((int)cpu, &set);
				sched_setaffinity(0, sizeof(set), &set);
			}
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

/* Runs the load until the deadline: answers every reply with the next ping on its connection, so that each
 * connection keeps exactly one ping in flight. Returns the replies. */
static uint64_t pump(int ep, uint64_t deadline, uint64_t *next_id)
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
				check_reply(c, &m);
				replies++;
				conn_send_ping(c, ++*next_id);
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

static int cmd_tput(char **argv)
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
		conn_send_ping(&cs[i], ++next_id);
	pump(ep, now_ns() + 500000000u, &next_id); /* warm-up: caches, TCP windows, the agent's buffers */
	/* One-second windows, and the median of them: a hiccup of the host (this may be a VM) spoils one window
	 * instead of the figure. */
	for (size_t i = 0; i < windows; i++) {
		uint64_t t0 = now_ns();
		double cpu0 = self_cpu_s(), srv0 = proc_cpu_ticks(server);
		uint64_t replies = pump(ep, t0 + 1000000000u, &next_id);
		double secs = (double)(now_ns() - t0) / 1e9;
		w[i].rate = (double)replies / secs;
		w[i].client = (self_cpu_s() - cpu0) / secs * 100;
		w[i].server = (proc_cpu_ticks(server) - srv0) / (double)sysconf(_SC_CLK_TCK) / secs * 100;
	}
	qsort(w, windows, sizeof(*w), cmp_window);
	printf("%.0f %.0f %.0f\n", w[windows / 2].rate, w[windows / 2].client, w[windows / 2].server);
	for (size_t i = 0; i < n; i++)
		close(cs[i].fd);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int args; /* at least */
		int (*run)(char **);
	} cmds[] = {{"probe", 3, cmd_probe}, {"start", 5, cmd_start}, {"hold", 3, cmd_hold},
		    {"rtt", 4, cmd_rtt},     {"tput", 5, cmd_tput}};
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "freeport") == 0)
		return cmd_freeport();
	for (size_t i = 0; argc > 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0) {
			if (argc - 2 < cmds[i].args)
				die("%s: too few arguments (see the top of rabench.c)", cmds[i].name);
			return cmds[i].run(argv + 2);
		}
	die("usage: rabench freeport|probe|start|hold|rtt|tput ... (see the top of rabench.c)");
}
