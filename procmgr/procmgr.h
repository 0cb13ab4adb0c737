/* procmgr: spawns, supervises and reaps processes. The only module that forks, execs, waits or kills.
 *
 * One SIGCHLD watcher on the agent's loop is the only reaper: it calls wait4() until nothing is left, so
 * every child is reaped, orphans re-parented to the agent included, and each tracked process gets its
 * status and resource usage. (libev's own child watchers cannot report rusage, so the agent's loop is not
 * libev's default loop and libev reaps nothing itself.) A process is inserted in the table in the same call
 * that forks it, before control returns to the loop, so no exit can be missed.
 *
 * A process's life: RUNNING → EXITED (the leader was reaped; descendants may still hold its output open) →
 * DONE (reaped, output at EOF or abandoned). Output of each stream is kept in a bounded ring (outbuf.h) with
 * absolute offsets; readers (the agent's attachments) set a hold so that a slow reader throttles the process
 * instead of losing or buffering output. Finished processes are retained for status and reattach until the
 * retention limit evicts the oldest unreferenced one.
 *
 * Errors are 0 / -errno; the agent maps them to protocol codes. */
#ifndef RA_PROCMGR_H
#define RA_PROCMGR_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "outbuf.h"

#define RA_PROC_ID_MAX 64

typedef struct ra_proc ra_proc;

typedef enum { RA_STREAM_STDOUT = 0, RA_STREAM_STDERR = 1, RA_STREAM_COUNT = 2 } ra_stream;

typedef enum { RA_PROC_RUNNING, RA_PROC_EXITED, RA_PROC_DONE } ra_proc_state;

typedef enum {
	RA_END_NONE = 0,   /* still running */
	RA_END_EXITED,     /* ended by itself (exit or a signal nobody here sent) */
	RA_END_TIMEOUT,    /* killed because its timeoutMs passed */
	RA_END_KILLED,     /* killed on request (proc.kill, shutdown, reset) */
	RA_END_CLIENT_GONE /* killed because the client that started it disconnected (killOnDisconnect) */
} ra_end_reason;

typedef struct {
	int exit_code;       /* the shell's view: the exit status, or 128 + signal */
	int signal;          /* terminating signal, 0 if it exited */
	bool core_dumped;
	ra_end_reason reason;
	int64_t started_unix_ms;
	uint64_t duration_ms;
	uint64_t cpu_user_ms, cpu_sys_ms;
	uint64_t max_rss_kb;
} ra_proc_exit;

typedef struct {
	size_t output_cap;           /* bytes retained per stream */
	unsigned max_live;           /* processes not yet DONE */
	unsigned max_retained;       /* DONE processes kept for status and reattach */
	size_t retained_output_bytes; /* and the output memory they may keep, all together */
	unsigned kill_grace_ms;      /* SIGTERM → SIGKILL */
	size_t stdin_queue_cap;      /* bytes of stdin queued for a process that does not read */
	const char *default_cwd;
	rlim_t child_nofile;         /* the soft fd limit children start with (the agent's may be raised) */
} ra_procmgr_config;

/* What the agent learns about processes. All run on the loop; none may free the process (use unref). */
typedef struct {
	void (*on_output)(ra_proc *p, void *ctx);   /* new bytes in a stream */
	void (*on_exit)(ra_proc *p, void *ctx);     /* the leader was reaped (the output before exit is in) */
	void (*on_done)(ra_proc *p, void *ctx);     /* no more output will come */
	void (*on_free)(ra_proc *p, void *ctx);     /* evicted: release what ra_proc_set_user holds */
	void *ctx;
} ra_proc_hooks;

typedef struct {
	const char *id;             /* caller's process id, or NULL for a generated one */
	const char *shell_command;  /* run with /bin/sh -c, or NULL when argv is given */
	char *const *argv;          /* NULL-terminated */
	const char *cwd;            /* NULL: the default */
	char *const *env_set;       /* "K=V" entries merged over the agent's environment; NULL-terminated or NULL */
	const char *user;           /* name or decimal uid; NULL: the agent's own */
	const uint8_t *stdin_data;  /* fed then closed, when stdin_stream is false */
	size_t stdin_len;
	bool stdin_stream;          /* keep stdin open for ra_proc_write_stdin */
	bool pty;
	unsigned short cols, rows;
	uint64_t timeout_ms;        /* 0: none */
} ra_spawn_opts;

/* Spawn failures that are the caller's, told apart from errno values for the protocol. */
#define RA_SPAWN_ERR_USER (-100000)   /* unknown user */
#define RA_SPAWN_ERR_STEP (-100001)   /* a step of starting it failed: see ra_spawn_failure */

