/* tunnel_peer BYTES: the server "inside the sandbox" of figure 15, reached through the agent's tunnel
 * (port.connect) and, for the baseline, straight over loopback TCP. It listens on two free 127.0.0.1 ports,
 * prints "SINK_PORT SOURCE_PORT" on stdout, and serves one connection at a time until it is killed:
 *   sink:   reads until EOF, 256 KiB at a time, checks every byte against the pattern (pattern.h), answers
 *           "COUNT ok\n" (or "COUNT bad OFFSET\n", the first piece that differs) and closes;
 *   source: writes BYTES of the pattern, 256 KiB at a time, shuts its sending side down, and reads until the
 *           other side closes too (the agent's tunnel ends when both sides did).
 * Blocking I/O, default socket options: a plain server, as a sandbox would run one. A connection that stalls
 * for 10 s is dropped (and said so on stderr), and the next one served. Static, like the agent. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "baseline.h"
#include "pattern.h"

#define IO_BYTES (256u << 10)

static void serve_sink(int fd, const uint8_t *pat)
{
	static uint8_t buf[IO_BYTES];
	uint64_t got = 0, bad = UINT64_MAX;
	for (ssize_t r; (r = read(fd, buf, sizeof(buf))) != 0;) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "tunnel_peer: sink: read after %llu bytes: %s\n", (unsigned long long)got,
				strerror(errno));
			return;
		}
		if (bad == UINT64_MAX && !pattern_check(pat, got, buf, (size_t)r, &bad))
			fprintf(stderr, "tunnel_peer: sink: the bytes at %llu differ from the pattern\n",
				(unsigned long long)bad);
		got += (uint64_t)r;
	}
	char answer[64];
	int n = bad == UINT64_MAX ? snprintf(answer, sizeof(answer), "%llu ok\n", (unsigned long long)got)
				  : snprintf(answer, sizeof(answer), "%llu bad %llu\n", (unsigned long long)got,
					     (unsigned long long)bad);
	if (!write_all(fd, (const uint8_t *)answer, (size_t)n))
		fprintf(stderr, "tunnel_peer: sink: answer: %s\n", strerror(errno));
}

static void serve_source(int fd, const uint8_t *pat, uint64_t bytes)
{
	for (uint64_t sent = 0; sent < bytes;) {
		size_t n = bytes - sent < IO_BYTES ? (size_t)(bytes - sent) : IO_BYTES;
		if (!write_all(fd, pattern_at(pat, sent), n)) {
			fprintf(stderr, "tunnel_peer: source: write after %llu bytes: %s\n", (unsigned long long)sent,
				strerror(errno));
			return;
		}
		sent += n;
	}
	shutdown(fd, SHUT_WR);
	uint8_t buf[4096];
	for (ssize_t r; (r = read(fd, buf, sizeof(buf))) != 0;)
		if (r < 0 && errno != EINTR)
			return;
}

int main(int argc, char **argv)
{
	char *end;
	unsigned long long bytes = argc == 2 ? strtoull(argv[1], &end, 10) : 0;
	if (argc != 2 || !bytes || *end) {
		fprintf(stderr, "usage: tunnel_peer BYTES\n");
		return 2;
	}
	baseline_name = "tunnel_peer";
	const uint8_t *pat = pattern_make();
	if (!pat)
		fail("pattern");
	signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an error return, not our end */
	uint16_t sink_port, source_port;
	struct pollfd l[2] = {{.fd = listen_any(&sink_port), .events = POLLIN},
			      {.fd = listen_any(&source_port), .events = POLLIN}};
	printf("%u %u\n", sink_port, source_port);
	fflush(stdout);
	for (;;) {
		if (poll(l, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail("poll");
		}
		for (int i = 0; i < 2; i++) {
			if (!(l[i].revents & POLLIN))
				continue;
			int fd = accept4(l[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			struct timeval tv = {.tv_sec = 10};
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			if (i == 0)
				serve_sink(fd, pat);
			else
				serve_source(fd, pat, bytes);
			close(fd);
		}
	}
}
