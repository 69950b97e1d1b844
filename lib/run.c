/* SPDX-License-Identifier: MIT */
/*
 * Running a job: answer from the store, or spawn the command, tee its
 * stdout and stderr live to ours while journaling both (in memory, in a
 * spool file once large), and store the result.
 */
#include "job.h"
#include "store_int.h"

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
  uv_loop_t loop;
  uv_signal_t chld;        /* SIGCHLD: the command may have ended */
  uv_pipe_t pipes[3];      /* [1] stdout, [2] stderr */
  uv_timer_t renew;        /* keeps a lease lock alive while the command runs */
  struct cdo_store *store; /* with lock: the store and lock to renew */
  void *lock;
  pid_t pid; /* the command until it is reaped, else 0 */
  int piped; /* stdout/stderr are pipes we read */
  int64_t exit_status;
  int term_signal;
  int closed[3]; /* our fd 1 / 2 lost its reader */
  /* the journal */
  int recording; /* 0: the result cannot be stored; reason says why */
  uint64_t out_bytes, max_output;
  struct cdo__entry_writer w;
  char reason[160]; /* why the result cannot be stored */
  char *readbuf;    /* owned, READBUF bytes; allocated for a piped run */
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
  vsnprintf(rn->reason, sizeof(rn->reason), fmt, ap);
  va_end(ap);
  cdo__entry_writer_release(&rn->w);
}

/* The entry writer failed with r: say so once, and record no more. */
static void journal_failed(struct runner *rn, int r)
{
  const char *what = rn->w.failed ? rn->w.failed : "cannot record";

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
  r = cdo__entry_add(&rn->w, stream, p, n);
  if (r < 0)
    journal_failed(rn, r);
}

/* Completes the journal after the run, into the entry to store in *src. */
static void journal_finish(struct runner *rn, int64_t start_mono,
                           struct cdo__src *src)
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
  r = cdo__entry_finish(&rn->w, &m, src);
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

static void on_renew(uv_timer_t *t)
{
  struct runner *rn = t->data;

  if (cdo__store_lock_renew(rn->store, &rn->job->key, rn->lock) < 0) {
    cdo__job_msg(rn->job, 1, "lost the lock of this run: %s",
                 cdo_store_errmsg(rn->store));
    uv_timer_stop(t);
  }
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
    if (rn->lock != NULL) {
      uv_timer_init(&rn->loop, &rn->renew);
      rn->renew.data = rn;
      uv_timer_start(&rn->renew, on_renew, 10000, 10000);
      uv_unref((uv_handle_t *)&rn->renew);
    }
  } else {
    uv_close((uv_handle_t *)&rn->chld, NULL);
    for (i = 1; i <= npipes; i++)
      uv_close((uv_handle_t *)&rn->pipes[i], NULL);
  }
  uv_run(&rn->loop, UV_RUN_DEFAULT);
  if (r == 0 && rn->lock != NULL) {
    uv_close((uv_handle_t *)&rn->renew, NULL);
    uv_run(&rn->loop, UV_RUN_DEFAULT);
  }
  signals_install(0);
  child_pid = 0;
  uv_loop_close(&rn->loop);
  free(rn->readbuf);
  rn->readbuf = NULL;
  return r;
}

/* ---- the job ------------------------------------------------------------- */

/* Stores the finished entry src; returns 0 or the backend's error. */
static int store_result(struct runner *rn, struct cdo_store *s,
                        const struct cdo__src *src)
{
  struct cdo_job *j = rn->job;
  const struct cdo_config *c = j->cfg;
  const struct cdo__meta *m = &rn->w.meta;
  struct cdo__put_info info;
  char *command = cdo__argv_render(j->argv);
  int r;

  if (command == NULL)
    return CDO__ERR(ENOMEM);
  info.created_ms = m->created_ms;
  info.expires_ms = m->expires_ms;
  info.duration_ms = m->duration_ms;
  info.exit_status = m->exit_status;
  info.command = command;
  info.scope = c->scope;
  r = cdo__store_put(s, &j->key, src, &info);
  free(command);
  return r;
}

/*
 * Runs the command (recording when s is non-NULL) and fills res; lk, the
 * run lock held (or NULL), is renewed while it runs. With keep_good, a
 * failing run does not replace a stored successful one (stale-if-error).
 * Returns 0, or the code of the store's failure to keep the result.
 */
