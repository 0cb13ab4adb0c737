/* pipecopy SHELL_COMMAND PORT: the baseline of the stream figure. It does what the agent does for an exec,
 * minus the agent: runs /bin/sh -c SHELL_COMMAND with stdout on a pipe, reads the pipe in 64 KiB reads (the
 * agent's read size) and writes every byte, unframed, to a TCP connection to 127.0.0.1:PORT. Blocking I/O,
 * one buffer, no copies beyond the kernel's. At the end it prints "VmHWM_KiB CPU_ms" (its own, not the
 * command's) on stdout. Static, like the agent, so that its peak RSS compares like with like. */
#define _GNU_SOURCE /* pipe2 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "baseline.h"

extern char **environ;

/* The command with stdout on the pipe's write end and stdin on /dev/null, as the agent starts it. */
static pid_t start(const char *cmd, int out_w)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	char *const argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out_w, 1);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	errno = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
	if (errno)
		fail("posix_spawn /bin/sh");
	posix_spawn_file_actions_destroy(&fa);
	return pid;
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
	baseline_name = "pipecopy";
	static char buf[65536];
	if (argc != 3) {
		fprintf(stderr, "usage: pipecopy SHELL_COMMAND PORT\n");
		return 2;
	}
	int sock = connect_port(argv[2]), p[2];
	if (pipe2(p, O_CLOEXEC))
		fail("pipe");
	pid_t pid = start(argv[1], p[1]);
	close(p[1]); /* or EOF never comes */
	for (ssize_t r; (r = read(p[0], buf, sizeof(buf))) != 0;) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("read");
		if (!write_all(sock, buf, (size_t)r))
			fail("write");
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "pipecopy: '%s' failed (status %d)\n", argv[1], st);
		return 1;
	}
	close(sock);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("%lu %ld\n", hwm_kib(),
	       (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000);
	return 0;
}
