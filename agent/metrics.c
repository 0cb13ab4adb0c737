#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "../procmgr/procmgr.h"
#include "events.h"
#include "log.h"

typedef struct {
	int64_t mono_ms;
	uint64_t cpu_us;      /* CPU time used so far */
	uint64_t mem_used;    /* bytes */
	uint64_t mem_limit;   /* bytes (the machine's memory when the cgroup sets none) */
	const char *source;   /* "cgroup2", "cgroup1", "proc" */
	uint64_t disk_total, disk_free;
	uint64_t rx, tx;
	unsigned processes;
	uint64_t agent_rss;
	unsigned agent_fds;
} sample;

static ra_agent *agent;
static char cg2[512], cg1_mem[512], cg1_cpu[512]; /* cgroup directories, "" if none */
static sample last_op, cost_start;
static ev_timer metrics_timer, cost_timer;
static uint64_t metrics_every_ms, cost_every_ms;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- reading ---- */

static int read_text(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static bool read_u64(const char *dir, const char *file, uint64_t *out)
{
	char path[600], buf[64];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (!dir[0] || read_text(path, buf, sizeof(buf)))
		return false;
	if (strncmp(buf, "max", 3) == 0) {
		*out = UINT64_MAX;
		return true;
	}
	return sscanf(buf, "%" SCNu64, out) == 1;
}

/* "key value" lines (cpu.stat, /proc/meminfo): the value of key, or false. */
static bool read_keyed(const char *path, const char *key, uint64_t *out)
{
	char buf[4096];
	if (read_text(path, buf, sizeof(buf)))
		return false;
	size_t n = strlen(key);
	for (char *line = buf; line && *line;) {
		if (strncmp(line, key, n) == 0 && (line[n] == ' ' || line[n] == ':'))
			return sscanf(line + n + 1, " %" SCNu64, out) == 1;
		char *end = strchr(line, '\n');
		line = end ? end + 1 : NULL;
	}
	return false;
}

/* A controller's directory: mount/path, or the mount itself when the agent sees a namespaced root. */
static void find_dir(char *dst, size_t cap, const char *mount, const char *path, const char *probe)
{
	char file[1100];
	snprintf(dst, cap, "%s%s", mount, strcmp(path, "/") ? path : "");
	snprintf(file, sizeof(file), "%s/%s", dst, probe);
	if (access(file, R_OK) == 0)
		return;
	snprintf(dst, cap, "%s", mount);
	snprintf(file, sizeof(file), "%s/%s", dst, probe);
	if (access(file, R_OK) != 0)
		dst[0] = '\0';
}

static void find_cgroups(void)
{
	char buf[4096];
	if (read_text("/proc/self/cgroup", buf, sizeof(buf)))
		return;
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *controllers = c1 + 1, *path = c2 + 1;
		if (strcmp(line, "0") == 0 && !controllers[0])
			find_dir(cg2, sizeof(cg2), "/sys/fs/cgroup", path, "memory.current");
		else if (strstr(controllers, "memory"))
			find_dir(cg1_mem, sizeof(cg1_mem), "/sys/fs/cgroup/memory", path, "memory.usage_in_bytes");
		else if (strstr(controllers, "cpuacct"))
			find_dir(cg1_cpu, sizeof(cg1_cpu), "/sys/fs/cgroup/cpuacct", path, "cpuacct.usage");
	}
}

/* The whole machine's busy CPU time, from /proc/stat (USER_HZ ticks). */
static uint64_t proc_cpu_us(void)
{
	char buf[512];
	unsigned long long v[8] = {0};
	if (read_text("/proc/stat", buf, sizeof(buf)) ||
	    sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
		   &v[7]) < 4)
		return 0;
	unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]; /* not idle, not iowait */
	long hz = sysconf(_SC_CLK_TCK);
	return busy * 1000000ull / (unsigned long long)(hz > 0 ? hz : 100);
}

static void read_cpu_and_memory(sample *s)
{
	uint64_t mem_total = 0, mem_avail = 0, v;
	read_keyed("/proc/meminfo", "MemTotal", &mem_total);
	read_keyed("/proc/meminfo", "MemAvailable", &mem_avail);
	mem_total *= 1024;
	mem_avail *= 1024;
	char stat[600];
	snprintf(stat, sizeof(stat), "%s/cpu.stat", cg2);
	if (cg2[0] && read_u64(cg2, "memory.current", &s->mem_used) && read_keyed(stat, "usage_usec", &s->cpu_us)) {
		s->source = "cgroup2";
		s->mem_limit = read_u64(cg2, "memory.max", &v) && v < mem_total ? v : mem_total;
		return;
	}
	if (cg1_mem[0] && read_u64(cg1_mem, "memory.usage_in_bytes", &s->mem_used)) {
		s->source = "cgroup1";
		s->mem_limit = read_u64(cg1_mem, "memory.limit_in_bytes", &v) && v < mem_total ? v : mem_total;
		s->cpu_us = read_u64(cg1_cpu, "cpuacct.usage", &v) ? v / 1000 : proc_cpu_us();
		return;
	}
	s->source = "proc";
	s->mem_used = mem_total - mem_avail;
	s->mem_limit = mem_total;
	s->cpu_us = proc_cpu_us();
}

