#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../proto/ra_limits.h"

extern char **environ;

void ra_config_usage(FILE *out)
{
	fprintf(out,
		"usage: runra-agent [serve] [options]\n"
		"       runra-agent health|ping|info [--url URL] [--token TOKEN] [--json]\n"
		"       runra-agent ps | kill PROC | exec CMD | ls|cat|rm|mkdir PATH | mv FROM TO | cp FROM TO\n"
		"       runra-agent watch [--type PATTERN]... [--path PREFIX]... [--proc ID]... [--since SEQ]\n"
		"       runra-agent ports|metrics [--json]   expose PORT [--wait MS]   unexpose PORT   shutdown [--grace-ms N]\n"
		"       runra-agent forward [--bind ADDR] [LOCALPORT:]PORT [--host HOST]\n"
		"       (each client command takes --url URL --token TOKEN --json; `runra-agent COMMAND --help`)\n"
		"       runra-agent version\n"
		"\n"
		"serve options (flags override the environment variables named in brackets):\n"
		"  --listen ADDR         host:port, :port, unix:/path or vsock:PORT [RUNRA_AGENT_LISTEN]\n"
		"                        default 0.0.0.0:%d (all interfaces)\n"
		"  --token-file PATH     file holding the bearer token; or the token itself in [RUNRA_AGENT_TOKEN]\n"
		"  --insecure-no-auth    accept clients without a token; forces a loopback bind\n"
		"  --workdir DIR         default working directory, created if missing [RUNRA_AGENT_WORKDIR]\n"
		"                        default %s\n"
		"  --log-level LEVEL     debug, info, warn or error [RUNRA_AGENT_LOG_LEVEL], default info\n"
		"  --max-message-bytes N largest accepted message [RUNRA_AGENT_MAX_MESSAGE_BYTES], default %u\n"
		"  --max-connections N   concurrent WebSocket clients [RUNRA_AGENT_MAX_CONNECTIONS], default %u\n"
		"  --max-requests-per-second N  requests a connection may send per second (bursts of up to 2N),\n"
		"                        past which they are answered RATE_LIMITED [RUNRA_AGENT_MAX_REQUESTS_PER_SECOND],\n"
		"                        default no limit\n"
		"  --keepalive-seconds N ping a silent client after N s, drop it after 2N+5 s\n"
		"                        [RUNRA_AGENT_KEEPALIVE_SECONDS], default %u\n"
		"  --max-processes N     processes alive at once [RUNRA_AGENT_MAX_PROCESSES], default %u\n"
		"  --output-buffer-bytes N  output kept per process and stream for reattach\n"
		"                        [RUNRA_AGENT_OUTPUT_BUFFER_BYTES], default %u\n"
		"  --event-ring-events N  events kept for subscribers that reconnect or fall behind\n"
		"                        [RUNRA_AGENT_EVENT_RING_EVENTS], default %u\n"
		"  --event-ring-bytes N  and at most this many bytes of them [RUNRA_AGENT_EVENT_RING_BYTES],\n"
		"                        default %u\n"
		"  --workdir-watch yes|no  watch the workdir for file events from the start\n"
		"                        [RUNRA_AGENT_WORKDIR_WATCH], default yes\n"
		"  --port-scan-ms N      look for new listening TCP ports every N ms while processes run\n"
		"                        [RUNRA_AGENT_PORT_SCAN_MS], default %u\n"
		"  --port-url-template T public URL of an exposed port: {port} and {sandbox} (RUNRA_SANDBOX_ID)\n"
		"                        are replaced [RUNRA_PORT_URL_TEMPLATE], default none\n"
		"  --shutdown-grace-ms N on shutdown, SIGKILL what is left N ms after SIGTERM\n"
		"                        [RUNRA_AGENT_SHUTDOWN_GRACE_MS], default %u\n"
		"  --timeout-ms N        sandbox.timeout, then shutdown, N ms after start [RUNRA_AGENT_TIMEOUT_MS]\n"
		"  --idle-timeout-ms N   sandbox.idle after N ms without activity [RUNRA_AGENT_IDLE_TIMEOUT_MS]\n"
		"  --poweroff-on-exit yes|no  as PID 1, power the machine off after a shutdown\n"
		"                        [RUNRA_AGENT_POWEROFF_ON_EXIT], default no\n"
		"  --metrics-interval-ms N  a metrics event every N ms [RUNRA_AGENT_METRICS_INTERVAL_MS], default off\n"
		"  --cost-interval-ms N  a cost.runtime event every N ms [RUNRA_AGENT_COST_INTERVAL_MS], default off\n"
		"  --cost-rates cpu=R,memory=R,runtime=R  prices per CPU-second, per MiB-second of memory and per\n"
		"                        second of runtime, for cost.runtime [RUNRA_AGENT_COST_RATES]\n"
		"  --default-user USER   run processes as USER unless a request names one, and give USER the\n"
		"                        files and directories the agent creates [RUNRA_AGENT_DEFAULT_USER]\n"
		"  -h, --help            this text\n"
		"\n"
		"RUNRA_SANDBOX_* variables (e.g. RUNRA_SANDBOX_ID) are reported to clients as sandbox metadata.\n"
		"Exit codes: 0 after a graceful shutdown, 1 on a runtime failure, 2 on bad configuration.\n",
		RA_DEFAULT_PORT, RA_DEFAULT_WORKDIR, RA_MAX_MESSAGE_BYTES_DEFAULT, RA_MAX_CONNECTIONS_DEFAULT,
		RA_WS_KEEPALIVE_S_DEFAULT, RA_MAX_PROCESSES_DEFAULT, RA_OUTPUT_BUFFER_BYTES_DEFAULT,
		RA_EVENT_RING_EVENTS_DEFAULT, RA_EVENT_RING_BYTES_DEFAULT, RA_PORT_SCAN_MS_DEFAULT,
		RA_SHUTDOWN_GRACE_MS_DEFAULT);
}

