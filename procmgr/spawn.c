#include "spawn.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

/* ---- parent side: the plan ---- */

static char **strv_dup(char *const *v)
{
	size_t n = 0;
	while (v[n])
		n++;
	char **out = calloc(n + 1, sizeof(*out));
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[i] = strdup(v[i]);
		if (!out[i]) {
			for (size_t j = 0; j < i; j++)
				free(out[j]);
			free(out);
			return NULL;
		}
	}
	return out;
}

static void strv_free(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

static bool env_name_eq(const char *entry, const char *name, size_t nlen)
{
	return strncmp(entry, name, nlen) == 0 && entry[nlen] == '=';
}

/* Replaces or appends "NAME=value" (takes ownership of entry). */
static int env_put(char ***envp, size_t *n, char *entry)
{
	if (!entry)
		return -ENOMEM;
	size_t nlen = (size_t)(strchr(entry, '=') - entry);
	for (size_t i = 0; i < *n; i++) {
		if (env_name_eq((*envp)[i], entry, nlen)) {
			free((*envp)[i]);
			(*envp)[i] = entry;
			return 0;
		}
	}
	char **grown = realloc(*envp, (*n + 2) * sizeof(**envp));
	if (!grown) {
		free(entry);
		return -ENOMEM;
	}
	*envp = grown;
	(*envp)[(*n)++] = entry;
	(*envp)[*n] = NULL;
	return 0;
}

static char *env_entry(const char *name, const char *value)
{
	size_t a = strlen(name), b = strlen(value);
	char *e = malloc(a + b + 2);
	if (!e)
		return NULL;
	memcpy(e, name, a);
	e[a] = '=';
	memcpy(e + a + 1, value, b + 1);
	return e;
}

/* The agent's environment minus its own settings, then the user's identity, then the caller's entries. */
static int build_env(spawn_plan *plan, const ra_spawn_opts *opts, const struct passwd *pw)
{
	size_t n = 0;
	plan->envp = calloc(1, sizeof(char *));
	if (!plan->envp)
		return -ENOMEM;
	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, "RUNRA_AGENT_", 12) == 0 || !strchr(*e, '='))
			continue;
		if (env_put(&plan->envp, &n, strdup(*e)))
			return -ENOMEM;
	}
	bool has_path = false;
	for (size_t i = 0; i < n; i++)
		has_path |= env_name_eq(plan->envp[i], "PATH", 4);
	if (!has_path && env_put(&plan->envp, &n, env_entry("PATH", DEFAULT_PATH)))
		return -ENOMEM;
	if (pw && (env_put(&plan->envp, &n, env_entry("HOME", pw->pw_dir)) ||
		   env_put(&plan->envp, &n, env_entry("USER", pw->pw_name)) ||
		   env_put(&plan->envp, &n, env_entry("LOGNAME", pw->pw_name))))
		return -ENOMEM;
	if (opts->pty && !getenv("TERM") && env_put(&plan->envp, &n, env_entry("TERM", "xterm-256color")))
		return -ENOMEM;
	for (char *const *e = opts->env_set; e && *e; e++)
		if (env_put(&plan->envp, &n, strdup(*e)))
			return -ENOMEM;
	return 0;
}

static struct passwd *lookup_user(const char *user)
{
	char *end;
	errno = 0;
	unsigned long uid = strtoul(user, &end, 10);
	if (isdigit((unsigned char)user[0]) && !*end && !errno && uid <= (uid_t)-2)
		return getpwuid((uid_t)uid);
	return getpwnam(user);
}

static int resolve_user(spawn_plan *plan, const char *user, struct passwd **pw_out)
{
	*pw_out = NULL;
	if (!user)
		return 0;
	struct passwd *pw = lookup_user(user);
	if (!pw)
		return RA_SPAWN_ERR_USER;
	/* running as that user already (a non-root agent naming itself): nothing to switch, nothing to fail */
	plan->switch_user = pw->pw_uid != geteuid() || pw->pw_gid != getegid();
	plan->uid = pw->pw_uid;
	plan->gid = pw->pw_gid;
	plan->ngroups = SPAWN_MAX_GROUPS;
	if (getgrouplist(pw->pw_name, pw->pw_gid, plan->groups, &plan->ngroups) < 0)
		plan->ngroups = SPAWN_MAX_GROUPS; /* more groups than we keep: the first ones */
	*pw_out = pw;
	return 0;
}