static int run_command(struct cdo_job *j, struct cdo_store *s, void *lk,
                       struct cdo_result *res, int keep_good)
{
  const struct cdo_config *c = j->cfg;
  struct runner *rn = calloc(1, sizeof(*rn));
  int64_t start = cdo__mono_ms();
  struct cdo__src src;
  int r, failure = 0;

  if (rn == NULL) {
    res->exit_status = 125;
    cdo__fmt(res->error, sizeof(res->error), "out of memory");
    return 0;
  }
  rn->job = j;
  rn->store = s;
  rn->lock = lk;
  rn->max_output = c->max_output;
  rn->w.spool = -1;
  if (s != NULL) {
    rn->recording = 1;
    r = cdo__entry_begin(&rn->w, &j->key, j->argv, cdo__store_spool_dir(s), 0,
                         c->signing ? c->sign_key : NULL);
    if (r < 0)
      journal_failed(rn, r);
  }
  rn->piped = s != NULL;
  r = spawn_and_wait(rn);
  if (r < 0 && rn->piped && r != UV_ENOENT && r != UV_EACCES) {
    /* Recording failed to set up (no fds left, say): run it uncached. */
    cdo__job_msg(j, 0,
                 "warning: cannot record the output: %s; running "
                 "uncached",
                 uv_strerror(r));
    rn->recording = 0;
    rn->piped = 0;
    s = NULL;
    r = spawn_and_wait(rn);
  }
  if (r < 0) {
    res->exit_status = r == UV_ENOENT ? 127 : 126;
    cdo__fmt(res->error, sizeof(res->error), "cannot run '%s': %s", j->argv[0],
             uv_strerror(r));
    res->outcome = CDO_UNCACHED;
    goto out;
  }
  journal_finish(rn, start, &src);
  res->exit_status = (int)rn->exit_status;
  res->term_signal = rn->term_signal;
  res->outcome = s ? CDO_MISS_NOT_STORED : CDO_UNCACHED;
  if (s == NULL)
    cdo__fmt(res->reason, sizeof(res->reason), "%s",
             rn->reason[0] ? rn->reason : "cache disabled");
  else if (rn->term_signal)
    cdo__fmt(res->reason, sizeof(res->reason), "killed by signal %d",
             rn->term_signal);
  else if (got_signal)
    cdo__fmt(res->reason, sizeof(res->reason), "interrupted by signal %d",
             (int)got_signal);
  else if (!rn->recording)
    cdo__fmt(res->reason, sizeof(res->reason), "%s", rn->reason);
  else if (rn->exit_status != 0 && c->fail_ttl_ms == 0)
    cdo__fmt(res->reason, sizeof(res->reason),
             "exit status %d and failures are not cached",
             (int)rn->exit_status);
  else if (rn->exit_status != 0 && keep_good)
    cdo__fmt(res->reason, sizeof(res->reason),
             "exit status %d; the stored successful result is kept",
             (int)rn->exit_status);
  else if ((r = store_result(rn, s, &src)) < 0) {
    cdo__job_msg(
        j, 0, "warning: cannot store the result in '%s': %s", cdo_store_url(s),
        cdo_store_errmsg(s)[0] ? cdo_store_errmsg(s) : cdo_strerror(r));
    cdo__fmt(res->reason, sizeof(res->reason), "%s", cdo_strerror(r));
    failure = r;
  } else
    res->outcome = CDO_MISS_STORED;
out:
  cdo__entry_writer_release(&rn->w);
  free(rn);
  return failure;
}

/*
 * Replays a verified entry, fills res as a hit (or a stale answer) and
 * counts it, with the time the original run took as the time saved.
 */
static void replay(struct cdo_job *j, struct cdo_store *s, struct cdo__blob *b,
                   const struct cdo__meta *m, uint64_t joff,
                   enum cdo_outcome outcome, struct cdo_result *res)
{
  cdo__entry_replay(b, m, joff);
  cdo__blob_free(b);
  res->outcome = outcome;
  res->exit_status = m->exit_status;
  res->age_ms = cdo__now_ms() - m->created_ms;
  cdo__store_record(s, &j->key, outcome, m->duration_ms, 0);
}

/* Replays k's entry if it is fresh now; 1 when it did, else 0. */
static int replay_if_fresh(struct cdo_job *j, struct cdo_store *s,
                           struct cdo_result *res)
{
  struct cdo__blob *b = NULL;
  struct cdo__meta m;
  uint64_t joff;
  int r = cdo__store_lookup(s, &j->key, &b, &m, &joff);

