/* SPDX-License-Identifier: MIT */
/*
 * The key: SHA-256 over a tagged, length-prefixed encoding of everything
 * that decides a command's output.
 *
 *   key      = SHA-256( "cachedo-key" u32(1) argv exe [cwd] env [pure]
 *                       [tty] file* [stdin] [scope] )
 *   argv     = tag("argv") u32(argc) { lp(arg) }{argc}
 *   exe      = tag("exe") lp(realpath) u64(size) i64(mtime s) u32(mtime ns)
 *            | tag("exe-missing") lp(argv[0])
 *   cwd      = tag("cwd") lp(working directory)
 *   env      = tag("env") u32(n) { lp(name) lp(value) }{n}, sorted by name
 *   pure     = tag("pure")
 *   tty      = tag("tty")
 *   file     = tag("file") lp(path) ( "absent" | 32-byte SHA-256 )
 *              (of the contents; of a directory, of its tree: tree.c)
 *   stdin    = tag("stdin") 32-byte SHA-256
 *   scope    = tag("scope") lp(name)
 *   tag(s)   = u32(len) bytes;  lp(s) = u64(len) bytes;  integers big-endian
 *
 * An unset variable is absent from env; an empty one is present with an
 * empty value, so the two differ. Values are hashed, never stored.
 */
#include "job.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sodium.h>
#include <stdarg.h>
#include <unistd.h>

#define KEY_VERSION 1

/*
 * Variables that change between two shells of one user without changing
 * what a command prints, sorted for bsearch(); plus every CACHEDO_*.
 */
static const char *const volatile_vars[] = {"ALACRITTY_WINDOW_ID",
                                            "COLUMNS",
                                            "GPG_TTY",
                                            "ITERM_SESSION_ID",
                                            "KITTY_PID",
                                            "KITTY_WINDOW_ID",
                                            "KONSOLE_DBUS_SESSION",
                                            "KONSOLE_DBUS_WINDOW",
                                            "LINES",
                                            "OLDPWD",
                                            "PWD",
                                            "SECURITYSESSIONID",
                                            "SHELL_SESSION_ID",
                                            "SHLVL",
                                            "SSH_AGENT_PID",
                                            "SSH_AUTH_SOCK",
                                            "SSH_CLIENT",
                                            "SSH_CONNECTION",
                                            "SSH_TTY",
                                            "STY",
                                            "TERM_SESSION_ID",
                                            "TMUX",
                                            "TMUX_PANE",
                                            "WEZTERM_PANE",
                                            "WINDOW",
                                            "WINDOWID",
                                            "WT_SESSION",
                                            "XDG_SESSION_ID",
                                            "XDG_VTNR",
                                            "_"};

int cdo__glob(const char *pattern, const char *name)
{
  return fnmatch(pattern, name, 0) == 0;
}

/* strcmp() of the n bytes at name, taken as a string, against s. */
static int cmp_name_str(const char *name, size_t n, const char *s)
{
  size_t i;

  for (i = 0; i < n; i++) {
    int c = (unsigned char)name[i] - (unsigned char)s[i];

    if (c != 0 || s[i] == 0)
      return c;
  }
  return s[n] ? -1 : 0;
}

/* cdo__env_volatile() of the n bytes at name. */
static int env_volatile(const char *name, size_t n)
{
  size_t lo = 0, hi = CDO__ARRAY_SIZE(volatile_vars);

  if (n >= 8 && memcmp(name, "CACHEDO_", 8) == 0)
    return 1;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = cmp_name_str(name, n, volatile_vars[mid]);

    if (c == 0)
      return 1;
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return 0;
}

int cdo__env_volatile(const char *name)
{
  return env_volatile(name, strlen(name));
}

/*
 * The key's encoding on its way into SHA-256: gathered into whole blocks
 * first, since many tiny updates cost more than the hashing itself.
 */
struct key_writer {
  struct cdo__sha256 h;
  size_t n;
  unsigned char buf[1024]; /* a multiple of SHA-256's 64-byte block */
};

static void w_add(struct key_writer *w, const void *p, size_t n)
{
  const unsigned char *s = p;

  while (n > 0) {
    size_t k = sizeof(w->buf) - w->n;

    if (k > n)
      k = n;
    memcpy(w->buf + w->n, s, k);
    w->n += k;
    s += k;
    n -= k;
    if (w->n == sizeof(w->buf)) {
      cdo__sha256_update(&w->h, w->buf, w->n);
      w->n = 0;
    }
  }
}