int ra_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int bad(FILE *err, const char *what, const char *value)
{
	fprintf(err, "runra-agent: invalid configuration: %s%s%s%s\n", what, value ? " '" : "", value ? value : "",
		value ? "'" : "");
	return -1;
}

static int copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		return -1;
	memcpy(dst, src, n + 1);
	return 0;
}

static int parse_listen(ra_config *c, const char *addr, FILE *err)
{
	unsigned long port;
	if (strncmp(addr, "unix:", 5) == 0) {
		c->listen_kind = RA_LISTEN_UNIX;
		if (addr[5] != '/' || copy_str(c->listen_path, sizeof(c->listen_path), addr + 5))
			return bad(err, "--listen unix: needs an absolute path shorter than 108 bytes:", addr);
		return 0;
	}
	if (strncmp(addr, "vsock:", 6) == 0) {
		c->listen_kind = RA_LISTEN_VSOCK;
		if (ra_parse_uint(addr + 6, 1, UINT32_MAX - 1, &port))
			return bad(err, "--listen vsock: needs a port number:", addr);
		c->listen_port = (unsigned)port;
		return 0;
	}
	const char *colon = strrchr(addr, ':');
	if (!colon || ra_parse_uint(colon + 1, 1, 65535, &port))
		return bad(err, "--listen needs host:port, unix:/path or vsock:PORT, got", addr);
	size_t hlen = (size_t)(colon - addr);
	if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') { /* [::1]:port */
		addr++;
		hlen -= 2;
	}
	if (hlen >= sizeof(c->listen_host))
		return bad(err, "--listen host is too long:", addr);
	c->listen_kind = RA_LISTEN_TCP;
	memcpy(c->listen_host, addr, hlen);
	c->listen_host[hlen] = '\0';
	if (strcmp(c->listen_host, "*") == 0 || strcmp(c->listen_host, "0.0.0.0") == 0)
		c->listen_host[0] = '\0';
	c->listen_port = (unsigned)port;
	return 0;
}

