/* SPDX-License-Identifier: MIT */
/*
 * The exec: backend: any program that speaks the helper protocol below is a
 * store. cachedo runs it once per operation, with pipes for the entry bytes.
 *
 *   PROGRAM [ARG]... get KEY        entry on stdout; exit 0 hit, 1 miss
 *   PROGRAM [ARG]... put KEY TTL    entry on stdin; TTL in whole seconds;
 *                                   env CACHEDO_ENTRY_SIZE (bytes) and
 *                                   CACHEDO_ENTRY_EXPIRES (Unix time)
 *   PROGRAM [ARG]... delete KEY     exit 0 (a missing entry too)
 *   PROGRAM [ARG]... clear          exit 0
 *   PROGRAM [ARG]... clear-scope S  optional; the entries put with scope S
 *                                   (env CACHEDO_ENTRY_SCOPE at put time)
 *   PROGRAM [ARG]... list           optional; lines "KEY [EXPIRES]"
 *   PROGRAM [ARG]... stats          optional; lines "entries N", "bytes N"
 *
 * KEY is 64 lower-case hex digits; EXPIRES a Unix time in seconds, with an
 * optional fraction. Exit status 2 means "not supported"; any other status,
 * a signal, or no progress within the timeout is an error, and the caller
 * runs the command uncached.
 */
#include "store_int.h"

#include <ctype.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IO_BLOCK         65536
#define EXIT_UNSUPPORTED 2

struct exec_store {
  struct cdo_store base;
  char *words; /* the URL's words, NUL-separated; argv points into it */
  char **argv; /* PROGRAM [ARG]... then room for 3 protocol words + NULL */
  size_t argc;
  char *path;         /* PROGRAM resolved in PATH */
  int64_t timeout_ms; /* URL option: no progress for this long fails */
  int64_t breaker_ms; /* URL option: skip a failed helper this long */
};

static struct exec_store *xs(struct cdo_store *s)
{
  return (struct exec_store *)s;
}

/*
 * Splits line into words as a shell splits a simple command: blanks
 * separate words, '...' quotes literally, "..." quotes with \" and \\
 * escapes, and \ outside quotes escapes the next character. Nothing is
 * expanded. On success *buf holds the words back to back, each NUL-ended,
 * and *argc counts them.
 */
static int split_words(const char *line, char **buf, size_t *argc, char *err,
                       size_t errlen)
{
  char *out = malloc(strlen(line) + 1), *o;
  const char *p = line;
  size_t n = 0;

  if (out == NULL)
    return CDO__ERR(ENOMEM);
  o = out;
  for (;;) {
    char quote = 0;
    int in_word = 0;

    while (*p == ' ' || *p == '\t' || *p == '\n')
      p++;
    if (*p == 0)
      break;
    for (; *p != 0; p++) {
      if (quote == 0 && (*p == ' ' || *p == '\t' || *p == '\n'))
        break;
      in_word = 1;
      if (quote == 0 && (*p == '\'' || *p == '"')) {
        quote = *p;
      } else if (quote == *p) {
        quote = 0;
      } else if (*p == '\\' && quote != '\'' && p[1] != 0 &&
                 (quote == 0 || p[1] == '"' || p[1] == '\\')) {
        *o++ = *++p;
      } else {
        *o++ = *p;
      }
    }
    if (quote != 0) {
      cdo__fmt(err, errlen, "unterminated %s quote",
               quote == '\'' ? "single" : "double");
      free(out);
      return CDO_EBADURL;
    }
    if (in_word) {
      *o++ = 0;
      n++;
    }
  }
  if (n == 0) {
    cdo__fmt(err, errlen, "no program (expected exec:PROGRAM [ARG]...)");
    free(out);
    return CDO_EBADURL;
  }
  *buf = out;
  *argc = n;
  return 0;
}

static int exec_check(const char *rest, char *err, size_t errlen)
{
  char *words;
  size_t argc;
  int r = split_words(rest, &words, &argc, err, errlen);

  if (r == 0)
    free(words);
  return r;
}

