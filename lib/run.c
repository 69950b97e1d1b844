/* SPDX-License-Identifier: MIT */
/*
 * Running a job: answer from the store, or spawn the command with libuv,
 * tee its stdout and stderr live to ours while journaling both to a spool
 * file, and store the result.
 */
#include "job.h"
#include "store_int.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <uv.h>

#define READBUF (64 * 1024) /* one read from the command's pipes */
/*
 * Output of one stream is merged into journal chunks of up to JBUF bytes:
 * large chunks make a large replay a few big sendfile() calls.
 */
#define JBUF (1024 * 1024)

struct runner {
  struct cdo_job *job;
  uv_loop_t loop;
  uv_process_t proc;
  uv_pipe_t pipes[3];      /* [1] stdout, [2] stderr */
  uv_timer_t renew;        /* keeps a lease lock alive while the command runs */
  struct cdo_store *store; /* with lock: the store and lock to renew */
  void *lock;
  int piped; /* stdout/stderr are pipes we read */
  int exited;
  int64_t exit_status;
  int term_signal;
  int closed[3]; /* our fd 1 / 2 lost its reader */
  /* the journal */
  int spool; /* -1: not recording */
  uint64_t out_bytes, journal_len, max_output;
  struct cdo__sum sum;
  unsigned char jbuf[JBUF + 5];
  size_t jlen;
  int jstream;
  char reason[160]; /* why the result cannot be stored */
  char readbuf[READBUF];
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

  if (rn->spool < 0)
    return;
  va_start(ap, fmt);
  vsnprintf(rn->reason, sizeof(rn->reason), fmt, ap);
  va_end(ap);
  if (ftruncate(rn->spool, 0) < 0) {
    /* nothing to do: the spool is unlinked and goes with its fd */
  }
  close(rn->spool);
  rn->spool = -1;
}

static void spool_write(struct runner *rn, const void *p, size_t n)
{
  int r = cdo__write_all(rn->spool, p, n);

  if (r < 0) {
    cdo__job_msg(rn->job, 0,
                 "warning: cannot write the spool: %s; the "
                 "result will not be stored",
                 cdo_strerror(r));
    stop_recording(rn, "cannot write the spool: %s", cdo_strerror(r));
    return;
  }
  cdo__sum_update(&rn->sum, p, n);
  rn->journal_len += n;
}

/* Writes the buffered chunk, if any, to the spool. */
static void journal_flush(struct runner *rn)
{
  if (rn->spool < 0 || rn->jlen == 0)
    return;
  rn->jbuf[0] = (unsigned char)rn->jstream;
  cdo__put32(rn->jbuf + 1, (uint32_t)rn->jlen);
  spool_write(rn, rn->jbuf, rn->jlen + 5);
  rn->jlen = 0;
}

/* Appends output of stream to the journal, merging runs of one stream. */
static void journal_add(struct runner *rn, int stream, const char *p, size_t n)
{
  if (rn->spool < 0)
    return;
  rn->out_bytes += n;
  if (rn->out_bytes > rn->max_output) {
    char max[32];

    cdo_format_size(rn->max_output, max, sizeof(max));
    stop_recording(rn, "output larger than --max-output (%s)", max);
    return;
  }
  if (rn->jlen > 0 && (rn->jstream != stream || rn->jlen + n > JBUF))
    journal_flush(rn);
  rn->jstream = stream;
  memcpy(rn->jbuf + 5 + rn->jlen, p, n);
  rn->jlen += n;
}

/* ---- libuv callbacks ----------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  struct runner *rn = h->data;

  (void)hint;
  *buf = uv_buf_init(rn->readbuf, sizeof(rn->readbuf));
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
  if (rn->closed[fd] && rn->spool < 0 && !uv_is_closing((uv_handle_t *)st))
    uv_close((uv_handle_t *)st, NULL);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
  struct runner *rn = p->data;

  rn->exited = 1;
  rn->exit_status = status;
  rn->term_signal = sig;
  child_pid = 0;
  uv_close((uv_handle_t *)p, NULL);
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

/* Is fd open? (stdin may be closed by whoever started cachedo) */
static int fd_open(int fd)
{
  return fcntl(fd, F_GETFD) >= 0;
}

/*
 * Spawns the command and runs the loop until it exited and its pipes
 * closed. With rn->piped, stdout and stderr go through us; otherwise the
 * command inherits them. Returns 0, or a uv error from uv_spawn.
 */