static void w_u32(struct key_writer *w, uint32_t v)
{
  unsigned char p[4];

  cdo__put32(p, v);
  w_add(w, p, 4);
}

static void w_u64(struct key_writer *w, uint64_t v)
{
  unsigned char p[8];

  cdo__put64(p, v);
  w_add(w, p, 8);
}

static void w_tag(struct key_writer *w, const char *tag)
{
  size_t n = strlen(tag);

  w_u32(w, (uint32_t)n);
  w_add(w, tag, n);
}

static void w_lp(struct key_writer *w, const char *s, size_t n)
{
  w_u64(w, n);
  w_add(w, s, n);
}

static void w_str(struct key_writer *w, const char *s)
{
  w_lp(w, s, strlen(s));
}

/* SHA-256 of everything fd yields; with copy >= 0 also writes it there. */
static int digest_fd(int fd, int copy, unsigned char out[32])
{
  struct cdo__sha256 h;
  unsigned char buf[65536];

  cdo__sha256_init(&h);
  for (;;) {
    ssize_t r = read(fd, buf, sizeof(buf));

    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return CDO__ERR(errno);
    if (r == 0)
      break;
    cdo__sha256_update(&h, buf, (size_t)r);
    if (copy >= 0 && cdo__write_all(copy, buf, (size_t)r) < 0)
      return CDO__ERR(errno);
  }
  cdo__sha256_final(&h, out);
  return 0;
}

/* Is path a regular file? Fills *st. */
static int regular(const char *path, struct stat *st)
{
  return stat(path, st) == 0 && S_ISREG(st->st_mode);
}

/*
 * Finds argv0 the way execvp(3) would, against PATH of the environment the
 * command runs in: the first executable regular file wins; a match without
 * execute permission gives 126, no match 127.
 */
static int resolve_exe(struct cdo_job *j, const char *argv0)
{
  const char *path = getenv("PATH"), *p;
  size_t alen = strlen(argv0), need;
  char small[512], *buf = small; /* a PATH entry, '/', argv0 */
  int denied = 0;

  if (strchr(argv0, '/') != NULL) {
    if (stat(argv0, &j->exe_st) < 0) {
      j->exe_status = errno == ENOENT || errno == ENOTDIR ? 127 : 126;
      goto fail;
    }
    errno = S_ISDIR(j->exe_st.st_mode) ? EISDIR : EACCES;
    if (!S_ISREG(j->exe_st.st_mode) || access(argv0, X_OK) < 0) {
      j->exe_status = 126;
      goto fail;
    }
    j->exe = strdup(argv0);
    goto found;
  }
  if (path == NULL)
    path = "/usr/local/bin:/usr/bin:/bin";
  need = strlen(path) + alen + 2;
  if (need > sizeof(small) && (buf = malloc(need)) == NULL)
    return CDO__ERR(ENOMEM);
  for (p = path;; p++) {
    size_t n = strcspn(p, ":"), o = n;

    memcpy(buf, p, n);
    if (n > 0)
      buf[o++] = '/';
    memcpy(buf + o, argv0, alen + 1);
    if (regular(buf, &j->exe_st)) {
      if (access(buf, X_OK) == 0) {
        j->exe = strdup(buf);
        if (buf != small)
          free(buf);
        goto found;
      }
      denied = 1;
    }
    p += n;
    if (*p == 0)
      break;
  }
  if (buf != small)
    free(buf);
  j->exe_status = denied ? 126 : 127;
  errno = denied ? EACCES : ENOENT;
fail : {
  char msg[600];

  if (j->exe_status == 127 && strchr(argv0, '/') == NULL)
    cdo__fmt(msg, sizeof(msg), "'%s': command not found", argv0);
  else
    cdo__fmt(msg, sizeof(msg), "cannot run '%s': %s", argv0,
             strerror(errno ? errno : EACCES));
  j->exe_err = strdup(msg);
  return j->exe_err ? 0 : CDO__ERR(ENOMEM);
}
found:
  if (j->exe == NULL)
    return CDO__ERR(ENOMEM);
  if (j->cfg->keyless)
    return 0; /* the real path is for the key only */
  j->exe_real = realpath(j->exe, NULL);
  if (j->exe_real == NULL)
    j->exe_real = strdup(j->exe);
  return j->exe_real ? 0 : CDO__ERR(ENOMEM);
}

