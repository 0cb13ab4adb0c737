/* The process table, the reaper and each process's I/O (see procmgr.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "procmgr.h"
#include "spawn.h"

struct ra_proc {
	ra_proc *prev, *next; /* the table, oldest first */
	char id[RA_PROC_ID_MAX + 1];
	char *command;
	char *cwd;
	pid_t pid;
	ra_proc_state state;
	bool pty;
	int refs;
	void *user;
	int64_t started_unix_ms;
	double started_mono;

	ra_outbuf out[RA_STREAM_COUNT];
	int out_fd[RA_STREAM_COUNT]; /* -1 once at EOF */
	ev_io out_watch[RA_STREAM_COUNT];
	uint64_t hold[RA_STREAM_COUNT];
	uint64_t exit_offset[RA_STREAM_COUNT];
	bool exit_announced;
	bool out_nomem[RA_STREAM_COUNT]; /* reading paused: no memory for the ring (nomem_timer retries) */
	/* A terminal's output still unread when the leader was reaped (drain_pty_tail); the ring takes it first */
	uint8_t *tail;
	size_t tail_len, tail_off;

	int in_fd; /* -1: closed */
	ev_io in_watch;
	uint8_t *in_buf;
	size_t in_len, in_off;
	bool in_close_pending;

	ev_timer timeout_timer;
	ev_timer kill_timer;
	/* The leader was reaped and its process group has no member left: its id is free for the kernel to give
	 * to a new process, and a signal to it would reach that one. Nothing is sent to it any more. */
	bool group_gone;
	ra_end_reason end_reason; /* why we signalled it, if we did */
	ra_proc_exit exit;
};

static struct ev_loop *loop;
static ra_procmgr_config config;
static ra_proc_hooks hooks;
static ra_proc *table_head, *table_tail;
static size_t live_count, done_count;
static unsigned long orphans_reaped;
static unsigned long next_generated_id = 1;
static ev_signal sigchld_watcher;
#define RA_READ_CHUNK 65536

/* Children whose exec failed were never tracked: their exit is expected, not an orphan's. */
#define DISCARD_SLOTS 128
static pid_t discard_pids[DISCARD_SLOTS];

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t unix_ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- table ---- */

static void table_insert(ra_proc *p)
{
	p->prev = table_tail;
	if (table_tail)
		table_tail->next = p;
	else
		table_head = p;
	table_tail = p;
	live_count++;
}

static void table_remove(ra_proc *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		table_head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		table_tail = p->prev;
}

ra_proc *ra_proc_find(const char *id)
{
	for (ra_proc *p = table_head; p; p = p->next)
		if (strcmp(p->id, id) == 0)
			return p;
	return NULL;
}

static ra_proc *find_running_pid(pid_t pid)
{
	for (ra_proc *p = table_head; p; p = p->next)
		if (p->pid == pid && p->state == RA_PROC_RUNNING)
			return p;
	return NULL;
}

ra_proc *ra_proc_first(void) { return table_head; }
char *ra_proc_describe(const ra_spawn_opts *opts) { return spawn_describe(opts); }
ra_proc *ra_proc_next(const ra_proc *p) { return p->next; }
unsigned long ra_procmgr_orphans_reaped(void) { return orphans_reaped; }

/* Every process below the agent: the ppid links of /proc, followed down from our pid. */
/* Every process of /proc with its parent, sorted by parent: the children of one are a range found by bsearch,
 * so the walk below is O(n log n), not O(descendants x processes) (a fork storm has tens of thousands). */
enum { PROC_SCAN_MAX = 65536 };
static struct proc_link {
	pid_t ppid, pid;
} links[PROC_SCAN_MAX];
static pid_t walk_queue[PROC_SCAN_MAX];

static int link_cmp(const void *a, const void *b)
{
	const struct proc_link *x = a, *y = b;
	return (x->ppid > y->ppid) - (x->ppid < y->ppid);
}

static size_t read_links(void)
{
	size_t n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *de;
	while (n < PROC_SCAN_MAX && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		const char *rp = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
		int ppid;
		if (rp && sscanf(rp + 1, " %*c %d", &ppid) == 1)
			links[n++] = (struct proc_link){.ppid = ppid, .pid = (pid_t)strtol(de->d_name, NULL, 10)};
	}
	closedir(d);
	qsort(links, n, sizeof(links[0]), link_cmp);
	return n;
}

/* Breadth first into walk_queue: children, then theirs. */
static size_t walk_descendants(void)
{
	size_t n = read_links(), found = 0;
	walk_queue[found++] = getpid();
	for (size_t at = 0; at < found; at++) {
		struct proc_link key = {.ppid = walk_queue[at]};
		struct proc_link *hit = bsearch(&key, links, n, sizeof(links[0]), link_cmp);
		if (!hit)
			continue;
		while (hit > links && hit[-1].ppid == key.ppid)
			hit--;
		for (; hit < links + n && hit->ppid == key.ppid && found < PROC_SCAN_MAX; hit++)
			walk_queue[found++] = hit->pid;
	}
	return found - 1; /* not the agent itself */
}

