/* echo_server PORT blocking|epoll: the baseline server. It sends back every byte it reads, so its cost is
 * what the kernel's loopback TCP costs; anything the agent takes beyond that is the agent's own.
 *   blocking  one connection at a time, read() then write(): the cheapest possible round trip
 *   epoll     one thread and level-triggered epoll, like the agent's event loop, for many connections */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void fail(const char *what)
{
	fprintf(stderr, "echo_server: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void nodelay(int fd)
{
	int one = 1; /* the client sets it too: neither side may hold back a small write */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Writes everything; on a nonblocking socket that is full, waits until it drains. False if the peer left. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EAGAIN) {
			poll(&(struct pollfd){.fd = fd, .events = POLLOUT}, 1, 1000);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return 0;
		p += w;
		n -= (size_t)w;
	}
	return 1;
}

static void serve_blocking(int lfd)
{
	static char buf[65536];
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		nodelay(fd);
		ssize_t r;
		while ((r = read(fd, buf, sizeof(buf))) > 0 && write_all(fd, buf, (size_t)r))
			;
		close(fd);
	}
}

static void serve_epoll(int lfd)
{
	static char buf[65536];
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[512];
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev))
		fail("epoll");
	for (;;) {
		int k = epoll_wait(ep, evs, 512, -1);
		for (int i = 0; i < k; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
				if (c < 0)
					continue;
				nodelay(c);
				ev.data.fd = c;
				epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0 || !write_all(fd, buf, (size_t)r))
				close(fd); /* closing also removes it from the epoll set */
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[2], "blocking") && strcmp(argv[2], "epoll"))) {
		fprintf(stderr, "usage: echo_server PORT blocking|epoll\n");
		return 2;
	}
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (argv[2][0] == 'e' ? SOCK_NONBLOCK : 0), 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Restarted on the same port many times in a row: earlier connections' TIME_WAIT must not block bind. */
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1024))
		fail("listen");
	if (argv[2][0] == 'e')
		serve_epoll(lfd);
	else
		serve_blocking(lfd);
}
