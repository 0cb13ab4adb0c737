#include "ports.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../procmgr/procmgr.h"
#include "../proto/ra_limits.h"
#include "events.h"
#include "log.h"
#include "portscan.h"

#define ADDRS_MAX 4
#define ADDR_LEN 48
#define COMMAND_LEN 256

typedef struct {
	uint16_t port;
	bool listening, exposed, seen;
	int64_t opened_at, exposed_at;
	pid_t pid;
	char command[COMMAND_LEN];
	unsigned naddr;
	char addr[ADDRS_MAX][ADDR_LEN];
} port_entry;

typedef struct waiter {
	struct waiter *next;
	ra_session *s;
	uint64_t req_id;
	uint16_t port;
	ev_timer deadline;
} waiter;

static ra_agent *agent;
static port_entry *ports;
static size_t nports, cap_ports;
static ra_listener *scan_buf;
static waiter *waiters;
static ev_timer scan_timer;
static bool scanning;

/* ---- the table ---- */

static port_entry *find_port(uint16_t port)
{
	for (size_t i = 0; i < nports; i++)
		if (ports[i].port == port)
			return &ports[i];
	return NULL;
}

static port_entry *add_port(uint16_t port)
{
	if (nports == cap_ports) {
		size_t cap = cap_ports ? cap_ports * 2 : 16;
		port_entry *p = realloc(ports, cap * sizeof(*p));
		if (!p)
			return NULL;
		ports = p;
		cap_ports = cap;
	}
	size_t at = 0;
	while (at < nports && ports[at].port < port)
		at++;
	memmove(&ports[at + 1], &ports[at], (nports - at) * sizeof(*ports));
	nports++;
	memset(&ports[at], 0, sizeof(ports[at]));
	ports[at].port = port;
	return &ports[at];
}

static void drop_port(port_entry *e) { memmove(e, e + 1, (size_t)(&ports[nports] - (e + 1)) * sizeof(*e)), nports--; }

static uint16_t own_port(void)
{
	return agent->config->listen_kind == RA_LISTEN_TCP ? (uint16_t)agent->config->listen_port : 0;
}

/* ---- encoding ---- */

static const char *sandbox_id(void)
{
	for (unsigned i = 0; i < agent->config->sandbox_count; i++)
		if (strcmp(agent->config->sandbox[i].key, "id") == 0)
			return agent->config->sandbox[i].value;
	return "";
}

/* The template with {port} and {sandbox} replaced; false without a template. */
static bool format_url(uint16_t port, char *url, size_t cap)
{
	const char *t = agent->config->port_url_template;
	if (!t[0])
		return false;
	char num[8];
	snprintf(num, sizeof(num), "%u", port);
	size_t n = 0;
	while (*t && n + 1 < cap) {
		const char *sub = NULL;
		if (strncmp(t, "{port}", 6) == 0)
			sub = num, t += 6;
		else if (strncmp(t, "{sandbox}", 9) == 0)
			sub = sandbox_id(), t += 9;
		if (!sub) {
			url[n++] = *t++;
			continue;
		}
		size_t len = strlen(sub);
		if (n + len >= cap)
			break;
		memcpy(url + n, sub, len);
		n += len;
	}
	url[n] = '\0';
	return true;
}

static void enc_url(ra_enc *e, uint16_t port)
{
	char url[1024];
	if (format_url(port, url, sizeof(url)))
		ra_enc_str(e, url);
	else
		ra_enc_nil(e);
}

static void enc_addrs(ra_enc *e, const port_entry *p)
{
	ra_enc_array(e, p->naddr);
	for (unsigned i = 0; i < p->naddr; i++)
		ra_enc_str(e, p->addr[i]);
}

static void enc_owner(ra_enc *e, const port_entry *p)
{
	ra_enc_str(e, "pid");
	if (p->pid)
		ra_enc_i64(e, p->pid);
	else
		ra_enc_nil(e);
	ra_enc_str(e, "command");
	if (p->command[0])
		ra_enc_str(e, p->command);
	else
		ra_enc_nil(e);
}