static int read_token_file(ra_config *c, const char *path, FILE *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bad(err, "--token-file cannot be opened:", path);
	char buf[RA_MAX_TOKEN + 2];
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return bad(err, "--token-file cannot be read:", path);
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		n--;
	if ((size_t)n > RA_MAX_TOKEN)
		return bad(err, "the token is longer than 1024 bytes in", path);
	memcpy(c->token, buf, (size_t)n);
	c->token[n] = '\0';
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* unsetenv() alone leaves the original bytes on the stack, where /proc/<pid>/environ still shows them. */
static void scrub_env(const char *name)
{
	size_t nlen = strlen(name);
	char *original = NULL;
	for (char **e = environ; e && *e && !original; e++)
		if (strncmp(*e, name, nlen) == 0 && (*e)[nlen] == '=')
			original = *e;
	unsetenv(name);
	if (original)
		explicit_bzero(original, strlen(original));
}

/* RUNRA_SANDBOX_TEMPLATE_ID → templateId */
static void sandbox_key(char *dst, size_t cap, const char *name)
{
	size_t n = 0;
	bool upper = false;
	for (; *name && *name != '=' && n + 1 < cap; name++) {
		if (*name == '_') {
			upper = n > 0;
			continue;
		}
		char ch = (char)tolower((unsigned char)*name);
		dst[n++] = upper ? (char)toupper((unsigned char)ch) : ch;
		upper = false;
	}
	dst[n] = '\0';
}

/* RUNRA_SANDBOX_A_B and RUNRA_SANDBOX_A__B name the same key: the first one wins. */
static bool sandbox_key_seen(const ra_config *c, const char *key)
{
	for (unsigned i = 0; i < c->sandbox_count; i++)
		if (strcmp(c->sandbox[i].key, key) == 0)
			return true;
	return false;
}

static void collect_sandbox_meta(ra_config *c)
{
	static const char prefix[] = "RUNRA_SANDBOX_";
	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, prefix, sizeof(prefix) - 1) != 0 || c->sandbox_count == RA_MAX_SANDBOX_META)
			continue;
		const char *eq = strchr(*e, '=');
		if (!eq || eq == *e + sizeof(prefix) - 1)
			continue;
		ra_sandbox_meta *m = &c->sandbox[c->sandbox_count];
		sandbox_key(m->key, sizeof(m->key), *e + sizeof(prefix) - 1);
		if (!sandbox_key_seen(c, m->key) && copy_str(m->value, sizeof(m->value), eq + 1) == 0)
			c->sandbox_count++;
	}
}

static void set_defaults(ra_config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen_kind = RA_LISTEN_TCP;
	c->listen_port = RA_DEFAULT_PORT;
	copy_str(c->workdir, sizeof(c->workdir), RA_DEFAULT_WORKDIR);
	c->log_level = RA_LOG_INFO;
	c->max_message_bytes = RA_MAX_MESSAGE_BYTES_DEFAULT;
	c->max_connections = RA_MAX_CONNECTIONS_DEFAULT;
	c->keepalive_s = RA_WS_KEEPALIVE_S_DEFAULT;
	c->max_processes = RA_MAX_PROCESSES_DEFAULT;
	c->output_buffer_bytes = RA_OUTPUT_BUFFER_BYTES_DEFAULT;
	c->event_ring_events = RA_EVENT_RING_EVENTS_DEFAULT;
	c->event_ring_bytes = RA_EVENT_RING_BYTES_DEFAULT;
	c->watch_workdir = true;
	c->port_scan_ms = RA_PORT_SCAN_MS_DEFAULT;
	c->shutdown_grace_ms = RA_SHUTDOWN_GRACE_MS_DEFAULT;
}

/* "cpu=0.00001,memory=0.0000002,runtime=0.000014": any of the three, each a non-negative number. */
static int parse_rates(ra_config *c, const char *v)
{
	char copy[256];
	if (copy_str(copy, sizeof(copy), v))
		return -1;
	char *save = NULL;
	for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '='), *end;
		if (!eq)
			return -1;
		*eq = '\0';
		errno = 0;
		double rate = strtod(eq + 1, &end);
		if (errno || *end || end == eq + 1 || !(rate >= 0) || rate > 1e9)
			return -1;
		double *slot = strcmp(item, "cpu") == 0      ? &c->cost_cpu_second
			       : strcmp(item, "memory") == 0 ? &c->cost_mib_second
			       : strcmp(item, "runtime") == 0 ? &c->cost_runtime_second
							      : NULL;
		if (!slot)
			return -1;
		*slot = rate;
	}
	c->cost_rates_set = true;
	return 0;
}

static int parse_yes_no(const char *v, bool *out)
{
	if (strcmp(v, "yes") && strcmp(v, "no"))
		return -1;
	*out = strcmp(v, "yes") == 0;
	return 0;
}