  if (r == CDO__FRESH) {
    replay(j, s, b, &m, joff, CDO_HIT, res);
    return 1;
  }
  cdo__blob_free(b);
  return 0;
}

/*
 * Single-flight. Takes the key's run lock, or waits for the run that holds
 * it and replays its result. Returns 1 when this process holds the lock
 * (*lk) and must run the command, 0 when res was filled by a replay, or -1
 * when the command should run uncached (gave up waiting, or locks fail).
 */
static int single_flight(struct cdo_job *j, struct cdo_store *s, void **lk,
                         struct cdo_result *res)
{
  const struct cdo_config *c = j->cfg;
  int64_t start = cdo__mono_ms(), waited = 0;
  int r, contended = 0, status_shown = 0;
  char elapsed[32];

  for (;;) {
    int64_t left = c->lock_timeout_ms - waited;

    r = cdo__store_lock(s, &j->key, contended ? (left < 1000 ? left : 1000) : 0,
                        lk);
    waited = cdo__mono_ms() - start;
    if (r == 0)
      break;
    if (r != CDO__ERR(EAGAIN)) {
      cdo__job_msg(j, 1,
                   "cannot lock '%s': %s; running without waiting for "
                   "identical runs",
                   cdo_store_url(s),
                   cdo_store_errmsg(s)[0] ? cdo_store_errmsg(s)
                                          : cdo_strerror(r));
      *lk = NULL;
      return 1;
    }
    contended = 1;
    if (waited >= c->lock_timeout_ms) {
      if (status_shown)
        cdo__job_msg(j, 3, "%s", "");
      cdo_format_duration(waited, elapsed, sizeof(elapsed));
      cdo__job_msg(j, 0,
                   "warning: gave up waiting for an identical run "
                   "after %s; running uncached",
                   elapsed);
      return -1;
    }
    if (waited >= 1000) {
      long pid = cdo__store_lock_holder(s, &j->key);

      cdo_format_duration(waited, elapsed, sizeof(elapsed));
      if (pid > 0)
        cdo__job_msg(j, 2, "waiting for '%s' (pid %ld), %s", j->argv[0], pid,
                     elapsed);
      else
        cdo__job_msg(j, 2, "waiting for '%s', %s", j->argv[0], elapsed);
      status_shown = 1;
    }
  }
  if (status_shown)
    cdo__job_msg(j, 3, "%s", "");
  /*
   * Someone may have stored a result between our lookup and the lock, or
   * while we waited: then it is ours to replay. A --refresh that did not
   * have to wait runs regardless.
   */
  if ((contended || !c->refresh) && replay_if_fresh(j, s, res)) {
    cdo__store_unlock(s, &j->key, *lk);
    *lk = NULL;
    return 0;
  }
  return 1;
}

/*
 * Stale-while-revalidate: a detached child (own session, stdio on
 * /dev/null, so `x=$(cachedo ...)` does not wait for it) refreshes the
 * entry under the run lock; identical stale hits meanwhile find the lock
 * taken and leave it be. It opens its own store.
 */
void cdo_job_refresh(struct cdo_job *j)
{
  struct cdo_store *s = NULL;
  struct cdo_result res;
  char err[300];
  void *lk = NULL;
  pid_t pid;
  int fd, r;

  if (j->cfg->read_only)
    return; /* the stale entry is all a read-only cache can give */
  fflush(NULL);
  pid = fork();
  if (pid != 0)
    return; /* the parent, or fork failed: the entry stays stale */
  setsid();
  fd = open("/dev/null", O_RDWR);
  if (fd >= 0) {
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
      close(fd);
  }
  j->msg = NULL;
  if (cdo_store_open(&s, j->cfg, err, sizeof(err)) < 0)
    _exit(0);
  r = cdo__store_lock(s, &j->key, 0, &lk);
  if (r == 0) {
    struct cdo__blob *b = NULL;
    struct cdo__meta m;
    uint64_t joff;
    int fresh = cdo__store_lookup(s, &j->key, &b, &m, &joff);

    cdo__blob_free(b);
    /* Fresh again: another refresh finished first, nothing to do. */
    if (fresh != CDO__FRESH)
      run_command(j, s, lk, &res, fresh == CDO__STALE && m.exit_status == 0);
  }
  cdo__store_unlock(s, &j->key, lk);
  cdo_store_close(s);
  _exit(0);
}