size_t ra_procmgr_descendants(pid_t *out, size_t cap)
{
	size_t found = walk_descendants();
	if (found > cap)
		found = cap;
	memcpy(out, walk_queue + 1, found * sizeof(*out));
	return found;
}

size_t ra_procmgr_count_descendants(void) { return walk_descendants(); }

unsigned ra_procmgr_signal_all(int sig)
{
	for (ra_proc *p = table_head; p; p = p->next) /* whole groups at once, and their end reason */
		if (p->state != RA_PROC_DONE)
			ra_proc_signal(p, sig, true, RA_END_KILLED);
	unsigned n = 0;
	size_t count = walk_descendants();
	for (size_t i = 1; i <= count; i++)
		n += kill(walk_queue[i], sig) == 0;
	return n;
}

bool ra_procmgr_has_children(void)
{
	siginfo_t info;
	/* WNOWAIT: only a look; the SIGCHLD watcher stays the one reaper. */
	return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

static void proc_free(ra_proc *p)
{
	if (hooks.on_free)
		hooks.on_free(p, hooks.ctx);
	for (int s = 0; s < RA_STREAM_COUNT; s++) {
		ev_io_stop(loop, &p->out_watch[s]); /* stopped already, unless something forgot: never a freed one */
		ra_outbuf_free(&p->out[s]);
	}
	free(p->in_buf);
	free(p->tail);
	free(p->command);
	free(p->cwd);
	free(p);
}

static size_t retained_bytes(void)
{
	size_t n = 0;
	for (ra_proc *p = table_head; p; p = p->next)
		if (p->state == RA_PROC_DONE)
			n += p->out[RA_STREAM_STDOUT].alloc + p->out[RA_STREAM_STDERR].alloc;
	return n;
}

/* Drops the oldest finished processes nobody references while more are kept than the retention count, or
 * their output takes more than the retention budget. */
static void evict_done(void)
{
	size_t bytes = retained_bytes();
	/* the budget always holds a few processes with full buffers, whatever the buffer size */
	size_t budget = config.retained_output_bytes > 8 * config.output_cap ? config.retained_output_bytes
									      : 8 * config.output_cap;
	for (ra_proc *p = table_head; p && (done_count > config.max_retained || bytes > budget);) {
		ra_proc *next = p->next;
		if (p->state == RA_PROC_DONE && p->refs == 0) {
			bytes -= p->out[RA_STREAM_STDOUT].alloc + p->out[RA_STREAM_STDERR].alloc;
			table_remove(p);
			done_count--;
			proc_free(p);
		}
		p = next;
	}
}

unsigned ra_procmgr_forget_done(void)
{
	unsigned n = 0;
	for (ra_proc *p = table_head, *next; p; p = next) {
		next = p->next;
		if (p->state == RA_PROC_DONE && p->refs == 0) {
			table_remove(p);
			done_count--;
			proc_free(p);
			n++;
		}
	}
	return n;
}

void ra_proc_ref(ra_proc *p) { p->refs++; }

void ra_proc_unref(ra_proc *p)
{
	if (--p->refs == 0 && p->state == RA_PROC_DONE)
		evict_done();
}

/* ---- accessors ---- */

const char *ra_proc_id(const ra_proc *p) { return p->id; }
pid_t ra_proc_pid(const ra_proc *p) { return p->pid; }
const char *ra_proc_command(const ra_proc *p) { return p->command; }
const char *ra_proc_cwd(const ra_proc *p) { return p->cwd; }
ra_proc_state ra_proc_get_state(const ra_proc *p) { return p->state; }
bool ra_proc_is_pty(const ra_proc *p) { return p->pty; }
bool ra_proc_stdin_open(const ra_proc *p) { return p->in_fd >= 0 && !p->in_close_pending; }
int64_t ra_proc_started_unix_ms(const ra_proc *p) { return p->started_unix_ms; }
const ra_proc_exit *ra_proc_exit_info(const ra_proc *p) { return &p->exit; }
uint64_t ra_proc_exit_offset(const ra_proc *p, ra_stream s) { return p->exit_offset[s]; }
const ra_outbuf *ra_proc_output(const ra_proc *p, ra_stream s) { return &p->out[s]; }
void ra_proc_set_user(ra_proc *p, void *user) { p->user = user; }
void *ra_proc_get_user(const ra_proc *p) { return p->user; }

/* ---- lifecycle transitions ---- */

static void stop_timers(ra_proc *p)
{
	ev_timer_stop(loop, &p->timeout_timer);
}

static bool output_open(const ra_proc *p)
{
	return p->out_fd[RA_STREAM_STDOUT] >= 0 || p->out_fd[RA_STREAM_STDERR] >= 0;
}

static void close_stdin(ra_proc *p)
{
	if (p->in_fd < 0)
		return;
	ev_io_stop(loop, &p->in_watch);
	close(p->in_fd);
	p->in_fd = -1;
	free(p->in_buf);
	p->in_buf = NULL;
	p->in_len = p->in_off = 0;
}

static void maybe_done(ra_proc *p)
{
	if (p->state != RA_PROC_EXITED || !p->exit_announced || output_open(p))
		return;
	p->state = RA_PROC_DONE;
	close_stdin(p);
	live_count--;
	done_count++;
	ra_proc_ref(p); /* the hook may drop the last reference of its own */
	if (hooks.on_done)
		hooks.on_done(p, hooks.ctx);
	ra_proc_unref(p);
	evict_done();
}

static void announce_exit(ra_proc *p)
{
	p->exit_announced = true;
	ra_proc_ref(p);
	if (hooks.on_exit)
		hooks.on_exit(p, hooks.ctx);
	maybe_done(p);
	ra_proc_unref(p);
}

static void close_output(ra_proc *p, int s)
{
	if (p->out_fd[s] < 0)
		return;
	ev_io_stop(loop, &p->out_watch[s]);
	close(p->out_fd[s]);
	p->out_fd[s] = -1;
	p->out_nomem[s] = false; /* nothing left to read: the retry must not start a watcher on a closed fd */
}

/* ---- output ---- */

/* One read into the ring, within the space the readers' hold leaves. Returns >0 bytes, 0 at EOF (or the
 * PTY's EIO once the terminal is gone), -EAGAIN when empty, -ENOBUFS when the hold leaves no space. */
static ssize_t read_some(ra_proc *p, int s)
{
	size_t space = ra_outbuf_space(&p->out[s], p->hold[s]);
	if (space == 0)
		return -ENOBUFS;
	size_t want = space < RA_READ_CHUNK ? space : RA_READ_CHUNK;
	size_t tail_left = s == RA_STREAM_STDOUT ? p->tail_len - p->tail_off : 0;
	if (tail_left && want > tail_left)
		want = tail_left;
	uint8_t *into;
	size_t room = ra_outbuf_reserve(&p->out[s], want, &into);
	if (room == 0)
		return -ENOMEM;
	if (tail_left) { /* what the terminal held at the exit, before anything read since */
		memcpy(into, p->tail + p->tail_off, room);
		ra_outbuf_commit(&p->out[s], room);
		if ((p->tail_off += room) == p->tail_len) {
			free(p->tail);
			p->tail = NULL;
			p->tail_len = p->tail_off = 0;
		}
		return (ssize_t)room;
	}
	ssize_t n = read(p->out_fd[s], into, room); /* straight into the ring: no copy */
	if (n > 0) {
		ra_outbuf_commit(&p->out[s], (size_t)n);
		return n;
	}
	if (n == 0 || errno == EIO)
		return 0;
	return errno == EINTR ? -EINTR : -EAGAIN;
}

/* Out of memory for the ring: reading waits (a watcher left on would spin on the readable fd) and is tried
 * again every NOMEM_RETRY_S. */
#define NOMEM_RETRY_S 0.1
static ev_timer nomem_timer;

static void on_nomem_timer(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l, (void)w, (void)revents;
	for (ra_proc *p = table_head; p; p = p->next)
		for (int s = 0; s < RA_STREAM_COUNT; s++)
			if (p->out_nomem[s] && p->out_fd[s] >= 0) {
				p->out_nomem[s] = false;
				ev_io_start(loop, &p->out_watch[s]);
				ev_feed_event(loop, &p->out_watch[s], EV_READ);
			}
}

static void pause_for_memory(ra_proc *p, int s)
{
	ev_io_stop(loop, &p->out_watch[s]);
	p->out_nomem[s] = true;
	if (!ev_is_active(&nomem_timer)) {
		ev_timer_set(&nomem_timer, NOMEM_RETRY_S, 0.);
		ev_timer_start(loop, &nomem_timer);
	}
}

static void pump_stream(ra_proc *p, int s, unsigned max_reads)
{
	bool got = false;
	for (unsigned i = 0; i < max_reads && p->out_fd[s] >= 0; i++) {
		ssize_t n = read_some(p, s);
		if (n > 0 || n == -EINTR) {
			got |= n > 0;
			continue;
		}
		if (n == 0)
			close_output(p, s);
		else if (n == -ENOBUFS)
			ev_io_stop(loop, &p->out_watch[s]); /* resumed by ra_proc_set_hold */
		else if (n == -ENOMEM)
			pause_for_memory(p, s);
		break;
	}
	ra_proc_ref(p);
	if (got && hooks.on_output)
		hooks.on_output(p, hooks.ctx);
	maybe_done(p);
	ra_proc_unref(p);
}

static void on_output_readable(struct ev_loop *l, ev_io *w, int revents)
{
	(void)l;
	(void)revents;
	ra_proc *p = w->data;
	pump_stream(p, w == &p->out_watch[RA_STREAM_STDOUT] ? RA_STREAM_STDOUT : RA_STREAM_STDERR, 4);
}

void ra_proc_set_hold(ra_proc *p, ra_stream s, uint64_t hold)
{
	p->hold[s] = hold;
	if (p->out_fd[s] < 0 || ev_is_active(&p->out_watch[s]) || p->out_nomem[s] || !ra_outbuf_space(&p->out[s], hold))
		return;
	ev_io_start(loop, &p->out_watch[s]);
	if (s == RA_STREAM_STDOUT && p->tail) /* those bytes need no readable fd */
		ev_feed_event(loop, &p->out_watch[s], EV_READ);
}

/* ---- stdin ---- */

static void flush_stdin(ra_proc *p)
{
	while (p->in_off < p->in_len) {
		ssize_t n = write(p->in_fd, p->in_buf + p->in_off, p->in_len - p->in_off);
		if (n > 0) {
			p->in_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ev_io_start(loop, &p->in_watch);
			return;
		}
		close_stdin(p); /* EPIPE: the process closed its stdin; what is queued is dropped */
		return;
	}
	p->in_len = p->in_off = 0;
	ev_io_stop(loop, &p->in_watch);
	if (!p->in_close_pending)
		return;
	if (p->pty) { /* a terminal has no EOF of its own: send its EOF character */
		static const char eof = 4;
		ssize_t w = write(p->in_fd, &eof, 1);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) { /* the terminal's input is full: again later */
			ev_io_start(loop, &p->in_watch);
			return;
		}
		p->in_close_pending = false;
		return;
	}
	close_stdin(p);
}