static int check_dir(const char *path)
{
	struct stat st;
	if (stat(path, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int spawn_plan_prepare(spawn_plan *plan, const ra_spawn_opts *opts, const char *default_cwd)
{
	struct passwd *pw;
	int rc = resolve_user(plan, opts->user, &pw);
	if (rc)
		return rc;
	/* the passwd entry is static storage: take what we need before anything else calls getpw* */
	struct passwd copy = {0};
	if (pw) {
		copy.pw_name = strdup(pw->pw_name);
		copy.pw_dir = strdup(pw->pw_dir);
		if (!copy.pw_name || !copy.pw_dir) {
			free(copy.pw_name);
			free(copy.pw_dir);
			return -ENOMEM;
		}
	}
	rc = build_env(plan, opts, pw ? &copy : NULL);
	free(copy.pw_name);
	free(copy.pw_dir);
	if (rc)
		return rc;
	const char *cwd = opts->cwd ? opts->cwd : default_cwd;
	rc = check_dir(cwd);
	if (rc)
		return rc;
	plan->cwd = strdup(cwd);
	if (opts->shell_command) {
		char *const shell[] = {"/bin/sh", "-c", (char *)opts->shell_command, NULL};
		plan->argv = strv_dup(shell);
	} else {
		plan->argv = strv_dup(opts->argv);
	}
	return plan->cwd && plan->argv ? 0 : -ENOMEM;
}

void spawn_plan_free(spawn_plan *plan)
{
	strv_free(plan->argv);
	strv_free(plan->envp);
	free(plan->cwd);
	plan->argv = plan->envp = NULL;
	plan->cwd = NULL;
}

char *spawn_describe(const ra_spawn_opts *opts)
{
	if (opts->shell_command)
		return strdup(opts->shell_command);
	size_t len = 1;
	for (char *const *a = opts->argv; *a; a++)
		len += strlen(*a) + 1;
	char *s = malloc(len), *p = s;
	if (!s)
		return NULL;
	for (char *const *a = opts->argv; *a; a++) {
		size_t n = strlen(*a);
		memcpy(p, *a, n);
		p += n;
		*p++ = ' ';
	}
	p[p > s ? -1 : 0] = '\0';
	return s;
}

/* ---- child side: apply the plan, then exec ---- */

/* Tells the parent which step failed and why: {step, errno}, then exits like a shell would. */
static void __attribute__((noreturn)) child_fail(int fd, spawn_step step)
{
	int report[2] = {(int)step, errno};
	ssize_t w = write(fd, report, sizeof(report));
	(void)w;
	_exit(127);
}

/* Every disposition back to the default, the libc-reserved signals (32-34) included: libc's sigaction
 * refuses those, so an ignored one inherited by the agent would reach the program. Hence the raw call,
 * with the kernel's own struct (x86_64 and the generic layout agree on handler, flags, restorer, mask). */
static void reset_signals(void)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		unsigned long mask;
	} dfl = {0};
	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Moves the three fds above 2 first, so that dup2 into 0..2 never overwrites a source still needed. */
static int install_stdio(const spawn_plan *plan)
{
	int src[3] = {plan->stdin_fd, plan->stdout_fd, plan->stderr_fd};
	for (int i = 0; i < 3; i++) {
		src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
		if (src[i] < 0)
			return -1;
	}
	for (int i = 0; i < 3; i++)
		if (dup2(src[i], i) < 0)
			return -1;
	return 0;
}

static void close_other_fds(int keep)
{
	if (syscall(SYS_close_range, 3, (unsigned)keep - 1, 0) == 0 &&
	    syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = 3; fd < max; fd++)
		if (fd != keep)
			close(fd);
}

/* The soft fd limit the agent was started with, not its raised one. */
static void restore_fd_limit(rlim_t nofile)
{
	struct rlimit l;
	if (!nofile || getrlimit(RLIMIT_NOFILE, &l) || l.rlim_cur == nofile)
		return;
	l.rlim_cur = nofile;
	setrlimit(RLIMIT_NOFILE, &l);
}

static const char *env_lookup(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (; *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* execvpe with the child's own PATH (not the agent's): a missing candidate moves on, EACCES is remembered
 * (and wins over ENOENT, as in a shell), any other failure (E2BIG, ENOEXEC, ...) is the answer. */
static void exec_search(char *const *argv, char *const *envp)
{
	const char *file = argv[0];
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return;
	}
	const char *path = env_lookup(envp, "PATH");
	if (!path)
		path = DEFAULT_PATH;
	bool saw_eacces = false;
	char buf[4096];
	size_t flen = strlen(file);
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dlen = (size_t)(end - p);
		if (dlen + flen + 2 <= sizeof(buf)) {
			memcpy(buf, dlen ? p : ".", dlen ? dlen : 1);
			size_t at = dlen ? dlen : 1;
			buf[at] = '/';
			memcpy(buf + at + 1, file, flen + 1);
			execve(buf, argv, envp);
			if (errno == EACCES)
				saw_eacces = true;
			else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP && errno != ENAMETOOLONG)
				return;
		}
		if (!*end)
			break;
		p = end;
	}
	errno = saw_eacces ? EACCES : ENOENT;
}

void spawn_child_exec(const spawn_plan *plan)
{
	int err_fd = plan->exec_err_fd;
	reset_signals();
	setpriority(PRIO_PROCESS, 0, 0); /* not the agent's raised priority */
	if (setsid() < 0)
		child_fail(err_fd, SPAWN_STEP_SETSID);
	if (plan->pty && ioctl(plan->stdin_fd, TIOCSCTTY, 0) < 0)
		child_fail(err_fd, SPAWN_STEP_TERMINAL);
	if (install_stdio(plan))
		child_fail(err_fd, SPAWN_STEP_STDIO);
	/* Raw calls: musl's setgroups/setgid/setuid go through __synccall, which takes libc's locks and would
	 * signal the agent's other threads (were there any) from a child that shares its memory. */
	if (plan->switch_user && (syscall(SYS_setgroups, (size_t)plan->ngroups, plan->groups) ||
				  syscall(SYS_setresgid, plan->gid, plan->gid, plan->gid) ||
				  syscall(SYS_setresuid, plan->uid, plan->uid, plan->uid)))
		child_fail(err_fd, SPAWN_STEP_USER);
	if (chdir(plan->cwd))
		child_fail(err_fd, SPAWN_STEP_CHDIR);
	close_other_fds(err_fd);
	restore_fd_limit(plan->nofile); /* last: the steps above may need fds above the program's limit */
	exec_search(plan->argv, plan->envp);
	child_fail(err_fd, SPAWN_STEP_EXEC);
}
