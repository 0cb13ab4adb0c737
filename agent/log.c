#include "log.h"

#include "../proto/proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static ra_log_level min_level = RA_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ra_log_set_level(ra_log_level level) { min_level = level; }

bool ra_log_enabled(ra_log_level level) { return level >= min_level; }

int ra_log_parse_level(const char *name, ra_log_level *out)
{
	for (int i = RA_LOG_DEBUG; i <= RA_LOG_ERROR; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (ra_log_level)i;
			return 0;
		}
	}
	return -1;
}

/* A byte that is not part of well-formed UTF-8 (a path's name may be any bytes) becomes U+FFFD, so that a
 * log line is always valid JSON. */
unsigned long ra_json_escape(char *dst, unsigned long len, unsigned long cap, const char *s, unsigned long slen)
{
	for (unsigned long i = 0; i < slen;) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		size_t n = 1, take = 1;
		if (c == '"' || c == '\\')
			n = (size_t)snprintf(esc, sizeof(esc), "\\%c", c);
		else if (c == '\n')
			n = (size_t)snprintf(esc, sizeof(esc), "\\n");
		else if (c < 0x20 || c == 0x7f)
			n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
		else if (c < 0x80)
			esc[0] = (char)c;
		else if ((take = ra_utf8_char_length((const unsigned char *)s + i, slen - i)) > 0)
			memcpy(esc, s + i, n = take);
		else
			memcpy(esc, "\xef\xbf\xbd", n = 3); /* U+FFFD for one byte */
		if (!take)
			take = 1;
		if (len + n + 1 > cap)
			break;
		memcpy(dst + len, esc, n);
		len += n;
		i += take;
	}
	if (cap)
		dst[len < cap ? len : cap - 1] = '\0';
	return len;
}

static unsigned long format_timestamp(char *dst, unsigned long cap)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(dst, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	return n < 0 ? 0 : (unsigned long)n;
}

void ra_log(ra_log_level level, const char *event, const char *fmt, ...)
{
	if (!ra_log_enabled(level))
		return;
	char msg[768], line[2048], ts[40];
	va_list ap;
	va_start(ap, fmt);
	int mlen = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (mlen < 0)
		mlen = 0;
	if ((size_t)mlen >= sizeof(msg))
		mlen = sizeof(msg) - 1;
	format_timestamp(ts, sizeof(ts));

	unsigned long len = 0;
	int n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"", ts, level_names[level]);
	len = (unsigned long)n;
	len = ra_json_escape(line, len, sizeof(line) - 16, event, strlen(event));
	len += (unsigned long)snprintf(line + len, sizeof(line) - len, "\",\"msg\":\"");
	len = ra_json_escape(line, len, sizeof(line) - 4, msg, (unsigned long)mlen);
	len += (unsigned long)snprintf(line + len, sizeof(line) - len, "\"}\n");
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w; /* nowhere left to report a failed log write */
}