static void on_stdin_writable(struct ev_loop *l, ev_io *w, int revents)
{
	(void)l;
	(void)revents;
	flush_stdin(w->data);
}

/* Queues stdin bytes; `cap` bounds what may wait unread (the initial stdin of exec is not bounded: it is
 * already in memory as part of its request). */
static int enqueue_stdin(ra_proc *p, const void *data, size_t len, size_t cap)
{
	if (p->in_fd < 0 || p->in_close_pending)
		return -EPIPE;
	if (p->in_off > 0 && p->in_off == p->in_len)
		p->in_len = p->in_off = 0;
	if (len > cap - (p->in_len - p->in_off) || (p->in_len - p->in_off) > cap)
		return -ENOBUFS;
	if (p->in_off > 0) { /* compact before growing */
		memmove(p->in_buf, p->in_buf + p->in_off, p->in_len - p->in_off);
		p->in_len -= p->in_off;
		p->in_off = 0;
	}
	uint8_t *grown = realloc(p->in_buf, p->in_len + len);
	if (!grown && p->in_len + len)
		return -ENOMEM;
	p->in_buf = grown;
	memcpy(p->in_buf + p->in_len, data, len);
	p->in_len += len;
	flush_stdin(p);
	return 0;
}

int ra_proc_write_stdin(ra_proc *p, const void *data, size_t len)
{
	return enqueue_stdin(p, data, len, config.stdin_queue_cap);
}

