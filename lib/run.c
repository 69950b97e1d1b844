/* SPDX-License-Identifier: MIT */
/*
 * Running a job's command: spawn it, tee its stdout and stderr live to ours
 * while journaling both into an entry (entry.h), and tell how it ended.
 */
#include "entry.h"
#include "job.h"
#include "spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h> /* uv_strerror(): the words of the messages of 0.1 */

extern char **environ;

struct runner {
  struct cdo_job *job;
  struct cdo__run *run; /* what was asked, and where the results go */
  struct cdo__proc proc;
  int closed[3]; /* our fd 1 / 2 lost its reader */
  /* the journal, in run->w */
  int recording; /* 0: the result cannot be stored; run->reason says why */
  uint64_t out_bytes, max_output;
};

/* ---- signals: forwarded to the command once ----------------------------- */

static volatile sig_atomic_t child_pid;
static volatile sig_atomic_t got_signal;
static volatile sig_atomic_t own_group; /* the command has its own session */
static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

/*
 * In the terminal's foreground job, the command shares our process group so
 * that it can use the terminal; a signal from the terminal (SI_KERNEL) then
 * reaches it directly and is not sent again. Anything sent to cachedo alone
 * (kill, timeout) is passed on. Elsewhere (scripts, CI, background jobs)
 * the command runs in its own session, as with timeout(1), so that a signal
 * sent to our process group reaches it once, through us.
 */
static void on_signal(int sig, siginfo_t *info, void *uc)
{
  (void)uc;
  got_signal = sig;
  if (child_pid > 0 &&
      (own_group || (info != NULL && info->si_code != SI_KERNEL)))
    kill((pid_t)child_pid, sig);
}

/* Is cachedo in the foreground job of the terminal it talks to? */
static int in_foreground(void)
{
  int fd;

  for (fd = 0; fd <= 2; fd++)
    if (isatty(fd))
      return tcgetpgrp(fd) == getpgrp();
  return 0;
}

static void signals_install(int on)
{
  struct sigaction sa;
  size_t i;

  memset(&sa, 0, sizeof(sa));
  sigemptyset(&sa.sa_mask);
  if (on) {
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
  } else {
    sa.sa_handler = SIG_DFL;
  }
  for (i = 0; i < CDO__ARRAY_SIZE(forwarded); i++)
    sigaction(forwarded[i], &sa, NULL);
}

/* ---- the journal --------------------------------------------------------- */

