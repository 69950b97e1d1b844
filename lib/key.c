/* SPDX-License-Identifier: MIT */
/*
 * The key: SHA-256 over a tagged, length-prefixed encoding of everything
 * that decides a command's output.
 *
 *   key      = SHA-256( "cachedo-key" u32(1) argv exe [cwd] env [pure]
 *                       file* [stdin] [scope] )
 *   argv     = tag("argv") u32(argc) { lp(arg) }{argc}
 *   exe      = tag("exe") lp(realpath) u64(size) i64(mtime s) u32(mtime ns)
 *            | tag("exe-missing") lp(argv[0])
 *   cwd      = tag("cwd") lp(working directory)
 *   env      = tag("env") u32(n) { lp(name) lp(value) }{n}, sorted by name
 *   pure     = tag("pure")
 *   file     = tag("file") lp(path) ( "absent" | 32-byte SHA-256 )
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

static int cmp_name(const void *a, const void *b)
{
  return strcmp(a, *(const char *const *)b);
}

int cdo__env_volatile(const char *name)
{
  return strncmp(name, "CACHEDO_", 8) == 0 ||
         bsearch(name, volatile_vars, CDO__ARRAY_SIZE(volatile_vars),
                 sizeof(volatile_vars[0]), cmp_name) != NULL;
}

void cdo__job_msg(struct cdo_job *j, int level, const char *fmt, ...)
{
  char buf[600];
  va_list ap;

  if (j->msg == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  j->msg(j->ud, level, buf);
}

static void h_u32(crypto_hash_sha256_state *h, uint32_t v)
{
  unsigned char p[4];

  cdo__put32(p, v);
  crypto_hash_sha256_update(h, p, 4);
}

static void h_u64(crypto_hash_sha256_state *h, uint64_t v)
{
  unsigned char p[8];

  cdo__put64(p, v);
  crypto_hash_sha256_update(h, p, 8);
}

static void h_tag(crypto_hash_sha256_state *h, const char *tag)
{
  h_u32(h, (uint32_t)strlen(tag));
  crypto_hash_sha256_update(h, (const unsigned char *)tag, strlen(tag));
}

static void h_lp(crypto_hash_sha256_state *h, const char *s, size_t n)
{
  h_u64(h, n);
  crypto_hash_sha256_update(h, (const unsigned char *)s, n);
}

static void h_str(crypto_hash_sha256_state *h, const char *s)
{
  h_lp(h, s, strlen(s));
}

/* SHA-256 of everything fd yields; with copy >= 0 also writes it there. */
static int digest_fd(int fd, int copy, unsigned char out[32])
{
  crypto_hash_sha256_state h;
  unsigned char buf[65536];

  crypto_hash_sha256_init(&h);
  for (;;) {
    ssize_t r = read(fd, buf, sizeof(buf));

    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return CDO__ERR(errno);
    if (r == 0)
      break;
    crypto_hash_sha256_update(&h, buf, (size_t)r);
    if (copy >= 0 && cdo__write_all(copy, buf, (size_t)r) < 0)
      return CDO__ERR(errno);
  }
  crypto_hash_sha256_final(&h, out);
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
  char buf[4096];
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
  for (p = path;; p++) {
    size_t n = strcspn(p, ":");

    cdo__fmt(buf, sizeof(buf), "%.*s%s%s", (int)n, p, n ? "/" : "", argv0);
    if (regular(buf, &j->exe_st)) {
      if (access(buf, X_OK) == 0) {
        j->exe = strdup(buf);
        goto found;
      }
      denied = 1;
    }
    p += n;
    if (*p == 0)
      break;
  }
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
  j->exe_real = realpath(j->exe, NULL);
  if (j->exe_real == NULL)
    j->exe_real = strdup(j->exe);
  return j->exe_real ? 0 : CDO__ERR(ENOMEM);
}

static size_t name_len(const char *kv)
{
  return strcspn(kv, "=");
}

static int cmp_name_kv(const char *x, const char *y)
{
  size_t nx = name_len(x), ny = name_len(y);
  int c = memcmp(x, y, nx < ny ? nx : ny);

  return c ? c : (nx > ny) - (nx < ny);
}

/* A variable and its place in the environment, to sort by name, then place. */
struct env_item {
  char *kv;
  size_t nl; /* length of its name */
  size_t at;
};

static int cmp_env(const void *a, const void *b)
{
  const struct env_item *x = a, *y = b;
  int c = memcmp(x->kv, y->kv, x->nl < y->nl ? x->nl : y->nl);

  if (c == 0)
    c = (x->nl > y->nl) - (x->nl < y->nl);
  return c ? c : (x->at > y->at) - (x->at < y->at);
}

static int matches_any(const struct cdo_strv *v, const char *name)
{
  size_t i;

  for (i = 0; i < v->n; i++)
    if (cdo__glob(v->v[i], name))
      return 1;
  return 0;
}