/* Bytes received and sent on every interface but loopback. */
static void read_network(sample *s)
{
	FILE *f = fopen("/proc/net/dev", "re");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		char name[64];
		unsigned long long rx, tx;
		if (sscanf(line, " %63[^:]: %llu %*u %*u %*u %*u %*u %*u %*u %llu", name, &rx, &tx) == 3 &&
		    strcmp(name, "lo") != 0) {
			s->rx += rx;
			s->tx += tx;
		}
	}
	fclose(f);
}

static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;
	if (!d)
		return 0;
	for (struct dirent *de; (de = readdir(d));)
		n += de->d_name[0] != '.';
	closedir(d);
	return n > 0 ? n - 1 : 0; /* not the one opendir holds */
}

static void take_sample(sample *s)
{
	memset(s, 0, sizeof(*s));
	s->mono_ms = mono_ms();
	read_cpu_and_memory(s);
	struct statvfs vfs;
	if (statvfs(agent->config->workdir, &vfs) == 0) {
		s->disk_total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
		s->disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	}
	read_network(s);
	s->processes = (unsigned)ra_procmgr_count_descendants();
	char statm[128];
	unsigned long pages_total, pages_rss;
	if (!read_text("/proc/self/statm", statm, sizeof(statm)) && sscanf(statm, "%lu %lu", &pages_total, &pages_rss) == 2)
		s->agent_rss = (uint64_t)pages_rss * (uint64_t)sysconf(_SC_PAGESIZE);
	s->agent_fds = count_fds();
}

/* ---- encoding ---- */

static double cpu_percent(const sample *now, const sample *before)
{
	int64_t wall = now->mono_ms - before->mono_ms;
	if (!before->mono_ms || wall <= 0 || now->cpu_us < before->cpu_us)
		return 0;
	return (double)(now->cpu_us - before->cpu_us) / 10.0 / (double)wall; /* 100% = one core */
}

static void enc_metrics(ra_enc *e, const sample *s, const sample *before)
{
	ra_enc_str(e, "cpu");
	ra_enc_map(e, 3);
	ra_enc_str(e, "usageMs");
	ra_enc_u64(e, s->cpu_us / 1000);
	ra_enc_str(e, "percent");
	ra_enc_u64(e, (uint64_t)(cpu_percent(s, before) + 0.5));
	ra_enc_str(e, "cores");
	ra_enc_u64(e, (uint64_t)sysconf(_SC_NPROCESSORS_ONLN));
	ra_enc_str(e, "memory");
	ra_enc_map(e, 3);
	ra_enc_str(e, "usedBytes");
	ra_enc_u64(e, s->mem_used);
	ra_enc_str(e, "limitBytes");
	ra_enc_u64(e, s->mem_limit);
	ra_enc_str(e, "source");
	ra_enc_str(e, s->source);
	ra_enc_str(e, "disk");
	ra_enc_map(e, 4);
	ra_enc_str(e, "path");
	ra_enc_str(e, agent->config->workdir);
	ra_enc_str(e, "totalBytes");
	ra_enc_u64(e, s->disk_total);
	ra_enc_str(e, "usedBytes");
	ra_enc_u64(e, s->disk_total - s->disk_free);
	ra_enc_str(e, "freeBytes");
	ra_enc_u64(e, s->disk_free);
	ra_enc_str(e, "network");
	ra_enc_map(e, 2);
	ra_enc_str(e, "rxBytes");
	ra_enc_u64(e, s->rx);
	ra_enc_str(e, "txBytes");
	ra_enc_u64(e, s->tx);
	ra_enc_str(e, "processes");
	ra_enc_u64(e, s->processes);
	ra_enc_str(e, "agent");
	ra_enc_map(e, 3);
	ra_enc_str(e, "rssBytes");
	ra_enc_u64(e, s->agent_rss);
	ra_enc_str(e, "fds");
	ra_enc_u64(e, s->agent_fds);
	ra_enc_str(e, "uptimeMs");
	ra_enc_u64(e, ra_agent_uptime_ms(agent));
}
#define METRICS_FIELDS 6

