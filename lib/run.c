/* SPDX-License-Identifier: MIT */
/*
 * Running a job's command: spawn it, tee its stdout and stderr live to ours
 * while journaling both into an entry (entry.h), and tell how it ended.
 */
#include "entry.h"
#include "job.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#define READBUF (64 * 1024) /* one read from the command's pipes */

extern char **environ;

struct runner {
  struct cdo_job *job;
  struct cdo__run *run; /* what was asked, and where the results go */
  uv_loop_t loop;
  uv_signal_t chld;   /* SIGCHLD: the command may have ended */
  uv_pipe_t pipes[3]; /* [1] stdout, [2] stderr */
  uv_timer_t tick;    /* run->tick every 10 s while the command runs */
  pid_t pid;          /* the command until it is reaped, else 0 */
  int piped;          /* stdout/stderr are pipes we read */
  int64_t exit_status;
  int term_signal;
  int closed[3]; /* our fd 1 / 2 lost its reader */
  /* the journal, in run->w */
  int recording; /* 0: the result cannot be stored; run->reason says why */
  uint64_t out_bytes, max_output;
  char *readbuf; /* owned, READBUF bytes; allocated for a piped run */
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
  m.exit_status = (int)rn->exit_status;
  m.expires_ms = m.created_ms + cdo__entry_ttl(rn->job->cfg, m.exit_status) +
                 rn->job->cfg->stale_ms;
  r = cdo__entry_finish(&rn->run->w, &m, &rn->run->src);
  if (r < 0)
    journal_failed(rn, r);
}

/* ---- libuv callbacks ----------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  struct runner *rn = h->data;

  (void)hint;
  *buf = uv_buf_init(rn->readbuf, READBUF);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
  struct runner *rn = st->data;
  int fd = st == (uv_stream_t *)&rn->pipes[1] ? 1 : 2;

  if (n < 0) {
    uv_close((uv_handle_t *)st, NULL);
    return;
  }
  if (n == 0)
    return;
  if (!rn->closed[fd] && cdo__write_all(fd, buf->base, (size_t)n) < 0)
    rn->closed[fd] = 1;
  journal_add(rn, fd, buf->base, (size_t)n);
  /*
   * Nobody reads this stream any more and it cannot be stored either:
   * close the pipe so the command gets EPIPE, as in a plain pipeline.
   */
  if (rn->closed[fd] && !rn->recording && !uv_is_closing((uv_handle_t *)st))
    uv_close((uv_handle_t *)st, NULL);
}

/*
 * SIGCHLD: reaps the command once it has ended. Other children, and the
 * command stopping or continuing, raise it too.
 */
static void on_sigchld(uv_signal_t *h, int sig)
{
  struct runner *rn = h->data;
  pid_t w;
  int st;

  (void)sig;
  if (rn->pid <= 0)
    return; /* the child of a failed spawn, which posix_spawn reaped */
  do
    w = waitpid(rn->pid, &st, WNOHANG);
  while (w < 0 && errno == EINTR);
  if (w == 0)
    return;
  if (w < 0) {
    /* Reaped behind our back (ECHILD): its status is unknown. */
    rn->exit_status = 125;
    rn->term_signal = 0;
    stop_recording(rn, "the command's exit status was lost");
  } else {
    rn->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
    rn->term_signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  }
  rn->pid = 0;
  child_pid = 0;
  uv_close((uv_handle_t *)h, NULL);
}

static void on_tick(uv_timer_t *t)
{
  struct runner *rn = t->data;

  if (rn->run->tick(rn->run->tick_ud) < 0)
    uv_timer_stop(t);
}

/* ---- spawning ------------------------------------------------------------ */

/*
 * Makes the command's fd to a copy of src, or when src < 0, ours as it is
 * (close-on-exec cleared) or /dev/null when ours is closed (stdin may be
 * closed by whoever started cachedo). Returns 0 or an errno value.
 */
static int child_fd(posix_spawn_file_actions_t *fa, int to, int src)
{
  if (src < 0) {
    int fl = fcntl(to, F_GETFD);

    if (fl < 0)
      return posix_spawn_file_actions_addopen(fa, to, "/dev/null",
                                              to == 0 ? O_RDONLY : O_RDWR, 0);
    if (!(fl & FD_CLOEXEC))
      return 0;
    src = to; /* a dup2() onto itself clears the flag */
  }
  return posix_spawn_file_actions_adddup2(fa, src, to);
}

/*
 * argv to run the script j->exe, which has no #! line, with /bin/sh, as
 * execvp(3) does; NULL on ENOMEM. The caller frees the array only.
 */
static char **sh_argv(const struct cdo_job *j)
{
  size_t n = 0;
  char **v;

  while (j->argv[n] != NULL)
    n++;
  v = malloc((n + 2) * sizeof(*v));
  if (v == NULL)
    return NULL;
  v[0] = "/bin/sh";
  v[1] = j->exe;
  memcpy(v + 2, j->argv + 1, n * sizeof(*v)); /* argv[1..n], NULL */
  return v;
}

/*
 * Starts the command without copying our address space (posix_spawn is
 * vfork-like): stdin from j->stdin_fd or ours, stdout and stderr to out[1]
 * and out[2] or ours (-1), with an empty signal mask and the signals this
 * process handles at their defaults, in its own session with own_group.
 * Returns 0 with *pid set, or an errno value (of exec(2) when it failed).
 */
