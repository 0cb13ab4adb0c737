/* runra-agent: the in-sandbox agent. `serve` (the default) runs it, normally as PID 1; the other
 * subcommands are debug clients of a running agent. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../fsops/fsops.h"
#include "../proto/proto.h"
#include "agent.h"
#include "client.h"
#include "config.h"
#include "dispatch.h"
#include "exec.h"
#include "log.h"
#include "pid1.h"
#include "transport.h"
#include "events.h"
#include "lifecycle.h"
#include "metrics.h"
#include "ports.h"
#include "tunnel.h"
#include "watches.h"

#define SHUTDOWN_GRACE_MS 500 /* for connections to take their last messages */

static ra_agent agent;
static ra_config config;

/* libev aborts when an allocation fails; PID 1 must not. Wait for memory instead. */
static void *loop_realloc(void *ptr, long size)
{
	if (size == 0) {
		free(ptr);
		return NULL;
	}
	for (unsigned attempt = 0;; attempt++) {
		void *p = realloc(ptr, (size_t)size);
		if (p)
			return p;
		if (attempt == 0)
			ra_log(RA_LOG_ERROR, "loop.nomem", "libev cannot allocate %ld bytes; retrying", size);
		nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
	}
}

/* libev aborts on a failed syscall unless told otherwise; log, slow down, and let it retry. */
static void loop_syserr(const char *msg)
{
	ra_log(RA_LOG_ERROR, "loop.syserr", "%s: %s", msg, strerror(errno));
	nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
}

static void on_transport_closed(void) { ev_break(agent.loop, EVBREAK_ALL); }

/* The end of the shutdown path: processes are gone, sandbox.terminated was sent. */
static void stop_serving(void) { ra_transport_shutdown(SHUTDOWN_GRACE_MS, on_transport_closed); }

static void on_shutdown(int signo)
{
	(void)signo;
	ra_lifecycle_begin_shutdown("signal", config.shutdown_grace_ms);
}

static void record_start_times(void)
{
	struct timespec mono, boot;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	agent.started_mono = (double)mono.tv_sec + (double)mono.tv_nsec / 1e9;
	agent.started_unix_ms = ra_unix_ms();
	agent.kernel_boot_unix_ms = agent.started_unix_ms - ((int64_t)boot.tv_sec * 1000 + boot.tv_nsec / 1000000);
}

static struct ev_loop *make_loop(void)
{
	ev_set_allocator(loop_realloc);
	ev_set_syserr_cb(loop_syserr);
	/* NOENV: the image's environment (LIBEV_FLAGS) must not choose our backend. Not libev's default loop:
	 * that one reaps children itself (without their rusage); procmgr is the reaper instead. */
	struct ev_loop *loop = ev_loop_new(EVFLAG_NOENV);
	if (!loop) {
		ra_log(RA_LOG_ERROR, "loop.start", "libev loop not created");
		return NULL;
	}
	if (ev_backend(loop) != EVBACKEND_EPOLL) {
		ra_log(RA_LOG_ERROR, "loop.start", "libev backend is %s, not epoll: the build is wrong",
		       ra_agent_backend_name(loop));
		return NULL;
	}
	return loop;
}

static int serve(int argc, char **argv)
{
	switch (ra_config_load(&config, argc, argv, stderr)) {
	case RA_CONFIG_HELP:
		ra_config_usage(stdout);
		return 0;
	case RA_CONFIG_BAD:
		return 2;
	case RA_CONFIG_OK:
		break;
	}
	ra_log_set_level(config.log_level);
	record_start_times();
	ra_pid1_prepare(); /* before the workdir: as PID 1 it may have to mount /tmp first */
	int rc = ra_fs_mkdir(config.workdir, 0755, true, NULL, NULL);
	if (rc) {
		fprintf(stderr, "runra-agent: invalid configuration: workdir '%s': %s\n", config.workdir, strerror(-rc));
		return 2;
	}
	agent.config = &config;
	agent.loop = make_loop();
	if (!agent.loop)
		return 1;
	ra_pid1_start(agent.loop, on_shutdown);
	ra_exec_init(&agent); /* the reaper, before anything can fork */
	ra_dispatch_init(&agent);
	ra_events_init(config.event_ring_events, config.event_ring_bytes, config.workdir);
	ra_lifecycle_init(&agent, stop_serving); /* sandbox.started: the first event */
	ra_watches_init(&agent);
	ra_ports_init(&agent);
	ra_tunnel_init(&agent);
	ra_metrics_init(&agent);
	if (ra_transport_start(&agent))
		return 1;
	char where[160];
	ra_config_describe_listen(&config, where, sizeof(where));
	ra_log(RA_LOG_INFO, "agent.ready", "%s %s listening on %s (pid %d%s, auth %s)", RA_AGENT_NAME, RA_VERSION,
	       where, (int)getpid(), ra_pid1_is_init() ? ", init" : "", config.token[0] ? "token" : "off");
	ev_run(agent.loop, 0);
	ra_transport_destroy();
	ra_watches_shutdown();
	ra_ports_shutdown();
	ra_tunnel_shutdown();
	ra_metrics_shutdown();
	ra_events_shutdown();
	ra_exec_shutdown();
	ra_pid1_stop(agent.loop);
	ra_log(RA_LOG_INFO, "agent.exit", "graceful shutdown complete");
	ra_lifecycle_shutdown(); /* last: as PID 1 of a VM it may power off */
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 && argv[1][0] != '-' ? argv[1] : "serve";
	if (strcmp(cmd, "serve") == 0)
		return argc > 1 && strcmp(argv[1], "serve") == 0 ? serve(argc - 1, argv + 1) : serve(argc, argv);
	if (strcmp(cmd, "version") == 0) {
		printf("%s %s (protocol %d)\n", RA_AGENT_NAME, RA_VERSION, RA_PROTO_VERSION);
		return 0;
	}
	if (ra_client_is_command(cmd))
		return ra_client_main(argc - 1, argv + 1);
	fprintf(stderr, "runra-agent: unknown command '%s' (see --help)\n", cmd);
	return 2;
}
