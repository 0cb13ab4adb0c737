#include "agent.h"

#include <time.h>

int64_t ra_unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t ra_agent_uptime_ms(const ra_agent *a)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	return now > a->started_mono ? (uint64_t)((now - a->started_mono) * 1000.0) : 0;
}

const char *ra_agent_backend_name(struct ev_loop *loop)
{
	switch (ev_backend(loop)) {
	case EVBACKEND_EPOLL: return "epoll";
	case EVBACKEND_POLL: return "poll";
	case EVBACKEND_SELECT: return "select";
	default: return "other";
	}
}