/* The step of the child's setup that failed, with its errno. */
typedef enum {
	SPAWN_STEP_CWD = 1,   /* parent: the working directory is missing or not one */
	SPAWN_STEP_SETUP,     /* parent: pipes, terminal, /dev/null */
	SPAWN_STEP_FORK,      /* parent: fork itself */
	SPAWN_STEP_SETSID,    /* the rest happen in the child */
	SPAWN_STEP_TERMINAL,
	SPAWN_STEP_STDIO,
	SPAWN_STEP_USER,
	SPAWN_STEP_CHDIR,
	SPAWN_STEP_EXEC,
} spawn_step;

typedef struct {
	spawn_step step;
	int err;
} ra_spawn_failure;

void ra_procmgr_init(struct ev_loop *loop, const ra_procmgr_config *cfg, const ra_proc_hooks *hooks);
/* Kills every live process group (SIGKILL) and frees everything. */
void ra_procmgr_shutdown(void);

/* Starts a process. On success *out is the new process (state RUNNING). On failure: -EEXIST (id in use;
 * *out is that process), -EAGAIN (too many live processes), -EINVAL (bad id or argv), RA_SPAWN_ERR_USER,
 * RA_SPAWN_ERR_STEP (with *failure), or -ENOMEM. */
int ra_proc_spawn(const ra_spawn_opts *opts, ra_proc **out, ra_spawn_failure *failure);

/* The command as ra_proc_command reports it for these options (malloc'd). */
char *ra_proc_describe(const ra_spawn_opts *opts);

ra_proc *ra_proc_find(const char *id);
ra_proc *ra_proc_first(void);
ra_proc *ra_proc_next(const ra_proc *p);
unsigned long ra_procmgr_orphans_reaped(void);
/* Whether the agent has any child process (tracked or an adopted orphan), alive or not yet reaped. */
bool ra_procmgr_has_children(void);
/* The pids below the agent (children, theirs, and adopted orphans), children first, up to cap; from /proc. */
size_t ra_procmgr_descendants(pid_t *out, size_t cap);
/* How many there are (at most 65,535). */
size_t ra_procmgr_count_descendants(void);
/* sig to every live process group of the table (their end reason: killed) and to every descendant
 * (daemons that left their group included); how many descendants were signalled. */
unsigned ra_procmgr_signal_all(int sig);
/* Frees the finished processes nobody references, with their retained output; how many. */
unsigned ra_procmgr_forget_done(void);

/* A reference keeps a DONE process from being evicted. */
void ra_proc_ref(ra_proc *p);
void ra_proc_unref(ra_proc *p);

const char *ra_proc_id(const ra_proc *p);
pid_t ra_proc_pid(const ra_proc *p);
const char *ra_proc_command(const ra_proc *p);
const char *ra_proc_cwd(const ra_proc *p);
ra_proc_state ra_proc_get_state(const ra_proc *p);
bool ra_proc_is_pty(const ra_proc *p);
bool ra_proc_stdin_open(const ra_proc *p);
int64_t ra_proc_started_unix_ms(const ra_proc *p);
/* Valid once the state is EXITED or DONE. */
const ra_proc_exit *ra_proc_exit_info(const ra_proc *p);
/* Bytes of each stream produced before the leader exited (valid once EXITED). */
uint64_t ra_proc_exit_offset(const ra_proc *p, ra_stream s);
const ra_outbuf *ra_proc_output(const ra_proc *p, ra_stream s);
/* The lowest offset a reader still needs (RA_OUTBUF_NO_HOLD: none); reading resumes when space frees. */
void ra_proc_set_hold(ra_proc *p, ra_stream s, uint64_t hold);

/* Sends sig to the process group (group) or the leader; marks the end reason when it is fatal. -ESRCH if
 * nothing is left to signal. */
int ra_proc_signal(ra_proc *p, int sig, bool group, ra_end_reason why);
/* SIGTERM to the group now, SIGKILL after the grace period if anything of it is left. */
void ra_proc_terminate(ra_proc *p, ra_end_reason why);
/* Queues bytes for stdin (0, -EPIPE if closed, -ENOBUFS past the queue cap). */
int ra_proc_write_stdin(ra_proc *p, const void *data, size_t len);
/* EOF after the queued bytes (on a PTY: the terminal's EOF character). */
int ra_proc_close_stdin(ra_proc *p);
int ra_proc_resize(ra_proc *p, unsigned short cols, unsigned short rows);

/* Per-process slot for the agent's own bookkeeping. */
void ra_proc_set_user(ra_proc *p, void *user);
void *ra_proc_get_user(const ra_proc *p);

/* Signal names: "SIGTERM", "TERM" or a number → signal; 0 if unknown. */
int ra_signal_from_name(const char *name, size_t len);
/* "SIGKILL" for 9; NULL if unknown. */
const char *ra_signal_name(int sig);

#endif
