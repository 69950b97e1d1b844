/* SPDX-License-Identifier: MIT */
/*
 * The process engine: starts a child with posix_spawn (which does not copy
 * our address space: a miss pays little for it), or with fork when it must
 * die with us, then runs one libuv loop that feeds its stdin, reads its
 * stdout and stderr, watches its idle time and reaps it.
 */
#include "spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define READBUF (64 * 1024) /* one read from the child's pipes */
#define FEEDBUF (64 * 1024) /* one write into its stdin */

/* Signals a child starts with at their defaults (and none blocked). */
static const int defaulted[] = {SIGINT,  SIGTERM, SIGHUP,
                                SIGQUIT, SIGCHLD, SIGPIPE};

struct engine {
  struct cdo__proc *p;
  uv_loop_t loop;
  uv_signal_t chld;   /* SIGCHLD: the child may have ended */
  uv_pipe_t pipes[3]; /* [1] stdout, [2] stderr, when piped */
  uv_poll_t in;       /* our end of its stdin, when piped */
  int in_fd;
  int in_rd; /* a copy of its end of that pipe: what it leaves there shows */
  uint64_t in_off;
  size_t ilen, ipos;
  uv_timer_t idle, tick;
  char *buf; /* READBUF bytes to read into, then FEEDBUF to feed from */
};

/* ---- starting ------------------------------------------------------------ */

/*
 * Makes the child's fd to a copy of src; CDO__PROC_OURS: ours as it is
 * (close-on-exec cleared), or /dev/null when ours is closed (stdin may be
 * closed by whoever started cachedo). Returns 0 or an errno value.
 */
