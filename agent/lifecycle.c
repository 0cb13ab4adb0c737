#include "lifecycle.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#include "../fsops/fsops.h"
#include "../procmgr/procmgr.h"
#include "../proto/ra_limits.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "pid1.h"
#include "ports.h"
#include "tunnel.h"

#define REAP_CHECK_S 0.02        /* how often a grace period looks whether everything exited */
#define REAP_WAIT_S 1.0          /* after SIGKILL, how long the exits may take to be reaped */
#define CLOCK_JUMP_MS 2000       /* a jump this big between the clocks means the sandbox was paused */

static ra_agent *agent;
static void (*stop_serving)(void);

/* ---- clocks ---- */

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- killing everything, with a grace period (shared by shutdown and reset) ---- */

typedef struct {
	ev_timer deadline, check;
	unsigned signalled, killed; /* processes sent SIGTERM, and SIGKILL after the grace */
	bool killing;
	void (*done)(void);
} sweep;

/* Every descendant of the agent that outlives its parent is re-parented to it (PID 1 or subreaper), so no
 * child at all (reaped or not) means no descendant: one waitid, not a walk of /proc every 20 ms. */
static bool nothing_left(void) { return !ra_procmgr_has_children(); }

static void sweep_end(sweep *w)
{
	ev_timer_stop(agent->loop, &w->deadline);
	ev_timer_stop(agent->loop, &w->check);
	w->done();
}

/* The grace is over: SIGKILL to what is left, then a short wait for the reaper, so that the exits are
 * announced (exec.completed) before whatever the sweep was for. */
static void sweep_kill(sweep *w)
{
	w->killing = true;
	w->killed = ra_procmgr_signal_all(SIGKILL);
	if (!w->killed) {
		sweep_end(w);
		return;
	}
	ev_timer_stop(agent->loop, &w->deadline);
	ev_timer_set(&w->deadline, REAP_WAIT_S, 0.);
	ev_timer_start(agent->loop, &w->deadline);
}

static void on_sweep_check(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop, (void)revents;
	sweep *w = (sweep *)((char *)t - offsetof(sweep, check));
	if (nothing_left())
		sweep_end(w);
}

static void on_sweep_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop, (void)revents;
	sweep *w = (sweep *)((char *)t - offsetof(sweep, deadline));
	if (w->killing)
		sweep_end(w); /* something will not die (a process in D state): go on without it */
	else
		sweep_kill(w);
}

/* SIGTERM to every process now, SIGKILL to what is left after grace_ms; done() once they are gone. */
static void sweep_start(sweep *w, uint32_t grace_ms, void (*done)(void))
{
	w->done = done;
	w->killing = false;
	w->killed = 0;
	w->signalled = ra_procmgr_signal_all(SIGTERM);
	if (!w->signalled && nothing_left()) {
		done(); /* nothing runs: no grace to wait for */
		return;
	}
	ev_timer_init(&w->deadline, on_sweep_deadline, grace_ms / 1000.0, 0.);
	ev_timer_init(&w->check, on_sweep_check, REAP_CHECK_S, REAP_CHECK_S);
	ev_timer_start(agent->loop, &w->deadline);
	ev_timer_start(agent->loop, &w->check);
}

/* ---- shutdown ---- */

static struct {
	sweep sweep;
	const char *reason;
	uint32_t grace_ms;
} shutdown_state;

static void fill_terminated(ra_enc *e, const void *ctx)
{
	(void)ctx;
	ra_enc_str(e, "reason");
	ra_enc_str(e, shutdown_state.reason);
	ra_enc_str(e, "graceMs");
	ra_enc_u64(e, shutdown_state.grace_ms);
	ra_enc_str(e, "signalled");
	ra_enc_u64(e, shutdown_state.sweep.signalled);
	ra_enc_str(e, "killed");
	ra_enc_u64(e, shutdown_state.sweep.killed);
	ra_enc_str(e, "uptimeMs");
	ra_enc_u64(e, ra_agent_uptime_ms(agent));
}

