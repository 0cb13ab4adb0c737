/* pid1: the duties of an init. Whether the agent is PID 1 or not it must behave the same: reap every orphan
 * (procmgr's SIGCHLD watcher is the one reaper, and counts the orphans), act on SIGTERM/SIGINT, and never
 * be killed by a signal it did not ask for. As PID 1 it also mounts /proc,
 * /dev/pts and a tmpfs /tmp when they are missing and it may; otherwise it makes itself a child subreaper
 * so orphans of its descendants still come back to it. */
#ifndef RA_PID1_H
#define RA_PID1_H

#include <ev.h>
#include <stdbool.h>
#include <sys/resource.h>

typedef void (*ra_shutdown_fn)(int signo);

/* Before the loop exists: mounts (PID 1) or subreaper (otherwise), ignored signals, the fd limit raised. */
void ra_pid1_prepare(void);
/* The fd limit the agent was started with (what its children get back), and whether fd, just opened, is in
 * the last RA_FD_RESERVE below the agent's own limit: fds are given lowest first, so then fewer than that
 * are free, and what opened it should give it back rather than leave nothing for a new connection. */
rlim_t ra_pid1_child_nofile(void);
bool ra_fd_in_reserve(int fd);
/* Signal and reaper watchers on the default loop. on_shutdown runs for SIGTERM, SIGINT and SIGPWR. */
void ra_pid1_start(struct ev_loop *loop, ra_shutdown_fn on_shutdown);
void ra_pid1_stop(struct ev_loop *loop);
bool ra_pid1_is_init(void);

#endif