/* Is path an executable regular file? 0, or -errno. */
static int check_program(const char *path)
{
  struct stat st;

  if (stat(path, &st) < 0)
    return CDO__ERR(errno);
  if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0)
    return CDO__ERR(EACCES);
  return 0;
}

/* Finds the helper as execvp would, with PATH; sets x->path. */
static int resolve_program(struct exec_store *x)
{
  const char *prog = x->argv[0], *dirs = getenv("PATH"), *p;
  size_t plen = strlen(prog);
  int r = CDO__ERR(ENOENT);

  if (strchr(prog, '/') != NULL) {
    r = check_program(prog);
    x->path = r == 0 ? strdup(prog) : NULL;
    if (r < 0)
      return cdo__store_fail(&x->base, r, "helper '%s': %s", prog,
                             r == CDO__ERR(EACCES) ? "not an executable file"
                                                   : cdo_strerror(r));
    return x->path ? 0 : CDO__ERR(ENOMEM);
  }
  if (dirs == NULL)
    dirs = "/usr/local/bin:/usr/bin:/bin";
  for (p = dirs;; p++) {
    size_t dlen = strcspn(p, ":");
    char *cand = malloc(dlen + plen + 3);
    int cr;

    if (cand == NULL)
      return CDO__ERR(ENOMEM);
    cdo__fmt(cand, dlen + plen + 3, "%.*s/%s", (int)dlen, dlen ? p : ".", prog);
    cr = check_program(cand);
    if (cr == 0) {
      x->path = cand;
      return 0;
    }
    free(cand);
    if (cr == CDO__ERR(EACCES))
      r = cr; /* found, but cannot run it: say so if nothing better */
    p += dlen;
    if (*p == 0)
      break;
  }
  return cdo__store_fail(&x->base, r, "helper '%s': %s", prog,
                         r == CDO__ERR(EACCES) ? "not an executable file"
                                               : "not found in PATH");
}

static int exec_open(struct cdo_store *s, const char *rest)
{
  struct exec_store *x = xs(s);
  char *p;
  size_t i;
  int r;

  r = split_words(rest, &x->words, &x->argc, s->errmsg, sizeof(s->errmsg));
  if (r < 0)
    return r;
  x->argv = calloc(x->argc + 4, sizeof(*x->argv));
  if (x->argv == NULL)
    return CDO__ERR(ENOMEM);
  for (i = 0, p = x->words; i < x->argc; i++, p += strlen(p) + 1)
    x->argv[i] = p;
  r = cdo__breaker_open(s, "helper", rest, x->breaker_ms);
  return r < 0 ? r : resolve_program(x);
}

static void exec_close(struct cdo_store *s)
{
  struct exec_store *x = xs(s);

  free(x->argv);
  free(x->words);
  free(x->path);
}

/* ---- running the helper ------------------------------------------------ */

/* One run of the helper: what goes in, what comes out, how it ended. */
struct call {
  const char *verb;
  const struct cdo__src *src; /* stdin; NULL: /dev/null */
  int out;                    /* stdout goes to this file; -1: /dev/null */
  uint64_t out_len;           /* bytes written to out */
  char *env[4]; /* extra "NAME=VALUE"s for the helper, NULL-ended */
  int status;   /* exit status; -1 when killed by a signal */
};

/* A pipe whose ends are close-on-exec and above stderr. */
static int pipe_cloexec(int fds[2])
{
  int i;

  if (pipe2(fds, O_CLOEXEC) < 0)
    return CDO__ERR(errno);
  for (i = 0; i < 2; i++) {
    if (fds[i] <= 2) {
      int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

      if (fd < 0) {
        int e = errno;

        close(fds[0]);
        close(fds[1]);
        return CDO__ERR(e);
      }
      close(fds[i]);
      fds[i] = fd;
    }
  }
  return 0;
}

static int set_nonblock(int fd)
{
  int fl = fcntl(fd, F_GETFL);

  return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? CDO__ERR(errno)
                                                           : 0;
}

/* A descriptor that polls readable when pid exits, or -1 (old kernels). */
static int pid_fd(pid_t pid)
{
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  return -1;
#endif
}