/* Resolved now, from the image's /etc/passwd: an unknown user is bad configuration, not a later surprise. */
static int set_default_user(ra_config *c, const char *v, FILE *err)
{
	char *end;
	errno = 0;
	unsigned long uid = strtoul(v, &end, 10);
	struct passwd *pw = isdigit((unsigned char)v[0]) && !*end && !errno ? getpwuid((uid_t)uid) : getpwnam(v);
	if (!pw || copy_str(c->default_user, sizeof(c->default_user), pw->pw_name))
		return bad(err, "--default-user names no user of this image:", v);
	c->default_uid = pw->pw_uid;
	c->default_gid = pw->pw_gid;
	if (geteuid() != 0 && pw->pw_uid != geteuid())
		return bad(err, "--default-user needs the agent to run as root (or to be that user):", v);
	return 0;
}

/* One setting, from a flag or its environment variable. */
static int apply(ra_config *c, int opt, const char *v, FILE *err)
{
	unsigned long n;
	switch (opt) {
	case 'l':
		return parse_listen(c, v, err);
	case 't':
		return read_token_file(c, v, err);
	case 'w':
		if (v[0] != '/' || copy_str(c->workdir, sizeof(c->workdir), v))
			return bad(err, "--workdir must be an absolute path:", v);
		return 0;
	case 'L':
		if (ra_log_parse_level(v, &c->log_level))
			return bad(err, "--log-level must be debug, info, warn or error, got", v);
		return 0;
	case 'm':
		if (ra_parse_uint(v, RA_MAX_MESSAGE_BYTES_MIN, RA_MAX_MESSAGE_BYTES_MAX, &n))
			return bad(err, "--max-message-bytes must be between 1024 and 268435456, got", v);
		c->max_message_bytes = (uint32_t)n;
		return 0;
	case 'c':
		if (ra_parse_uint(v, 1, RA_MAX_FDS / 2, &n))
			return bad(err, "--max-connections must be between 1 and 2048, got", v);
		c->max_connections = (uint32_t)n;
		return 0;
	case 'r':
		if (ra_parse_uint(v, 0, 1000000, &n))
			return bad(err, "--max-requests-per-second must be between 0 (no limit) and 1000000, got", v);
		c->max_requests_per_second = (uint32_t)n;
		return 0;
	case 'k':
		if (ra_parse_uint(v, 1, RA_WS_KEEPALIVE_S_MAX, &n))
			return bad(err, "--keepalive-seconds must be between 1 and 3600, got", v);
		c->keepalive_s = (uint32_t)n;
		return 0;
	case 'P':
		if (ra_parse_uint(v, 1, 65536, &n))
			return bad(err, "--max-processes must be between 1 and 65536, got", v);
		c->max_processes = (uint32_t)n;
		return 0;
	case 'U':
		return set_default_user(c, v, err);
	case 'O':
		if (ra_parse_uint(v, RA_OUTPUT_BUFFER_BYTES_MIN, RA_OUTPUT_BUFFER_BYTES_MAX, &n))
			return bad(err, "--output-buffer-bytes must be between 4096 and 67108864, got", v);
		c->output_buffer_bytes = (uint32_t)n;
		return 0;
	case 'E':
		if (ra_parse_uint(v, RA_EVENT_RING_EVENTS_MIN, RA_EVENT_RING_EVENTS_MAX, &n))
			return bad(err, "--event-ring-events must be between 16 and 4194304, got", v);
		c->event_ring_events = (uint32_t)n;
		return 0;
	case 'B':
		if (ra_parse_uint(v, RA_EVENT_RING_BYTES_MIN, RA_EVENT_RING_BYTES_MAX, &n))
			return bad(err, "--event-ring-bytes must be between 65536 and 1073741824, got", v);
		c->event_ring_bytes = (uint32_t)n;
		return 0;
	case 'S':
		if (ra_parse_uint(v, RA_PORT_SCAN_MS_MIN, RA_PORT_SCAN_MS_MAX, &n))
			return bad(err, "--port-scan-ms must be between 10 and 60000, got", v);
		c->port_scan_ms = (uint32_t)n;
		return 0;
	case 'T':
		if (copy_str(c->port_url_template, sizeof(c->port_url_template), v))
			return bad(err, "--port-url-template is longer than 512 bytes:", v);
		return 0;
	case 'W':
		if (parse_yes_no(v, &c->watch_workdir))
			return bad(err, "--workdir-watch must be yes or no, got", v);
		return 0;
	case 'g':
		if (ra_parse_uint(v, 0, RA_SHUTDOWN_GRACE_MS_MAX, &n))
			return bad(err, "--shutdown-grace-ms must be between 0 and 600000, got", v);
		c->shutdown_grace_ms = (uint32_t)n;
		return 0;
	case 'x':
		if (ra_parse_uint(v, 0, RA_LIFETIME_MS_MAX, &n))
			return bad(err, "--timeout-ms must be between 0 and 2592000000 (30 days), got", v);
		c->timeout_ms = n;
		return 0;
	case 'i':
		if (ra_parse_uint(v, 0, RA_LIFETIME_MS_MAX, &n))
			return bad(err, "--idle-timeout-ms must be between 0 and 2592000000 (30 days), got", v);
		c->idle_timeout_ms = n;
		return 0;
	case 'M':
		if (ra_parse_uint(v, 0, RA_LIFETIME_MS_MAX, &n) || (n && n < RA_METRICS_INTERVAL_MS_MIN))
			return bad(err, "--metrics-interval-ms must be 0 (off) or between 100 and 2592000000, got", v);
		c->metrics_interval_ms = n;
		return 0;
	case 'C':
		if (ra_parse_uint(v, 0, RA_LIFETIME_MS_MAX, &n) || (n && n < RA_METRICS_INTERVAL_MS_MIN))
			return bad(err, "--cost-interval-ms must be 0 (off) or between 100 and 2592000000, got", v);
		c->cost_interval_ms = n;
		return 0;
	case 'R':
		if (parse_rates(c, v))
			return bad(err, "--cost-rates must look like cpu=0.00001,memory=0.0000002,runtime=0.00001, got", v);
		return 0;
	case 'p':
		if (parse_yes_no(v, &c->poweroff))
			return bad(err, "--poweroff-on-exit must be yes or no, got", v);
		return 0;
	}
	return bad(err, "unknown setting", NULL);
}

