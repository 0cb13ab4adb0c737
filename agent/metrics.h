/* metrics: what the sandbox uses (CPU, memory, disk of the workdir's filesystem, network, processes, the
 * agent itself) from its cgroup (v2, else v1) or from /proc; the `metrics` op, a periodic `metrics` event,
 * and `cost.runtime` events (CPU-seconds and memory-MiB-seconds per interval, priced when rates are set),
 * the basis of runtime billing. Both periodic events are off unless an interval is configured, so an idle
 * agent does not wake up for them. */
#ifndef RA_METRICS_H
#define RA_METRICS_H

#include "agent.h"
#include "session.h"

void ra_metrics_init(ra_agent *a);
void ra_metrics_shutdown(void);
/* Intervals in ms (0: off). */
void ra_metrics_set_intervals(uint64_t metrics_ms, uint64_t cost_ms);
void ra_metrics_intervals(uint64_t *metrics_ms, uint64_t *cost_ms);
/* At shutdown: emits cost.runtime for the interval so far, if cost events run (nothing goes unbilled), and
 * stops the periodic events (nothing follows sandbox.terminated). */
void ra_metrics_flush(void);

ra_err ra_op_metrics(ra_session *s, const ra_request *req, ra_enc *reply, ra_why *why);

#endif
