/* Unit tests of the watcher's exclusion patterns: which patterns are accepted, and what each form matches
 * (a bare name at any depth, "**" + "/..." at any depth of the relative path, anything else the whole
 * relative path). The backends are not part of this test: their entry points are stubs. */
#include <errno.h>

#include "../../fsops/watch.c"
#include "test.h"

int inotify_backend_init(struct ev_loop *loop) { return loop ? 0 : -EINVAL; }
void inotify_backend_shutdown(void) {}
int inotify_root_start(wroot *r) { return r ? 0 : -EINVAL; }
void inotify_root_stop(wroot *r) { (void)r; }
int poll_root_start(wroot *r) { return r ? 0 : -EINVAL; }
void poll_root_stop(wroot *r) { (void)r; }

static int check(const char *p) { return ra_watch_pattern_check(p, strlen(p)); }

static void test_pattern_check(void)
{
	CHECK_INT(check("*.tmp"), 0);
	CHECK_INT(check("**/node_modules/*"), 0);
	CHECK_INT(check("[abc]x"), 0);
	CHECK_INT(check("[]]x"), 0);
	CHECK_INT(check("[!a]"), 0);
	CHECK_INT(check("\\[literal"), 0);
	CHECK_INT(check(""), -EINVAL);
	CHECK_INT(check("/abs"), -EINVAL);
	CHECK_INT(check("[unclosed"), -EINVAL);
	CHECK_INT(check("a[!"), -EINVAL);
	CHECK_INT(ra_watch_pattern_check("a\0b", 3), -EINVAL);
	char longest[RA_WATCH_PATTERN_MAX + 2];
	memset(longest, 'x', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	CHECK_INT(check(longest), -EINVAL);
	longest[RA_WATCH_PATTERN_MAX] = '\0';
	CHECK_INT(check(longest), 0);
}

static bool excluded(const char *pattern, const char *rel)
{
	const char *name = strrchr(rel, '/');
	return ra_watch_excluded(&pattern, 1, rel, name ? name + 1 : rel);
}

static void test_matching(void)
{
	/* a bare name: any depth */
	CHECK(excluded("*.tmp", "a.tmp"));
	CHECK(excluded("*.tmp", "x/y/a.tmp"));
	CHECK(!excluded("*.tmp", "a.tmp/b"));
	CHECK(excluded("dist", "pkg/dist"));
	/* "**" and a slash: that relative path at any depth */
	CHECK(excluded("**/node_modules/*", "node_modules/react"));
	CHECK(excluded("**/node_modules/*", "app/web/node_modules/.bin"));
	CHECK(!excluded("**/node_modules/*", "node_modules"));
	CHECK(!excluded("**/node_modules/*", "app/node_modules"));
	CHECK(!excluded("**/node_modules/*", "my_node_modules/x"));
	CHECK(excluded("**/.git/*", ".git/HEAD"));
	CHECK(excluded("**/cache", "a/b/cache"));
	/* anything else: the whole relative path, '*' stops at '/' */
	CHECK(excluded("build/*", "build/out"));
	CHECK(!excluded("build/*", "build/out/deep"));
	CHECK(!excluded("build/*", "src/build/out"));
	/* defaults */
	unsigned n;
	const char *const *d = ra_watch_default_exclude(&n);
	CHECK_INT(n, 3);
	CHECK(ra_watch_excluded(d, n, "src/.main.c.runra-12-3f.tmp", ".main.c.runra-12-3f.tmp"));
	CHECK(ra_watch_excluded(d, n, "x/.git/objects", "objects"));
	CHECK(!ra_watch_excluded(d, n, "x/.git", ".git"));
	CHECK(!ra_watch_excluded(d, n, "src/main.c", "main.c"));
}

static void test_rel(void)
{
	wroot r = {.path = "/work", .path_len = 5};
	CHECK_STR(watch_rel(&r, "/work"), "");
	CHECK_STR(watch_rel(&r, "/work/a/b"), "a/b");
	wroot top = {.path = "/", .path_len = 1};
	CHECK_STR(watch_rel(&top, "/etc/x"), "etc/x");
	CHECK_STR(watch_rel(&top, "/"), "");
}

int main(void)
{
	RUN(test_pattern_check);
	RUN(test_matching);
	RUN(test_rel);
	TEST_EXIT();
}