static void shutdown_swept(void)
{
	int64_t t0 = clock_ms(CLOCK_MONOTONIC);
	sync();
	ra_metrics_flush(); /* the last, partial, cost interval */
	ra_log(RA_LOG_INFO, "agent.shutdown", "processes ended (%u sent SIGTERM, %u SIGKILL), synced in %lld ms",
	       shutdown_state.sweep.signalled, shutdown_state.sweep.killed, (long long)(clock_ms(CLOCK_MONOTONIC) - t0));
	ra_event_meta m = {.name = "sandbox.terminated"};
	ra_events_emit(&m, 5, fill_terminated, NULL);
	stop_serving(); /* connections close once their queues are out, then the loop ends */
}

static void reset_cancel(const char *why);

void ra_lifecycle_begin_shutdown(const char *reason, uint32_t grace_ms)
{
	if (agent->shutting_down)
		return;
	reset_cancel("the agent is shutting down: the reset did not finish"); /* its sweep would race this one */
	agent->shutting_down = true;
	shutdown_state.reason = reason;
	shutdown_state.grace_ms = grace_ms;
	ra_log(RA_LOG_INFO, "agent.shutdown", "shutting down (%s): SIGTERM to every process, SIGKILL after %u ms", reason,
	       grace_ms);
	sweep_start(&shutdown_state.sweep, grace_ms, shutdown_swept);
}

/* After the loop: PID 1 of a VM may power it off, as configured. */
static void maybe_power_off(void)
{
	if (!agent->config->poweroff || !ra_pid1_is_init() || getpid() != 1)
		return;
	ra_log(RA_LOG_INFO, "agent.poweroff", "powering the machine off (--poweroff-on-exit)");
	sync();
	if (reboot(RB_POWER_OFF)) /* returns only on failure; in a PID namespace the kernel ends it instead */
		ra_log(RA_LOG_ERROR, "agent.poweroff", "reboot(RB_POWER_OFF) failed: %s; exiting instead", strerror(errno));
}

ra_err ra_op_shutdown(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	uint64_t grace = agent->config->shutdown_grace_ms;
	ra_err rc = ra_arg_u64(req, "graceMs", false, RA_SHUTDOWN_GRACE_MS_MAX, &grace, why);
	if (rc)
		return rc;
	ra_enc_reply_begin(reply, req->id, 1);
	ra_enc_str(reply, "graceMs");
	ra_enc_u64(reply, grace);
	ra_session_send(s, reply); /* the reply before anything it causes */
	ra_lifecycle_begin_shutdown("request", (uint32_t)grace);
	return RA_REPLY_LATER;
}

/* ---- pause and resume ---- */

static struct {
	int64_t real_minus_mono, boot_minus_mono;
	int64_t pause_prepared_at; /* wall clock of the last pause.prepare; 0 if none since a resume */
	uint64_t resumes;          /* sandbox.resumed events so far */
	uint64_t resumes_before_message; /* resumes when the message being dispatched arrived */
	int64_t last_paused_ms;
} clocks;

static void fill_resumed(ra_enc *e, const void *ctx)
{
	const int64_t *paused = ctx;
	ra_enc_str(e, "pausedMs");
	ra_enc_i64(e, paused[0]);
	ra_enc_str(e, "detectedBy");
	ra_enc_str(e, paused[1] ? "request" : "clock");
}

static void emit_resumed(int64_t paused_ms, bool by_request)
{
	int64_t ctx[2] = {paused_ms, by_request};
	ra_log(RA_LOG_INFO, "sandbox.resumed", "resumed after %lld ms (%s)", (long long)paused_ms,
	       by_request ? "request" : "clock jump");
	ra_event_meta m = {.name = "sandbox.resumed"};
	ra_events_emit(&m, 2, fill_resumed, ctx);
	clocks.pause_prepared_at = 0;
	clocks.resumes++;
	clocks.last_paused_ms = paused_ms;
}

/* A VM that was paused (or a host that slept) comes back with its wall clock, or its boot-time clock,
 * ahead of the monotonic one by the time it was away. */