static int apply_env(ra_config *c, FILE *err)
{
	static const struct {
		const char *name;
		int opt;
	} vars[] = {{"RUNRA_AGENT_LISTEN", 'l'},         {"RUNRA_AGENT_WORKDIR", 'w'},
		    {"RUNRA_AGENT_LOG_LEVEL", 'L'},      {"RUNRA_AGENT_MAX_MESSAGE_BYTES", 'm'},
		    {"RUNRA_AGENT_MAX_CONNECTIONS", 'c'},  {"RUNRA_AGENT_KEEPALIVE_SECONDS", 'k'},
		    {"RUNRA_AGENT_MAX_PROCESSES", 'P'},    {"RUNRA_AGENT_OUTPUT_BUFFER_BYTES", 'O'},
		    {"RUNRA_AGENT_DEFAULT_USER", 'U'},     {"RUNRA_AGENT_EVENT_RING_EVENTS", 'E'},
		    {"RUNRA_AGENT_EVENT_RING_BYTES", 'B'}, {"RUNRA_AGENT_WORKDIR_WATCH", 'W'},
		    {"RUNRA_AGENT_PORT_SCAN_MS", 'S'},     {"RUNRA_PORT_URL_TEMPLATE", 'T'},
		    {"RUNRA_AGENT_SHUTDOWN_GRACE_MS", 'g'}, {"RUNRA_AGENT_TIMEOUT_MS", 'x'},
		    {"RUNRA_AGENT_IDLE_TIMEOUT_MS", 'i'}, {"RUNRA_AGENT_POWEROFF_ON_EXIT", 'p'},
		    {"RUNRA_AGENT_METRICS_INTERVAL_MS", 'M'}, {"RUNRA_AGENT_COST_INTERVAL_MS", 'C'},
		    {"RUNRA_AGENT_COST_RATES", 'R'},       {"RUNRA_AGENT_MAX_REQUESTS_PER_SECOND", 'r'}};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i].name);
		if (v && *v && apply(c, vars[i].opt, v, err))
			return -1;
	}
	const char *token = getenv("RUNRA_AGENT_TOKEN");
	if (token && copy_str(c->token, sizeof(c->token), token))
		return bad(err, "RUNRA_AGENT_TOKEN is longer than 1024 bytes", NULL);
	return 0;
}

