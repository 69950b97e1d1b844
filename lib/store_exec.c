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
#include "spawn.h"
#include "store_int.h"

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
  struct exec_store *x;
  const char *verb;
  const struct cdo__src *src; /* stdin; NULL: /dev/null */
  int out;                    /* stdout goes to this file; -1: /dev/null */
  uint64_t out_len;           /* bytes written to out */
  char *env[4]; /* extra "NAME=VALUE"s for the helper, NULL-ended */
  int status;   /* exit status; -1 when killed by a signal */
  /* Kept while the helper runs: */
  int64_t start;   /* when it started, monotonic ms */
  uint64_t moved;  /* bytes through its stdin and stdout so far */
  int overall;     /* killed at the call's deadline */
  uint64_t unread; /* bytes of src it did not read */
};

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
 * The helper's stdout, into c->out; no more than the largest entry this
 * front end stores: a longer answer is not one, and the helper is killed.
 */
static int helper_output(struct cdo__proc *p, int fd, const char *buf, size_t n)
{
  struct call *c = p->ud;
  uint64_t max = cdo__store_max_entry(&c->x->base);
  int r;

  (void)fd; /* only stdout is piped */
  if (c->out_len + n > max) {
    char lim[32], mo[32];

    cdo_format_size(max, lim, sizeof(lim));
    cdo_format_size(c->x->base.cfg->max_output, mo, sizeof(mo));
    return call_fail(c->x, c, CDO_EBACKEND,
                     "answered more than %s, more than any entry "
                     "--max-output %s allows; killed it",
                     lim, mo);
  }
  r = cdo__write_all(c->out, buf, n);
  if (r < 0)
    return cdo__store_fail(&c->x->base, r, "cannot write the spool: %s",
                           cdo_strerror(r));
  c->out_len += n;
  c->moved += n;
  return 0;
}

/*
 * Every call has an overall deadline besides the idle one: the timeout,
 * and as much again for each MiB it moved, so that a helper trickling a
 * byte at a time ends while a large entry has its time.
 */
static int helper_tick(struct cdo__proc *p)
{
  struct call *c = p->ud;
  int64_t deadline =
      c->start + c->x->timeout_ms * (int64_t)(1 + (c->moved >> 20));

  /* Nothing moved yet: the idle timeout is the one that ends it. */
  if (c->moved == 0 || cdo__mono_ms() < deadline || p->pid <= 0)
    return 0;
  c->overall = 1;
  kill(-p->pid, SIGKILL); /* its process group: what it started too */
  kill(p->pid, SIGKILL);
  return -1;
}

/* The helper's stdin, from c->src. */
static ssize_t helper_input(struct cdo__proc *p, uint64_t off, void *buf,
                            size_t n)
{
  struct call *c = p->ud;
  ssize_t got = cdo__src_read(c->src, off, buf, n);

  if (got < 0)
    cdo__store_fail(&c->x->base, (int)got, "cannot read the spool: %s",
                    cdo_strerror((int)got));
  else
    c->moved += (uint64_t)got;
  return got;
}

/* The words of a helper's end that was not an exit status; 0 if it was. */
static int helper_ended(struct exec_store *x, struct call *c,
                        const struct cdo__proc *p)
{
  char t[32];

  if (c->overall) {
    cdo_format_duration(cdo__mono_ms() - c->start, t, sizeof(t));
    return call_fail(x, c, CDO_EBACKEND, "still running after %s; killed it",
                     t);
  }
  if (p->timed_out) {
    cdo_format_duration(x->timeout_ms, t, sizeof(t));
    return call_fail(x, c, CDO_EBACKEND, "no progress for %s; killed it", t);
  }
  if (p->error < 0) {
    if (x->base.errmsg[0] == 0)
      call_fail(x, c, p->error, "%s", cdo_strerror(p->error));
    return p->error;
  }
  if (p->term_signal)
    return call_fail(x, c, CDO_EBACKEND, "killed by signal %d (%s)",
                     p->term_signal, strsignal(p->term_signal));
  if (p->status_lost)
    return call_fail(x, c, CDO_EBACKEND, "its exit status was lost");
  return 0;
}