static void check_clock_jump(void)
{
	int64_t mono = clock_ms(CLOCK_MONOTONIC);
	int64_t real = clock_ms(CLOCK_REALTIME) - mono, boot = clock_ms(CLOCK_BOOTTIME) - mono;
	int64_t jump = real - clocks.real_minus_mono;
	if (boot - clocks.boot_minus_mono > jump)
		jump = boot - clocks.boot_minus_mono;
	clocks.real_minus_mono = real;
	clocks.boot_minus_mono = boot;
	if (jump > CLOCK_JUMP_MS)
		emit_resumed(jump, false);
}

ra_err ra_op_pause_prepare(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s, (void)why;
	int64_t t0 = clock_ms(CLOCK_MONOTONIC);
	sync(); /* what is written reaches the disk before the VM is frozen */
	int64_t took = clock_ms(CLOCK_MONOTONIC) - t0;
	clocks.pause_prepared_at = ra_unix_ms();
	ra_log(RA_LOG_INFO, "sandbox.pause", "ready to be paused (sync took %lld ms)", (long long)took);
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "syncMs");
	ra_enc_i64(reply, took);
	ra_enc_str(reply, "preparedAt");
	ra_enc_i64(reply, clocks.pause_prepared_at);
	return RA_OK;
}

ra_err ra_op_resume(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s, (void)why;
	/* A jump seen when this request arrived (ra_lifecycle_message), or now, is this same pause: one event */
	uint64_t before = clocks.resumes_before_message;
	check_clock_jump();
	if (clocks.resumes == before && clocks.pause_prepared_at)
		emit_resumed(ra_unix_ms() - clocks.pause_prepared_at, true);
	ra_enc_reply_begin(reply, req->id, 2);
	ra_enc_str(reply, "pausedMs");
	if (clocks.resumes != before)
		ra_enc_i64(reply, clocks.last_paused_ms);
	else
		ra_enc_nil(reply); /* no pause.prepare and no clock jump: nothing known */
	ra_enc_str(reply, "resumedAt");
	ra_enc_i64(reply, ra_unix_ms());
	return RA_OK;
}

/* ---- reset ---- */

static struct {
	sweep sweep;
	bool busy;
	ra_session *s; /* NULL once its connection closed */
	uint64_t req_id;
	char *keep[RA_RESET_KEEP_MAX];
	unsigned nkeep;
	int64_t started_mono;
	unsigned removed, processes_forgotten;
	ra_enc removed_list; /* array items, at most RA_RESET_LIST_MAX */
} reset;

static void note_removed(const char *path, void *ctx)
{
	(void)ctx;
	if (reset.removed++ < RA_RESET_LIST_MAX)
		ra_enc_str(&reset.removed_list, path);
}

static void reset_free_keep(void)
{
	for (unsigned i = 0; i < reset.nkeep; i++)
		free(reset.keep[i]);
	reset.nkeep = 0;
}

static void fill_reset(ra_enc *e, const void *ctx)
{
	const unsigned *n = ctx;
	ra_enc_str(e, "signalled");
	ra_enc_u64(e, reset.sweep.signalled);
	ra_enc_str(e, "killed");
	ra_enc_u64(e, reset.sweep.killed);
	ra_enc_str(e, "removed");
	ra_enc_u64(e, reset.removed);
	ra_enc_str(e, "unexposed");
	ra_enc_u64(e, n[0]);
	ra_enc_str(e, "tunnelsClosed");
	ra_enc_u64(e, n[1]);
}

static void reset_reply(int clear_err, const unsigned counts[2])
{
	if (!reset.s)
		return;
	ra_enc e;
	ra_session_enc_init(reset.s, &e);
	ra_enc_reply_begin(&e, reset.req_id, 9);
	fill_reset(&e, counts);
	ra_enc_str(&e, "removedPaths");
	ra_enc_array(&e, reset.removed < RA_RESET_LIST_MAX ? reset.removed : RA_RESET_LIST_MAX);
	ra_buf_append(&e.buf, ra_buf_payload(&reset.removed_list.buf), reset.removed_list.buf.len);
	ra_enc_str(&e, "processesForgotten");
	ra_enc_u64(&e, reset.processes_forgotten);
	ra_enc_str(&e, "durationMs");
	ra_enc_i64(&e, clock_ms(CLOCK_MONOTONIC) - reset.started_mono);
	ra_enc_str(&e, "error"); /* the workdir could not be emptied entirely: why */
	if (clear_err) {
		ra_enc_map(&e, 2);
		ra_enc_str(&e, "code");
		ra_enc_str(&e, ra_err_name(ra_err_from_errno(-clear_err)));
		ra_enc_str(&e, "message");
		ra_enc_str(&e, strerror(-clear_err));
	} else {
		ra_enc_nil(&e);
	}
	ra_session_send(reset.s, &e);
}

