#include "portscan.h"

#include "../proto/ra_limits.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TCP_STATE_LISTEN 10

/* ---- netlink sock_diag ---- */

static int diag_request(int fd, uint8_t family)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg = {
		.nlh = {.nlmsg_len = sizeof(msg), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = family},
		.req = {.sdiag_family = family, .sdiag_protocol = IPPROTO_TCP, .idiag_states = 1u << TCP_STATE_LISTEN},
	};
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	return sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0 ? -errno : 0;
}

static void add_diag(const struct inet_diag_msg *m, ra_listener *out, size_t cap, size_t *n)
{
	if (*n >= cap || m->idiag_state != TCP_STATE_LISTEN)
		return;
	ra_listener *l = &out[(*n)++];
	memset(l, 0, sizeof(*l));
	l->port = ntohs(m->id.idiag_sport);
	l->ipv6 = m->idiag_family == AF_INET6;
	memcpy(l->addr, m->id.idiag_src, l->ipv6 ? 16 : 4);
	l->inode = m->idiag_inode;
}

/* Reads one dump to its NLMSG_DONE. */
static int diag_read(int fd, ra_listener *out, size_t cap, size_t *n)
{
	static char buf[32 << 10] __attribute__((aligned(__alignof__(struct nlmsghdr))));
	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		if (len < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				return e->error ? e->error : -EPROTO;
			}
			if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY)
				add_diag(NLMSG_DATA(h), out, cap, n);
		}
	}
}

static int scan_netlink(ra_listener *out, size_t cap)
{
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	size_t n = 0;
	int rc = diag_request(fd, AF_INET);
	if (!rc)
		rc = diag_read(fd, out, cap, &n);
	/* A kernel without IPv6 refuses the second dump: the IPv4 one stands. */
	if (!rc && !diag_request(fd, AF_INET6))
		diag_read(fd, out, cap, &n);
	close(fd);
	return rc ? rc : (int)n;
}

/* ---- /proc/net/tcp{,6} ---- */

static void parse_hex_addr(const char *hex, ra_listener *l)
{
	/* The kernel prints each 32-bit word of the address in host order. */
	for (int w = 0; w < (l->ipv6 ? 4 : 1); w++) {
		char word[9];
		memcpy(word, hex + w * 8, 8);
		word[8] = '\0';
		uint32_t v = (uint32_t)strtoul(word, NULL, 16);
		memcpy(l->addr + w * 4, &v, 4);
	}
}

/* 0, or -errno when the file cannot be read. */
static int scan_proc_file(const char *path, bool ipv6, ra_listener *out, size_t cap, size_t *n)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char line[512], addr[64];
	unsigned port, state;
	unsigned long long inode;
	if (!fgets(line, sizeof(line), f)) { /* the header */
		fclose(f);
		return 0;
	}
	while (*n < cap && fgets(line, sizeof(line), f)) {
		if (sscanf(line, " %*u: %63[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*s %*s %llu", addr, &port, &state, &inode) != 4 ||
		    state != TCP_STATE_LISTEN || strlen(addr) != (ipv6 ? 32u : 8u))
			continue;
		ra_listener *l = &out[(*n)++];
		memset(l, 0, sizeof(*l));
		l->ipv6 = ipv6;
		l->port = (uint16_t)port;
		l->inode = inode;
		parse_hex_addr(addr, l);
	}
	fclose(f);
	return 0;
}

int ra_portscan(ra_listener *out, size_t cap)
{
	int rc = scan_netlink(out, cap);
	if (rc >= 0)
		return rc;
	if (rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM)
		return rc; /* the fallback would need the same: no answer is better than "nothing listens" */
	size_t n = 0;
	int err = scan_proc_file("/proc/net/tcp", false, out, cap, &n);
	if (err)
		return err;
	err = scan_proc_file("/proc/net/tcp6", true, out, cap, &n);
	if (err && err != -ENOENT) /* a kernel without IPv6 has no tcp6 */
		return err;
	return (int)n;
}

void ra_listener_addr(const ra_listener *l, char *buf, size_t cap)
{
	if (!inet_ntop(l->ipv6 ? AF_INET6 : AF_INET, l->addr, buf, (socklen_t)cap))
		snprintf(buf, cap, "?");
}

/* ---- owners ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The socket inode of an fd link ("socket:[123]"), or 0. */
static uint64_t link_socket_inode(const char *link)
{
	if (strncmp(link, "socket:[", 8) != 0)
		return 0;
	char *end;
	unsigned long long v = strtoull(link + 8, &end, 10);
	return *end == ']' ? v : 0;
}

/* Records pid as the holder of any wanted inode among its fds; false once the budget is spent. */
static bool scan_fd_dir(pid_t pid, const ra_owner_query *q, size_t nq, pid_t *found, unsigned *budget)
{
	char path[64], link[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return *budget > 0;
	struct dirent *de;
	while (*budget && (de = readdir(d))) {
		--*budget;
		char fdpath[300];
		snprintf(fdpath, sizeof(fdpath), "%s/%s", path, de->d_name);
		ssize_t n = readlink(fdpath, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		uint64_t inode = link_socket_inode(link);
		const ra_owner_query *hit = inode ? bsearch(&inode, q, nq, sizeof(*q), cmp_u64) : NULL;
		if (hit && !found[hit - q])
			found[hit - q] = pid;
	}
	closedir(d);
	return *budget > 0;
}

void ra_socket_owners(ra_owner_query *q, size_t nq, const pid_t *candidates, size_t n)
{
	if (nq > RA_PORTS_SCAN_MAX)
		nq = RA_PORTS_SCAN_MAX;
	if (!nq)
		return;
	qsort(q, nq, sizeof(*q), cmp_u64); /* the inode is the first member */
	pid_t found[RA_PORTS_SCAN_MAX] = {0};
	unsigned budget = RA_PORT_OWNER_MAX_LINKS; /* the loop waits meanwhile: bounded, for the whole scan */
	for (size_t i = 0; i < n && scan_fd_dir(candidates[i], q, nq, found, &budget); i++)
		;
	for (size_t i = 0; i < nq; i++)
		q[i].pid = found[i];
}

void ra_process_cmdline(pid_t pid, char *buf, size_t cap)
{
	char path[64];
	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n <= 0)
		return;
	while (n > 0 && buf[n - 1] == '\0')
		n--;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
}
