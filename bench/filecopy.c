/* filecopy send FILE PORT | filecopy recv FILE PORT: the baseline of the file transfer figures, a plain
 * loopback copy with the agent taken out. send reads FILE and write()s every byte, unframed, to a TCP
 * connection to 127.0.0.1:PORT (the download direction: the agent's side reads and sends); recv reads that
 * connection until EOF into FILE, created afresh, and fsyncs it (the upload direction: the agent writes the
 * file and fsyncs it at commit). Blocking I/O and one 64 KiB buffer (the agent's chunk of a streamed read).
 * At the end it prints "BYTES VmHWM_KiB CPU_ms" on stdout: for recv, after the fsync, so that the reader of
 * that line times the whole copy. Static, like the agent, so that its peak RSS compares like with like. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "baseline.h"

/* Copies in to out until EOF; returns the bytes. */
static unsigned long long copy(int in, int out, const char *rd, const char *wr)
{
	static char buf[65536];
	unsigned long long total = 0;
	for (ssize_t r; (r = read(in, buf, sizeof(buf))) != 0;) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail(rd);
		if (!write_all(out, buf, (size_t)r))
			fail(wr);
		total += (unsigned long long)r;
	}
	return total;
}

static unsigned long hwm_kib(void)
{
	char line[256];
	unsigned long v = 0;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			v = strtoul(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	baseline_name = "filecopy";
	if (argc != 4 || (strcmp(argv[1], "send") && strcmp(argv[1], "recv"))) {
		fprintf(stderr, "usage: filecopy send|recv FILE PORT\n");
		return 2;
	}
	bool sending = strcmp(argv[1], "send") == 0;
	int flags = sending ? O_RDONLY : O_WRONLY | O_CREAT | O_EXCL, file = open(argv[2], flags | O_CLOEXEC, 0644);
	if (file < 0)
		fail(argv[2]);
	int sock = connect_port(argv[3]);
	unsigned long long bytes = sending ? copy(file, sock, "read file", "write socket")
					: copy(sock, file, "read socket", "write file");
	if (!sending && fsync(file))
		fail("fsync");
	if (close(file) || close(sock))
		fail("close");
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("%llu %lu %ld\n", bytes, hwm_kib(),
	       (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000);
	return 0;
}