static void capture_note(void *ud, int level, const char *msg)
{
  struct cdo_result *res = ud;

  size_t n = strlen(res->miss_why);

  if (strncmp(msg, "miss: ", 6) == 0)
    msg += 6;
  if (level == 1)
    cdo__fmt(res->miss_why + n, sizeof(res->miss_why) - n, "%s%s",
             n ? "; " : "", msg);
}

/* Why did this miss? Into res->miss_why, for the one -v line of the run. */
static void explain_miss(struct cdo_job *j, struct cdo_store *s,
                         struct cdo_result *res)
{
  cdo_msg_fn msg = j->msg;
  void *ud = j->ud;

  j->msg = capture_note;
  j->ud = res;
  cdo__explain_miss_notes(j, s);
  j->msg = msg;
  j->ud = ud;
}

/*
 * A miss of a read-only cache: the command runs uncached, without a lock;
 * why says why the lookup missed, when it knows.
 */
static void run_read_only(struct cdo_job *j, const char *why,
                          struct cdo_result *res)
{
  if (j->cfg->verbose && why != NULL)
    cdo__fmt(res->miss_why, sizeof(res->miss_why), "%s", why);
  run_command(j, NULL, NULL, res, 0);
  if (res->outcome == CDO_UNCACHED && res->error[0] == 0) {
    res->outcome = CDO_MISS_NOT_STORED;
    cdo__fmt(res->reason, sizeof(res->reason), "the cache is read-only");
  }
}

int cdo_job_run(struct cdo_job *j, struct cdo_store *s, struct cdo_result *res)
{
  struct cdo__blob *b = NULL;
  struct cdo__meta m;
  uint64_t joff;
  void *lk = NULL;
  const char *why = NULL; /* why the lookup missed, when it knows */
  int r, corrupt = 0;

  memset(res, 0, sizeof(*res));
  if (j->exe_status != 0) {
    res->outcome = CDO_UNCACHED;
    res->exit_status = j->exe_status;
    cdo__fmt(res->error, sizeof(res->error), "%s", j->exe_err);
    return 0;
  }
  if (s != NULL && j->uncacheable != NULL) {
    cdo__job_msg(j, 0, "warning: %s; running uncached", j->uncacheable);
    s = NULL;
  }
  if (s != NULL && !j->cfg->refresh) {
    r = cdo__store_lookup(s, &j->key, &b, &m, &joff);
    if (r == CDO__FRESH || r == CDO__STALE) {
      replay(j, s, b, &m, joff, r == CDO__FRESH ? CDO_HIT : CDO_STALE, res);
      return 0; /* on CDO_STALE the caller starts cdo_job_refresh() */
    }
    if (r < 0) {
      cdo__job_msg(j, 0,
                   "warning: cannot read cache '%s': %s; running "
                   "uncached",
                   cdo_store_url(s),
                   cdo_store_errmsg(s)[0] ? cdo_store_errmsg(s)
                                          : cdo_strerror(r));
      cdo__store_record(s, &j->key, CDO_UNCACHED, 0, r);
      s = NULL;
    } else {
      why = s->miss_why;
      corrupt = s->found_corrupt;
    }
  }
  if (s != NULL && s->read_only) {
    run_read_only(j, why, res);
    return 0;
  }
  if (s != NULL) {
    r = single_flight(j, s, &lk, res);
    if (r == 0)
      return 0;
    if (r < 0) {
      cdo__store_record(s, &j->key, CDO_UNCACHED, 0, CDO__ERR(ETIMEDOUT));
      s = NULL;
    }
  }
  if (s != NULL && j->cfg->verbose) {
    if (why != NULL)
      cdo__fmt(res->miss_why, sizeof(res->miss_why), "%s", why);
    explain_miss(j, s, res);
  }
  r = run_command(j, s, lk, res, 0);
  if (s != NULL) {
    cdo__store_record(s, &j->key, res->outcome, 0,
                      r == 0 && corrupt ? CDO_ECORRUPT : r);
    if (res->outcome == CDO_MISS_STORED)
      cdo__explain_save(j, s);
  }
  if (lk != NULL)
    cdo__store_unlock(s, &j->key, lk);
  if (s != NULL && res->outcome == CDO_MISS_STORED)
    cdo__store_maintain(s); /* rate-limited; never on a hit */
  return 0;
}

int cdo_job_forget(struct cdo_job *j, struct cdo_store *s)
{
  return cdo__store_del(s, &j->key);
}
