/* tcp_relay TARGET_PORT: the reference relay of figure 15, what the agent's tunnel does minus the protocol.
 * It listens on a free 127.0.0.1 port, prints it on stdout, and relays one connection at a time to
 * 127.0.0.1:TARGET_PORT: whatever arrives on one side is written to the other, 256 KiB reads (the agent's
 * tunnel reads and the client's sends), blocking writes, an EOF passed on as a shutdown; the connection ends
 * when both sides have. No framing, no masking, no queue: the least any relay in the agent's place must do,
 * so the tunnel's throughput can be read against it as well as against the straight copy. Static, like the
 * agent. */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "baseline.h"

#define IO_BYTES (256u << 10)

static uint8_t buf[IO_BYTES];

/* Moves one read's worth from side from to side to; false once from has ended (or either side failed). */
static bool pass_on(int from, int to)
{
	ssize_t n = read(from, buf, sizeof(buf));
	if (n < 0 && errno == EINTR)
		return true;
	if (n > 0 && write_all(to, buf, (size_t)n))
		return true;
	shutdown(to, SHUT_WR);
	return false;
}

static void relay(int client, int target)
{
	struct pollfd side[2] = {{.fd = client, .events = POLLIN}, {.fd = target, .events = POLLIN}};
	int open_sides = 2;
	while (open_sides) {
		if (poll(side, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail("poll");
		}
		for (int i = 0; i < 2; i++) {
			if (side[i].fd < 0 || !(side[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (!pass_on(side[i].fd, i ? client : target)) {
				side[i].fd = -1;
				open_sides--;
			}
		}
	}
}

int main(int argc, char **argv)
{
	baseline_name = "tcp_relay";
	if (argc != 2) {
		fprintf(stderr, "usage: tcp_relay TARGET_PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	uint16_t port;
	int lfd = listen_any(&port);
	printf("%u\n", port);
	fflush(stdout);
	for (;;) {
		int client = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (client < 0)
			fail("accept");
		int target = connect_port(argv[1]);
		relay(client, target);
		close(client);
		close(target);
	}
}
