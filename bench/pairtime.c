/* pairtime: time two commands alternately and report medians and the
 * distribution of per-pair ratios (candidate / baseline).
 *
 *   pairtime [-n N] [-w W] [-o null|pipe|inherit] [-e] [-j J] [-r] [-t S] BASE CAND
 *   pairtime -s N [-w W] [-o ...] [-e] [-t S] CMD [WARM]
 *
 * BASE and CAND are command lines. Without shell syntax in either, both are
 * split on blanks and exec'd directly (PATH looked up once, before timing);
 * otherwise both run through /bin/sh -c, so each side pays the same start-up.
 * Children get stdin from /dev/null, stderr to /dev/null (unless -e) and
 * stdout as -o says: /dev/null (default); a pipe drained by a helper process,
 * where a sample ends only when the pipe is empty again (like `CMD | cat
 * >/dev/null`); or pairtime's own stdout. -j runs J concurrent copies of CAND
 * per sample; -r sets PAIRTIME_RUN to a number unique to each sample; -t
 * kills a sample's processes after S seconds (the sample still counts).
 * Pair i runs BASE first when i is even and CAND first when it is odd.
 *
 * Prints one line: base_ms cand_ms ratio_median ratio_p10 ratio_p90 n mode
 *
 * -s (series) runs the one command CMD N times in a row instead, and prints
 * each run's wall time in ms, one line per run, in order (the clock is read
 * around the spawn and the wait only: nothing else runs inside a sample).
 * Its warm-up is the command WARM, run W times untimed just before; without
 * WARM there is none.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct cmd {
	const char *line;
	char *path;    /* resolved executable */
	char **argv;
	int nonzero;   /* processes that did not exit 0 */
	int last_status;
	int timeouts;  /* samples killed by -t */
};

static int out_fd = 1, err_fd = -1, in_fd = -1;
static int drain_fd = -1; /* read end of the output pipe, for FIONREAD */
static int set_run;
static pid_t *pids; /* the running sample's processes, 0 once reaped */
static int npids;
static long run_no;
static unsigned timeout_s;
static volatile sig_atomic_t expired;

/* -t expired: kill what is left of the sample, so waitpid returns. */
static void on_alarm(int sig)
{
	(void)sig;
	expired = 1;
	for (int i = 0; i < npids; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
}

static void die(const char *msg)
{
	fprintf(stderr, "pairtime: %s: %s\n", msg, strerror(errno));
	exit(2);
}

static int needs_shell(const char *s)
{
	size_t first = strcspn(s, " \t");
	const char *eq = strchr(s, '=');
	return strpbrk(s, "|&;<>()$`\\\"'*?[]{}~#\n") || (eq && eq < s + first);
}

static char **split(const char *line)
{
	char *copy = strdup(line), *tok, *save = NULL;
	char **argv = calloc(strlen(line) / 2 + 2, sizeof *argv);
	int n = 0;
	if (!copy || !argv)
		die("out of memory");
	for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
		argv[n++] = tok;
	return argv;
}

static char *lookup(const char *name)
{
	const char *path = getenv("PATH");
	char buf[4096];
	if (strchr(name, '/'))
		return strdup(name);
	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		size_t len = strcspn(p, ":");
		snprintf(buf, sizeof buf, "%.*s/%s", (int)len, len ? p : ".", name);
		if (access(buf, X_OK) == 0)
			return strdup(buf);
		p += len + (p[len] == ':');
	}
	fprintf(stderr, "pairtime: %s: command not found\n", name);
	exit(2);
}

