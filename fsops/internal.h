/* fsops (internal): what fsops.c, list.c and the watcher share. */
#ifndef RA_FSOPS_INTERNAL_H
#define RA_FSOPS_INTERNAL_H

#include <dirent.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "fsops.h"

ra_fs_type fsops_type_of(mode_t m);
void fsops_fill_stat(ra_fs_stat *st, const struct stat *s);
/* The target of the symlink `name` in dirfd (AT_FDCWD for a path), into st->target. */
void fsops_read_target(int dirfd, const char *name, ra_fs_stat *st);
/* The directory at path, open for reading (close-on-exec); with nofollow a symlink is ELOOP. NULL with errno. */
DIR *fsops_opendir(const char *path, bool nofollow);

#endif