static int spawn_and_wait(struct runner *rn)
{
  struct cdo_job *j = rn->job;
  uv_process_options_t o;
  uv_stdio_container_t io[3];
  uv_file fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  int r, i;

  memset(&o, 0, sizeof(o));
  memset(io, 0, sizeof(io));
  r = uv_loop_init(&rn->loop);
  if (r < 0)
    return r;
  if (j->stdin_fd >= 0) {
    io[0].flags = UV_INHERIT_FD;
    io[0].data.fd = j->stdin_fd;
  } else {
    io[0].flags = fd_open(0) ? UV_INHERIT_FD : UV_IGNORE;
    io[0].data.fd = 0;
  }
  for (i = 1; i <= 2; i++) {
    if (rn->piped) {
      /*
       * Real pipes, not libuv's socketpairs: when we stop reading, the
       * command's next write fails with EPIPE and SIGPIPE, as in a shell
       * pipeline, and the command sees a FIFO as its stdout.
       */
      r = uv_pipe(fds[i], 0, 0);
      if (r < 0) {
        while (--i >= 1) {
          uv_close((uv_handle_t *)&rn->pipes[i], NULL);
          close(fds[i][1]);
        }
        goto out;
      }
      uv_pipe_init(&rn->loop, &rn->pipes[i], 0);
      rn->pipes[i].data = rn;
      uv_pipe_open(&rn->pipes[i], fds[i][0]);
      io[i].flags = UV_INHERIT_FD;
      io[i].data.fd = fds[i][1];
    } else {
      io[i].flags = fd_open(i) ? UV_INHERIT_FD : UV_IGNORE;
      io[i].data.fd = i;
    }
  }
  o.file = j->exe;
  o.args = (char **)j->argv;
  o.env = j->cfg->pure ? j->env : NULL;
  o.stdio = io;
  o.stdio_count = 3;
  o.exit_cb = on_exit_cb;
  own_group = !in_foreground();
  if (own_group)
    o.flags |= UV_PROCESS_DETACHED;
  rn->proc.data = rn;
  got_signal = 0;
  signals_install(1);
  r = uv_spawn(&rn->loop, &rn->proc, &o);
  for (i = 1; i <= 2; i++)
    if (fds[i][1] >= 0)
      close(fds[i][1]); /* the command's ends */
  if (r == 0) {
    child_pid = rn->proc.pid;
    if (got_signal) /* arrived while spawning */
      kill(rn->proc.pid, got_signal);
    for (i = 1; rn->piped && i <= 2; i++)
      uv_read_start((uv_stream_t *)&rn->pipes[i], on_alloc, on_read);
    if (rn->lock != NULL) {
      uv_timer_init(&rn->loop, &rn->renew);
      rn->renew.data = rn;
      uv_timer_start(&rn->renew, on_renew, 10000, 10000);
      uv_unref((uv_handle_t *)&rn->renew);
    }
  } else {
    uv_close((uv_handle_t *)&rn->proc, NULL);
    for (i = 1; rn->piped && i <= 2; i++)
      uv_close((uv_handle_t *)&rn->pipes[i], NULL);
  }
out:
  uv_run(&rn->loop, UV_RUN_DEFAULT);
  if (r == 0 && rn->lock != NULL) {
    uv_close((uv_handle_t *)&rn->renew, NULL);
    uv_run(&rn->loop, UV_RUN_DEFAULT);
  }
  signals_install(0);
  child_pid = 0;
  uv_loop_close(&rn->loop);
  return r;
}

/* ---- the job ------------------------------------------------------------- */

static char *join_argv(char *const argv[])
{
  struct cdo__buf b = {0};
  size_t i;

  for (i = 0; argv[i] != NULL; i++) {
    if ((i && cdo__buf_add(&b, " ", 1) < 0) ||
        cdo__buf_add(&b, argv[i], strlen(argv[i])) < 0) {
      cdo__buf_release(&b);
      return NULL;
    }
  }
  return (char *)b.p;
}