static bool host_is_loopback(const char *h)
{
	return strcmp(h, "127.0.0.1") == 0 || strcmp(h, "::1") == 0 || strcmp(h, "localhost") == 0;
}

static int check_auth(ra_config *c, FILE *err)
{
	if (!c->insecure_no_auth) {
		if (!c->token[0])
			return bad(err, "a token is required: set RUNRA_AGENT_TOKEN or --token-file "
					"(or --insecure-no-auth for a loopback-only debug run)", NULL);
		return 0;
	}
	if (c->listen_kind == RA_LISTEN_VSOCK)
		return bad(err, "--insecure-no-auth cannot listen on vsock", NULL);
	if (c->listen_kind == RA_LISTEN_TCP && !host_is_loopback(c->listen_host)) {
		ra_log(RA_LOG_WARN, "config.loopback", "--insecure-no-auth: listening on 127.0.0.1 instead of '%s'",
		       c->listen_host[0] ? c->listen_host : "*");
		copy_str(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
	}
	c->token[0] = '\0';
	return 0;
}

ra_config_result ra_config_load(ra_config *c, int argc, char **argv, FILE *err)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},      {"token-file", required_argument, NULL, 't'},
		{"insecure-no-auth", no_argument, NULL, 'I'},  {"workdir", required_argument, NULL, 'w'},
		{"log-level", required_argument, NULL, 'L'},   {"max-message-bytes", required_argument, NULL, 'm'},
		{"max-connections", required_argument, NULL, 'c'}, {"keepalive-seconds", required_argument, NULL, 'k'},
		{"max-processes", required_argument, NULL, 'P'}, {"output-buffer-bytes", required_argument, NULL, 'O'},
		{"default-user", required_argument, NULL, 'U'}, {"event-ring-events", required_argument, NULL, 'E'},
		{"event-ring-bytes", required_argument, NULL, 'B'}, {"workdir-watch", required_argument, NULL, 'W'},
		{"port-scan-ms", required_argument, NULL, 'S'}, {"port-url-template", required_argument, NULL, 'T'},
		{"shutdown-grace-ms", required_argument, NULL, 'g'}, {"timeout-ms", required_argument, NULL, 'x'},
		{"idle-timeout-ms", required_argument, NULL, 'i'}, {"poweroff-on-exit", required_argument, NULL, 'p'},
		{"metrics-interval-ms", required_argument, NULL, 'M'}, {"cost-interval-ms", required_argument, NULL, 'C'},
		{"cost-rates", required_argument, NULL, 'R'}, {"max-requests-per-second", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	set_defaults(c);
	int rc = apply_env(c, err);
	scrub_env("RUNRA_AGENT_TOKEN");
	if (rc)
		return RA_CONFIG_BAD;
	collect_sandbox_meta(c);

	optind = 1;
	opterr = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (opt == 'h')
			return RA_CONFIG_HELP;
		if (opt == 'I') {
			c->insecure_no_auth = true;
			continue;
		}
		if (opt == '?' || opt == ':') {
			fprintf(err, "runra-agent: invalid configuration: unknown or incomplete option '%s' (see --help)\n",
				argv[optind - 1]);
			return RA_CONFIG_BAD;
		}
		if (apply(c, opt, optarg, err))
			return RA_CONFIG_BAD;
	}
	if (optind < argc) {
		fprintf(err, "runra-agent: invalid configuration: unexpected argument '%s'\n", argv[optind]);
		return RA_CONFIG_BAD;
	}
	return check_auth(c, err) ? RA_CONFIG_BAD : RA_CONFIG_OK;
}

void ra_config_describe_listen(const ra_config *c, char *dst, unsigned long cap)
{
	switch (c->listen_kind) {
	case RA_LISTEN_UNIX:
		snprintf(dst, cap, "unix:%s", c->listen_path);
		break;
	case RA_LISTEN_VSOCK:
		snprintf(dst, cap, "vsock:%u", c->listen_port);
		break;
	case RA_LISTEN_TCP:
		if (strchr(c->listen_host, ':'))
			snprintf(dst, cap, "[%s]:%u", c->listen_host, c->listen_port);
		else
			snprintf(dst, cap, "%s:%u", c->listen_host[0] ? c->listen_host : "0.0.0.0", c->listen_port);
		break;
	}
}
