/* What the baseline programs (pipecopy, filecopy, tunnel_peer, tcp_relay) share: failing loudly, the loopback
 * connections they copy into or serve, set up as the agent's own sockets are, and whole writes. Header-only:
 * each baseline stays one static program. */
#ifndef RA_BENCH_BASELINE_H
#define RA_BENCH_BASELINE_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <sys/time.h>
#include <unistd.h>

static const char *baseline_name;

static void fail(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", baseline_name, what, strerror(errno));
	exit(1);
}

static inline int connect_port(const char *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
		fail("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* as lws sets it on the agent's sockets */
	struct timeval tv = {.tv_sec = 5}; /* a peer that stops must end the run, not hang it */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* A listening socket on a free 127.0.0.1 port (into *port). */
static inline int listen_any(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 8) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		fail("listen");
	*port = ntohs(a.sin_port);
	return fd;
}

/* All n bytes, or false (the peer went away). */
static inline bool write_all(int fd, const void *data, size_t n)
{
	const char *p = data;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

#endif