/* Picks the hashed variables of envp by the configured policy, sorted. */
static int select_env(struct cdo_job *j, char *const envp[])
{
  const struct cdo_config *c = j->cfg;
  struct env_item *items;
  size_t n = 0, i, k;
  char name[256];

  while (envp != NULL && envp[n] != NULL)
    n++;
  j->env = calloc(n + 1, sizeof(char *));
  if (j->env == NULL)
    return CDO__ERR(ENOMEM);
  if (c->no_env)
    return 0;
  for (i = 0; i < n; i++) {
    size_t nl = name_len(envp[i]);
    char *nm = nl < sizeof(name) ? name : malloc(nl + 1);
    int skip;

    if (envp[i][nl] != '=' || nl == 0)
      continue;
    if (nm == NULL)
      return CDO__ERR(ENOMEM);
    memcpy(nm, envp[i], nl);
    nm[nl] = 0;
    skip = c->env.n ? !matches_any(&c->env, nm) : cdo__env_volatile(nm);
    skip = skip || matches_any(&c->ignore_env, nm);
    if (nm != name)
      free(nm);
    if (!skip)
      j->env[j->n_env++] = envp[i];
  }
  /* Sorted by name; of duplicate names the first is kept, as getenv() does. */
  items = malloc((j->n_env + 1) * sizeof(*items));
  if (items == NULL)
    return CDO__ERR(ENOMEM);
  for (i = 0; i < j->n_env; i++) {
    items[i].kv = j->env[i];
    items[i].nl = name_len(j->env[i]);
    items[i].at = i;
  }
  qsort(items, j->n_env, sizeof(*items), cmp_env);
  for (i = k = 0; i < j->n_env; i++)
    if (k == 0 || cmp_name_kv(j->env[k - 1], items[i].kv) != 0)
      j->env[k++] = items[i].kv;
  free(items);
  j->n_env = k;
  j->env[k] = NULL;
  return 0;
}

