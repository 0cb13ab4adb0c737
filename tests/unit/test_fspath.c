/* Unit tests of fsops path resolution: relative and absolute paths, ".", "..", "//", and bad input. */
#include <errno.h>

#include "../../fsops/fsops.c"
#include "test.h"

static const char *resolve(const char *base, const char *in)
{
	static char out[RA_FS_PATH_MAX];
	int rc = ra_fs_resolve(base, in, strlen(in), out, sizeof(out));
	return rc ? (rc == -EINVAL ? "EINVAL" : "ERR") : out;
}

static void test_resolution(void)
{
	CHECK_STR(resolve("/workspace", "a/b.txt"), "/workspace/a/b.txt");
	CHECK_STR(resolve("/workspace", "/etc/passwd"), "/etc/passwd");
	CHECK_STR(resolve("/workspace", "./a//b/./c/"), "/workspace/a/b/c");
	CHECK_STR(resolve("/workspace", "../etc"), "/etc");
	CHECK_STR(resolve("/workspace", "../../../.."), "/");
	CHECK_STR(resolve("/workspace", "/.."), "/");
	CHECK_STR(resolve("/workspace", "a/../../b"), "/b");
	CHECK_STR(resolve("/", "x"), "/x");
	CHECK_STR(resolve("/workspace", "."), "/workspace");
	CHECK_STR(resolve("/workspace", "name with spaces/ünïcode"), "/workspace/name with spaces/ünïcode");
	CHECK_STR(resolve("/workspace", "..."), "/workspace/...");
}

static void test_bad_paths(void)
{
	char out[64];
	CHECK_INT(ra_fs_resolve("/w", "", 0, out, sizeof(out)), -EINVAL);
	CHECK_INT(ra_fs_resolve("/w", "a\0b", 3, out, sizeof(out)), -EINVAL);
	CHECK_INT(ra_fs_resolve("/w", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 73, out,
				sizeof(out)),
		  -ENAMETOOLONG);
}

int main(void)
{
	RUN(test_resolution);
	RUN(test_bad_paths);
	TEST_EXIT();
}