int ra_proc_close_stdin(ra_proc *p)
{
	if (p->in_fd < 0 || p->in_close_pending)
		return -EPIPE;
	p->in_close_pending = true;
	flush_stdin(p);
	return 0;
}

/* ---- signals, timeouts ---- */

int ra_proc_signal(ra_proc *p, int sig, bool group, ra_end_reason why)
{
	if (p->state != RA_PROC_RUNNING && p->group_gone)
		return -ESRCH;
	if (p->state == RA_PROC_RUNNING ? kill(group ? -p->pid : p->pid, sig) : kill(-p->pid, sig))
		return -errno;
	if (why != RA_END_NONE && p->end_reason == RA_END_NONE && (sig == SIGKILL || sig == SIGTERM ||
								   sig == SIGINT || sig == SIGHUP))
		p->end_reason = why;
	return 0;
}

static void on_kill_timer(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)revents;
	ra_proc *p = w->data;
	/* The leader may be gone while its group lives on (a backgrounded child): the group is what dies. */
	if (p->state == RA_PROC_RUNNING || !p->group_gone)
		kill(-p->pid, SIGKILL);
	ra_proc_unref(p);
}

void ra_proc_terminate(ra_proc *p, ra_end_reason why)
{
	ra_proc_signal(p, SIGTERM, true, why);
	if (ev_is_active(&p->kill_timer))
		return;
	ra_proc_ref(p); /* held until the timer fires */
	ev_timer_set(&p->kill_timer, config.kill_grace_ms / 1000.0, 0);
	ev_timer_start(loop, &p->kill_timer);
}

