/* agent: the state shared by the agent's modules while it serves (one instance, owned by main.c). */
#ifndef RA_AGENT_H
#define RA_AGENT_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#ifndef RA_VERSION
#define RA_VERSION "0.0.0-dev"
#endif
#define RA_AGENT_NAME "runra-agent"

typedef struct {
	const ra_config *config;
	struct ev_loop *loop;
	int64_t started_unix_ms;  /* wall clock when the agent started */
	int64_t kernel_boot_unix_ms;
	double started_mono;      /* CLOCK_MONOTONIC seconds at start */
	bool shutting_down;
	uint64_t connections_total;
} ra_agent;

int64_t ra_unix_ms(void);
/* Milliseconds since the agent started, from the monotonic clock. */
uint64_t ra_agent_uptime_ms(const ra_agent *a);
const char *ra_agent_backend_name(struct ev_loop *loop);

#endif