/* Processes are gone: the rest is immediate. */
static void reset_swept(void)
{
	unsigned counts[2] = {ra_ports_unexpose_all(), ra_tunnel_close_all()};
	ra_enc_init(&reset.removed_list, 0, RA_SESSION_OUT_QUEUE_CAP);
	reset.removed = 0;
	int rc = ra_fs_clear_dir(agent->config->workdir, (const char *const *)reset.keep, reset.nkeep, note_removed, NULL);
	if (rc)
		ra_log(RA_LOG_WARN, "sandbox.reset", "the workdir was not emptied entirely: %s", strerror(-rc));
	reset.processes_forgotten = ra_procmgr_forget_done();
	ra_log(RA_LOG_INFO, "sandbox.reset", "reset: %u processes signalled (%u killed), %u paths removed, %u exposures, "
	       "%u tunnels closed", reset.sweep.signalled, reset.sweep.killed, reset.removed, counts[0], counts[1]);
	ra_event_meta m = {.name = "sandbox.reset"};
	ra_events_emit(&m, 5, fill_reset, counts);
	reset_reply(rc, counts);
	ra_enc_free(&reset.removed_list);
	reset_free_keep();
	reset.busy = false;
}

static void reset_cancel(const char *why)
{
	if (!reset.busy)
		return;
	ev_timer_stop(agent->loop, &reset.sweep.deadline);
	ev_timer_stop(agent->loop, &reset.sweep.check);
	if (reset.s)
		ra_session_send_error(reset.s, true, reset.req_id, RA_ERR_UNAVAILABLE, why);
	reset_free_keep();
	reset.busy = false;
}

static ra_err read_keep(const ra_request *req, ra_why *why)
{
	const msgpack_object *o = ra_map_get(req->map, "keepPaths");
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return RA_OK;
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > RA_RESET_KEEP_MAX)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "keepPaths must be an array of at most %u paths", RA_RESET_KEEP_MAX);
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *p = &o->via.array.ptr[i];
		char path[RA_FS_PATH_MAX];
		if (p->type != MSGPACK_OBJECT_STR ||
		    ra_fs_resolve(agent->config->workdir, p->via.str.ptr, p->via.str.size, path, sizeof(path)))
			return ra_fail(why, RA_ERR_INVALID_CONFIG, "keepPaths[%u] must be a path", i);
		if (!(reset.keep[reset.nkeep] = strdup(path)))
			return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
		reset.nkeep++;
	}
	return RA_OK;
}

ra_err ra_op_sandbox_reset(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)reply;
	if (reset.busy)
		return ra_fail(why, RA_ERR_RATE_LIMITED, "a reset is already running");
	uint64_t grace = RA_RESET_GRACE_MS_DEFAULT;
	ra_err rc = ra_arg_u64(req, "graceMs", false, RA_SHUTDOWN_GRACE_MS_MAX, &grace, why);
	if (!rc)
		rc = read_keep(req, why);
	if (rc) {
		reset_free_keep();
		return rc;
	}
	reset.busy = true;
	reset.s = s;
	reset.req_id = req->id;
	reset.started_mono = clock_ms(CLOCK_MONOTONIC);
	ra_log(RA_LOG_INFO, "sandbox.reset", "reset requested (grace %llu ms, %u paths kept)", (unsigned long long)grace,
	       reset.nkeep);
	sweep_start(&reset.sweep, (uint32_t)grace, reset_swept);
	return RA_REPLY_LATER;
}

/* ---- idle and timeout ---- */

static struct {
	uint64_t timeout_ms, idle_ms;
	int64_t deadline_mono; /* 0: no hard timeout */
	double last_activity;  /* ev_now */
	bool idle_reported;
	ev_timer idle_timer, deadline_timer;
} limits;