static void on_timeout(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)revents;
	ra_proc_terminate(w->data, RA_END_TIMEOUT);
}

int ra_proc_resize(ra_proc *p, unsigned short cols, unsigned short rows)
{
	if (!p->pty)
		return -ENOTTY;
	if (p->in_fd < 0)
		return -EPIPE;
	struct winsize ws = {.ws_row = rows, .ws_col = cols};
	return ioctl(p->in_fd, TIOCSWINSZ, &ws) ? -errno : 0;
}

/* ---- the reaper ---- */

static void record_exit(ra_proc *p, int status, const struct rusage *ru)
{
	ra_proc_exit *e = &p->exit;
	if (WIFSIGNALED(status)) {
		e->signal = WTERMSIG(status);
		e->exit_code = 128 + e->signal;
		e->core_dumped = WCOREDUMP(status);
	} else {
		e->exit_code = WEXITSTATUS(status);
	}
	e->reason = p->end_reason != RA_END_NONE ? p->end_reason : RA_END_EXITED;
	e->started_unix_ms = p->started_unix_ms;
	e->duration_ms = (uint64_t)((mono_now() - p->started_mono) * 1000.0);
	e->cpu_user_ms = (uint64_t)ru->ru_utime.tv_sec * 1000 + (uint64_t)ru->ru_utime.tv_usec / 1000;
	e->cpu_sys_ms = (uint64_t)ru->ru_stime.tv_sec * 1000 + (uint64_t)ru->ru_stime.tv_usec / 1000;
	e->max_rss_kb = (uint64_t)ru->ru_maxrss;
}

/* A terminal's unread output is more than FIONREAD tells (only the line discipline's buffer, not the
 * kernel's buffers behind it), so at the leader's exit it is read whole into a side buffer, whatever the
 * readers' hold; the ring takes it first (read_some). Bounded: a descendant still writing stops it at
 * PTY_TAIL_MAX, and what follows is after the exit anyway. */
#define PTY_TAIL_MAX (1u << 20)

static void drain_pty_tail(ra_proc *p)
{
	int fd = p->out_fd[RA_STREAM_STDOUT];
	size_t cap = p->tail_len;
	while (p->pty && fd >= 0 && p->tail_len - p->tail_off < PTY_TAIL_MAX) {
		if (p->tail_len == cap) {
			uint8_t *g = realloc(p->tail, cap + RA_READ_CHUNK);
			if (!g)
				return;
			p->tail = g;
			cap += RA_READ_CHUNK;
		}
		ssize_t n = read(fd, p->tail + p->tail_len, cap - p->tail_len);
		if (n > 0)
			p->tail_len += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else
			return; /* empty (EAGAIN), or the terminal is gone (EIO): read_some finds that out */
	}
}

/* Everything the leader wrote before it exited is in the ring, the terminal's side buffer, or still in the
 * pipe: the exit is placed after all, and announced at once, even when a slow reader keeps the rest waiting. */
static void set_exit_offsets(ra_proc *p)
{
	for (int s = 0; s < RA_STREAM_COUNT; s++) {
		int pending = 0;
		if (p->out_fd[s] >= 0 && ioctl(p->out_fd[s], FIONREAD, &pending))
			pending = 0;
		size_t tail = s == RA_STREAM_STDOUT ? p->tail_len - p->tail_off : 0;
		p->exit_offset[s] = p->out[s].total + tail + (uint64_t)(pending > 0 ? pending : 0);
	}
}

static void proc_reaped(ra_proc *p, int status, const struct rusage *ru)
{
	ra_proc_ref(p); /* the hooks below may finish it */
	stop_timers(p);
	record_exit(p, status, ru);
	for (int s = 0; s < RA_STREAM_COUNT; s++)
		if (p->out_fd[s] >= 0)
			pump_stream(p, s, 16);
	drain_pty_tail(p);
	if (p->tail && ev_is_active(&p->out_watch[RA_STREAM_STDOUT])) /* its bytes need no readable fd */
		ev_feed_event(loop, &p->out_watch[RA_STREAM_STDOUT], EV_READ);
	set_exit_offsets(p);
	p->state = RA_PROC_EXITED;
	announce_exit(p);
	ra_proc_unref(p);
}

static bool discard_expected(pid_t pid)
{
	for (int i = 0; i < DISCARD_SLOTS; i++) {
		if (discard_pids[i] == pid) {
			discard_pids[i] = 0;
			return true;
		}
	}
	return false;
}

/* A group's last member to end is, in a sandbox, almost always a process the agent reaps (a descendant
 * whose parent went first was re-parented to it): looked at after each batch of reaping, a group is found
 * empty before the kernel hands its id to a new process. A spawn that gets an id still in the table
 * settles it too (mark_reused_pid). */