extern char **environ;

/*
 * The environment without any CACHEDO_ENTRY_* variable, plus the n
 * "NAME=VALUE" strings of add; the caller frees the array only. NULL on
 * ENOMEM.
 */
static char **env_with(char *const add[], size_t n)
{
  size_t size = 0, i, j = 0;
  char **env;

  while (environ[size] != NULL)
    size++;
  env = malloc((size + n + 1) * sizeof(*env));
  if (env == NULL)
    return NULL;
  for (i = 0; i < size; i++)
    if (strncmp(environ[i], "CACHEDO_ENTRY_", 14) != 0)
      env[j++] = environ[i];
  for (i = 0; i < n; i++)
    env[j++] = add[i];
  env[j] = NULL;
  return env;
}

/* Makes fd (or /dev/null when fd < 0) the child's descriptor to. */
static int redirect(int fd, int to, int flags)
{
  int own = fd < 0;

  if (own)
    fd = open("/dev/null", flags);
  if (fd < 0 || (fd != to && dup2(fd, to) < 0))
    return -1;
  if (own && fd != to)
    close(fd);
  return 0;
}

/*
 * Starts the helper in its own process group (so a timeout kills whatever
 * it started too), with stdin from in and stdout to out (-1: /dev/null),
 * stderr shared, and the signal mask mask. On Linux the helper also dies
 * with cachedo: a put cut short then never publishes a partial entry.
 * Returns 0 with *pid set, or -errno when it cannot be run.
 */
static int spawn_helper(struct exec_store *x, int in, int out,
                        const sigset_t *mask, char **envp, pid_t *pid)
{
  pid_t parent = getpid();
  int errp[2], e = 0;
  ssize_t n;

  if (pipe2(errp, O_CLOEXEC) < 0)
    return CDO__ERR(errno);
  *pid = fork();
  if (*pid < 0) {
    e = errno;
    close(errp[0]);
    close(errp[1]);
    return CDO__ERR(e);
  }
  if (*pid == 0) {
    setpgid(0, 0);
#ifdef PR_SET_PDEATHSIG
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() != parent)
      _exit(127);
#endif
    if (redirect(in, 0, O_RDONLY) == 0 && redirect(out, 1, O_WRONLY) == 0) {
      sigprocmask(SIG_SETMASK, mask, NULL);
      execve(x->path, x->argv, envp);
    }
    e = errno;
    if (write(errp[1], &e, sizeof(e)) < 0)
      _exit(127);
    _exit(127);
  }
  (void)parent;
  setpgid(*pid, *pid); /* either side may win; both ask for the same */
  close(errp[1]);
  do
    n = read(errp[0], &e, sizeof(e));
  while (n < 0 && errno == EINTR);
  close(errp[0]);
  if (n <= 0)
    return 0; /* exec closed the pipe: the helper runs */
  while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
    ;
  return CDO__ERR(e);
}

/* Kills the helper's process group and reaps the helper. */
static void kill_helper(pid_t pid)
{
  int st;

  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
}

/*
 * Waits for the helper to exit, up to deadline (monotonic ms). 0 with
 * *status set, or -ETIMEDOUT (the helper is still running).
 */
static int wait_helper(pid_t pid, int pfd, int64_t deadline, int *status)
{
  for (;;) {
    int64_t left = deadline - cdo__mono_ms();
    pid_t w = waitpid(pid, status, WNOHANG);

    if (w == pid)
      return 0;
    if (w < 0 && errno != EINTR)
      return CDO__ERR(errno);
    if (left <= 0)
      return CDO__ERR(ETIMEDOUT);
    if (pfd >= 0) {
      struct pollfd p = {.fd = pfd, .events = POLLIN};

      poll(&p, 1, (int)left);
    } else {
      struct timespec ts = {0, 5000000}; /* no pidfd: look again in 5 ms */

      nanosleep(&ts, NULL);
    }
  }
}

