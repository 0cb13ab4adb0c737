/* portscan: the TCP sockets listening in the agent's network namespace, from netlink sock_diag (the kernel's
 * socket table, one dump per address family), or from /proc/net/tcp and tcp6 where sock_diag is missing
 * (a kernel without inet_diag, or a seccomp filter refusing the netlink socket). */
#ifndef RA_PORTSCAN_H
#define RA_PORTSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
	uint16_t port;
	bool ipv6;
	uint8_t addr[16]; /* network order; an IPv4 address in the first 4 bytes */
	uint64_t inode;
} ra_listener;

/* Up to cap listeners into out; the count, or -errno when neither source can be read. */
int ra_portscan(ra_listener *out, size_t cap);
/* "0.0.0.0", "127.0.0.1", "::", "::1". */
void ra_listener_addr(const ra_listener *l, char *buf, size_t cap);
/* A socket whose owner is wanted: inode in, pid out (0 when not found). */
typedef struct {
	uint64_t inode; /* first: the queries are sorted by it */
	uint16_t port;
	pid_t pid;
} ra_owner_query;
/* Which of the candidate pids holds each queried socket: one look through their /proc/PID/fd for all the
 * queries together, at most RA_PORT_OWNER_MAX_LINKS links in all. Sorts q by inode. */
void ra_socket_owners(ra_owner_query *q, size_t nq, const pid_t *candidates, size_t n);
/* /proc/PID/cmdline with spaces between the arguments, cut to cap; "" when unknown. */
void ra_process_cmdline(pid_t pid, char *buf, size_t cap);

#endif