static int child_fd(posix_spawn_file_actions_t *fa, int to, int src)
{
  int fl;

  if (src == CDO__PROC_NULL || src == CDO__PROC_OURS) {
    fl = src == CDO__PROC_OURS ? fcntl(to, F_GETFD) : -1;
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
 * argv to run the script p->path, which has no #! line, with /bin/sh, as
 * execvp(3) does; NULL on ENOMEM. The caller frees the array only.
 */
static char **sh_argv(const struct cdo__proc *p)
{
  size_t n = 0;
  char **v;

  while (p->argv[n] != NULL)
    n++;
  v = malloc((n + 2) * sizeof(*v));
  if (v == NULL)
    return NULL;
  v[0] = "/bin/sh";
  v[1] = (char *)p->path;
  memcpy(v + 2, p->argv + 1, n * sizeof(*v)); /* argv[1..n], NULL */
  return v;
}

/* posix_spawn attributes: no signal blocked, ours at their defaults. */
static int spawn_attrs(posix_spawnattr_t *at, int flags)
{
  short f = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  sigset_t set;
  size_t i;
  int e;

  if (flags & CDO__PROC_SETSID)
    f |= POSIX_SPAWN_SETSID;
  else if (flags & CDO__PROC_SETPGRP)
    f |= POSIX_SPAWN_SETPGROUP; /* pgroup 0: its own */
  sigemptyset(&set);
  e = posix_spawnattr_setsigmask(at, &set);
  for (i = 0; i < CDO__ARRAY_SIZE(defaulted); i++)
    sigaddset(&set, defaulted[i]);
  if (e == 0)
    e = posix_spawnattr_setsigdefault(at, &set);
  return e ? e : posix_spawnattr_setflags(at, f);
}

/* Starts the child with posix_spawn; 0 with *pid set, or an errno value. */
static int start_spawn(const struct cdo__proc *p, const int fd[3], pid_t *pid)
{
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  int e, i;

  e = posix_spawn_file_actions_init(&fa);
  if (e != 0)
    return e;
  e = posix_spawnattr_init(&at);
  if (e != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return e;
  }
  for (i = 0; e == 0 && i <= 2; i++)
    e = child_fd(&fa, i, fd[i]);
  if (e == 0)
    e = spawn_attrs(&at, p->flags);
  if (e == 0)
    e = posix_spawn(pid, p->path, &fa, &at, p->argv, p->envp);
  if (e == ENOEXEC && (p->flags & CDO__PROC_SCRIPT)) {
    char **sh = sh_argv(p);

    e = sh ? posix_spawn(pid, sh[0], &fa, &at, sh, p->envp) : ENOMEM;
    free(sh);
  }
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  return e;
}

/* In the child: makes src (a fd, or /dev/null) its fd to. */
static int redirect(int src, int to)
{
  int own = src == CDO__PROC_NULL;

  if (src == CDO__PROC_OURS)
    return 0;
  if (own)
    src = open("/dev/null", to == 0 ? O_RDONLY : O_RDWR);
  if (src < 0 || (src != to && dup2(src, to) < 0))
    return -1;
  if (own && src != to)
    close(src);
  return 0;
}

/*
 * Starts the child with fork, for what posix_spawn cannot do: on Linux it
 * dies with us (a put cut short then never publishes a partial entry).
 * 0 with *pid set, or an errno value (of execve too).
 */
static int start_fork(const struct cdo__proc *p, const int fd[3], pid_t *pid)
{
  pid_t parent = getpid();
  int errp[2], e = 0, i;
  sigset_t none;
  ssize_t n;

  if (pipe2(errp, O_CLOEXEC) < 0)
    return errno;
  *pid = fork();
  if (*pid < 0) {
    e = errno;
    close(errp[0]);
    close(errp[1]);
    return e;
  }
  if (*pid == 0) {
    if (p->flags & CDO__PROC_SETSID)
      setsid();
    else if (p->flags & CDO__PROC_SETPGRP)
      setpgid(0, 0);
#ifdef PR_SET_PDEATHSIG
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() != parent)
      _exit(127);
#endif
    for (i = 0; i <= 2; i++)
      if (redirect(fd[i], i) < 0)
        break;
    for (i = 0; i < (int)CDO__ARRAY_SIZE(defaulted); i++)
      signal(defaulted[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(p->path, p->argv, p->envp);
    e = errno;
    if (write(errp[1], &e, sizeof(e)) < 0)
      _exit(127);
    _exit(127);
  }
  (void)parent;
  if (!(p->flags & CDO__PROC_SETSID) && (p->flags & CDO__PROC_SETPGRP))
    setpgid(*pid, *pid); /* either side may win; both ask for the same */
  close(errp[1]);
  do
    n = read(errp[0], &e, sizeof(e));
  while (n < 0 && errno == EINTR);
  close(errp[0]);
  if (n <= 0)
    return 0; /* exec closed the pipe: the child runs */
  while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
    ;
  return e;
}

/* ---- the loop ------------------------------------------------------------ */

static void close_handle(uv_handle_t *h)
{
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* Kills the child (and its group when it has one), once. */
static void kill_child(struct engine *e)
{
  pid_t pid = e->p->pid;

  if (pid <= 0)
    return;
  if (e->p->flags & (CDO__PROC_SETSID | CDO__PROC_SETPGRP))
    kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
}

/* Something moved: the idle clock starts again. */
static void moved(struct engine *e)
{
  if (e->p->idle_ms > 0)
    uv_timer_again(&e->idle);
}

/* on_output or feed failed with r: the child is not to go on. */
static void failed(struct engine *e, int r)
{
  if (e->p->error == 0)
    e->p->error = r;
  kill_child(e);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  struct engine *e = h->data;

  (void)hint;
  *buf = uv_buf_init(e->buf, READBUF);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
  struct engine *e = st->data;
  int fd = st == (uv_stream_t *)&e->pipes[1] ? 1 : 2, r;

  if (n < 0) {
    close_handle((uv_handle_t *)st);
    return;
  }
  if (n == 0)
    return;
  moved(e);
  r = e->p->on_output(e->p, fd, buf->base, (size_t)n);
  if (r < 0)
    failed(e, r); /* killed before it can see its output closed */
  if (r != 0)
    close_handle((uv_handle_t *)st);
}

/* Its stdin can take bytes: feeds it the next ones. */
static void on_writable(uv_poll_t *h, int status, int events)
{
  struct engine *e = h->data;
  char *fb = e->buf + READBUF;
  ssize_t w;

  (void)events;
  if (status < 0)
    goto done; /* its end closed (EPIPE): its status tells */
  if (e->ipos == e->ilen) {
    ssize_t got = e->p->feed(e->p, e->in_off, fb, FEEDBUF);

    if (got <= 0) {
      if (got < 0)
        failed(e, (int)got);
      goto done;
    }
    e->ilen = (size_t)got;
    e->ipos = 0;
  }
  w = write(e->in_fd, fb + e->ipos, e->ilen - e->ipos);
  if (w > 0) {
    e->ipos += (size_t)w;
    e->in_off += (uint64_t)w;
    moved(e);
    return;
  }
  if (w < 0 && (errno == EAGAIN || errno == EINTR))
    return;
done: /* the end of the input, or the child stopped reading (EPIPE) */
  uv_poll_stop(h);
  close_handle((uv_handle_t *)h);
  close(e->in_fd);
  e->in_fd = -1;
}

/*
 * The child is gone: it reads no more input. What it read is what went in,
 * less what is still queued in the pipe.
 */
static void input_done(struct engine *e)
{
  int queued = 0;

  if (e->in_fd >= 0)
    on_writable(&e->in, UV_EPIPE, 0); /* stops feeding, closes our end */
  if (e->in_rd < 0)
    return;
  if (ioctl(e->in_rd, FIONREAD, &queued) < 0 || queued < 0)
    queued = 0;
  e->p->in_read =
      e->in_off > (uint64_t)queued ? e->in_off - (uint64_t)queued : 0;
  close(e->in_rd);
  e->in_rd = -1;
}

/*
 * SIGCHLD: reaps the child once it has ended. Other children, and the
 * child stopping or continuing, raise it too.
 */
static void on_sigchld(uv_signal_t *h, int sig)
{
  struct engine *e = h->data;
  struct cdo__proc *p = e->p;
  pid_t w;
  int st;

  (void)sig;
  if (p->pid <= 0)
    return;
  do
    w = waitpid(p->pid, &st, WNOHANG);
  while (w < 0 && errno == EINTR);
  if (w == 0)
    return;
  if (w < 0) {
    /* Reaped behind our back (ECHILD): its status is unknown. */
    p->exit_status = 125;
    p->term_signal = 0;
    p->status_lost = 1;
  } else {
    p->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
    p->term_signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  }
  p->pid = 0;
  close_handle((uv_handle_t *)h);
  input_done(e);
}

static void on_idle(uv_timer_t *t)
{
  struct engine *e = t->data;
  int i;

  e->p->timed_out = 1;
  kill_child(e);
  for (i = 1; i <= 2; i++)
    if (e->pipes[i].data != NULL)
      close_handle((uv_handle_t *)&e->pipes[i]);
  if (e->in_fd >= 0)
    on_writable(&e->in, -EPIPE, 0); /* closes it */
}

static void on_tick(uv_timer_t *t)
{
  struct engine *e = t->data;

  if (e->p->tick(e->p) < 0)
    uv_timer_stop(t);
}

/* A timer that does not keep the loop alive: the child and pipes do. */
static void start_timer(struct engine *e, uv_timer_t *t, uv_timer_cb cb,
                        int64_t ms)
{
  uv_timer_init(&e->loop, t);
  t->data = e;
  uv_timer_start(t, cb, (uint64_t)ms, (uint64_t)ms);
  uv_unref((uv_handle_t *)t);
}

/*
 * Makes the pipes p asks for: the child's ends into fd[], ours opened on
 * the loop. 0 or a uv error; what was opened is closed by the loop.
 */
static int make_pipes(struct engine *e, int fd[3])
{
  uv_file fds[2];
  int i, r;

  for (i = 0; i <= 2; i++) {
    if (i > 0 && e->p->fd[i] >= 0 && e->p->read_from[i] > 0) {
      uv_pipe_init(&e->loop, &e->pipes[i], 0); /* a pty's master, say */
      e->pipes[i].data = e;
      uv_pipe_open(&e->pipes[i], e->p->read_from[i]);
      continue;
    }
    if (e->p->fd[i] != CDO__PROC_PIPE)
      continue;
    /*
     * Real pipes, not libuv's socketpairs: when we stop reading, the
     * child's next write fails with EPIPE and SIGPIPE, as in a shell
     * pipeline, and the child sees a FIFO.
     */
    r = uv_pipe(fds, 0, i == 0 ? UV_NONBLOCK_PIPE : 0);
    if (r < 0)
      return r;
    if (i == 0) {
      fd[0] = fds[0];
      e->in_rd = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
      e->in_fd = fds[1];
      uv_poll_init(&e->loop, &e->in, e->in_fd);
      e->in.data = e;
      continue;
    }
    fd[i] = fds[1];
    uv_pipe_init(&e->loop, &e->pipes[i], 0);
    e->pipes[i].data = e;
    uv_pipe_open(&e->pipes[i], fds[0]);
  }
  return 0;
}

/*
 * Closes, once each, the child's ends of the pipes made for it and the fds
 * it was given with a read_from (a pty's slave may be both its 1 and 2).
 */
static void close_child_ends(const struct cdo__proc *p, const int fd[3])
{
  int i, taken;

  for (i = 0; i <= 2; i++) {
    taken = i > 0 && p->fd[i] >= 0 && p->read_from[i] > 0;
    if (fd[i] < 0 || (p->fd[i] != CDO__PROC_PIPE && !taken))
      continue;
    if (i == 2 && fd[2] == fd[1] && p->read_from[1] > 0)
      continue; /* closed as fd 1 */
    close(fd[i]);
  }
}

/* Starts watching the running child: pipes, stdin, timers. */
static void watch(struct engine *e)
{
  struct cdo__proc *p = e->p;
  int i;

  for (i = 1; i <= 2; i++)
    if (e->pipes[i].data != NULL)
      uv_read_start((uv_stream_t *)&e->pipes[i], on_alloc, on_read);
  if (e->in_fd >= 0)
    uv_poll_start(&e->in, UV_WRITABLE, on_writable);
  if (p->idle_ms > 0)
    start_timer(e, &e->idle, on_idle, p->idle_ms);
  if (p->tick != NULL)
    start_timer(e, &e->tick, on_tick, p->tick_ms);
}

/* Closes every handle still open and lets the loop finish them. */
static void wind_down(struct engine *e, int started)
{
  int i;

  if (!started)
    close_handle((uv_handle_t *)&e->chld);
  for (i = 1; i <= 2; i++)
    if (e->pipes[i].data != NULL)
      close_handle((uv_handle_t *)&e->pipes[i]);
    else if (e->p->read_from[i] > 0 && e->p->fd[i] >= 0)
      close(e->p->read_from[i]); /* not opened on the loop: failed before */
  if (e->in.data != NULL)
    close_handle((uv_handle_t *)&e->in);
  if (e->in_fd >= 0)
    close(e->in_fd);
  e->in_fd = -1;
  if (e->in_rd >= 0)
    close(e->in_rd);
  e->in_rd = -1;
  if (started && e->p->idle_ms > 0)
    close_handle((uv_handle_t *)&e->idle);
  if (started && e->p->tick != NULL)
    close_handle((uv_handle_t *)&e->tick);
  uv_run(&e->loop, UV_RUN_DEFAULT);
}

/*
 * SIGPIPE blocked while we write into a child's stdin: a child that exits
 * without reading must not kill us. Pending ones are dropped at the end.
 */
static void sigpipe_block(sigset_t *old, int on)
{
  sigset_t set;
  struct timespec zero = {0, 0};

  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  if (on) {
    sigprocmask(SIG_BLOCK, &set, old);
    return;
  }
  if (!sigismember(old, SIGPIPE))
    while (sigtimedwait(&set, NULL, &zero) > 0)
      ; /* a SIGPIPE of ours, not meant for anyone */
  sigprocmask(SIG_SETMASK, old, NULL);
}

int cdo__proc_run(struct cdo__proc *p)
{
  struct engine e;
  int fd[3], r, i, fed = p->fd[0] == CDO__PROC_PIPE;
  sigset_t old;
  pid_t pid = 0;

  memset(&e, 0, sizeof(e));
  e.p = p;
  e.in_fd = e.in_rd = -1;
  p->pid = 0;
  p->in_read = 0;
  for (i = 0; i <= 2; i++)
    fd[i] = p->fd[i] == CDO__PROC_PIPE ? -1 : p->fd[i];
  r = uv_loop_init(&e.loop);
  if (r < 0)
    return r;
  uv_signal_init(&e.loop, &e.chld);
  e.chld.data = &e;
  /* Watching before the child starts: its SIGCHLD cannot be missed. */
  r = uv_signal_start(&e.chld, on_sigchld, SIGCHLD);
  if (r == 0 && (e.buf = malloc(READBUF + FEEDBUF)) == NULL)
    r = UV_ENOMEM;
  if (r == 0)
    r = make_pipes(&e, fd);
  if (fed)
    sigpipe_block(&old, 1);
  if (r == 0)
    r = CDO__ERR(p->flags & CDO__PROC_DIE_WITH_US ? start_fork(p, fd, &pid)
                                                  : start_spawn(p, fd, &pid));
  close_child_ends(p, fd);
  if (r == 0) {
    p->pid = pid;
    if (p->started != NULL)
      p->started(p);
    watch(&e);
    uv_run(&e.loop, UV_RUN_DEFAULT);
  }
  wind_down(&e, r == 0);
  if (fed)
    sigpipe_block(&old, 0);
  uv_loop_close(&e.loop);
  free(e.buf);
  return r;
}