/* port, addresses, pid, command, exposed, url: 6 pairs, shared by the port map and port.opened. */
static void enc_port_fields(ra_enc *e, const port_entry *p)
{
	ra_enc_str(e, "port");
	ra_enc_u64(e, p->port);
	ra_enc_str(e, "addresses");
	enc_addrs(e, p);
	enc_owner(e, p);
	ra_enc_str(e, "exposed");
	ra_enc_bool(e, p->exposed);
	ra_enc_str(e, "url");
	enc_url(e, p->port);
}

/* {port, addresses, pid, command, exposed, url, listening, exposedAt}. */
static void enc_port(ra_enc *e, const port_entry *p)
{
	ra_enc_map(e, 8);
	enc_port_fields(e, p);
	ra_enc_str(e, "listening");
	ra_enc_bool(e, p->listening);
	ra_enc_str(e, "exposedAt");
	if (p->exposed)
		ra_enc_i64(e, p->exposed_at);
	else
		ra_enc_nil(e);
}

/* ---- events ---- */

static void fill_opened(ra_enc *e, const void *ctx) { enc_port_fields(e, ctx); }

typedef struct {
	const port_entry *p;
	const char *reason;
} closed_ctx;

static void fill_closed(ra_enc *e, const void *ctx)
{
	const closed_ctx *c = ctx;
	ra_enc_str(e, "port");
	ra_enc_u64(e, c->p->port);
	ra_enc_str(e, "reason");
	ra_enc_str(e, c->reason);
	ra_enc_str(e, "listening");
	ra_enc_bool(e, c->p->listening);
	ra_enc_str(e, "exposed");
	ra_enc_bool(e, c->p->exposed);
}

static void fill_exposed(ra_enc *e, const void *ctx)
{
	const port_entry *p = ctx;
	ra_enc_str(e, "port");
	ra_enc_u64(e, p->port);
	ra_enc_str(e, "url");
	enc_url(e, p->port);
	ra_enc_str(e, "listening");
	ra_enc_bool(e, p->listening);
	ra_enc_str(e, "addresses");
	enc_addrs(e, p);
}

static void emit_opened(const port_entry *p)
{
	ra_event_meta m = {.name = "port.opened"};
	ra_events_emit(&m, 6, fill_opened, p);
}

static void emit_closed(const port_entry *p, const char *reason)
{
	ra_event_meta m = {.name = "port.closed"};
	closed_ctx c = {p, reason};
	ra_events_emit(&m, 4, fill_closed, &c);
}

static void emit_exposed(const port_entry *p)
{
	ra_event_meta m = {.name = "port.exposed"};
	ra_events_emit(&m, 4, fill_exposed, p);
}

/* ---- waiting for a listener ---- */

static void reply_port(ra_session *s, uint64_t id, const port_entry *p)
{
	ra_enc e;
	ra_session_enc_init(s, &e);
	ra_enc_reply_begin(&e, id, 1);
	ra_enc_str(&e, "port");
	enc_port(&e, p);
	ra_session_send(s, &e);
}

static void waiter_free(waiter *w)
{
	for (waiter **pp = &waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	ev_timer_stop(agent->loop, &w->deadline);
	free(w);
}

/* Answers the waiter with the port as it is now (listening or not). */
static void waiter_answer(waiter *w)
{
	port_entry *p = find_port(w->port);
	port_entry unknown = {.port = w->port};
	reply_port(w->s, w->req_id, p ? p : &unknown);
	waiter_free(w);
}

static unsigned count_waiters(const ra_session *s)
{
	unsigned n = 0;
	for (const waiter *w = waiters; w; w = w->next)
		n += w->s == s;
	return n;
}

static void on_wait_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop, (void)revents;
	waiter_answer((waiter *)((char *)t - offsetof(waiter, deadline)));
}

static void answer_listening_waiters(void)
{
	for (waiter *w = waiters, *next; w; w = next) {
		next = w->next;
		port_entry *p = find_port(w->port);
		if (p && p->listening)
			waiter_answer(w);
	}
}