static void fill_idle(ra_enc *e, const void *ctx)
{
	(void)ctx;
	ra_enc_str(e, "idleMs");
	ra_enc_u64(e, limits.idle_ms);
	ra_enc_str(e, "lastActivityAt");
	ra_enc_i64(e, ra_unix_ms() - (int64_t)((ev_now(agent->loop) - limits.last_activity) * 1000));
}

static void arm_idle(void)
{
	ev_timer_stop(agent->loop, &limits.idle_timer);
	if (!limits.idle_ms || limits.idle_reported)
		return;
	double left = limits.last_activity + (double)limits.idle_ms / 1000.0 - ev_now(agent->loop);
	ev_timer_set(&limits.idle_timer, left > 0 ? left : 0., 0.);
	ev_timer_start(agent->loop, &limits.idle_timer);
}

static void on_idle_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t, (void)revents;
	if (ev_now(loop) - limits.last_activity + 1e-3 < (double)limits.idle_ms / 1000.0) {
		arm_idle(); /* something happened since: wait the rest */
		return;
	}
	limits.idle_reported = true;
	ra_log(RA_LOG_INFO, "sandbox.idle", "idle for %llu ms", (unsigned long long)limits.idle_ms);
	ra_event_meta m = {.name = "sandbox.idle"};
	ra_events_emit(&m, 2, fill_idle, NULL);
}

static void fill_timeout(ra_enc *e, const void *ctx)
{
	(void)ctx;
	ra_enc_str(e, "timeoutMs");
	ra_enc_u64(e, limits.timeout_ms);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop, (void)t, (void)revents;
	if (agent->shutting_down)
		return; /* ending already */
	ra_log(RA_LOG_WARN, "sandbox.timeout", "the sandbox's time is up");
	ra_event_meta m = {.name = "sandbox.timeout"};
	ra_events_emit(&m, 1, fill_timeout, NULL);
	ra_lifecycle_begin_shutdown("timeout", agent->config->shutdown_grace_ms);
}

static void arm_deadline(void)
{
	ev_timer_stop(agent->loop, &limits.deadline_timer);
	if (!limits.deadline_mono)
		return;
	int64_t left = limits.deadline_mono - clock_ms(CLOCK_MONOTONIC);
	ev_timer_set(&limits.deadline_timer, left > 0 ? (double)left / 1000.0 : 0., 0.);
	ev_timer_start(agent->loop, &limits.deadline_timer);
}

static void set_timeout(uint64_t timeout_ms)
{
	limits.timeout_ms = timeout_ms;
	limits.deadline_mono = timeout_ms ? clock_ms(CLOCK_MONOTONIC) + (int64_t)timeout_ms : 0;
	arm_deadline();
}

static void enc_limits(ra_enc *e, const ra_request *req)
{
	uint64_t metrics_ms, cost_ms;
	ra_metrics_intervals(&metrics_ms, &cost_ms);
	ra_enc_reply_begin(e, req->id, 5);
	ra_enc_str(e, "metricsIntervalMs");
	ra_enc_u64(e, metrics_ms);
	ra_enc_str(e, "costIntervalMs");
	ra_enc_u64(e, cost_ms);
	ra_enc_str(e, "timeoutMs");
	ra_enc_u64(e, limits.timeout_ms);
	ra_enc_str(e, "idleTimeoutMs");
	ra_enc_u64(e, limits.idle_ms);
	ra_enc_str(e, "deadline");
	if (limits.deadline_mono)
		ra_enc_i64(e, ra_unix_ms() + limits.deadline_mono - clock_ms(CLOCK_MONOTONIC));
	else
		ra_enc_nil(e);
}