static void note_groups_gone(void)
{
	for (ra_proc *p = table_head; p; p = p->next)
		if (p->state != RA_PROC_RUNNING && !p->group_gone && kill(-p->pid, 0) && errno == ESRCH)
			p->group_gone = true;
}

static void mark_reused_pid(pid_t pid)
{
	for (ra_proc *p = table_head; p; p = p->next)
		if (p->pid == pid)
			p->group_gone = true;
}

static void on_sigchld(struct ev_loop *l, ev_signal *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	for (;;) { /* SIGCHLD coalesces: reap until nothing is left */
		int status;
		struct rusage ru;
		pid_t pid = wait4(-1, &status, WNOHANG, &ru);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0) {
			note_groups_gone();
			return;
		}
		ra_proc *p = find_running_pid(pid);
		if (p)
			proc_reaped(p, status, &ru);
		else if (!discard_expected(pid))
			orphans_reaped++;
	}
}

/* ---- spawning ---- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

typedef struct {
	int in_r, in_w, out_r, out_w, err_r, err_w, exec_r, exec_w, pty_master;
} spawn_fds;

static void spawn_fds_close(spawn_fds *f)
{
	int *all[] = {&f->in_r, &f->in_w, &f->out_r, &f->out_w, &f->err_r, &f->err_w, &f->exec_r, &f->exec_w,
		      &f->pty_master};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		close_fd(all[i]);
}

static int open_pty(spawn_fds *f, const ra_spawn_opts *o)
{
	f->pty_master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (f->pty_master < 0 || grantpt(f->pty_master) || unlockpt(f->pty_master))
		return -errno;
	char name[128];
	if (ptsname_r(f->pty_master, name, sizeof(name)))
		return -errno;
	int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return -errno;
	struct winsize ws = {.ws_row = o->rows ? o->rows : 24, .ws_col = o->cols ? o->cols : 80};
	ioctl(slave, TIOCSWINSZ, &ws);
	f->in_r = slave;
	f->out_w = dup(slave);
	f->err_w = fcntl(slave, F_DUPFD_CLOEXEC, 0);
	f->out_r = f->pty_master;
	f->pty_master = -1;
	f->in_w = fcntl(f->out_r, F_DUPFD_CLOEXEC, 0); /* stdin writes go to the master too */
	if (f->out_w >= 0)
		fcntl(f->out_w, F_SETFD, FD_CLOEXEC);
	return f->out_w < 0 || f->err_w < 0 || f->in_w < 0 ? -errno : 0;
}

static int open_pipes(spawn_fds *f, const ra_spawn_opts *o)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	f->out_r = p[0], f->out_w = p[1];
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	f->err_r = p[0], f->err_w = p[1];
	if (o->stdin_stream || o->stdin_len) {
		if (pipe2(p, O_CLOEXEC))
			return -errno;
		f->in_r = p[0], f->in_w = p[1];
	} else {
		/* no stdin: EOF at once, so that tools that wait on an open stdin do not hang */
		f->in_r = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (f->in_r < 0)
			return -errno;
	}
	return 0;
}

static int valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > RA_PROC_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_' || c == '.' || c == ':'))
			return 0;
	}
	return 1;
}

static void generate_id(char *dst)
{
	do
		snprintf(dst, RA_PROC_ID_MAX + 1, "p%lu", next_generated_id++);
	while (ra_proc_find(dst));
}

static void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static ra_proc *proc_new(const ra_spawn_opts *o, const char *cwd, pid_t pid, spawn_fds *f)
{
	ra_proc *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->command = spawn_describe(o);
	p->cwd = strdup(cwd);
	if (!p->command || !p->cwd) {
		free(p->command);
		free(p->cwd);
		free(p);
		return NULL;
	}
	if (o->id)
		snprintf(p->id, sizeof(p->id), "%s", o->id);
	else
		generate_id(p->id);
	p->pid = pid;
	p->pty = o->pty;
	p->started_unix_ms = unix_ms_now();
	p->started_mono = mono_now();
	int fds[RA_STREAM_COUNT] = {f->out_r, f->err_r};
	for (int s = 0; s < RA_STREAM_COUNT; s++) {
		ra_outbuf_init(&p->out[s], config.output_cap);
		p->hold[s] = RA_OUTBUF_NO_HOLD;
		p->out_fd[s] = fds[s];
		ev_io_init(&p->out_watch[s], on_output_readable, fds[s] >= 0 ? fds[s] : 0, EV_READ);
		p->out_watch[s].data = p;
	}
	f->out_r = f->err_r = -1;
	p->in_fd = f->in_w;
	f->in_w = -1;
	ev_io_init(&p->in_watch, on_stdin_writable, p->in_fd >= 0 ? p->in_fd : 0, EV_WRITE);
	p->in_watch.data = p;
	ev_timer_init(&p->timeout_timer, on_timeout, 0, 0);
	p->timeout_timer.data = p;
	ev_timer_init(&p->kill_timer, on_kill_timer, 0, 0);
	p->kill_timer.data = p;
	return p;
}