/* Stores the recorded result; returns 0 or the backend's error. */
static int store_result(struct runner *rn, struct cdo_store *s,
                        int64_t start_mono)
{
  struct cdo_job *j = rn->job;
  const struct cdo_config *c = j->cfg;
  struct cdo__buf head = {0};
  unsigned char tail[CDO__TRAILER_LEN];
  struct cdo__meta m;
  struct cdo__put_info info;
  struct cdo__src src;
  int64_t ttl =
      rn->exit_status && c->fail_ttl_ms >= 0 ? c->fail_ttl_ms : c->ttl_ms;
  char *command;
  int r;

  r = cdo__entry_header(&head, j->argv);
  command = join_argv(j->argv);
  if (r < 0 || command == NULL) {
    cdo__buf_release(&head);
    free(command);
    return r < 0 ? r : CDO__ERR(ENOMEM);
  }
  m.created_ms = cdo__now_ms();
  m.duration_ms = cdo__mono_ms() - start_mono;
  m.journal_len = rn->journal_len;
  m.journal_sum = cdo__sum_final(&rn->sum);
  m.exit_status = (int)rn->exit_status;
  cdo__entry_trailer(tail, head.p, head.len, &m);
  src.head = head.p;
  src.head_len = head.len;
  src.fd = rn->spool;
  src.fd_len = rn->journal_len;
  src.tail = tail;
  src.tail_len = sizeof(tail);
  info.created_ms = m.created_ms;
  info.expires_ms = m.created_ms + ttl + c->stale_ms;
  info.duration_ms = m.duration_ms;
  info.exit_status = m.exit_status;
  info.command = command;
  info.scope = c->scope;
  r = cdo__store_put(s, &j->key, &src, &info);
  cdo__buf_release(&head);
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
  int r, failure = 0;

  if (rn == NULL) {
    res->exit_status = 125;
    cdo__fmt(res->error, sizeof(res->error), "out of memory");
    return 0;
  }
  rn->job = j;
  rn->spool = -1;
  rn->store = s;
  rn->lock = lk;
  rn->max_output = c->max_output;
  cdo__sum_init(&rn->sum);
  if (s != NULL) {
    rn->spool = cdo__tmpfile(cdo__store_spool_dir(s));
    if (rn->spool < 0) {
      cdo__job_msg(j, 0,
                   "warning: cannot create a spool file: %s; running "
                   "uncached",
                   cdo_strerror(rn->spool));
      cdo__fmt(rn->reason, sizeof(rn->reason), "no spool file");
      rn->spool = -1;
      s = NULL;
    }
  }
  rn->piped = s != NULL;
  r = spawn_and_wait(rn);
  if (r < 0 && rn->piped && r != UV_ENOENT && r != UV_EACCES) {
    /* Recording failed to set up (no fds left, say): run it uncached. */
    cdo__job_msg(j, 0,
                 "warning: cannot record the output: %s; running "
                 "uncached",
                 uv_strerror(r));
    close(rn->spool);
    rn->spool = -1;
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
  journal_flush(rn);
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
  else if (rn->spool < 0)
    cdo__fmt(res->reason, sizeof(res->reason), "%s", rn->reason);
  else if (rn->exit_status != 0 && c->fail_ttl_ms == 0)
    cdo__fmt(res->reason, sizeof(res->reason),
             "exit status %d and failures are not cached",
             (int)rn->exit_status);
  else if (rn->exit_status != 0 && keep_good)
    cdo__fmt(res->reason, sizeof(res->reason),
             "exit status %d; the stored successful result is kept",
             (int)rn->exit_status);
  else if ((r = store_result(rn, s, start)) < 0) {
    cdo__job_msg(
        j, 0, "warning: cannot store the result in '%s': %s", cdo_store_url(s),
        cdo_store_errmsg(s)[0] ? cdo_store_errmsg(s) : cdo_strerror(r));
    cdo__fmt(res->reason, sizeof(res->reason), "%s", cdo_strerror(r));
    failure = r;
  } else
    res->outcome = CDO_MISS_STORED;
out:
  if (rn->spool >= 0)
    close(rn->spool);
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

int cdo_job_run(struct cdo_job *j, struct cdo_store *s, struct cdo_result *res)
{
  struct cdo__blob *b = NULL;
  struct cdo__meta m;
  uint64_t joff;
  void *lk = NULL;
  int r;

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
    }
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
  if (s != NULL && j->cfg->verbose)
    explain_miss(j, s, res);
  r = run_command(j, s, lk, res, 0);
  if (s != NULL) {
    cdo__store_record(s, &j->key, res->outcome, 0, r);
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
