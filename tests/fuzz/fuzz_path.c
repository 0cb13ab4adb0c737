/* libFuzzer target: path resolution. Any bytes, split into a base and a path at the first 0xff byte; the
 * result must be absolute, normalized (no "//", no "." or ".." component, no trailing "/") and NUL-free. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../fsops/fsops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_normalized(const char *p)
{
	if (p[0] != '/')
		__builtin_trap();
	size_t n = strlen(p);
	if (n > 1 && p[n - 1] == '/')
		__builtin_trap();
	for (const char *c = p; (c = strchr(c, '/')); c++) {
		const char *next = c + 1;
		if (*next == '/' || (next[0] == '.' && (next[1] == '/' || next[1] == 0)) ||
		    (next[0] == '.' && next[1] == '.' && (next[2] == '/' || next[2] == 0)))
			if (n > 1)
				__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *split = memchr(data, 0xff, size);
	size_t blen = split ? (size_t)(split - data) : 0;
	char base[256] = "/workspace";
	if (split && blen + 1 < sizeof(base) && !memchr(data, 0, blen)) {
		base[0] = '/';
		memcpy(base + 1, data, blen);
		base[blen + 1] = 0;
	}
	const char *in = split ? (const char *)split + 1 : (const char *)data;
	size_t len = split ? size - blen - 1 : size;
	char out[RA_FS_PATH_MAX];
	if (ra_fs_resolve(base, in, len, out, sizeof(out)) == 0)
		check_normalized(out);
	return 0;
}
