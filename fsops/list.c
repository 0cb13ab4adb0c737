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

typedef struct {
	ra_fs_entry *v;
	size_t n, cap, max;
} entry_vec;

static int vec_push(entry_vec *v, ra_fs_entry *e)
{
	if (v->n == v->max)
		return -E2BIG;
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 256;
		ra_fs_entry *g = realloc(v->v, cap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		v->v = g;
		v->cap = cap;
	}
	v->v[v->n++] = *e;
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

static void entry_free(ra_fs_entry *e)
{
	free(e->path);
	free(e->name);
	ra_fs_stat_free(&e->st);
}

static int add_entry(entry_vec *v, int dfd, const char *prefix, const char *name, bool *is_dir)
{
	struct stat s;
	if (fstatat(dfd, name, &s, AT_SYMLINK_NOFOLLOW)) /* gone while we looked, or not searchable: skipped */
		return errno == ENOENT || errno == EACCES ? 0 : -errno;
	ra_fs_entry e = {0};
	e.path = join(prefix, name);
	e.name = strdup(name);
	if (!e.path || !e.name) {
		entry_free(&e);
		return -ENOMEM;
	}
	fsops_fill_stat(&e.st, &s);
	if (e.st.type == RA_FS_SYMLINK)
		fsops_read_target(dfd, name, &e.st);
	*is_dir = e.st.type == RA_FS_DIR;
	int rc = vec_push(v, &e);
	if (rc)
		entry_free(&e);
	return rc;
}

/* Walks the directory open at dfd (taken). */
static int walk(entry_vec *v, int dfd, const char *prefix, unsigned depth)
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
		rc = add_entry(v, dirfd(d), prefix, e->d_name, &is_dir);
		if (rc || !is_dir || depth <= 1)
			continue;
		int child = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (child < 0)
			continue; /* unreadable subdirectory: listed, not entered */
		char *sub = join(prefix, e->d_name);
		rc = sub ? walk(v, child, sub, depth - 1) : (close(child), -ENOMEM);
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
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	entry_vec v = {.max = max_scan};
	int rc = walk(&v, dfd, "", depth ? depth : 1);
	if (rc) {
		for (size_t i = 0; i < v.n; i++)
			entry_free(&v.v[i]);
		free(v.v);
		return rc;
	}
	if (v.n) /* an empty directory has no array at all */
		qsort(v.v, v.n, sizeof(*v.v), by_path);
	size_t first = 0;
	while (after && first < v.n && strcmp(v.v[first].path, after) <= 0)
		first++;
	size_t take = v.n - first < limit ? v.n - first : limit;
	for (size_t i = 0; i < v.n; i++) /* keep only the page */
		if (i < first || i >= first + take)
			entry_free(&v.v[i]);
	if (take)
		memmove(v.v, v.v + first, take * sizeof(*v.v));
	out->entries = v.v;
	out->count = take;
	out->more = first + take < v.n;
	return 0;
}

void ra_fs_listing_free(ra_fs_listing *l)
{
	for (size_t i = 0; i < l->count; i++)
		entry_free(&l->entries[i]);
	free(l->entries);
	memset(l, 0, sizeof(*l));
}
