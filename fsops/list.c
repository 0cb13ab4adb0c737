/* Directory listing: a sorted, paginated walk down to a depth, never through symlinks. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsops.h"
#include "internal.h"

/* The page being built: the `limit` smallest paths after `after` seen so far, in a max-heap by path, so that a
 * walk of a million entries holds one page of them (and reads the link targets of those only), not all. */
typedef struct {
	ra_fs_entry *v;
	size_t n, cap, limit;
	const char *after;
	size_t walked, max_walk;
	bool more; /* an entry after `after` did not fit the page */
} page;

static void entry_free(ra_fs_entry *e)
{
	free(e->path);
	free(e->name);
	ra_fs_stat_free(&e->st);
}

static void swap_entries(ra_fs_entry *a, ra_fs_entry *b)
{
	ra_fs_entry t = *a;
	*a = *b;
	*b = t;
}

static void sift_up(page *pg, size_t i)
{
	while (i && strcmp(pg->v[(i - 1) / 2].path, pg->v[i].path) < 0) {
		swap_entries(&pg->v[(i - 1) / 2], &pg->v[i]);
		i = (i - 1) / 2;
	}
}

static void sift_down(page *pg, size_t i)
{
	for (;;) {
		size_t big = i, l = 2 * i + 1, r = l + 1;
		if (l < pg->n && strcmp(pg->v[l].path, pg->v[big].path) > 0)
			big = l;
		if (r < pg->n && strcmp(pg->v[r].path, pg->v[big].path) > 0)
			big = r;
		if (big == i)
			return;
		swap_entries(&pg->v[big], &pg->v[i]);
		i = big;
	}
}

/* Whether path belongs on the page as it stands (making room for it when it does). */
static bool page_wants(page *pg, const char *path)
{
	if (pg->after && strcmp(path, pg->after) <= 0)
		return false;
	if (pg->n < pg->limit)
		return true;
	pg->more = true;
	if (strcmp(path, pg->v[0].path) >= 0)
		return false;
	entry_free(&pg->v[0]); /* the largest gives its place */
	pg->v[0] = pg->v[--pg->n];
	sift_down(pg, 0);
	return true;
}

static int page_add(page *pg, ra_fs_entry *e)
{
	if (pg->n == pg->cap) {
		size_t cap = pg->cap ? pg->cap * 2 : 64;
		if (cap > pg->limit)
			cap = pg->limit;
		ra_fs_entry *g = realloc(pg->v, cap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		pg->v = g;
		pg->cap = cap;
	}
	pg->v[pg->n++] = *e;
	sift_up(pg, pg->n - 1);
	return 0;
}

static char *join(const char *prefix, const char *name)
{
	size_t a = strlen(prefix), b = strlen(name);
	char *p = malloc(a + b + 2);
	if (!p)
		return NULL;
	memcpy(p, prefix, a);
	if (a)
		p[a++] = '/';
	memcpy(p + a, name, b + 1);
	return p;
}

static int add_entry(page *pg, int dfd, const char *prefix, const char *name, bool *is_dir)
{
	if (pg->walked++ == pg->max_walk)
		return -E2BIG;
	struct stat s;
	if (fstatat(dfd, name, &s, AT_SYMLINK_NOFOLLOW)) /* gone while we looked, or not searchable: skipped */
		return errno == ENOENT || errno == EACCES ? 0 : -errno;
	*is_dir = S_ISDIR(s.st_mode);
	ra_fs_entry e = {0};
	e.path = join(prefix, name);
	if (!e.path)
		return -ENOMEM;
	if (!page_wants(pg, e.path)) {
		free(e.path);
		return 0;
	}
	e.name = strdup(name);
	if (!e.name) {
		entry_free(&e);
		return -ENOMEM;
	}
	fsops_fill_stat(&e.st, &s);
	if (e.st.type == RA_FS_SYMLINK)
		fsops_read_target(dfd, name, &e.st);
	int rc = page_add(pg, &e);
	if (rc)
		entry_free(&e);
	return rc;
}

/* Walks the directory open at dfd (taken). */
static int walk(page *pg, int dfd, const char *prefix, unsigned depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		int err = -errno;
		close(dfd);
		return err;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		bool is_dir = false;
		rc = add_entry(pg, dirfd(d), prefix, e->d_name, &is_dir);
		if (rc || !is_dir || depth <= 1)
			continue;
		int child = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (child < 0)
			continue; /* unreadable subdirectory: listed, not entered */
		char *sub = join(prefix, e->d_name);
		rc = sub ? walk(pg, child, sub, depth - 1) : (close(child), -ENOMEM);
		free(sub);
	}
	closedir(d);
	return rc;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const ra_fs_entry *)a)->path, ((const ra_fs_entry *)b)->path);
}

int ra_fs_list(const char *dir, unsigned depth, const char *after, size_t limit, size_t max_scan,
	       ra_fs_listing *out)
{
	memset(out, 0, sizeof(*out));
	if (!limit)
		return -EINVAL;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	page pg = {.limit = limit, .after = after, .max_walk = max_scan};
	int rc = walk(&pg, dfd, "", depth ? depth : 1);
	if (rc) {
		for (size_t i = 0; i < pg.n; i++)
			entry_free(&pg.v[i]);
		free(pg.v);
		return rc;
	}
	if (pg.n) /* an empty page has no array at all */
		qsort(pg.v, pg.n, sizeof(*pg.v), by_path);
	out->entries = pg.v;
	out->count = pg.n;
	out->more = pg.more;
	return 0;
}

void ra_fs_listing_free(ra_fs_listing *l)
{
	for (size_t i = 0; i < l->count; i++)
		entry_free(&l->entries[i]);
	free(l->entries);
	memset(l, 0, sizeof(*l));
}