static void proc_start_io(ra_proc *p, const ra_spawn_opts *o)
{
	for (int s = 0; s < RA_STREAM_COUNT; s++) {
		if (p->out_fd[s] < 0)
			continue;
		nonblock(p->out_fd[s]);
		ev_io_start(loop, &p->out_watch[s]);
	}
	if (p->in_fd >= 0) {
		nonblock(p->in_fd);
		if (o->stdin_len)
			enqueue_stdin(p, o->stdin_data, o->stdin_len, SIZE_MAX);
		/* Nobody can type into it: EOF (on a terminal, its EOF character), so that readers do not hang. */
		if (!o->stdin_stream)
			ra_proc_close_stdin(p);
	}
	if (o->timeout_ms) {
		ev_timer_set(&p->timeout_timer, (double)o->timeout_ms / 1000.0, 0);
		ev_timer_start(loop, &p->timeout_timer);
	}
}

static void remember_discard(pid_t pid)
{
	for (int i = 0; i < DISCARD_SLOTS; i++) {
		if (discard_pids[i] == 0) {
			discard_pids[i] = pid;
			return;
		}
	}
}

/* Reads the child's report: EOF means exec succeeded (the pipe closed on exec). */
static int wait_exec_result(int fd, ra_spawn_failure *failure)
{
	int report[2];
	ssize_t n;
	do
		n = read(fd, report, sizeof(report));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(report)) {
		failure->step = (spawn_step)report[0];
		failure->err = report[1];
		return RA_SPAWN_ERR_STEP;
	}
	return 0;
}

/* The child shares the agent's memory until it execs (CLONE_VM | CLONE_VFORK, as posix_spawn does), on a
 * stack of its own: fork() would copy the page tables of an agent that may hold tens of MiB of output and
 * events, and the agent would then take a fault on each page it writes (spawning and awaiting `true` here:
 * 1.9 ms with fork at 64 MiB RSS, 0.74 ms this way). The agent is suspended until the exec, which it waits
 * for anyway (wait_exec_result). Every signal stays blocked meanwhile, so that no handler of the agent runs
 * in the child on shared memory; the child resets them all before unblocking. spawn_child_exec writes
 * nothing of the agent's but errno. Under AddressSanitizer, fork: ASan does not know the child's stack and
 * would print warnings into the child's stderr. */
#if defined(__SANITIZE_ADDRESS__)
#define SPAWN_WITH_FORK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPAWN_WITH_FORK 1
#endif
#endif

#ifndef SPAWN_WITH_FORK
#define CHILD_STACK_BYTES (64u << 10)
static uint8_t child_stack[CHILD_STACK_BYTES] __attribute__((aligned(16)));

static int child_main(void *plan)
{
	spawn_child_exec(plan);
	return 127;
}
#endif

static pid_t start_child(const spawn_plan *plan)
{
#ifdef SPAWN_WITH_FORK
	pid_t pid = fork();
	if (pid == 0)
		spawn_child_exec(plan);
	return pid;
#else
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = clone(child_main, child_stack + sizeof(child_stack), CLONE_VM | CLONE_VFORK | SIGCHLD,
			  (void *)plan);
	int err = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	errno = err;
	return pid;
#endif
}

static int spawn_checks(const ra_spawn_opts *o, ra_proc **out)
{
	if (o->id && !valid_id(o->id))
		return -EINVAL;
	if (o->id && (*out = ra_proc_find(o->id)))
		return -EEXIST;
	if (live_count >= config.max_live)
		return -EAGAIN;
	if (!o->shell_command && (!o->argv || !o->argv[0]))
		return -EINVAL;
	return 0;
}

static int step_failed(ra_spawn_failure *failure, spawn_step step, int neg_errno)
{
	failure->step = step;
	failure->err = -neg_errno;
	return RA_SPAWN_ERR_STEP;
}

