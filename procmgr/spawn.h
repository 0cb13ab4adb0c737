/* spawn (procmgr-internal): everything decided before fork (user, environment, argv, file descriptors) is
 * prepared in the parent as a plan; the child only applies it and execs. */
#ifndef RA_SPAWN_H
#define RA_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

#include "procmgr.h"

#define SPAWN_MAX_GROUPS 64

typedef struct {
	char **argv;       /* owned */
	char **envp;       /* owned */
	char *cwd;         /* owned */
	bool switch_user;
	uid_t uid;
	gid_t gid;
	gid_t groups[SPAWN_MAX_GROUPS];
	int ngroups;
	/* child's fds: these become 0, 1, 2 (all opened close-on-exec in the parent) */
	int stdin_fd, stdout_fd, stderr_fd;
	bool pty;          /* stdin_fd is the terminal's slave: make it the controlling terminal */
	int exec_err_fd;   /* write end of the close-on-exec pipe that reports an exec failure */
	rlim_t nofile;     /* the soft fd limit to start with; 0: leave it */
} spawn_plan;

/* Fills argv, envp, cwd and the user of the plan. 0, -ENOMEM, -ENOENT/-ENOTDIR (cwd), RA_SPAWN_ERR_USER. */
int spawn_plan_prepare(spawn_plan *plan, const ra_spawn_opts *opts, const char *default_cwd);
void spawn_plan_free(spawn_plan *plan);
/* In the child: never returns. */
void spawn_child_exec(const spawn_plan *plan) __attribute__((noreturn));
/* The command as people read it: the shell string, or argv joined with spaces (malloc'd). */
char *spawn_describe(const ra_spawn_opts *opts);

#endif
