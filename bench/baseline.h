/* What the baseline programs (pipecopy, filecopy) share: failing loudly, and the loopback connection they
 * copy into, set up as the agent's own sockets are. Header-only: each baseline stays one static program. */
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
#include <sys/time.h>

static const char *baseline_name;

static void fail(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", baseline_name, what, strerror(errno));
	exit(1);
}

static int connect_port(const char *port)
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

#endif