/*
 * Runs the helper with verb and the optional key and arg, feeding c->src
 * and collecting stdout into c->out, in a process group of its own (a
 * timeout kills whatever it started too) that dies with cachedo (a put cut
 * short never publishes a partial entry). Returns 0 with c->status set, or
 * an error with s->errmsg filled (the helper is then killed and reaped).
 */
static int call_helper(struct exec_store *x, struct call *c, const char *key,
                       const char *arg)
{
  struct cdo__proc p;
  char **envp = environ;
  size_t i = x->argc, n = 0;
  int r;

  x->argv[i++] = (char *)c->verb;
  if (key != NULL)
    x->argv[i++] = (char *)key;
  if (arg != NULL)
    x->argv[i++] = (char *)arg;
  x->argv[i] = NULL;
  x->base.errmsg[0] = 0;
  c->x = x;
  c->status = -1;
  c->out_len = c->moved = c->unread = 0;
  c->overall = 0;
  c->start = cdo__mono_ms();
  if (x->base.failed)
    return cdo__store_fail(&x->base, CDO_EFAILED, "helper '%s' failed earlier",
                           x->argv[0]);
  while (c->env[n] != NULL)
    n++;
  if (n > 0 && (envp = env_with(c->env, n)) == NULL)
    return call_fail(x, c, CDO__ERR(ENOMEM), "cannot start it: %s",
                     cdo_strerror(CDO__ERR(ENOMEM)));
  memset(&p, 0, sizeof(p));
  p.path = x->path;
  p.argv = x->argv;
  p.envp = envp;
  p.fd[0] = c->src != NULL ? CDO__PROC_PIPE : CDO__PROC_NULL;
  p.fd[1] = c->out >= 0 ? CDO__PROC_PIPE : CDO__PROC_NULL;
  p.fd[2] = CDO__PROC_OURS;
  p.flags = CDO__PROC_SETPGRP | CDO__PROC_DIE_WITH_US;
  p.on_output = helper_output;
  p.feed = helper_input;
  p.idle_ms = x->timeout_ms;
  p.tick = helper_tick;
  p.tick_ms = 50;
  p.ud = c;
  r = cdo__proc_run(&p);
  if (c->src != NULL && p.in_read < cdo__src_size(c->src))
    c->unread = cdo__src_size(c->src) - p.in_read;
  if (envp != environ)
    free(envp);
  if (r < 0)
    return call_fail(x, c, r, "cannot run '%s': %s", x->path, cdo_strerror(r));
  r = helper_ended(x, c, &p);
  if (r == 0)
    c->status = p.exit_status;
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
  if (r == 0 && c.status == 0 && c.unread > 0)
    return call_fail(x, &c, CDO_EBACKEND,
                     "exit status 0, but %llu of the entry's %llu bytes "
                     "were not read",
                     (unsigned long long)c.unread,
                     (unsigned long long)cdo__src_size(src));
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
  char **argv = NULL;
  int r;

  r = fetch(x, e->key, &b);
  if (r < 0 || b == NULL)
    return r; /* gone since the list was made: skip it */
  if (cdo__entry_peek(b, &m, NULL, &argv, &joff) < 0) {
    cdo__blob_free(b);
    return 0; /* not an entry: nothing to show */
  }
  if (rows->n == rows->cap) {
    size_t cap = rows->cap ? rows->cap * 2 : 16;
    struct cdo_entry_info *v = realloc(rows->v, cap * sizeof(*v));

    if (v == NULL) {
      free(argv);
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
  row->command = NULL;
  row->argv = argv;
  row->scope = NULL; /* the helper's list does not say */
  /* No expiry from the helper: the reader's TTL decides anyway. */
  row->expires_ms = e->expires_ms >= 0
                        ? e->expires_ms
                        : m.created_ms + cdo__entry_ttl(c, m.exit_status);
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
    free((void *)rows.v[i].argv);
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
    {.name = NULL},
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
