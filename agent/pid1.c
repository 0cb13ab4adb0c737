#include "pid1.h"

#include <errno.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../proto/ra_limits.h"
#include "log.h"

static ev_signal shutdown_watchers[3];
static ra_shutdown_fn shutdown_fn;

bool ra_pid1_is_init(void) { return getpid() == 1; }


static bool path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static void make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) && errno != EEXIST)
		ra_log(RA_LOG_WARN, "pid1.mkdir", "cannot create %s: %s", path, strerror(errno));
}

static void mount_missing(const char *probe, const char *target, const char *fstype, unsigned long flags,
			  const char *data)
{
	if (path_exists(probe))
		return;
	make_dir(target, 0755);
	if (mount(fstype, target, fstype, flags, data))
		ra_log(RA_LOG_WARN, "pid1.mount", "%s on %s not mounted: %s", fstype, target, strerror(errno));
	else
		ra_log(RA_LOG_INFO, "pid1.mount", "mounted %s on %s", fstype, target);
}

/* Without a devtmpfs (a bare root filesystem, or a VM started without one) create the few nodes that
 * programs, and libwebsockets itself (/dev/urandom), cannot do without. */
static void make_dev_nodes(void)
{
	static const struct {
		const char *path;
		unsigned major, minor;
	} nodes[] = {{"/dev/null", 1, 3},   {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
		     {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		if (path_exists(nodes[i].path))
			continue;
		if (mknod(nodes[i].path, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)))
			ra_log(RA_LOG_WARN, "pid1.mknod", "cannot create %s: %s", nodes[i].path, strerror(errno));
	}
}

static void ensure_dev(void)
{
	if (path_exists("/dev/urandom") && path_exists("/dev/null"))
		return;
	make_dir("/dev", 0755);
	if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755") == 0)
		ra_log(RA_LOG_INFO, "pid1.mount", "mounted devtmpfs on /dev");
	make_dev_nodes(); /* devtmpfs may be refused (containers), or may lack a node */
}

static void mount_essentials(void)
{
	mount_missing("/proc/self", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	ensure_dev();
	if (!path_exists("/dev/pts/ptmx")) {
		mount_missing("/dev/pts/ptmx", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
			      "newinstance,ptmxmode=0666,mode=0620");
		if (!path_exists("/dev/ptmx") && symlink("pts/ptmx", "/dev/ptmx"))
			ra_log(RA_LOG_WARN, "pid1.ptmx", "cannot link /dev/ptmx: %s", strerror(errno));
	}
	if (!path_exists("/tmp")) {
		mount_missing("/tmp", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
		chmod("/tmp", 01777);
	}
}

static struct rlimit nofile_at_start, nofile_now;

/* A kernel-started init gets 1,024 fds, which a few clients' transfers and tunnels would use up. Children
 * get the limit the agent was started with back (procmgr), as programs expect. */
static void raise_fd_limit(void)
{
	if (getrlimit(RLIMIT_NOFILE, &nofile_at_start))
		return;
	nofile_now = nofile_at_start;
	rlim_t want = nofile_at_start.rlim_max < RA_AGENT_NOFILE ? nofile_at_start.rlim_max : RA_AGENT_NOFILE;
	if (want > nofile_now.rlim_cur) {
		nofile_now.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &nofile_now))
			nofile_now = nofile_at_start;
	}
}

rlim_t ra_pid1_child_nofile(void) { return nofile_at_start.rlim_cur; }

bool ra_fd_in_reserve(int fd)
{
	rlim_t limit = nofile_now.rlim_cur;
	return limit != RLIM_INFINITY && limit > RA_FD_RESERVE && (rlim_t)fd >= limit - RA_FD_RESERVE;
}

void ra_pid1_prepare(void)
{
	raise_fd_limit();
	/* Signals whose default action would stop or kill the agent (a PID 1 is spared them only when they come
	 * from inside its namespace). Children get default dispositions back when procmgr spawns them. */
	static const int ignored[] = {SIGPIPE, SIGTTIN, SIGTTOU, SIGTSTP, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM,
				      SIGVTALRM, SIGXFSZ, SIGIO, SIGSTKFLT};
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		signal(ignored[i], SIG_IGN);
	/* A fork storm or a few hundred busy processes must not starve the one process that can stop them:
	 * the agent runs ahead of its children (which procmgr puts back to nice 0). Needs root. */
	if (geteuid() == 0 && setpriority(PRIO_PROCESS, 0, RA_AGENT_NICE))
		ra_log(RA_LOG_DEBUG, "pid1.nice", "nice %d not set: %s", RA_AGENT_NICE, strerror(errno));
	if (ra_pid1_is_init()) {
		mount_essentials();
		return;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		ra_log(RA_LOG_WARN, "pid1.subreaper", "PR_SET_CHILD_SUBREAPER failed: %s", strerror(errno));
}

static void on_shutdown_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	ra_log(RA_LOG_INFO, "pid1.signal", "signal %d: shutting down", w->signum);
	if (shutdown_fn)
		shutdown_fn(w->signum);
}

void ra_pid1_start(struct ev_loop *loop, ra_shutdown_fn on_shutdown)
{
	static const int signals[3] = {SIGTERM, SIGINT, SIGPWR};
	shutdown_fn = on_shutdown;
	for (int i = 0; i < 3; i++) {
		ev_signal_init(&shutdown_watchers[i], on_shutdown_signal, signals[i]);
		ev_signal_start(loop, &shutdown_watchers[i]);
		ev_unref(loop); /* signal watchers alone must not keep the loop alive */
	}
}

void ra_pid1_stop(struct ev_loop *loop)
{
	for (int i = 0; i < 3; i++) {
		ev_ref(loop);
		ev_signal_stop(loop, &shutdown_watchers[i]);
	}
}