static int digest_files(struct cdo_job *j, char *err, size_t errlen)
{
  const struct cdo_strv *f = &j->cfg->files;
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
    r = fd < 0 ? CDO__ERR(errno) : digest_fd(fd, -1, d->digest);
    if (fd >= 0)
      close(fd);
    if (r < 0) {
      cdo__fmt(err, errlen,
               "cannot read --file '%s': %s (expected a "
               "readable file, or one that does not exist)",
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

static void hash_key(struct cdo_job *j)
{
  static const char hex[] = "0123456789abcdef";
  const struct cdo_config *c = j->cfg;
  crypto_hash_sha256_state h;
  size_t i, argc = 0;

  crypto_hash_sha256_init(&h);
  h_tag(&h, "cachedo-key");
  h_u32(&h, KEY_VERSION);
  while (j->argv[argc] != NULL)
    argc++;
  h_tag(&h, "argv");
  h_u32(&h, (uint32_t)argc);
  for (i = 0; i < argc; i++)
    h_str(&h, j->argv[i]);
  if (j->exe_real != NULL) {
    h_tag(&h, "exe");
    h_str(&h, j->exe_real);
    h_u64(&h, (uint64_t)j->exe_st.st_size);
    h_u64(&h, (uint64_t)j->exe_st.st_mtim.tv_sec);
    h_u32(&h, (uint32_t)j->exe_st.st_mtim.tv_nsec);
  } else {
    h_tag(&h, "exe-missing");
    h_str(&h, j->argv[0]);
  }
  if (j->cwd != NULL) {
    h_tag(&h, "cwd");
    h_str(&h, j->cwd);
  }
  h_tag(&h, "env");
  h_u32(&h, (uint32_t)j->n_env);
  for (i = 0; i < j->n_env; i++) {
    size_t nl = name_len(j->env[i]);

    h_lp(&h, j->env[i], nl);
    h_str(&h, j->env[i] + nl + 1);
  }
  if (c->pure)
    h_tag(&h, "pure");
  for (i = 0; i < j->n_files; i++) {
    h_tag(&h, "file");
    h_str(&h, j->files[i].path);
    if (j->files[i].absent)
      crypto_hash_sha256_update(&h, (const unsigned char *)"absent", 6);
    else
      crypto_hash_sha256_update(&h, j->files[i].digest, 32);
  }
  if (j->stdin_fd >= 0) {
    h_tag(&h, "stdin");
    crypto_hash_sha256_update(&h, j->stdin_digest, 32);
  }
  if (c->scope != NULL) {
    h_tag(&h, "scope");
    h_str(&h, c->scope);
  }
  crypto_hash_sha256_final(&h, j->key.hash);
  for (i = 0; i < 32; i++) {
    j->key.hex[2 * i] = hex[j->key.hash[i] >> 4];
    j->key.hex[2 * i + 1] = hex[j->key.hash[i] & 15];
  }
  j->key.hex[64] = 0;
}

int cdo_job_new(struct cdo_job **out, const struct cdo_config *cfg,
                char *const argv[], char *const envp[], cdo_msg_fn msg,
                void *ud, char *err, size_t errlen)
{
  struct cdo_job *j = calloc(1, sizeof(*j));
  int r;

  *out = NULL;
  if (j == NULL)
    return CDO__ERR(ENOMEM);
  j->cfg = cfg;
  j->argv = argv;
  j->msg = msg;
  j->ud = ud;
  j->stdin_fd = -1;
  if (argv == NULL || argv[0] == NULL) {
    cdo__fmt(err, errlen, "no command given");
    r = CDO_EBADVALUE;
    goto fail;
  }
  r = resolve_exe(j, argv[0]);
  if (r == 0 && !cfg->no_cwd) {
    j->cwd = getcwd(NULL, 0);
    if (j->cwd == NULL) {
      /* The command can still run (it may not care), just not cached. */
      char why[300];

      cdo__fmt(why, sizeof(why),
               "cannot read the working directory: %s "
               "(--no-cwd leaves it out of the key)",
               strerror(errno));
      j->uncacheable = strdup(why);
      if (j->uncacheable == NULL)
        r = CDO__ERR(ENOMEM);
    }
  }
  if (r == 0)
    r = select_env(j, envp);
  if (r == 0)
    r = digest_files(j, err, errlen);
  if (r == 0 && cfg->use_stdin && !cfg->no_cache && j->uncacheable == NULL)
    r = spool_stdin(j, err, errlen);
  if (r < 0)
    goto fail;
  hash_key(j);
  *out = j;
  return 0;
fail:
  if (r == CDO__ERR(ENOMEM))
    cdo__fmt(err, errlen, "out of memory");
  cdo_job_free(j);
  return r;
}

void cdo_job_free(struct cdo_job *j)
{
  if (j == NULL)
    return;
  free(j->exe);
  free(j->exe_real);
  free(j->exe_err);
  free(j->cwd);
  free(j->uncacheable);
  free(j->env);
  free(j->files);
  if (j->stdin_fd >= 0)
    close(j->stdin_fd);
  free(j);
}

const char *cdo_job_key(const struct cdo_job *j)
{
  return j->key.hex;
}

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

/* The start of SHA-256(p, n), for showing a value without revealing it. */
static void short_digest(const void *p, size_t n, char out[17])
{
  unsigned char d[32];

  crypto_hash_sha256(d, p, n);
  hex16(d, out);
}

void cdo_job_explain(const struct cdo_job *j, cdo_explain_fn fn, void *ud)
{
  char buf[4400], dig[17];
  size_t i;

  cdo__fmt(buf, sizeof(buf), "%d", KEY_VERSION);
  fn(ud, "version", buf);
  for (i = 0; j->argv[i] != NULL; i++) {
    cdo__fmt(buf, sizeof(buf), "[%zu] '%s'", i, j->argv[i]);
    fn(ud, "argv", buf);
  }
  if (j->exe_real != NULL)
    cdo__fmt(buf, sizeof(buf), "%s size=%lld mtime=%lld.%09ld", j->exe_real,
             (long long)j->exe_st.st_size, (long long)j->exe_st.st_mtim.tv_sec,
             (long)j->exe_st.st_mtim.tv_nsec);
  else
    cdo__fmt(buf, sizeof(buf), "'%s' (not found)", j->argv[0]);
  fn(ud, "exe", buf);
  fn(ud, "cwd",
     j->cwd           ? j->cwd
     : j->uncacheable ? "(unreadable: not cacheable)"
                      : "(not hashed: --no-cwd)");
  if (j->cfg->no_env)
    fn(ud, "env", "(not hashed: --no-env)");
  for (i = 0; i < j->n_env; i++) {
    size_t nl = name_len(j->env[i]);
    const char *v = j->env[i] + nl + 1;

    short_digest(v, strlen(v), dig);
    cdo__fmt(buf, sizeof(buf), "%.*s sha256:%s", (int)nl, j->env[i], dig);
    fn(ud, "env", buf);
  }
  if (j->cfg->pure)
    fn(ud, "pure", "the command runs with only the variables above");
  for (i = 0; i < j->n_files; i++) {
    if (j->files[i].absent) {
      cdo__fmt(buf, sizeof(buf), "%s absent", j->files[i].path);
    } else {
      hex16(j->files[i].digest, dig);
      cdo__fmt(buf, sizeof(buf), "%s sha256:%s", j->files[i].path, dig);
    }
    fn(ud, "file", buf);
  }
  if (j->stdin_fd >= 0) {
    hex16(j->stdin_digest, dig);
    cdo__fmt(buf, sizeof(buf), "sha256:%s", dig);
    fn(ud, "stdin", buf);
  }
  if (j->cfg->scope != NULL)
    fn(ud, "scope", j->cfg->scope);
  fn(ud, "key", j->key.hex);
}
