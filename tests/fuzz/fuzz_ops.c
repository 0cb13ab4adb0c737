/* libFuzzer target: every op's argument handling, through the real dispatcher and the real handlers (not a
 * copy of their checks). Each input is one request message, as a client would send it; the replies are
 * dropped. The handlers act for real, so the fuzzer first jails itself: a mount namespace with an empty
 * tmpfs as its root (no /bin/sh: an exec fails after its fork), and a network namespace of its own (no
 * interface up: tunnels fail to connect). That needs root; without it the target says so and exits 77.
 *
 * Three ops are skipped because they end the agent on purpose (shutdown, and the hard timeout that
 * lifecycle.configure and timeout.extend can set): their checks are covered by the black-box tests. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../agent/agent.h"
#include "../../agent/config.h"
#include "../../agent/dispatch.h"
#include "../../agent/events.h"
#include "../../agent/exec.h"
#include "../../agent/lifecycle.h"
#include "../../agent/log.h"
#include "../../agent/metrics.h"
#include "../../agent/ports.h"
#include "../../agent/session.h"
#include "../../agent/tunnel.h"
#include "../../agent/watches.h"
#include "../../fsops/fsops.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ra_agent agent;
static ra_config config;
static ra_session session;

static void no_transport(void) {}

static void jail_fail(const char *what)
{
	fprintf(stderr, "fuzz_ops: cannot jail itself (%s: %s): it needs root\n", what, strerror(errno));
	exit(77);
}

/* mkdir -p */
static void make_dirs(char *path)
{
	for (char *p = path + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(path, 0755);
			*p = '/';
		}
	mkdir(path, 0755);
}

/* The directories libFuzzer was given (corpus, artifact prefix) stay where they are, inside the jail. */
static void keep_dir(const char *root, const char *dir)
{
	char real[4096], inside[8192];
	if (!realpath(dir, real))
		return;
	snprintf(inside, sizeof(inside), "%s%s", root, real);
	make_dirs(inside);
	if (mount(real, inside, NULL, MS_BIND | MS_REC, NULL))
		jail_fail(real);
}

static void keep_fuzzer_dirs(const char *root, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "-artifact_prefix=", 17) == 0) {
			char dir[4096];
			snprintf(dir, sizeof(dir), "%s", a + 17);
			char *slash = strrchr(dir, '/');
			if (slash)
				*slash = '\0';
			keep_dir(root, slash ? dir : ".");
		} else if (a[0] != '-') {
			keep_dir(root, a);
		}
	}
}

/* An empty tmpfs as /, a read-only /proc (LeakSanitizer reads it; nothing may be written through it), the
 * fuzzer's own directories, and no network. */
static void jail(int argc, char **argv)
{
	char root[] = "/tmp/runra-fuzz-ops-XXXXXX", proc[64];
	if (unshare(CLONE_NEWNS | CLONE_NEWNET))
		jail_fail("unshare");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) || !mkdtemp(root) ||
	    mount("fuzz", root, "tmpfs", 0, "size=64m"))
		jail_fail("tmpfs");
	snprintf(proc, sizeof(proc), "%s/proc", root);
	mkdir(proc, 0555);
	if (mount("proc", proc, "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		jail_fail("proc");
	keep_fuzzer_dirs(root, argc, argv);
	char cwd[4096], inside[8192];
	if (!getcwd(cwd, sizeof(cwd)))
		jail_fail("getcwd");
	snprintf(inside, sizeof(inside), "%s%s", root, cwd);
	make_dirs(inside); /* empty: only the kept directories are in it, so relative paths resolve as before */
	if (chroot(root) || chdir(cwd))
		jail_fail("chroot");
}

static void start_agent(void)
{
	char *args[] = {"fuzz_ops", "--insecure-no-auth", "--workdir", "/work", "--log-level", "error",
			"--max-processes", "8", "--event-ring-events", "1024", NULL};
	if (ra_config_load(&config, 10, args, stderr) != RA_CONFIG_OK)
		exit(1);
	ra_log_set_level(config.log_level);
	ra_fs_mkdir(config.workdir, 0755, true, NULL, NULL);
	agent.config = &config;
	agent.loop = ev_loop_new(EVFLAG_NOENV);
	agent.started_unix_ms = ra_unix_ms();
	ra_exec_init(&agent);
	ra_dispatch_init(&agent);
	ra_events_init(config.event_ring_events, config.event_ring_bytes, config.workdir);
	ra_lifecycle_init(&agent, no_transport);
	ra_watches_init(&agent);
	ra_ports_init(&agent);
	ra_tunnel_init(&agent);
	ra_metrics_init(&agent);
	ra_session_init(&session, NULL, NULL, 0, config.max_message_bytes);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	jail(*argc, *argv);
	start_agent();
	return 0;
}

static bool ends_the_agent(const uint8_t *data, size_t size)
{
	ra_request req;
	const char *why;
	bool skip = ra_request_decode(&req, data, size, &why) == RA_OK &&
		    (ra_request_op_is(&req, "shutdown") || ra_request_op_is(&req, "lifecycle.configure") ||
		     ra_request_op_is(&req, "timeout.extend"));
	ra_request_free(&req);
	return skip;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ends_the_agent(data, size))
		return -1; /* not added to the corpus */
	ra_dispatch_message(&session, data, size);
	ev_run(agent.loop, EVRUN_NOWAIT); /* exits reaped, timers due, streams moved */
	while (ra_session_out_head(&session))
		ra_session_out_advance(&session, ra_session_out_head(&session)->len - ra_session_out_head(&session)->sent);
	ra_dispatch_session_drained(&session);
	session.out_overflow = session.out_broken = false;
	return 0;
}