static void prepare(struct cmd *c, int shell)
{
	if (shell) {
		static char *sh[] = {"sh", "-c", NULL, NULL};
		c->argv = malloc(sizeof sh);
		memcpy(c->argv, sh, sizeof sh);
		c->argv[2] = (char *)c->line;
		c->path = "/bin/sh";
	} else {
		c->argv = split(c->line);
		if (!c->argv[0]) {
			fprintf(stderr, "pairtime: empty command\n");
			exit(2);
		}
		c->path = lookup(c->argv[0]);
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs `copies` instances of c at once; returns the wall time in seconds. */
static double sample(struct cmd *c, int copies)
{
	posix_spawn_file_actions_t fa;
	char num[32];
	int i, status;
	double t0, t1;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	posix_spawn_file_actions_adddup2(&fa, err_fd < 0 ? 2 : err_fd, 2);
	if (set_run) {
		snprintf(num, sizeof num, "%ld", run_no++);
		setenv("PAIRTIME_RUN", num, 1);
	}

	expired = 0;
	t0 = now();
	alarm(timeout_s);
	for (i = 0; i < copies; i++) {
		errno = posix_spawn(&pids[i], c->path, &fa, NULL, c->argv, environ);
		if (errno)
			die(c->path);
		npids = i + 1;
	}
	for (i = 0; i < copies; i++) {
		while (waitpid(pids[i], &status, 0) < 0)
			if (errno != EINTR)
				die("waitpid");
		pids[i] = 0;
		if (status != 0) {
			c->nonzero++;
			c->last_status = status;
		}
	}
	if (drain_fd >= 0) {
		int left;
		while (ioctl(drain_fd, FIONREAD, &left) == 0 && left > 0)
			sched_yield();
	}
	t1 = now();
	alarm(0);
	npids = 0;
	c->timeouts += expired;

	posix_spawn_file_actions_destroy(&fa);
	return t1 - t0;
}

static pid_t start_drainer(void)
{
	int p[2];
	pid_t pid;
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe");
	if ((pid = fork()) < 0)
		die("fork");
	if (pid == 0) {
		static char buf[128 * 1024]; /* cat's buffer size */
		ssize_t got;
		close(p[1]);
		do
			got = read(p[0], buf, sizeof buf);
		while (got > 0 || (got < 0 && errno == EINTR));
		_exit(0);
	}
	drain_fd = p[0];
	out_fd = p[1];
	return pid;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Quantile q of sorted v[0..n), linear interpolation between ranks. */
static double quantile(const double *v, int n, double q)
{
	double pos = q * (n - 1);
	int lo = (int)pos;
	return lo + 1 < n ? v[lo] + (v[lo + 1] - v[lo]) * (pos - lo) : v[lo];
}

static void report_failures(const char *side, const struct cmd *c, int samples, int copies)
{
	if (c->timeouts)
		fprintf(stderr, "pairtime: %s '%s' killed after %us in %d of %d samples\n", side,
			c->line, timeout_s, c->timeouts, samples);
	if (!c->nonzero)
		return;
	fprintf(stderr, "pairtime: %s '%s' ended non-zero %d of %d times (",
		side, c->line, c->nonzero, samples * copies);
	if (WIFSIGNALED(c->last_status))
		fprintf(stderr, "signal %d)\n", WTERMSIG(c->last_status));
	else
		fprintf(stderr, "exit %d)\n", WEXITSTATUS(c->last_status));
}

static void usage(void)
{
	fprintf(stderr, "usage: pairtime [-n N] [-w W] [-o null|pipe|inherit] [-e] [-j J] [-r] "
			"BASELINE CANDIDATE\n"
			"       pairtime -s N [-w W] [-o null|pipe|inherit] [-e] [-t S] CMD [WARM]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct cmd base = {0}, cand = {0};
	int n = 201, warm = 3, copies = 1, series = 0, opt, shell, i;
	const char *out = "null";
	pid_t drainer = -1;

	while ((opt = getopt(argc, argv, "n:w:o:ej:rt:s:")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'w': warm = atoi(optarg); break;
		case 'o': out = optarg; break;
		case 'e': err_fd = 2; break;
		case 'j': copies = atoi(optarg); break;
		case 'r': set_run = 1; break;
		case 't': timeout_s = (unsigned)atoi(optarg); break;
		case 's': series = n = atoi(optarg); break;
		default: usage();
		}
	}
	if (argc - optind != 2 && (!series || argc - optind != 1))
		usage();
	if (n < 1 || warm < 0 || copies < 1)
		usage();
	base.line = argv[optind];
	cand.line = argv[argc - optind == 2 ? optind + 1 : optind];
	shell = needs_shell(base.line) || needs_shell(cand.line);
	prepare(&base, shell);
	prepare(&cand, shell);

	struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART: waitpid sees EINTR */
	sigaction(SIGALRM, &sa, NULL);

	if ((in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		die("/dev/null");
	if (err_fd < 0 && (err_fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
		die("/dev/null");
	if (strcmp(out, "null") == 0) {
		if ((out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
			die("/dev/null");
	} else if (strcmp(out, "pipe") == 0) {
		drainer = start_drainer();
	} else if (strcmp(out, "inherit") != 0) {
		usage();
	}

	double *tb = calloc(n, sizeof *tb), *tc = calloc(n, sizeof *tc), *ratio = calloc(n, sizeof *ratio);
	pids = calloc(copies, sizeof *pids);
	if (!tb || !tc || !ratio || !pids)
		die("out of memory");
	if (series) {
		for (i = 0; argc - optind == 2 && i < warm; i++)
			sample(&cand, 1); /* WARM */
		for (i = 0; i < n; i++)
			tb[i] = sample(&base, 1);
		report_failures("command", &base, n, 1);
		for (i = 0; i < n; i++)
			printf("%.4f\n", tb[i] * 1e3);
		return 0;
	}
	for (i = -warm; i < n; i++) {
		double b, c;
		if (i % 2 == 0) {
			b = sample(&base, 1);
			c = sample(&cand, copies);
		} else {
			c = sample(&cand, copies);
			b = sample(&base, 1);
		}
		if (i >= 0) {
			tb[i] = b;
			tc[i] = c;
			ratio[i] = c / b;
		}
	}
	if (drainer > 0) {
		close(out_fd);
		waitpid(drainer, NULL, 0);
	}
	report_failures("baseline", &base, n + warm, 1);
	report_failures("candidate", &cand, n + warm, copies);

	qsort(tb, n, sizeof *tb, cmp_double);
	qsort(tc, n, sizeof *tc, cmp_double);
	qsort(ratio, n, sizeof *ratio, cmp_double);
	printf("%.4f %.4f %.4f %.4f %.4f %d %s\n", quantile(tb, n, .5) * 1e3,
	       quantile(tc, n, .5) * 1e3, quantile(ratio, n, .5), quantile(ratio, n, .1),
	       quantile(ratio, n, .9), n, shell ? "sh" : "exec");
	return 0;
}