/* ---- scanning ---- */

/* Owners are looked for among the agent's descendants only (in a sandbox, every process): a host with
 * thousands of processes must not stall the loop. New listeners of a scan are looked up together, in one
 * walk through the descendants' fds with one budget: a scan costs the loop the same however many appear. */
static struct {
	pid_t pids[4096];
	ra_owner_query query[RA_PORTS_SCAN_MAX];
	size_t nquery;
} owners;

static void note_listener(const ra_listener *l)
{
	if (l->port == own_port())
		return;
	port_entry *p = find_port(l->port);
	if (!p && !(p = add_port(l->port)))
		return;
	if (!p->seen) { /* the first socket of this port in this scan */
		p->seen = true;
		p->naddr = 0;
		if (!p->listening && owners.nquery < RA_PORTS_SCAN_MAX)
			owners.query[owners.nquery++] = (ra_owner_query){.inode = l->inode, .port = l->port};
	}
	if (p->naddr < ADDRS_MAX)
		ra_listener_addr(l, p->addr[p->naddr++], ADDR_LEN);
}

static void note_owners(void)
{
	if (!owners.nquery)
		return;
	size_t n = ra_procmgr_descendants(owners.pids, sizeof(owners.pids) / sizeof(owners.pids[0]));
	ra_socket_owners(owners.query, owners.nquery, owners.pids, n);
	for (size_t i = 0; i < owners.nquery; i++) {
		port_entry *p = find_port(owners.query[i].port);
		if (!p)
			continue;
		p->pid = owners.query[i].pid;
		p->command[0] = '\0';
		if (p->pid)
			ra_process_cmdline(p->pid, p->command, sizeof(p->command));
	}
	owners.nquery = 0;
}

static void scan_now(void)
{
	static int last_err; /* said once, not every 100 ms */
	int n = ra_portscan(scan_buf, RA_PORTS_SCAN_MAX);
	if (n < 0) { /* what was known stays so: no port.closed for listeners that could not be seen */
		if (n != last_err)
			ra_log(RA_LOG_WARN, "ports.scan", "cannot list listening sockets: %s", strerror(-n));
		last_err = n;
		return;
	}
	last_err = 0;
	for (size_t i = 0; i < nports; i++)
		ports[i].seen = false;
	owners.nquery = 0;
	for (int i = 0; i < n; i++)
		note_listener(&scan_buf[i]);
	note_owners();
	for (size_t i = 0; i < nports;) {
		port_entry *p = &ports[i];
		if (p->seen && !p->listening) {
			p->listening = true;
			p->opened_at = ra_unix_ms();
			emit_opened(p);
		} else if (!p->seen && p->listening) {
			p->listening = false;
			p->naddr = 0;
			emit_closed(p, "listener");
			p->pid = 0;
			p->command[0] = '\0';
		}
		if (!p->listening && !p->exposed)
			drop_port(p);
		else
			i++;
	}
	answer_listening_waiters();
}

static void on_scan_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	scan_now();
	if (!waiters && !ra_procmgr_has_children()) {
		ev_timer_stop(loop, t); /* nothing can open a listener now; ra_ports_kick restarts */
		scanning = false;
	}
}

void ra_ports_kick(void)
{
	if (scanning || !scan_buf)
		return;
	scanning = true;
	ev_timer_again(agent->loop, &scan_timer);
}

/* ---- ops ---- */

static ra_err port_arg(const ra_request *req, uint16_t *port, ra_why *why)
{
	uint64_t v = 0;
	ra_err rc = ra_arg_u64_range(req, "port", true, 1, 65535, &v, why);
	if (rc)
		return rc;
	*port = (uint16_t)v;
	return RA_OK;
}

