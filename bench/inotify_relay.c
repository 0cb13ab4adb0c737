/* inotify_relay DIR PORT: the baseline of the file event figures, what the agent does for a file event minus
 * the agent. One inotify instance watches DIR and every directory under it (walked once at start, with the
 * agent's event mask; directories made later are not added), is read with blocking 64 KiB reads (the agent's
 * read size), and the name of every entry created is written, with a newline, to a TCP connection to
 * 127.0.0.1:PORT: one write() per read(). "!overflow" is written when the kernel's queue overflowed. It
 * connects once its watches are in place and runs until it is killed or the connection fails. Static, like
 * the agent. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "baseline.h"

/* The agent's mask (fsops/watch_inotify.c): the kernel queues the same events for both. */
#define DIR_MASK                                                                                           \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF | \
	 IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

static int ifd;

static void watch_tree(char *path, size_t len)
{
	if (inotify_add_watch(ifd, path, DIR_MASK) < 0)
		fail(path);
	DIR *d = opendir(path);
	if (!d)
		fail(path);
	for (struct dirent *de; (de = readdir(d));) {
		size_t nl = strlen(de->d_name);
		if (de->d_type != DT_DIR || (de->d_name[0] == '.' && (nl == 1 || (nl == 2 && de->d_name[1] == '.'))))
			continue;
		if (len + 1 + nl >= PATH_MAX) {
			errno = ENAMETOOLONG;
			fail(path);
		}
		path[len] = '/';
		memcpy(path + len + 1, de->d_name, nl + 1);
		watch_tree(path, len + 1 + nl);
		path[len] = '\0';
	}
	closedir(d);
}

/* The receiver is done when it closes: so is the relay. */
static void send_or_end(int fd, const char *p, size_t n)
{
	if (!write_all(fd, p, n))
		exit(0);
}

int main(int argc, char **argv)
{
	baseline_name = "inotify_relay";
	static char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
	static char out[65536 + 4096];
	char path[PATH_MAX];
	if (argc != 3 || strlen(argv[1]) >= sizeof(path)) {
		fprintf(stderr, "usage: inotify_relay DIR PORT\n");
		return 2;
	}
	if ((ifd = inotify_init1(IN_CLOEXEC)) < 0)
		fail("inotify_init1");
	size_t len = strlen(argv[1]);
	memcpy(path, argv[1], len + 1); /* length checked above */
	watch_tree(path, len);
	int sock = connect_port(argv[2]);
	for (;;) {
		ssize_t n = read(ifd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("read");
		size_t o = 0;
		for (ssize_t off = 0; off < n;) {
			const struct inotify_event *ie = (const struct inotify_event *)(buf + off);
			off += (ssize_t)(sizeof(*ie) + ie->len);
			const char *line = ie->mask & IN_Q_OVERFLOW ? "!overflow" : NULL;
			if (!line && (ie->mask & IN_CREATE))
				line = ie->name;
			if (!line)
				continue;
			size_t ll = strlen(line);
			if (o + ll + 1 > sizeof(out)) {
				send_or_end(sock, out, o);
				o = 0;
			}
			memcpy(out + o, line, ll);
			out[o + ll] = '\n';
			o += ll + 1;
		}
		send_or_end(sock, out, o);
	}
}