/* Fills s->errmsg for a failed call and returns code. */
static int call_fail(struct exec_store *x, const struct call *c, int code,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int call_fail(struct exec_store *x, const struct call *c, int code,
                     const char *fmt, ...)
{
  char why[300];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  if (code != CDO_EUNSUPP && x->breaker_ms > 0)
    cdo__breaker_trip(&x->base, why);
  return cdo__store_fail(&x->base, code, "helper '%s' %s: %s", x->argv[0],
                         c->verb, why);
}

/*
 * Moves the bytes: src into the helper's stdin (io[0]), its stdout (io[1])
 * into c->out, closing each when done. Gives up when nothing moves for the
 * timeout. 0, -ETIMEDOUT, or an error of the spool; io keeps what is still
 * open, for the caller to close once the helper is dead.
 */
static int pump(struct exec_store *x, struct call *c, int io[2])
{
  int in = io[0], out = io[1];
  unsigned char *buf = malloc(2 * IO_BLOCK), *ibuf = buf + IO_BLOCK;
  uint64_t in_off = 0, in_size = c->src ? cdo__src_size(c->src) : 0;
  size_t ilen = 0, ipos = 0;
  int64_t deadline = cdo__mono_ms() + x->timeout_ms;
  int r = 0;

  if (buf == NULL)
    return CDO__ERR(ENOMEM);
  if (in >= 0 && in_size == 0) {
    close(in);
    in = -1;
  }
  while (r == 0 && (in >= 0 || out >= 0)) {
    struct pollfd p[2];
    nfds_t n = 0;
    int64_t left = deadline - cdo__mono_ms();
    int pr, moved = 0;

    if (left <= 0) {
      r = CDO__ERR(ETIMEDOUT);
      break;
    }
    if (in >= 0)
      p[n++] = (struct pollfd){.fd = in, .events = POLLOUT};
    if (out >= 0)
      p[n++] = (struct pollfd){.fd = out, .events = POLLIN};
    pr = poll(p, n, (int)left);
    if (pr < 0 && errno != EINTR)
      r = CDO__ERR(errno);
    if (pr <= 0)
      continue;
    if (out >= 0 && p[n - 1].revents != 0) {
      ssize_t got = read(out, buf, IO_BLOCK);

      if (got > 0) {
        r = cdo__write_all(c->out, buf, (size_t)got);
        if (r < 0)
          cdo__store_fail(&x->base, r, "cannot write the spool: %s",
                          cdo_strerror(r));
        c->out_len += (uint64_t)got;
        moved = 1;
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(out);
        out = -1;
      }
    }
    if (r == 0 && in >= 0 && p[0].revents != 0) {
      ssize_t w;

      if (ipos == ilen) {
        ssize_t got = cdo__src_read(c->src, in_off, ibuf, IO_BLOCK);

        if (got <= 0) {
          r = got < 0 ? (int)got : CDO_ECORRUPT;
          cdo__store_fail(&x->base, r, "cannot read the spool: %s",
                          cdo_strerror(r));
          break;
        }
        ilen = (size_t)got;
        ipos = 0;
      }
      w = write(in, ibuf + ipos, ilen - ipos);
      if (w > 0) {
        ipos += (size_t)w;
        in_off += (uint64_t)w;
        moved = 1;
      }
      /* Done, or the helper stopped reading (EPIPE): its status tells. */
      if (in_off == in_size || (w < 0 && errno != EAGAIN && errno != EINTR)) {
        close(in);
        in = -1;
      }
    }
    if (moved)
      deadline = cdo__mono_ms() + x->timeout_ms;
  }
  io[0] = in;
  io[1] = out;
  free(buf);
  return r;
}

/*
 * Runs the helper with verb and the optional key and arg, feeding c->src
 * and collecting stdout into c->out. Returns 0 with c->status set, or an
 * error with s->errmsg filled (the helper is then killed and reaped).
 */
static int call_helper(struct exec_store *x, struct call *c, const char *key,
                       const char *arg)
{
  int inp[2] = {-1, -1}, outp[2] = {-1, -1}, io[2], pfd = -1, st, r;
  char **envp = environ;
  sigset_t pipe_set, old;
  pid_t pid = -1;
  size_t i = x->argc;

  x->argv[i++] = (char *)c->verb;
  if (key != NULL)
    x->argv[i++] = (char *)key;
  if (arg != NULL)
    x->argv[i++] = (char *)arg;
  x->argv[i] = NULL;
  x->base.errmsg[0] = 0;
  c->status = -1;
  c->out_len = 0;
  if (x->base.failed)
    return cdo__store_fail(&x->base, CDO_EFAILED, "helper '%s' failed earlier",
                           x->argv[0]);
  r = c->src ? pipe_cloexec(inp) : 0;
  if (r == 0 && c->env[0] != NULL) {
    size_t n = 0;

    while (c->env[n] != NULL)
      n++;
    envp = env_with(c->env, n);
    if (envp == NULL) {
      envp = environ;
      r = CDO__ERR(ENOMEM);
    }
  }
  if (r == 0 && c->out >= 0)
    r = pipe_cloexec(outp);
  if (r == 0 && inp[1] >= 0)
    r = set_nonblock(inp[1]);
  if (r == 0 && outp[0] >= 0)
    r = set_nonblock(outp[0]);
  if (r < 0) {
    call_fail(x, c, r, "cannot start it: %s", cdo_strerror(r));
    goto fail;
  }
  /*
   * A helper that exits without reading its input must not kill us with
   * SIGPIPE: block it while we write, and hand the helper the old mask.
   */
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigprocmask(SIG_BLOCK, &pipe_set, &old);
  r = spawn_helper(x, inp[0], outp[1], &old, envp, &pid);
  if (envp != environ)
    free(envp);
  envp = environ;
  if (inp[0] >= 0)
    close(inp[0]);
  if (outp[1] >= 0)
    close(outp[1]);
  inp[0] = outp[1] = -1;
  if (r < 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    call_fail(x, c, r, "cannot run '%s': %s", x->path, cdo_strerror(r));
    goto fail;
  }
  pfd = pid_fd(pid);
  io[0] = inp[1];
  io[1] = outp[0];
  inp[1] = outp[0] = -1;
  r = pump(x, c, io);
  if (r == 0)
    r = wait_helper(pid, pfd, cdo__mono_ms() + x->timeout_ms, &st);
  /* Dead before its stdin closes: it cannot take a cut entry as whole. */
  if (r < 0)
    kill_helper(pid);
  for (i = 0; i < 2; i++)
    if (io[i] >= 0)
      close(io[i]);
  if (pfd >= 0)
    close(pfd);
  if (!sigismember(&old, SIGPIPE)) {
    struct timespec zero = {0, 0};

    while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
      ; /* a SIGPIPE of ours, not meant for anyone */
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (r == CDO__ERR(ETIMEDOUT)) {
    char t[32];

    cdo_format_duration(x->timeout_ms, t, sizeof(t));
    return call_fail(x, c, CDO_EBACKEND, "no progress for %s; killed it", t);
  }
  if (r < 0) {
    if (x->base.errmsg[0] == 0)
      call_fail(x, c, r, "%s", cdo_strerror(r));
    return r;
  }
  if (WIFSIGNALED(st))
    return call_fail(x, c, CDO_EBACKEND, "killed by signal %d (%s)",
                     WTERMSIG(st), strsignal(WTERMSIG(st)));
  c->status = WEXITSTATUS(st);
  return 0;
fail:
  if (envp != environ)
    free(envp);
  for (i = 0; i < 2; i++) {
    if (inp[i] >= 0)
      close(inp[i]);
    if (outp[i] >= 0)
      close(outp[i]);
  }
  return r;
}

/* The error for an exit status the verb does not allow. */
static int bad_status(struct exec_store *x, const struct call *c,
                      const char *allowed)
{
  if (c->status == EXIT_UNSUPPORTED)
    return call_fail(x, c, CDO_EUNSUPP, "not supported (exit status 2)");
  return call_fail(x, c, CDO_EBACKEND, "exit status %d (expected %s)",
                   c->status, allowed);
}

/* ---- the operations ------------------------------------------------------ */

/* Fetches k's entry into a spool file; *out NULL on a miss. */
static int fetch(struct exec_store *x, const char *hex, struct cdo__blob **out)
{
  struct call c = {.verb = "get"};
  int r;

  *out = NULL;
  c.out = cdo__tmpfile(NULL);
  if (c.out < 0)
    return cdo__store_fail(&x->base, c.out, "cannot create a spool file: %s",
                           cdo_strerror(c.out));
  r = call_helper(x, &c, hex, NULL);
  if (r == 0 && c.status == 0) {
    *out = cdo__blob_from_fd(c.out, c.out_len);
    return *out ? 0 : CDO__ERR(ENOMEM);
  }
  close(c.out);
  if (r < 0 || c.status == 1)
    return r;
  return bad_status(x, &c, "0 for a hit, 1 for a miss");
}

/*
 * The answer is checked by the front end like any backend's: bytes that
 * are not a whole entry are a miss, and are deleted through the helper.
 */
static int exec_get(struct cdo_store *s, const struct cdo__key *k,
                    struct cdo__blob **out)
{
  return fetch(xs(s), k->hex, out);
}

static int exec_put(struct cdo_store *s, const struct cdo__key *k,
                    const struct cdo__src *src,
                    const struct cdo__put_info *info)
{
  struct exec_store *x = xs(s);
  struct call c = {.verb = "put", .src = src, .out = -1};
  int64_t ms = info->expires_ms - info->created_ms;
  char ttl[24], size[48], expires[64], *scope = NULL;
  int r;

  cdo__fmt(ttl, sizeof(ttl), "%lld",
           ms > 0 ? (long long)((ms + 999) / 1000) : 1LL);
  /*
   * The exact size lets the helper tell a whole entry from one cut short
   * (cachedo died mid-put); the exact expiry feeds `list` and --gc.
   */
  cdo__fmt(size, sizeof(size), "CACHEDO_ENTRY_SIZE=%llu",
           (unsigned long long)cdo__src_size(src));
  cdo__fmt(expires, sizeof(expires), "CACHEDO_ENTRY_EXPIRES=%lld.%03d",
           (long long)(info->expires_ms / 1000),
           (int)(info->expires_ms % 1000));
  c.env[0] = size;
  c.env[1] = expires;
  if (info->scope != NULL) {
    size_t n = strlen(info->scope) + sizeof("CACHEDO_ENTRY_SCOPE=");

    scope = malloc(n);
    if (scope == NULL)
      return CDO__ERR(ENOMEM);
    cdo__fmt(scope, n, "CACHEDO_ENTRY_SCOPE=%s", info->scope);
    c.env[2] = scope;
  }
  r = call_helper(x, &c, k->hex, ttl);
  free(scope);
  if (r < 0 || c.status == 0)
    return r;
  return bad_status(x, &c, "0");
}

static int exec_del(struct cdo_store *s, const struct cdo__key *k)
{
  struct exec_store *x = xs(s);
  struct call c = {.verb = "delete", .out = -1};
  int r = call_helper(x, &c, k->hex, NULL);

  if (r < 0 || c.status == 0 || c.status == 1)
    return r;
  return bad_status(x, &c, "0");
}

static int exec_clear(struct cdo_store *s, const char *scope)
{
  struct exec_store *x = xs(s);
  struct call c = {.verb = scope ? "clear-scope" : "clear", .out = -1};
  int r;

  /* Not `clear SCOPE`: a helper unaware of scopes would clear them all. */
  r = call_helper(x, &c, scope, NULL);
  if (r < 0 || c.status == 0)
    return r;
  return bad_status(x, &c, "0");
}

/*
 * Runs a verb whose answer is text (list, stats) and opens that answer for
 * reading; *f is NULL when the helper does not support the verb.
 */
static int call_text(struct exec_store *x, const char *verb, FILE **f)
{
  struct call c = {.verb = verb};
  int r;

  *f = NULL;
  c.out = cdo__tmpfile(NULL);
  if (c.out < 0)
    return cdo__store_fail(&x->base, c.out, "cannot create a spool file: %s",
                           cdo_strerror(c.out));
  r = call_helper(x, &c, NULL, NULL);
  if (r == 0 && c.status != 0)
    r = bad_status(x, &c, "0, or 2 when not supported");
  if (r == 0 && lseek(c.out, 0, SEEK_SET) < 0)
    r = CDO__ERR(errno);
  if (r == 0 && (*f = fdopen(c.out, "r")) == NULL)
    r = CDO__ERR(errno);
  if (r < 0)
    close(c.out);
  return r;
}

/* One line of `list`: "KEY [EXPIRES]". */
struct listed {
  char key[65];
  int64_t expires_ms; /* -1: not given */
};

/* Parses a line of `list`; CDO_EBADVALUE when it is not one. */
static int parse_listed(const char *line, struct listed *e)
{
  const char *p = line;
  size_t i;

  while (*p == ' ' || *p == '\t')
    p++;
  for (i = 0; i < 64; i++, p++) {
    if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
      return CDO_EBADVALUE;
    e->key[i] = *p;
  }
  e->key[64] = 0;
  e->expires_ms = -1;
  if (*p != 0 && *p != ' ' && *p != '\t' && *p != '\n')
    return CDO_EBADVALUE;
  while (*p == ' ' || *p == '\t')
    p++;
  if (isdigit((unsigned char)*p)) {
    int64_t scale = 100;
    char *end;

    errno = 0;
    e->expires_ms = (int64_t)strtoll(p, &end, 10);
    if (errno != 0 || e->expires_ms > INT64_MAX / 1000)
      return CDO_EBADVALUE;
    e->expires_ms *= 1000;
    p = end;
    if (*p == '.') /* a fraction: its first three digits count */
      for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
        e->expires_ms += (*p - '0') * scale;
  }
  return *p == 0 || *p == '\n' || *p == ' ' || *p == '\t' ? 0 : CDO_EBADVALUE;
}

/* Calls fn for each line of the helper's `list`; stops when fn returns
 * non-zero (and returns that). */
static int each_listed(struct exec_store *x,
                       int (*fn)(struct exec_store *x, const struct listed *e,
                                 void *ud),
                       void *ud)
{
  char *line = NULL;
  size_t cap = 0;
  unsigned lineno = 0;
  FILE *f;
  int r;

  r = call_text(x, "list", &f);
  while (r == 0 && getline(&line, &cap, f) >= 0) {
    struct listed e;

    lineno++;
    if (line[strspn(line, " \t\n")] == 0)
      continue;
    if (parse_listed(line, &e) < 0) {
      line[strcspn(line, "\n")] = 0;
      r = cdo__store_fail(&x->base, CDO_EBACKEND,
                          "helper '%s' list: line %u is '%.60s' (expected "
                          "KEY [EXPIRES])",
                          x->argv[0], lineno, line);
      break;
    }
    r = fn(x, &e, ud);
  }
  free(line);
  if (f != NULL)
    fclose(f);
  return r;
}

/* The entries of --list, collected to be sorted newest first. */
struct rows {
  struct cdo_entry_info *v;
  size_t n, cap;
};

static int collect_row(struct exec_store *x, const struct listed *e, void *ud)
{
  const struct cdo_config *c = x->base.cfg;
  struct rows *rows = ud;
  struct cdo_entry_info *row;
  struct cdo__blob *b;
  struct cdo__meta m;
  uint64_t joff;
  char *command = NULL;
  int r;

  r = fetch(x, e->key, &b);
  if (r < 0 || b == NULL)
    return r; /* gone since the list was made: skip it */
  if (cdo__entry_peek(b, &m, NULL, &command, &joff) < 0) {
    cdo__blob_free(b);
    return 0; /* not an entry: nothing to show */
  }
  if (rows->n == rows->cap) {
    size_t cap = rows->cap ? rows->cap * 2 : 16;
    struct cdo_entry_info *v = realloc(rows->v, cap * sizeof(*v));

    if (v == NULL) {
      free(command);
      cdo__blob_free(b);
      return CDO__ERR(ENOMEM);
    }
    rows->v = v;
    rows->cap = cap;
  }
  row = &rows->v[rows->n++];
  memcpy(row->key, e->key, sizeof(row->key));
  row->created_ms = m.created_ms;
  row->duration_ms = m.duration_ms;
  row->exit_status = m.exit_status;
  row->size = b->size;
  row->command = command;
  /* No expiry from the helper: the reader's TTL decides anyway. */
  row->expires_ms = e->expires_ms >= 0
                        ? e->expires_ms
                        : m.created_ms + (m.exit_status && c->fail_ttl_ms >= 0
                                              ? c->fail_ttl_ms
                                              : c->ttl_ms);
  cdo__blob_free(b);
  return 0;
}

static int newest_first(const void *a, const void *b)
{
  const struct cdo_entry_info *x = a, *y = b;

  return (x->created_ms < y->created_ms) - (x->created_ms > y->created_ms);
}

static int exec_list(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  struct rows rows = {0};
  size_t i;
  int r = each_listed(xs(s), collect_row, &rows);

  if (r == 0 && rows.n > 1)
    qsort(rows.v, rows.n, sizeof(*rows.v), newest_first);
  for (i = 0; i < rows.n; i++) {
    if (r == 0 && fn(ud, &rows.v[i]) != 0)
      r = 1;
    free((char *)rows.v[i].command);
  }
  free(rows.v);
  return r > 0 ? 0 : r;
}

static int exec_stats(struct cdo_store *s, struct cdo_stats *st)
{
  struct exec_store *x = xs(s);
  char *line = NULL, name[32];
  size_t cap = 0;
  FILE *f;
  int r;

  r = call_text(x, "stats", &f);
  while (r == 0 && getline(&line, &cap, f) >= 0) {
    unsigned long long v;

    if (sscanf(line, "%31s %llu", name, &v) != 2)
      continue;
    if (strcmp(name, "entries") == 0)
      st->entries = v;
    else if (strcmp(name, "bytes") == 0)
      st->bytes = v;
  }
  free(line);
  if (f != NULL)
    fclose(f);
  return r;
}

struct gc_state {
  int64_t now_ms;
  uint64_t removed;
};

static int gc_one(struct exec_store *x, const struct listed *e, void *ud)
{
  struct gc_state *g = ud;
  struct cdo__key k;
  int r;

  if (e->expires_ms < 0 || e->expires_ms > g->now_ms)
    return 0;
  memcpy(k.hex, e->key, sizeof(k.hex));
  r = exec_del(&x->base, &k);
  if (r == 0)
    g->removed++;
  return r;
}

/* Removes the entries whose EXPIRES, as the helper lists it, has passed. */
static int exec_gc(struct cdo_store *s, int64_t now_ms, uint64_t *removed)
{
  struct gc_state g = {now_ms, 0};
  int r = each_listed(xs(s), gc_one, &g);

  *removed += g.removed;
  return r;
}

static const struct cdo__store_opt exec_options[] = {
    {"timeout", CDO__V_DURATION_POS, "5s",
     offsetof(struct exec_store, timeout_ms), 0},
    {"breaker", CDO__V_DURATION, "0", offsetof(struct exec_store, breaker_ms),
     0},
    {NULL},
};

/*
 * The options come first, as a word of their own: exec:?timeout=10s PROG
 * [ARG]..., so that no '?' in the program's path or arguments is taken
 * for them.
 */
static const char *exec_query(const char *rest)
{
  return rest[0] == '?' ? rest : NULL;
}

const struct cdo__store_ops cdo__store_exec = {
    .scheme = "exec:",
    .name = "exec",
    .usage = "exec:PROGRAM",
    .about = "a program speaking the helper protocol",
    .size = sizeof(struct exec_store),
    .options = exec_options,
    .query = exec_query,
    .check = exec_check,
    .open = exec_open,
    .close = exec_close,
    .get = exec_get,
    .put = exec_put,
    .del = exec_del,
    .clear = exec_clear,
    .list = exec_list,
    .stats = exec_stats,
    .gc = exec_gc,
};