ra_err ra_op_port_expose(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	uint16_t port;
	uint64_t wait_ms = 0;
	ra_err rc;
	if ((rc = port_arg(req, &port, why)) || (rc = ra_arg_u64(req, "waitMs", false, RA_PORT_WAIT_MAX_MS, &wait_ms, why)))
		return rc;
	if (port == own_port())
		return ra_fail(why, RA_ERR_PERMISSION_DENIED, "port %u is the agent's own", port);
	scan_now();
	port_entry *p = find_port(port);
	if (!p && !(p = add_port(port)))
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	if (!p->exposed) {
		p->exposed = true;
		p->exposed_at = ra_unix_ms();
		ra_log(RA_LOG_INFO, "port.exposed", "port %u exposed (%s)", port, p->listening ? "listening" : "not listening yet");
		emit_exposed(p);
	}
	if (p->listening || !wait_ms) {
		ra_enc_reply_begin(reply, req->id, 1);
		ra_enc_str(reply, "port");
		enc_port(reply, p);
		return RA_OK;
	}
	if (count_waiters(s) >= RA_PORT_WAITERS_PER_CONNECTION)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED,
			       "%u port.expose requests already wait on this connection: wait for their replies",
			       RA_PORT_WAITERS_PER_CONNECTION);
	waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return ra_fail(why, RA_ERR_RESOURCE_EXHAUSTED, "out of memory");
	*w = (waiter){.next = waiters, .s = s, .req_id = req->id, .port = port};
	waiters = w;
	ev_timer_init(&w->deadline, on_wait_deadline, (double)wait_ms / 1000.0, 0.);
	ev_timer_start(agent->loop, &w->deadline);
	ra_ports_kick();
	return RA_REPLY_LATER;
}

ra_err ra_op_port_list(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s, (void)why;
	scan_now();
	ra_enc_reply_begin(reply, req->id, 1);
	ra_enc_str(reply, "ports");
	ra_enc_array(reply, (uint32_t)nports);
	for (size_t i = 0; i < nports; i++)
		enc_port(reply, &ports[i]);
	return RA_OK;
}

ra_err ra_op_port_close(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s;
	uint16_t port;
	ra_err rc = port_arg(req, &port, why);
	if (rc)
		return rc;
	port_entry *p = find_port(port);
	if (!p || !p->exposed)
		return ra_fail(why, RA_ERR_NOT_FOUND, "port %u is not exposed", port);
	p->exposed = false;
	emit_closed(p, "unexposed");
	ra_enc_reply_begin(reply, req->id, 1);
	ra_enc_str(reply, "port");
	enc_port(reply, p);
	if (!p->listening)
		drop_port(p);
	return RA_OK;
}

unsigned ra_ports_unexpose_all(void)
{
	unsigned n = 0;
	for (size_t i = 0; i < nports;) {
		port_entry *p = &ports[i];
		if (p->exposed) {
			p->exposed = false;
			emit_closed(p, "unexposed");
			n++;
		}
		if (!p->listening)
			drop_port(p);
		else
			i++;
	}
	return n;
}

/* ---- lifecycle ---- */

void ra_ports_session_closed(ra_session *s)
{
	for (waiter *w = waiters, *next; w; w = next) {
		next = w->next;
		if (w->s == s)
			waiter_free(w);
	}
}

void ra_ports_init(ra_agent *a)
{
	agent = a;
	scan_buf = malloc(RA_PORTS_SCAN_MAX * sizeof(*scan_buf));
	if (!scan_buf) {
		ra_log(RA_LOG_ERROR, "ports.init", "no memory for the port scan: ports are not watched");
		return;
	}
	double every = a->config->port_scan_ms / 1000.0;
	ev_init(&scan_timer, on_scan_timer);
	scan_timer.repeat = every;
	/* The first scan comes one interval after the start, not before the agent is ready: what listens
	 * already (in a container, something started before the agent) is announced then. */
	ra_ports_kick();
}

void ra_ports_shutdown(void)
{
	while (waiters)
		waiter_free(waiters);
	if (agent)
		ev_timer_stop(agent->loop, &scan_timer);
	scanning = false;
	free(scan_buf);
	scan_buf = NULL;
	free(ports);
	ports = NULL;
	nports = cap_ports = 0;
}