static int spawn(const struct cdo_job *j, const int out[3], pid_t *pid)
{
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  char *const *envp = j->cfg->pure ? j->env : environ;
  sigset_t set;
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  size_t i;
  int e;

  if (own_group)
    flags |= POSIX_SPAWN_SETSID;
  e = posix_spawn_file_actions_init(&fa);
  if (e != 0)
    return e;
  e = posix_spawnattr_init(&at);
  if (e != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return e;
  }
  e = child_fd(&fa, 0, j->stdin_fd);
  for (i = 1; e == 0 && i <= 2; i++)
    e = child_fd(&fa, (int)i, out[i]);
  sigemptyset(&set);
  if (e == 0)
    e = posix_spawnattr_setsigmask(&at, &set);
  for (i = 0; i < CDO__ARRAY_SIZE(forwarded); i++)
    sigaddset(&set, forwarded[i]);
  sigaddset(&set, SIGCHLD); /* ours, to reap */
  sigaddset(&set, SIGPIPE); /* cachedo's own; a pipeline wants the default */
  if (e == 0)
    e = posix_spawnattr_setsigdefault(&at, &set);
  if (e == 0)
    e = posix_spawnattr_setflags(&at, flags);
  if (e == 0)
    e = posix_spawn(pid, j->exe, &fa, &at, j->argv, envp);
  if (e == ENOEXEC) {
    char **sh = sh_argv(j);

    e = sh ? posix_spawn(pid, sh[0], &fa, &at, sh, envp) : ENOMEM;
    free(sh);
  }
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  return e;
}

/*
 * Spawns the command and runs the loop until it exited and its pipes
 * closed. With rn->piped, stdout and stderr go through us; otherwise the
 * command inherits them. Returns 0, or a uv error (-errno) when the
 * command could not be started.
 */
static int spawn_and_wait(struct runner *rn)
{
  int out[3] = {-1, -1, -1}; /* the command's ends of the pipes */
  int r, i, npipes = 0;
  pid_t pid = 0;

  r = uv_loop_init(&rn->loop);
  if (r < 0)
    return r;
  rn->pid = 0;
  r = uv_signal_init(&rn->loop, &rn->chld);
  if (r < 0) {
    uv_loop_close(&rn->loop);
    return r;
  }
  rn->chld.data = rn;
  /* Watching before the command starts: its SIGCHLD cannot be missed. */
  r = uv_signal_start(&rn->chld, on_sigchld, SIGCHLD);
  if (r == 0 && rn->piped && (rn->readbuf = malloc(READBUF)) == NULL)
    r = UV_ENOMEM;
  for (i = 1; r == 0 && rn->piped && i <= 2; i++) {
    uv_file fds[2];

    /*
     * Real pipes, not libuv's socketpairs: when we stop reading, the
     * command's next write fails with EPIPE and SIGPIPE, as in a shell
     * pipeline, and the command sees a FIFO as its stdout.
     */
    r = uv_pipe(fds, 0, 0);
    if (r < 0)
      break;
    uv_pipe_init(&rn->loop, &rn->pipes[i], 0);
    rn->pipes[i].data = rn;
    uv_pipe_open(&rn->pipes[i], fds[0]);
    out[i] = fds[1];
    npipes = i;
  }
  if (r == 0) {
    own_group = !in_foreground();
    got_signal = 0;
    signals_install(1);
    r = CDO__ERR(spawn(rn->job, out, &pid));
  }
  for (i = 1; i <= 2; i++)
    if (out[i] >= 0)
      close(out[i]);
  if (r == 0) {
    rn->pid = pid;
    child_pid = pid;
    if (got_signal) /* arrived while spawning */
      kill(pid, got_signal);
    for (i = 1; i <= npipes; i++)
      uv_read_start((uv_stream_t *)&rn->pipes[i], on_alloc, on_read);
    if (rn->run->tick != NULL) {
      uv_timer_init(&rn->loop, &rn->tick);
      rn->tick.data = rn;
      uv_timer_start(&rn->tick, on_tick, 10000, 10000);
      uv_unref((uv_handle_t *)&rn->tick);
    }
  } else {
    uv_close((uv_handle_t *)&rn->chld, NULL);
    for (i = 1; i <= npipes; i++)
      uv_close((uv_handle_t *)&rn->pipes[i], NULL);
  }
  uv_run(&rn->loop, UV_RUN_DEFAULT);
  if (r == 0 && rn->run->tick != NULL) {
    uv_close((uv_handle_t *)&rn->tick, NULL);
    uv_run(&rn->loop, UV_RUN_DEFAULT);
  }
  signals_install(0);
  child_pid = 0;
  uv_loop_close(&rn->loop);
  free(rn->readbuf);
  rn->readbuf = NULL;
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
  rn.piped = run->record;
  r = spawn_and_wait(&rn);
  if (r < 0 && rn.piped && r != UV_ENOENT && r != UV_EACCES) {
    /* Recording failed to set up (no fds left, say): run it uncached. */
    cdo__job_msg(j, 0,
                 "warning: cannot record the output: %s; running "
                 "uncached",
                 uv_strerror(r));
    rn.recording = 0;
    rn.piped = 0;
    run->uncached = 1;
    r = spawn_and_wait(&rn);
  }
  if (r < 0) {
    cdo__fmt(run->error, sizeof(run->error), "cannot run '%s': %s", j->argv[0],
             uv_strerror(r));
    return r == UV_ENOENT ? 127 : 126;
  }
  journal_finish(&rn, start);
  run->exit_status = (int)rn.exit_status;
  run->term_signal = rn.term_signal;
  run->interrupted = (int)got_signal;
  run->recorded = rn.recording;
  return 0;
}

void cdo__run_release(struct cdo__run *run)
{
  cdo__entry_writer_release(&run->w);
}