ra_err ra_op_metrics(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why)
{
	(void)s, (void)why;
	sample now;
	take_sample(&now);
	ra_enc_reply_begin(reply, req->id, METRICS_FIELDS);
	enc_metrics(reply, &now, &last_op);
	last_op = now;
	return RA_OK;
}

/* ---- periodic events ---- */

typedef struct {
	const sample *now, *before;
} sample_pair;

static void fill_metrics(ra_enc *e, const void *ctx)
{
	const sample_pair *p = ctx;
	enc_metrics(e, p->now, p->before);
}

static void on_metrics_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop, (void)t, (void)revents;
	static sample before;
	sample now;
	take_sample(&now);
	sample_pair p = {&now, &before};
	ra_event_meta m = {.name = "metrics"};
	ra_events_emit(&m, METRICS_FIELDS, fill_metrics, &p);
	before = now;
}

static void enc_rate(ra_enc *e, const char *key, double amount, double rate)
{
	ra_enc_str(e, key);
	ra_enc_f64(e, amount * rate);
}

static void fill_cost(ra_enc *e, const void *ctx)
{
	const sample_pair *p = ctx;
	const ra_config *c = agent->config;
	double seconds = (double)(p->now->mono_ms - p->before->mono_ms) / 1000.0;
	double cpu_s = p->now->cpu_us >= p->before->cpu_us ? (double)(p->now->cpu_us - p->before->cpu_us) / 1e6 : 0;
	double mib_s = ((double)p->now->mem_used + (double)p->before->mem_used) / 2.0 / (1 << 20) * seconds;
	ra_enc_str(e, "intervalMs");
	ra_enc_i64(e, p->now->mono_ms - p->before->mono_ms);
	ra_enc_str(e, "runtimeMs");
	ra_enc_u64(e, ra_agent_uptime_ms(agent));
	ra_enc_str(e, "cpuSeconds");
	ra_enc_f64(e, cpu_s);
	ra_enc_str(e, "memoryMiBSeconds");
	ra_enc_f64(e, mib_s);
	ra_enc_str(e, "cost");
	if (!c->cost_rates_set) {
		ra_enc_nil(e);
		return;
	}
	ra_enc_map(e, 4);
	enc_rate(e, "cpu", cpu_s, c->cost_cpu_second);
	enc_rate(e, "memory", mib_s, c->cost_mib_second);
	enc_rate(e, "runtime", seconds, c->cost_runtime_second);
	ra_enc_str(e, "total");
	ra_enc_f64(e, cpu_s * c->cost_cpu_second + mib_s * c->cost_mib_second + seconds * c->cost_runtime_second);
}

static void emit_cost(void)
{
	sample now;
	take_sample(&now);
	sample_pair p = {&now, &cost_start};
	ra_event_meta m = {.name = "cost.runtime"};
	ra_events_emit(&m, 5, fill_cost, &p);
	cost_start = now;
}

static void on_cost_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop, (void)t, (void)revents;
	emit_cost();
}

static void arm(ev_timer *t, uint64_t every_ms)
{
	ev_timer_stop(agent->loop, t);
	if (!every_ms)
		return;
	ev_timer_set(t, (double)every_ms / 1000.0, (double)every_ms / 1000.0);
	ev_timer_start(agent->loop, t);
}

void ra_metrics_set_intervals(uint64_t metrics_ms, uint64_t cost_ms)
{
	if (metrics_ms != UINT64_MAX) {
		metrics_every_ms = metrics_ms;
		arm(&metrics_timer, metrics_ms);
	}
	if (cost_ms != UINT64_MAX) {
		if (ev_is_active(&cost_timer))
			emit_cost(); /* the interval so far, so that no usage goes unbilled */
		else
			take_sample(&cost_start);
		cost_every_ms = cost_ms;
		arm(&cost_timer, cost_ms);
	}
}

void ra_metrics_flush(void)
{
	if (ev_is_active(&cost_timer))
		emit_cost();
	/* the last of both: nothing may follow sandbox.terminated while the connections close */
	ev_timer_stop(agent->loop, &cost_timer);
	ev_timer_stop(agent->loop, &metrics_timer);
}

void ra_metrics_intervals(uint64_t *metrics_ms, uint64_t *cost_ms)
{
	*metrics_ms = metrics_every_ms;
	*cost_ms = cost_every_ms;
}

void ra_metrics_init(ra_agent *a)
{
	agent = a;
	find_cgroups();
	ev_init(&metrics_timer, on_metrics_timer);
	ev_init(&cost_timer, on_cost_timer);
	ra_metrics_set_intervals(a->config->metrics_interval_ms, a->config->cost_interval_ms);
}

void ra_metrics_shutdown(void)
{
	ev_timer_stop(agent->loop, &metrics_timer);
	ev_timer_stop(agent->loop, &cost_timer);
}