int ra_proc_spawn(const ra_spawn_opts *o, ra_proc **out, ra_spawn_failure *failure)
{
	*out = NULL;
	int rc = spawn_checks(o, out);
	if (rc)
		return rc;
	spawn_plan plan = {0};
	spawn_fds f = {-1, -1, -1, -1, -1, -1, -1, -1, -1};
	rc = spawn_plan_prepare(&plan, o, config.default_cwd);
	if (rc < 0 && rc != -ENOMEM && rc != RA_SPAWN_ERR_USER) /* all else it checks is the cwd */
		rc = step_failed(failure, SPAWN_STEP_CWD, rc);
	int ep[2];
	if (!rc && (rc = o->pty ? open_pty(&f, o) : open_pipes(&f, o)) == 0 && pipe2(ep, O_CLOEXEC))
		rc = -errno;
	if (rc < 0 && rc != RA_SPAWN_ERR_USER && rc != RA_SPAWN_ERR_STEP && rc != -ENOMEM)
		rc = step_failed(failure, SPAWN_STEP_SETUP, rc);
	if (rc)
		goto out;
	f.exec_r = ep[0], f.exec_w = ep[1];
	plan.stdin_fd = f.in_r, plan.stdout_fd = f.out_w, plan.stderr_fd = f.err_w;
	plan.pty = o->pty;
	plan.exec_err_fd = f.exec_w;
	plan.nofile = config.child_nofile;

	pid_t pid = start_child(&plan);
	if (pid < 0) {
		rc = step_failed(failure, SPAWN_STEP_FORK, -errno);
		goto out;
	}
	/* parent: the child's ends must close here, or EOF never comes */
	close_fd(&f.in_r);
	close_fd(&f.out_w);
	close_fd(&f.err_w);
	close_fd(&f.exec_w);
	rc = wait_exec_result(f.exec_r, failure);
	if (rc) {
		remember_discard(pid);
		goto out;
	}
	mark_reused_pid(pid); /* an older entry's group is gone: the kernel gave its id out again */
	ra_proc *p = proc_new(o, plan.cwd, pid, &f);
	if (!p) { /* the child runs without us; kill it rather than leave it unsupervised */
		kill(-pid, SIGKILL);
		remember_discard(pid);
		rc = -ENOMEM;
		goto out;
	}
	table_insert(p); /* before returning to the loop: the reaper will find it */
	proc_start_io(p, o);
	*out = p;
out:
	spawn_fds_close(&f);
	spawn_plan_free(&plan);
	return rc;
}

/* ---- module ---- */

void ra_procmgr_init(struct ev_loop *l, const ra_procmgr_config *cfg, const ra_proc_hooks *h)
{
	loop = l;
	config = *cfg;
	hooks = *h;
	ev_init(&nomem_timer, on_nomem_timer);
	ev_signal_init(&sigchld_watcher, on_sigchld, SIGCHLD);
	ev_signal_start(loop, &sigchld_watcher);
	ev_unref(loop); /* the reaper alone must not keep the loop running */
}

void ra_procmgr_shutdown(void)
{
	for (ra_proc *p = table_head; p; p = p->next)
		if (p->state != RA_PROC_DONE)
			kill(-p->pid, SIGKILL);
	while (table_head) {
		ra_proc *p = table_head;
		for (int s = 0; s < RA_STREAM_COUNT; s++) {
			if (p->out_fd[s] >= 0) {
				ev_io_stop(loop, &p->out_watch[s]);
				close(p->out_fd[s]);
			}
		}
		close_stdin(p);
		ev_timer_stop(loop, &p->timeout_timer);
		ev_timer_stop(loop, &p->kill_timer);
		table_remove(p);
		proc_free(p);
	}
	ev_timer_stop(loop, &nomem_timer);
	ev_ref(loop);
	ev_signal_stop(loop, &sigchld_watcher);
}

/* ---- signal names ---- */

static const struct {
	int sig;
	const char *name;
} signal_names[] = {
	{SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},   {SIGILL, "SIGILL"},
	{SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},     {SIGFPE, "SIGFPE"},
	{SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"},   {SIGUSR2, "SIGUSR2"},
	{SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},   {SIGCHLD, "SIGCHLD"},
	{SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"},   {SIGTTIN, "SIGTTIN"},
	{SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"},   {SIGXCPU, "SIGXCPU"},   {SIGXFSZ, "SIGXFSZ"},
	{SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGWINCH, "SIGWINCH"}, {SIGIO, "SIGIO"},
	{SIGPWR, "SIGPWR"},   {SIGSYS, "SIGSYS"},
};

const char *ra_signal_name(int sig)
{
	for (size_t i = 0; i < sizeof(signal_names) / sizeof(signal_names[0]); i++)
		if (signal_names[i].sig == sig)
			return signal_names[i].name;
	return NULL;
}

int ra_signal_from_name(const char *name, size_t len)
{
	if (len > 0 && len <= 2 && name[0] >= '0' && name[0] <= '9') {
		int n = 0;
		for (size_t i = 0; i < len; i++) {
			if (name[i] < '0' || name[i] > '9')
				return 0;
			n = n * 10 + (name[i] - '0');
		}
		return ra_signal_name(n) ? n : 0;
	}
	if (len > 3 && strncmp(name, "SIG", 3) == 0) {
		name += 3;
		len -= 3;
	}
	for (size_t i = 0; i < sizeof(signal_names) / sizeof(signal_names[0]); i++) {
		const char *full = signal_names[i].name + 3;
		if (strlen(full) == len && strncmp(full, name, len) == 0)
			return signal_names[i].sig;
	}
	return 0;
}