static void stop_recording(struct runner *rn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void stop_recording(struct runner *rn, const char *fmt, ...)
{
  va_list ap;

  if (!rn->recording)
    return;
  rn->recording = 0;
  va_start(ap, fmt);
  vsnprintf(rn->run->reason, sizeof(rn->run->reason), fmt, ap);
  va_end(ap);
  cdo__entry_writer_release(&rn->run->w);
}

/* The entry writer failed with r: say so once, and record no more. */
static void journal_failed(struct runner *rn, int r)
{
  const char *what = rn->run->w.failed ? rn->run->w.failed : "cannot record";

  if (r == CDO__ERR(ENOMEM)) {
    cdo__job_msg(rn->job, 0,
                 "warning: out of memory; the result will not be stored");
    stop_recording(rn, "out of memory");
    return;
  }
  cdo__job_msg(rn->job, 0, "warning: %s: %s; the result will not be stored",
               what, cdo_strerror(r));
  stop_recording(rn, "%s: %s", what, cdo_strerror(r));
}

/* Appends output of stream to the journal, within --max-output. */
static void journal_add(struct runner *rn, int stream, const char *p, size_t n)
{
  int r;

  if (!rn->recording)
    return;
  rn->out_bytes += n;
  if (rn->out_bytes > rn->max_output) {
    char max[32];

    cdo_format_size(rn->max_output, max, sizeof(max));
    stop_recording(rn, "output larger than --max-output (%s)", max);
    return;
  }
  r = cdo__entry_add(&rn->run->w, stream, p, n);
  if (r < 0)
    journal_failed(rn, r);
}

/* Completes the journal after the run, into the entry run->src. */
static void journal_finish(struct runner *rn, int64_t start_mono)
{
  struct cdo__meta m;
  int r;

  if (!rn->recording)
    return;
  m.created_ms = cdo__now_ms();
  m.duration_ms = cdo__mono_ms() - start_mono;
  m.exit_status = rn->proc.exit_status;
  m.expires_ms = m.created_ms + cdo__entry_ttl(rn->job->cfg, m.exit_status) +
                 rn->job->cfg->stale_ms;
  r = cdo__entry_finish(&rn->run->w, &m, &rn->run->src);
  if (r < 0)
    journal_failed(rn, r);
}

/* ---- the command's process -------------------------------------------- */

/* Output of the command: to ours, and into the journal. */
static int on_output(struct cdo__proc *p, int fd, const char *buf, size_t n)
{
  struct runner *rn = p->ud;

  if (!rn->closed[fd] && cdo__write_all(fd, buf, n) < 0)
    rn->closed[fd] = 1;
  journal_add(rn, fd, buf, n);
  /*
   * Nobody reads this stream any more and it cannot be stored either:
   * close the pipe so the command gets EPIPE, as in a plain pipeline.
   */
  return rn->closed[fd] && !rn->recording;
}

static void on_started(struct cdo__proc *p)
{
  struct runner *rn = p->ud;

  child_pid = p->pid;
  if (got_signal) /* arrived while spawning */
    kill(p->pid, got_signal);
  else if (rn->run->started != NULL)
    rn->run->started(rn->run->started_ud);
}

static int on_tick(struct cdo__proc *p)
{
  struct runner *rn = p->ud;

  return rn->run->tick(rn->run->tick_ud);
}

/*
 * --tty: a pseudo-terminal for the command's stdout and stderr, raw (no
 * "\n" made "\r\n"), as large as the terminal of ours that has a size,
 * else 80x24. 0, or -errno.
 */
static int open_pty(int *master, int *slave)
{
  struct winsize ws = {.ws_row = 24, .ws_col = 80}, ours;
  static const int probe[] = {1, 2, 0};
  struct termios t;
  char name[128];
  int fd, e;
  size_t i;

  *slave = -1;
  fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return CDO__ERR(errno);
  if (grantpt(fd) < 0 || unlockpt(fd) < 0 ||
      (errno = ptsname_r(fd, name, sizeof(name))) != 0 ||
      (*slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
    e = errno;
    close(fd);
    return CDO__ERR(e);
  }
  if (tcgetattr(*slave, &t) == 0) {
    cfmakeraw(&t);
    tcsetattr(*slave, TCSANOW, &t);
  }
  for (i = 0; i < CDO__ARRAY_SIZE(probe); i++) {
    if (ioctl(probe[i], TIOCGWINSZ, &ours) == 0 && ours.ws_col > 0) {
      ws = ours;
      break;
    }
  }
  ioctl(*slave, TIOCSWINSZ, &ws);
  *master = fd;
  return 0;
}

/*
 * Runs the command to its end: with piped, stdout and stderr go through
 * us; otherwise it inherits them. With --tty both go to one pseudo-
 * terminal whose master we read, stored or not. 0, or -errno when it
 * could not start.
 */
static int run_proc(struct runner *rn, int piped)
{
  const struct cdo_job *j = rn->job;
  struct cdo__proc *p = &rn->proc;
  int r;

  memset(p, 0, sizeof(*p));
  p->path = j->exe;
  p->argv = j->argv;
  p->envp = j->cfg->pure ? j->env : environ;
  p->fd[0] = j->stdin_fd >= 0 ? j->stdin_fd : CDO__PROC_OURS;
  p->fd[1] = p->fd[2] = piped ? CDO__PROC_PIPE : CDO__PROC_OURS;
  if (j->cfg->tty) { /* one stream, on a terminal: read as stdout */
    r = open_pty(&p->read_from[1], &p->fd[1]);
    if (r < 0)
      return r;
    p->fd[2] = p->fd[1];
  }
  p->on_output = on_output;
  p->started = on_started;
  p->ud = rn;
  if (rn->run->tick != NULL) {
    p->tick = on_tick;
    p->tick_ms = 10000;
  }
  own_group = !in_foreground();
  p->flags = CDO__PROC_SCRIPT | (own_group ? CDO__PROC_SETSID : 0);
  got_signal = 0;
  signals_install(1);
  r = cdo__proc_run(p);
  signals_install(0);
  child_pid = 0;
  if (r == 0 && p->status_lost)
    stop_recording(rn, "the command's exit status was lost");
  return r;
}

/* ---- the run ------------------------------------------------------------- */

int cdo__run(struct cdo_job *j, struct cdo__run *run)
{
  struct runner rn;
  int64_t start = cdo__mono_ms();
  int r;

  memset(&rn, 0, sizeof(rn));
  rn.job = j;
  rn.run = run;
  rn.max_output = j->cfg->max_output;
  run->w.spool = -1;
  if (run->record) {
    rn.recording = 1;
    r = cdo__entry_begin(&run->w, &j->key, j->argv, run->spool_dir, 0,
                         j->cfg->signing ? j->cfg->sign_key : NULL);
    if (r < 0)
      journal_failed(&rn, r);
  }
  r = run_proc(&rn, run->record);
  if (r < 0 && run->record && r != CDO__ERR(ENOENT) && r != CDO__ERR(EACCES)) {
    /* Recording failed to set up (no fds left, say): run it uncached. */
    cdo__job_msg(j, 0,
                 "warning: cannot record the output: %s; running "
                 "uncached",
                 uv_strerror(r));
    rn.recording = 0;
    run->uncached = 1;
    r = run_proc(&rn, 0);
  }
  if (r < 0) {
    cdo__fmt(run->error, sizeof(run->error), "cannot run '%s': %s", j->argv[0],
             uv_strerror(r));
    return r == CDO__ERR(ENOENT) ? 127 : 126;
  }
  journal_finish(&rn, start);
  run->exit_status = rn.proc.exit_status;
  run->term_signal = rn.proc.term_signal;
  run->interrupted = (int)got_signal;
  run->recorded = rn.recording;
  return 0;
}

void cdo__run_release(struct cdo__run *run)
{
  cdo__entry_writer_release(&run->w);
}
