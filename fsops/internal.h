/* fsops (internal): what fsops.c and list.c share. */
#ifndef RA_FSOPS_INTERNAL_H
#define RA_FSOPS_INTERNAL_H

#include <sys/stat.h>

#include "fsops.h"

void fsops_fill_stat(ra_fs_stat *st, const struct stat *s);
/* The target of the symlink `name` in dirfd (AT_FDCWD for a path), into st->target. */
void fsops_read_target(int dirfd, const char *name, ra_fs_stat *st);

#endif