static size_t name_len(const char *kv)
{
  return strcspn(kv, "=");
}

/* A hashed variable: "NAME=VALUE" and the length of NAME. */
struct env_item {
  char *kv;
  size_t nl;
};

/* Orders by name, byte by byte, a name before the longer names it starts. */
static int cmp_item(const struct env_item *x, const struct env_item *y)
{
  size_t n = x->nl < y->nl ? x->nl : y->nl;
  int c = (unsigned char)x->kv[0] - (unsigned char)y->kv[0];

  if (c == 0)
    c = memcmp(x->kv, y->kv, n); /* names often share a prefix */
  return c ? c : (x->nl > y->nl) - (x->nl < y->nl);
}

/*
 * Sorts a[0..n) by name, keeping variables of the same name in their order
 * (a merge sort: it is stable); tmp has room for n / 2 items.
 */
static void sort_env(struct env_item *a, size_t n, struct env_item *tmp)
{
  size_t mid = n / 2, i, k, o;

  if (n < 8) {
    for (i = 1; i < n; i++) {
      struct env_item x = a[i];

      for (k = i; k > 0 && cmp_item(&a[k - 1], &x) > 0; k--)
        a[k] = a[k - 1];
      a[k] = x;
    }
    return;
  }
  sort_env(a, mid, tmp);
  sort_env(a + mid, n - mid, tmp);
  if (cmp_item(&a[mid - 1], &a[mid]) <= 0)
    return;
  memcpy(tmp, a, mid * sizeof(*a));
  for (i = 0, k = mid, o = 0; i < mid && k < n;)
    a[o++] = cmp_item(&a[k], &tmp[i]) < 0 ? a[k++] : tmp[i++];
  while (i < mid)
    a[o++] = tmp[i++];
}

static int matches_any(const struct cdo_strv *v, const char *name)
{
  size_t i;

  for (i = 0; i < v->n; i++)
    if (cdo__glob(v->v[i], name))
      return 1;
  return 0;
}

/* Is the variable named by the nl bytes at kv left out of the key? */
static int env_skipped(const struct cdo_config *c, const char *kv, size_t nl,
                       int *err)
{
  char name[256], *nm;
  int skip;

  if (c->env.n == 0 && c->ignore_env.n == 0)
    return env_volatile(kv, nl); /* the default policy: no copy needed */
  nm = nl < sizeof(name) ? name : malloc(nl + 1);
  if (nm == NULL) {
    *err = CDO__ERR(ENOMEM);
    return 1;
  }
  memcpy(nm, kv, nl);
  nm[nl] = 0;
  skip = c->env.n ? !matches_any(&c->env, nm) : env_volatile(kv, nl);
  skip = skip || matches_any(&c->ignore_env, nm);
  if (nm != name)
    free(nm);
  return skip;
}

/* Picks the hashed variables of envp by the configured policy, sorted. */
static int select_env(struct cdo_job *j, char *const envp[])
{
  const struct cdo_config *c = j->cfg;
  struct env_item *items;
  size_t n = 0, m = 0, i, k;
  int r = 0;

  while (envp != NULL && envp[n] != NULL)
    n++;
  j->env = calloc(n + 1, sizeof(char *));
  if (j->env == NULL)
    return CDO__ERR(ENOMEM);
  if (c->no_env || n == 0)
    return 0;
  /* n items, then room for sort_env's n / 2 */
  items = malloc((n + n / 2 + 1) * sizeof(*items));
  j->env_nl = malloc(n * sizeof(*j->env_nl));
  if (items == NULL || j->env_nl == NULL) {
    free(items);
    return CDO__ERR(ENOMEM);
  }
  for (i = 0; i < n; i++) {
    size_t nl = name_len(envp[i]);

    if (envp[i][nl] != '=' || nl == 0)
      continue;
    if (!env_skipped(c, envp[i], nl, &r)) {
      items[m].kv = envp[i];
      items[m++].nl = nl;
    }
    if (r < 0) {
      free(items);
      return r;
    }
  }
  sort_env(items, m, items + n);
  /* Of duplicate names the first is kept, as getenv() does. */
  for (i = k = 0; i < m; i++) {
    if (k > 0 && j->env_nl[k - 1] == items[i].nl &&
        memcmp(j->env[k - 1], items[i].kv, items[i].nl) == 0)
      continue;
    j->env[k] = items[i].kv;
    j->env_nl[k++] = items[i].nl;
  }
  free(items);
  j->n_env = k;
  return 0;
}

