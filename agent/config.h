/* config: the agent's settings, from flags over RUNRA_AGENT_* environment variables over defaults.
 * Everything is validated here, before anything starts: bad configuration is a message and exit code 2. */
#ifndef RA_CONFIG_H
#define RA_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../proto/ra_limits.h"
#include "log.h"

#define RA_DEFAULT_PORT 49200
#define RA_DEFAULT_WORKDIR "/workspace"
#define RA_MAX_TOKEN 1024
#define RA_MAX_SANDBOX_META 32

typedef enum { RA_LISTEN_TCP, RA_LISTEN_UNIX, RA_LISTEN_VSOCK } ra_listen_kind;

typedef struct {
	char key[64];    /* RUNRA_SANDBOX_TEMPLATE_ID → "templateId" */
	char value[256];
} ra_sandbox_meta;

typedef struct {
	ra_listen_kind listen_kind;
	char listen_host[256];  /* TCP: "" means every interface */
	unsigned listen_port;   /* TCP or vsock port */
	char listen_path[108];  /* unix socket path */
	char token[RA_MAX_TOKEN + 1];
	bool insecure_no_auth;
	char workdir[PATH_MAX];
	ra_log_level log_level;
	uint32_t max_message_bytes;
	uint32_t max_connections;
	uint32_t max_requests_per_second; /* per connection, 0: no limit */
	uint32_t keepalive_s; /* WebSocket PING after this much silence; hang-up at 2x + 5 s */
	uint32_t max_processes;       /* live processes */
	uint32_t output_buffer_bytes; /* retained output per process and stream */
	uint32_t event_ring_events;   /* events kept for replay, at most this many */
	uint32_t event_ring_bytes;    /* and this many bytes */
	bool watch_workdir;           /* the workdir is watched from the start */
	uint32_t shutdown_grace_ms;   /* SIGTERM, then SIGKILL after this, on every shutdown */
	uint64_t timeout_ms;          /* the sandbox's lifetime from start (0: none) */
	uint64_t idle_timeout_ms;     /* sandbox.idle after this long without activity (0: never) */
	bool poweroff;                /* PID 1 powers the machine off when it exits */
	uint64_t metrics_interval_ms; /* a metrics event this often (0: never) */
	uint64_t cost_interval_ms;    /* a cost.runtime event this often (0: never) */
	bool cost_rates_set;
	double cost_cpu_second, cost_mib_second, cost_runtime_second; /* prices per CPU-second, MiB-second, second */
	uint32_t port_scan_ms;        /* listening sockets are looked for this often */
	char port_url_template[RA_PORT_URL_TEMPLATE_MAX + 1]; /* "https://{port}-{sandbox}.example.dev" */
	char default_user[64];        /* "" for none: processes run as the agent, files are the agent's */
	uint32_t default_uid, default_gid;
	ra_sandbox_meta sandbox[RA_MAX_SANDBOX_META];
	unsigned sandbox_count;
} ra_config;

typedef enum { RA_CONFIG_OK = 0, RA_CONFIG_HELP = 1, RA_CONFIG_BAD = 2 } ra_config_result;

/* Parses argv (after the "serve" word, if any) and the environment. On RA_CONFIG_BAD a message was written
 * to err. Removes the token from the process environment (and from /proc/self/environ) after reading it. */
ra_config_result ra_config_load(ra_config *c, int argc, char **argv, FILE *err);
void ra_config_usage(FILE *out);
/* "127.0.0.1:49200", "unix:/run/agent.sock", "vsock:5000". */
void ra_config_describe_listen(const ra_config *c, char *dst, unsigned long cap);
/* Parses an unsigned decimal in [min, max]; 0 or -1. */
int ra_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);

#endif