ra_err ra_op_lifecycle_configure(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	uint64_t timeout = UINT64_MAX, idle = UINT64_MAX, metrics_ms = UINT64_MAX, cost_ms = UINT64_MAX;
	ra_err rc;
	if ((rc = ra_arg_u64(req, "timeoutMs", false, RA_LIFETIME_MS_MAX, &timeout, why)) ||
	    (rc = ra_arg_u64(req, "idleTimeoutMs", false, RA_LIFETIME_MS_MAX, &idle, why)) ||
	    (rc = ra_arg_u64(req, "metricsIntervalMs", false, RA_LIFETIME_MS_MAX, &metrics_ms, why)) ||
	    (rc = ra_arg_u64(req, "costIntervalMs", false, RA_LIFETIME_MS_MAX, &cost_ms, why)))
		return rc;
	if ((metrics_ms && metrics_ms < RA_METRICS_INTERVAL_MS_MIN) || (cost_ms && cost_ms < RA_METRICS_INTERVAL_MS_MIN))
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "metricsIntervalMs and costIntervalMs are 0 (off) or at least %u",
			       RA_METRICS_INTERVAL_MS_MIN);
	ra_metrics_set_intervals(metrics_ms, cost_ms);
	if (timeout != UINT64_MAX)
		set_timeout(timeout); /* from now; 0 turns it off */
	if (idle != UINT64_MAX) {
		limits.idle_ms = idle;
		limits.idle_reported = false;
		arm_idle();
	}
	enc_limits(reply, req);
	return RA_OK;
}

ra_err ra_op_timeout_extend(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	uint64_t ms = 0;
	ra_err rc = ra_arg_u64(req, "ms", true, RA_LIFETIME_MS_MAX, &ms, why);
	if (rc)
		return rc;
	if (!limits.deadline_mono)
		return ra_fail(why, RA_ERR_INVALID_CONFIG, "there is no timeout to extend: set one with lifecycle.configure");
	limits.deadline_mono += (int64_t)ms;
	limits.timeout_ms += ms;
	arm_deadline();
	enc_limits(reply, req);
	return RA_OK;
}

void ra_lifecycle_message(void)
{
	clocks.resumes_before_message = clocks.resumes;
	ra_lifecycle_touch();
}

void ra_lifecycle_touch(void)
{
	if (!agent)
		return;
	limits.last_activity = ev_now(agent->loop);
	if (limits.idle_reported) {
		limits.idle_reported = false;
		arm_idle();
	}
	check_clock_jump();
}

/* ---- start and end ---- */

static void fill_started(ra_enc *e, const void *ctx)
{
	(void)ctx;
	ra_enc_str(e, "startedAt");
	ra_enc_i64(e, agent->started_unix_ms);
	ra_enc_str(e, "bootTime");
	ra_enc_i64(e, agent->kernel_boot_unix_ms);
	ra_enc_str(e, "pid1");
	ra_enc_bool(e, ra_pid1_is_init());
	ra_enc_str(e, "version");
	ra_enc_str(e, RA_VERSION);
}

void ra_lifecycle_init(ra_agent *a, void (*stop)(void))
{
	agent = a;
	stop_serving = stop;
	int64_t mono = clock_ms(CLOCK_MONOTONIC);
	clocks.real_minus_mono = clock_ms(CLOCK_REALTIME) - mono;
	clocks.boot_minus_mono = clock_ms(CLOCK_BOOTTIME) - mono;
	ev_init(&limits.idle_timer, on_idle_timer);
	ev_init(&limits.deadline_timer, on_deadline);
	limits.last_activity = ev_now(a->loop);
	limits.idle_ms = a->config->idle_timeout_ms;
	set_timeout(a->config->timeout_ms);
	arm_idle();
	ra_event_meta m = {.name = "sandbox.started"};
	ra_events_emit(&m, 4, fill_started, NULL);
}

void ra_lifecycle_session_closed(ra_session *s)
{
	if (reset.s == s)
		reset.s = NULL;
}

void ra_lifecycle_shutdown(void)
{
	ev_timer_stop(agent->loop, &limits.idle_timer);
	ev_timer_stop(agent->loop, &limits.deadline_timer);
	ev_timer_stop(agent->loop, &shutdown_state.sweep.deadline);
	ev_timer_stop(agent->loop, &shutdown_state.sweep.check);
	ev_timer_stop(agent->loop, &reset.sweep.deadline);
	ev_timer_stop(agent->loop, &reset.sweep.check);
	reset_free_keep();
	maybe_power_off();
}