/*
 * An allowlist that lets no variable of this environment through is almost
 * always a mistake (a misspelt or mis-quoted pattern): say so once.
 */
static void warn_empty_allowlist(struct cdo_job *j)
{
  const struct cdo_strv *p = &j->cfg->env;
  char list[300];
  size_t i, n = 0;

  if (p->n == 0 || j->cfg->no_env || j->n_env > 0)
    return;
  list[0] = 0;
  for (i = 0; i < p->n && n < sizeof(list); i++)
    n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? " " : "",
                          p->v[i]);
  cdo__job_msg(j, 0, "warning: --env '%s' matches no variable", list);
}

static int digest_files(struct cdo_job *j, char *err, size_t errlen)
{
  const struct cdo_strv *f = &j->cfg->files;
  char why[600];
  struct stat st;
  size_t i;

  j->files = calloc(f->n + 1, sizeof(*j->files));
  if (j->files == NULL)
    return CDO__ERR(ENOMEM);
  for (i = 0; i < f->n; i++) {
    struct cdo__file_digest *d = &j->files[j->n_files++];
    int fd = open(f->v[i], O_RDONLY | O_CLOEXEC), r;

    d->path = f->v[i];
    if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) {
      d->absent = 1;
      continue;
    }
    r = fd < 0 ? CDO__ERR(errno) : fstat(fd, &st) < 0 ? CDO__ERR(errno) : 0;
    d->tree = r == 0 && S_ISDIR(st.st_mode);
    if (r == 0 && d->tree)
      r = cdo__tree_digest(fd, f->v[i], d->digest, &d->entries, why,
                           sizeof(why));
    else if (r == 0)
      r = digest_fd(fd, -1, d->digest);
    if (fd >= 0)
      close(fd);
    if (r < 0 && d->tree) {
      cdo__fmt(err, errlen, "cannot hash --file '%s': %s", f->v[i], why);
      return CDO_EBADVALUE;
    }
    if (r < 0) {
      cdo__fmt(err, errlen,
               "cannot read --file '%s': %s (expected a readable file or "
               "directory, or one that does not exist)",
               f->v[i], cdo_strerror(r));
      return CDO_EBADVALUE;
    }
  }
  return 0;
}

static int spool_stdin(struct cdo_job *j, char *err, size_t errlen)
{
  int r;

  j->stdin_fd = cdo__tmpfile(NULL);
  if (j->stdin_fd < 0) {
    /* Nothing read yet: the command can still have stdin, uncached. */
    cdo__fmt(err, errlen, "cannot spool standard input: %s",
             cdo_strerror(j->stdin_fd));
    j->stdin_fd = -1;
    j->uncacheable = strdup(err);
    return j->uncacheable ? 0 : CDO__ERR(ENOMEM);
  }
  r = digest_fd(0, j->stdin_fd, j->stdin_digest);
  if (r == CDO__ERR(EBADF)) /* stdin closed: hash it as empty */
    r = digest_fd(j->stdin_fd, -1, j->stdin_digest);
  if (r < 0 || lseek(j->stdin_fd, 0, SEEK_SET) < 0) {
    cdo__fmt(err, errlen, "cannot spool standard input: %s",
             cdo_strerror(r < 0 ? r : CDO__ERR(errno)));
    return r < 0 ? r : CDO__ERR(errno);
  }
  return 0;
}

/* ---- the key's components ------------------------------------------------ */

