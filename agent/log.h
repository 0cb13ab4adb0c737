/* log: one JSON object per line on stderr: {"ts","level","event","msg"}. libwebsockets' own log is routed
 * here too (transport.c). Lines are written with one write(2), so concurrent writers do not interleave. */
#ifndef RA_LOG_H
#define RA_LOG_H

#include <stdbool.h>

typedef enum { RA_LOG_DEBUG = 0, RA_LOG_INFO, RA_LOG_WARN, RA_LOG_ERROR } ra_log_level;

void ra_log_set_level(ra_log_level level);
bool ra_log_enabled(ra_log_level level);
/* "debug", "info", "warn", "error" → 0; -1 if the name is unknown. */
int ra_log_parse_level(const char *name, ra_log_level *out);
void ra_log(ra_log_level level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Appends s to dst (capacity cap, NUL-terminated) as a JSON string body: quotes, backslashes and control
 * bytes escaped. Returns the new length; stops (without splitting an escape) when full. */
unsigned long ra_json_escape(char *dst, unsigned long len, unsigned long cap, const char *s, unsigned long slen);

#endif