/* The first 8 bytes of a digest as 16 hex digits. */
static void hex16(const unsigned char *d, char out[17])
{
  static const char hex[] = "0123456789abcdef";
  int i;

  for (i = 0; i < 8; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[16] = 0;
}

/*
 * What --explain shows of a value: the start of keyed BLAKE2b under the
 * cache's salt of the component's type and the value, as
 * "salted:<16 hex digits>"; without a salt, only "set".
 */
static void salted(const unsigned char *salt, char type, const void *p,
                   size_t n, char *out, size_t len)
{
  crypto_generichash_state h;
  unsigned char d[16];
  char hex[17];

  if (salt == NULL) {
    cdo__fmt(out, len, "set");
    return;
  }
  crypto_generichash_init(&h, salt, CDO__SALT_LEN, sizeof(d));
  crypto_generichash_update(&h, (const unsigned char *)&type, 1);
  crypto_generichash_update(&h, p, n);
  crypto_generichash_final(&h, d, sizeof(d));
  hex16(d, hex);
  cdo__fmt(out, len, "salted:%s", hex);
}

static const char *const secret_names[] = {
    "*TOKEN*", "*SECRET*",     "*PASSWORD*", "*PASSWD*",
    "*_KEY",   "*CREDENTIAL*", "*AUTH*",
};

int cdo__env_secret(const char *name, size_t n)
{
  char small[128], *s = n < sizeof(small) ? small : malloc(n + 1);
  size_t i;
  int r = 0;

  if (s == NULL)
    return 1; /* cannot tell: hide it */
  memcpy(s, name, n);
  s[n] = 0;
  for (i = 0; r == 0 && i < CDO__ARRAY_SIZE(secret_names); i++)
    r = fnmatch(secret_names[i], s, FNM_CASEFOLD) == 0;
  if (s != small)
    free(s);
  return r;
}

/*
 * What a component's walk hands out: one part, with the text --explain
 * shows when the walk was asked to show (buf is scratch for it).
 */
struct walker {
  const struct cdo__key_comp *comp;
  int show;
  const unsigned char *salt; /* with show: the cache's salt, or NULL */
  cdo__key_part_fn fn;
  void *ud;
  char buf[4400];
};

static void emit(struct walker *w, struct cdo__key_part *p)
{
  if (!w->show)
    p->shown = NULL;
  else if (p->shown == NULL)
    p->shown = w->buf;
  w->fn(w->ud, w->comp, p);
}

static void hash_argv(const struct cdo_job *j, struct key_writer *w)
{
  size_t i, argc = 0;

  while (j->argv[argc] != NULL)
    argc++;
  w_tag(w, "argv");
  w_u32(w, (uint32_t)argc);
  for (i = 0; i < argc; i++)
    w_str(w, j->argv[i]);
}

static void walk_argv(const struct cdo_job *j, struct walker *w)
{
  size_t i;

  for (i = 0; j->argv[i] != NULL; i++) {
    struct cdo__key_part p = {.hashed = 1, .v1 = j->argv[i]};

    p.n1 = strlen(j->argv[i]);
    if (w->show)
      cdo__fmt(w->buf, sizeof(w->buf), "[%zu] '%s'", i, j->argv[i]);
    emit(w, &p);
  }
}

/* The executable's size and mtime, as the key encodes them. */
static void exe_stamp(const struct cdo_job *j, unsigned char out[20])
{
  cdo__put64(out, (uint64_t)j->exe_st.st_size);
  cdo__put64(out + 8, (uint64_t)j->exe_st.st_mtim.tv_sec);
  cdo__put32(out + 16, (uint32_t)j->exe_st.st_mtim.tv_nsec);
}

static void hash_exe(const struct cdo_job *j, struct key_writer *w)
{
  unsigned char stamp[20];

  if (j->exe_real != NULL) {
    w_tag(w, "exe");
    w_str(w, j->exe_real);
    exe_stamp(j, stamp);
    w_add(w, stamp, sizeof(stamp));
  } else {
    w_tag(w, "exe-missing");
    w_str(w, j->argv[0]);
  }
}

static void walk_exe(const struct cdo_job *j, struct walker *w)
{
  struct cdo__key_part p = {.hashed = 1};
  unsigned char stamp[20];

  if (j->exe_real != NULL) {
    exe_stamp(j, stamp);
    p.v1 = j->exe_real;
    p.n1 = strlen(j->exe_real) + 1;
    p.v2 = stamp;
    p.n2 = sizeof(stamp);
    if (w->show)
      cdo__fmt(w->buf, sizeof(w->buf), "%s size=%lld mtime=%lld.%09ld",
               j->exe_real, (long long)j->exe_st.st_size,
               (long long)j->exe_st.st_mtim.tv_sec,
               (long)j->exe_st.st_mtim.tv_nsec);
  } else {
    p.v1 = j->argv[0];
    p.n1 = strlen(j->argv[0]);
    if (w->show)
      cdo__fmt(w->buf, sizeof(w->buf), "'%s' (not found)", j->argv[0]);
  }
  emit(w, &p);
}

static void hash_cwd(const struct cdo_job *j, struct key_writer *w)
{
  if (j->cwd != NULL) {
    w_tag(w, "cwd");
    w_str(w, j->cwd);
  }
}

static void walk_cwd(const struct cdo_job *j, struct walker *w)
{
  struct cdo__key_part p = {0};

  if (j->cwd != NULL) {
    p.hashed = 1;
    p.v1 = j->cwd;
    p.n1 = strlen(j->cwd);
    p.shown = j->cwd;
  } else {
    p.shown = j->uncacheable ? "(unreadable: not cacheable)"
                             : "(not hashed: --no-cwd)";
  }
  if (p.hashed || w->show)
    emit(w, &p);
}

static void hash_env(const struct cdo_job *j, struct key_writer *w)
{
  size_t i;

  w_tag(w, "env");
  w_u32(w, (uint32_t)j->n_env);
  for (i = 0; i < j->n_env; i++) {
    size_t nl = j->env_nl[i];

    w_lp(w, j->env[i], nl);
    w_str(w, j->env[i] + nl + 1);
  }
}

static void walk_env(const struct cdo_job *j, struct walker *w)
{
  char dig[40];
  size_t i;

  if (j->cfg->no_env && w->show) {
    struct cdo__key_part p = {.shown = "(not hashed: --no-env)"};

    emit(w, &p);
  }
  for (i = 0; i < j->n_env; i++) {
    struct cdo__key_part p = {.hashed = 1, .name = j->env[i]};

    p.name_len = j->env_nl[i];
    p.v1 = j->env[i] + p.name_len + 1;
    p.n1 = strlen(p.v1);
    if (w->show) {
      if (cdo__env_secret(p.name, p.name_len))
        cdo__fmt(dig, sizeof(dig), "set"); /* not even a keyed digest */
      else
        salted(w->salt, 'e', p.v1, p.n1, dig, sizeof(dig));
      cdo__fmt(w->buf, sizeof(w->buf), "%.*s %s", (int)p.name_len, p.name, dig);
    }
    emit(w, &p);
  }
}

static void hash_pure(const struct cdo_job *j, struct key_writer *w)
{
  if (j->cfg->pure)
    w_tag(w, "pure");
}

static void walk_pure(const struct cdo_job *j, struct walker *w)
{
  struct cdo__key_part p = {.hashed = 1};

  p.shown = "the command runs with only the variables above";
  if (j->cfg->pure)
    emit(w, &p); /* no value: a flag */
}

static void hash_tty(const struct cdo_job *j, struct key_writer *w)
{
  if (j->cfg->tty)
    w_tag(w, "tty");
}

static void walk_tty(const struct cdo_job *j, struct walker *w)
{
  struct cdo__key_part p = {.hashed = 1};

  p.shown = "the command runs on a pseudo-terminal";
  if (j->cfg->tty)
    emit(w, &p); /* no value: a flag */
}

static void hash_files(const struct cdo_job *j, struct key_writer *w)
{
  size_t i;

  for (i = 0; i < j->n_files; i++) {
    w_tag(w, "file");
    w_str(w, j->files[i].path);
    if (j->files[i].absent)
      w_add(w, "absent", 6);
    else
      w_add(w, j->files[i].digest, 32);
  }
}

static void walk_files(const struct cdo_job *j, struct walker *w)
{
  char dig[40];
  size_t i;

  for (i = 0; i < j->n_files; i++) {
    const struct cdo__file_digest *f = &j->files[i];
    struct cdo__key_part p = {.hashed = 1, .name = f->path};

    p.name_len = strlen(f->path);
    p.v1 = f->absent ? (const void *)"absent" : f->digest;
    p.n1 = f->absent ? 6 : 32;
    if (w->show && f->absent) {
      cdo__fmt(w->buf, sizeof(w->buf), "%s absent", f->path);
    } else if (w->show && f->tree) {
      salted(w->salt, 'f', f->digest, 32, dig, sizeof(dig));
      cdo__fmt(w->buf, sizeof(w->buf),
               "%s tree of %zu entries (names, types, sizes, mtimes) %s",
               f->path, f->entries, dig);
    } else if (w->show) {
      salted(w->salt, 'f', f->digest, 32, dig, sizeof(dig));
      cdo__fmt(w->buf, sizeof(w->buf), "%s %s", f->path, dig);
    }
    emit(w, &p);
  }
}

static void hash_stdin(const struct cdo_job *j, struct key_writer *w)
{
  if (j->stdin_fd >= 0) {
    w_tag(w, "stdin");
    w_add(w, j->stdin_digest, 32);
  }
}

static void walk_stdin(const struct cdo_job *j, struct walker *w)
{
  struct cdo__key_part p = {.hashed = 1, .v1 = j->stdin_digest, .n1 = 32};

  if (j->stdin_fd < 0 && j->stdin_unkeyed != NULL && w->show) {
    p.hashed = 0; /* only said, so that piped input is not a surprise */
    cdo__fmt(w->buf, sizeof(w->buf), "not in the key (%s); use --stdin",
             j->stdin_unkeyed);
    emit(w, &p);
  }
  if (j->stdin_fd < 0)
    return;
  if (w->show)
    salted(w->salt, 's', j->stdin_digest, 32, w->buf, sizeof(w->buf));
  emit(w, &p);
}

static void hash_scope(const struct cdo_job *j, struct key_writer *w)
{
  if (j->cfg->scope != NULL) {
    w_tag(w, "scope");
    w_str(w, j->cfg->scope);
  }
}

static void walk_scope(const struct cdo_job *j, struct walker *w)
{
  struct cdo__key_part p = {.hashed = 1, .v1 = j->cfg->scope};

  if (j->cfg->scope == NULL)
    return;
  p.n1 = strlen(j->cfg->scope);
  p.shown = j->cfg->scope;
  emit(w, &p);
}

/*
 * The key's components in the order they are hashed: hash writes one into
 * the key's encoding (the grammar at the top), walk hands its parts to
 * --explain and to the explain side files.
 */
static const struct comp_impl {
  struct cdo__key_comp c;
  void (*hash)(const struct cdo_job *j, struct key_writer *w);
  void (*walk)(const struct cdo_job *j, struct walker *w);
} comps[] = {
    {{0, "argv", {NULL}}, hash_argv, walk_argv},
    {{'x',
      "exe",
      {"another executable, or the same one changed (size or mtime)",
       "another executable, or the same one changed (size or mtime)",
       "another executable, or the same one changed (size or mtime)"}},
     hash_exe,
     walk_exe},
    {{'c',
      "cwd",
      {"another working directory", "hashed now, not then (--no-cwd)",
       "not hashed now (--no-cwd)"}},
     hash_cwd,
     walk_cwd},
    {{'e',
      "env",
      {"another value", "set now, unset or not hashed then",
       "unset or not hashed now, set then"}},
     hash_env,
     walk_env},
    {{'p', "pure", {"differs", "--pure now, not then", "--pure then, not now"}},
     hash_pure,
     walk_pure},
    {{'t', "tty", {"differs", "--tty now, not then", "--tty then, not now"}},
     hash_tty,
     walk_tty},
    {{'f',
      "file",
      {"other contents", "hashed now, not then", "hashed then, not now"}},
     hash_files,
     walk_files},
    {{'s',
      "stdin",
      {"other input", "hashed now (--stdin), not then",
       "hashed then (--stdin), not now"}},
     hash_stdin,
     walk_stdin},
    {{'o',
      "scope",
      {"another scope", "a scope now, none then", "a scope then, none now"}},
     hash_scope,
     walk_scope},
};

const struct cdo__key_comp *cdo__key_comp(unsigned char type)
{
  size_t i;

  for (i = 0; i < CDO__ARRAY_SIZE(comps); i++)
    if (comps[i].c.type == type && type != 0)
      return &comps[i].c;
  return NULL;
}

void cdo__key_walk(const struct cdo_job *j, int show, const unsigned char *salt,
                   cdo__key_part_fn fn, void *ud)
{
  struct walker *w = malloc(sizeof(*w));
  size_t i;

  if (w == NULL)
    return; /* explanations are best effort */
  w->show = show;
  w->salt = salt;
  w->fn = fn;
  w->ud = ud;
  for (i = 0; i < CDO__ARRAY_SIZE(comps); i++) {
    w->comp = &comps[i].c;
    w->buf[0] = 0;
    comps[i].walk(j, w);
  }
  free(w);
}

static void hash_key(struct cdo_job *j)
{
  static const char hex[] = "0123456789abcdef";
  struct key_writer w;
  size_t i;

  cdo__sha256_init(&w.h);
  w.n = 0;
  w_tag(&w, "cachedo-key");
  w_u32(&w, KEY_VERSION);
  for (i = 0; i < CDO__ARRAY_SIZE(comps); i++)
    comps[i].hash(j, &w);
  cdo__sha256_update(&w.h, w.buf, w.n);
  cdo__sha256_final(&w.h, j->key.hash);
  for (i = 0; i < 32; i++) {
    j->key.hex[2 * i] = hex[j->key.hash[i] >> 4];
    j->key.hex[2 * i + 1] = hex[j->key.hash[i] & 15];
  }
  j->key.hex[64] = 0;
}

void cdo__key_argv_digest(const struct cdo_job *j, unsigned char out[32])
{
  struct key_writer w;

  cdo__sha256_init(&w.h);
  w.n = 0;
  hash_argv(j, &w);
  cdo__sha256_update(&w.h, w.buf, w.n);
  cdo__sha256_final(&w.h, out);
}

/*
 * The working directory, malloc'd; NULL with errno set. A short one skips
 * getcwd(NULL, 0)'s page-sized scratch allocation.
 */
static char *read_cwd(void)
{
  char buf[512];

  if (getcwd(buf, sizeof(buf)) != NULL)
    return strdup(buf);
  return errno == ERANGE ? getcwd(NULL, 0) : NULL;
}

/* What stdin is when it may carry data the key does not see, else NULL. */
static const char *unkeyed_stdin(void)
{
  struct stat st;

  if (fstat(0, &st) < 0)
    return NULL;
  if (S_ISFIFO(st.st_mode))
    return "a pipe";
  if (S_ISSOCK(st.st_mode))
    return "a socket";
  if (S_ISREG(st.st_mode))
    return "a regular file";
  return NULL; /* a terminal, /dev/null: the common case */
}

/* The working directory into j->cwd, or why the job cannot be cached. */
static int take_cwd(struct cdo_job *j)
{
  char why[300];

  j->cwd = read_cwd();
  if (j->cwd != NULL)
    return 0;
  /* The command can still run (it may not care), just not cached. */
  cdo__fmt(why, sizeof(why),
           "cannot read the working directory: %s "
           "(--no-cwd leaves it out of the key)",
           strerror(errno));
  j->uncacheable = strdup(why);
  return j->uncacheable ? 0 : CDO__ERR(ENOMEM);
}

int cdo__key_gather(struct cdo_job *j, char *const envp[], char *err,
                    size_t errlen)
{
  const struct cdo_config *cfg = j->cfg;
  int r = resolve_exe(j, j->argv[0]);

  if (cfg->keyless) { /* it only runs: --pure's environment is all it needs */
    if (r == 0 && cfg->pure && (r = select_env(j, envp)) == 0)
      warn_empty_allowlist(j);
    return r;
  }
  if (r == 0 && !cfg->no_cwd)
    r = take_cwd(j);
  if (r == 0)
    r = select_env(j, envp);
  if (r == 0)
    warn_empty_allowlist(j);
  if (r == 0)
    r = digest_files(j, err, errlen);
  if (r == 0 && cfg->use_stdin && !cfg->no_cache && j->uncacheable == NULL)
    r = spool_stdin(j, err, errlen);
  if (!cfg->use_stdin)
    j->stdin_unkeyed = unkeyed_stdin();
  if (r == 0)
    hash_key(j);
  return r;
}

struct explain_ctx {
  cdo_explain_fn fn;
  void *ud;
};

static void explain_part(void *ud, const struct cdo__key_comp *c,
                         const struct cdo__key_part *p)
{
  const struct explain_ctx *x = ud;

  x->fn(x->ud, c->label, p->shown);
}

void cdo__job_explain(const struct cdo_job *j, const unsigned char *salt,
                      cdo_explain_fn fn, void *ud)
{
  struct explain_ctx x = {fn, ud};
  char buf[16];

  cdo__fmt(buf, sizeof(buf), "%d", KEY_VERSION);
  fn(ud, "version", buf);
  cdo__key_walk(j, 1, salt, explain_part, &x);
  fn(ud, "key", j->key.hex);
}
