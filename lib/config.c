/* SPDX-License-Identifier: MIT */
/*
 * Settings: one table maps each option to its environment variable, its
 * type and its field, so the command line, CACHEDO_* variables and the
 * config file are parsed by the same code and validated the same way.
 */
#include "cdo_int.h"

#include <ctype.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

enum type {
  T_DURATION_POS = CDO__V_DURATION_POS, /* > 0 */
  T_DURATION = CDO__V_DURATION,         /* >= 0 */
  T_SIZE = CDO__V_SIZE,
  T_STRING = CDO__V_STRING,
  T_URL = CDO__V_COUNT,
  T_LIST,
  T_PATTERNS, /* a list, blank-separated wherever it comes from */
  T_BOOL,
  T_NOFAIL,    /* --no-cache-failures: fail_ttl_ms = 0 */
  T_STORE_OPT, /* a backend's URL option: backend, option */
  T_KEYFILE    /* --sign-key-file: sign_key_file, and the key read from it */
};

static const struct setting {
  const char *name;
  const char *env;
  enum type type;
  size_t off;
  const char *backend, *option; /* T_STORE_OPT */
} settings[] = {
#define F(field) offsetof(struct cdo_config, field), NULL, NULL
#define O(backend, option)                                                     \
  offsetof(struct cdo_config, store_opts), backend, option
    {"ttl", "CACHEDO_TTL", T_DURATION_POS, F(ttl_ms)},
    {"fail-ttl", "CACHEDO_FAIL_TTL", T_DURATION, F(fail_ttl_ms)},
    {"no-cache-failures", "CACHEDO_NO_CACHE_FAILURES", T_NOFAIL,
     F(fail_ttl_ms)},
    {"stale", "CACHEDO_STALE", T_DURATION, F(stale_ms)},
    {"lock-timeout", "CACHEDO_LOCK_TIMEOUT", T_DURATION, F(lock_timeout_ms)},
    {"cache", "CACHEDO_CACHE", T_URL, F(cache)},
    {"max-output", "CACHEDO_MAX_OUTPUT", T_SIZE, F(max_output)},
    {"max-size", "CACHEDO_MAX_SIZE", T_SIZE, F(max_size)},
    /*
     * Settings older than URL options, and the password kept out of the
     * URL: each is the default of one option of one backend's URLs (an
     * option in the URL itself wins). The one place they are mapped.
     */
    {"redis-connect-timeout", "CACHEDO_REDIS_CONNECT_TIMEOUT", T_STORE_OPT,
     O("redis", "connect-timeout")},
    {"redis-timeout", "CACHEDO_REDIS_TIMEOUT", T_STORE_OPT,
     O("redis", "timeout")},
    {"redis-breaker", "CACHEDO_REDIS_BREAKER", T_STORE_OPT,
     O("redis", "breaker")},
    {"redis-password", "CACHEDO_REDIS_PASSWORD", T_STORE_OPT,
     O("redis", "password")},
    {"exec-timeout", "CACHEDO_EXEC_TIMEOUT", T_STORE_OPT, O("exec", "timeout")},
    {"scope", "CACHEDO_SCOPE", T_STRING, F(scope)},
    {"sign-key-file", "CACHEDO_SIGN_KEY_FILE", T_KEYFILE, F(sign_key_file)},
    {"read-only", "CACHEDO_READ_ONLY", T_BOOL, F(read_only)},
    {"env", "CACHEDO_ENV", T_PATTERNS, F(env)},
    {"ignore-env", "CACHEDO_IGNORE_ENV", T_PATTERNS, F(ignore_env)},
    {"file", NULL, T_LIST, F(files)},
    {"no-env", "CACHEDO_NO_ENV", T_BOOL, F(no_env)},
    {"no-cwd", "CACHEDO_NO_CWD", T_BOOL, F(no_cwd)},
    {"pure", "CACHEDO_PURE", T_BOOL, F(pure)},
    {"tty", "CACHEDO_TTY", T_BOOL, F(tty)},
    {"stdin", NULL, T_BOOL, F(use_stdin)},
    {"refresh", NULL, T_BOOL, F(refresh)},
    {"no-cache", "CACHEDO_DISABLE", T_BOOL, F(no_cache)},
    {"verbose", "CACHEDO_VERBOSE", T_BOOL, F(verbose)},
    {"quiet", "CACHEDO_QUIET", T_BOOL, F(quiet)},
#undef F
#undef O
};

/* What a value of st looks like, for "expected ..." messages. */
static const char *expected(const struct setting *st)
{
  static char url[300];

  switch (st->type) {
  case T_STRING:
    return "a non-empty name";
  case T_URL:
    if (url[0] == 0)
      cdo__fmt(url, sizeof(url), "a cache URL such as %s", cdo__store_urls());
    return url;
  case T_LIST:
  case T_STORE_OPT:
    return "a non-empty value";
  case T_PATTERNS:
    return "non-empty, blank-separated patterns like 'PATH LANG LC_*'";
  case T_BOOL:
  case T_NOFAIL:
    return "one of 1, 0, true, false, yes, no, on, off";
  case T_KEYFILE:
    return "a file holding a secret of at least 32 bytes, mode 0600";
  default:
    return cdo__value_expected((enum cdo__vtype)st->type);
  }
}

#define KEYFILE_MAX (64 << 10)

/*
 * Reads the secret in path (at least 32 bytes, trailing newlines not
 * counted; the file readable by its owner only, as ssh wants of a private
 * key) and derives the signing key from it: BLAKE2b-256 of a label and the
 * secret. 0, or CDO_EBADVALUE with err saying what is wrong.
 */
static int read_sign_key(struct cdo_config *c, const char *path, char *err,
                         size_t errlen)
{
  static const char label[] = "cachedo entry signing key 1";
  unsigned char *buf;
  crypto_generichash_state h;
  struct stat st;
  ssize_t n = 0;
  int fd, e = 0;

  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0 || fstat(fd, &st) < 0) {
    e = errno;
    if (fd >= 0)
      close(fd);
    cdo__fmt(err, errlen, "'%s': cannot read it: %s", path, strerror(e));
    return CDO_EBADVALUE;
  }
  if (!S_ISREG(st.st_mode) || st.st_size > KEYFILE_MAX)
    e = -1;
  else if (st.st_mode & 077)
    e = -2;
  buf = e ? NULL : malloc(KEYFILE_MAX + 1);
  if (buf != NULL) {
    do
      n = read(fd, buf, KEYFILE_MAX + 1);
    while (n < 0 && errno == EINTR);
  }
  close(fd);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    n--;
  if (e == 0 && (buf == NULL || n < CDO__SIGN_KEY_LEN))
    e = -3;
  if (e == 0) {
    crypto_generichash_init(&h, NULL, 0, CDO__SIGN_KEY_LEN);
    crypto_generichash_update(&h, (const unsigned char *)label, sizeof(label));
    crypto_generichash_update(&h, buf, (size_t)n);
    crypto_generichash_final(&h, c->sign_key, CDO__SIGN_KEY_LEN);
    c->signing = 1;
  }
  if (buf != NULL) {
    sodium_memzero(buf, KEYFILE_MAX + 1);
    free(buf);
  }
  if (e == -1)
    cdo__fmt(err, errlen, "'%s': not a regular file of at most 64 KiB", path);
  else if (e == -2)
    cdo__fmt(err, errlen,
             "'%s': readable or writable by group or others (chmod 600 it)",
             path);
  else if (e == -3)
    cdo__fmt(err, errlen,
             "'%s': holds less than 32 bytes (expected a secret of at "
             "least 32 bytes)",
             path);
  return e ? CDO_EBADVALUE : 0;
}

_Static_assert(CDO__ARRAY_SIZE(settings) <= CDO_CONFIG_MAX,
               "struct cdo_config's origin holds every setting");

void cdo_config_init(struct cdo_config *c)
{
  memset(c, 0, sizeof(*c));
  c->ttl_ms = 60000;
  c->fail_ttl_ms = -1;
  c->lock_timeout_ms = 600000;
  c->max_output = (uint64_t)256 << 20;
}

static void strv_clear(struct cdo_strv *v)
{
  size_t i;

  for (i = 0; i < v->n; i++)
    free(v->v[i]);
  free(v->v);
  v->v = NULL;
  v->n = 0;
}

static int strv_push(struct cdo_strv *v, const char *s, size_t n)
{
  char **nv = realloc(v->v, (v->n + 2) * sizeof(*nv));

  if (nv == NULL)
    return CDO__ERR(ENOMEM);
  v->v = nv;
  v->v[v->n] = strndup(s, n);
  if (v->v[v->n] == NULL)
    return CDO__ERR(ENOMEM);
  v->v[++v->n] = NULL;
  return 0;
}

void cdo_config_release(struct cdo_config *c)
{
  size_t i;

  if (c == NULL)
    return;
  for (i = 0; i < c->store_opts.n; i++) /* may hold a password */
    explicit_bzero(c->store_opts.v[i], strlen(c->store_opts.v[i]));
  strv_clear(&c->store_opts);
  free(c->cache);
  free(c->scope);
  free(c->sign_key_file);
  sodium_memzero(c->sign_key, sizeof(c->sign_key));
  strv_clear(&c->env);
  strv_clear(&c->ignore_env);
  strv_clear(&c->files);
  free(c->file);
  cdo_config_init(c);
}

void cdo_config_layer(struct cdo_config *c)
{
  c->layer++;
}

static int parse_bool(const char *v, int *out)
{
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  size_t i;

  if (v == NULL) {
    *out = 1;
    return 0;
  }
  for (i = 0; i < CDO__ARRAY_SIZE(yes); i++) {
    if (strcasecmp(v, yes[i]) == 0)
      return *out = 1, 0;
    if (strcasecmp(v, no[i]) == 0)
      return *out = 0, 0;
  }
  return CDO_EBADVALUE;
}

/* Replaces a list set in an earlier layer, then adds the value's words. */
static int set_list(struct cdo_config *c, struct cdo_strv *v, const char *val,
                    int split)
{
  int r = 0;

  if (v->layer != c->layer) {
    strv_clear(v);
    v->layer = c->layer;
  }
  if (!split)
    return strv_push(v, val, strlen(val));
  while (r == 0 && *val) {
    size_t n;

    while (isspace((unsigned char)*val))
      val++;
    n = strcspn(val, " \t\n");
    if (n)
      r = strv_push(v, val, n);
    val += n;
  }
  return r;
}

/*
 * Records val as the default of a backend's URL option, checked the way the
 * backend checks it: "backend.option=value", a later one winning.
 */
static int set_store_opt(struct cdo_config *c, const struct setting *st,
                         const char *val, const char **what)
{
  size_t n = strlen(st->backend) + strlen(st->option) + strlen(val) + 3;
  char *line;
  int r = cdo__store_option_check(st->backend, st->option, val, what);

  if (r < 0)
    return r;
  line = malloc(n);
  if (line == NULL)
    return CDO__ERR(ENOMEM);
  cdo__fmt(line, n, "%s.%s=%s", st->backend, st->option, val);
  r = strv_push(&c->store_opts, line, n - 1);
  explicit_bzero(line, n);
  free(line);
  return r;
}

static const struct setting *find(const char *name)
{
  size_t i;

  for (i = 0; i < CDO__ARRAY_SIZE(settings); i++)
    if (strcmp(settings[i].name, name) == 0)
      return &settings[i];
  return NULL;
}

/* cdo_url_check, with the message naming the URL (its password masked). */
static int check_url(const char *val, char *err, size_t errlen)
{
  char why[200], *shown;

  if (cdo_url_check(val, why, sizeof(why)) == 0)
    return 0;
  shown = strdup(val);
  if (shown != NULL)
    cdo__url_mask(shown); /* never echo a password */
  cdo__fmt(err, errlen, "'%s': %s", shown ? shown : "", why);
  free(shown);
  return CDO_EBADVALUE;
}

/* Checks each blank-separated cache URL of list (a cache's tiers). */
static int check_urls(const char *list, char *err, size_t errlen)
{
  const char *p = list;
  char *url;
  int n = 0;

  while ((url = cdo__store_next_url(&p)) != NULL) {
    int r = check_url(url, err, errlen);

    n++;
    free(url);
    if (r < 0)
      return r;
  }
  if (n == 0) {
    cdo__fmt(err, errlen, "'%s': expected a cache URL", list);
    return CDO_EBADVALUE;
  }
  return 0;
}

/*
 * Sets the string *dst of a T_STRING, T_URL or T_KEYFILE setting to val (not
 * empty). A cache URL list is checked first, and --cache given again on one
 * layer adds a farther tier. 0, CDO__ERR(ENOMEM), or another negative
 * code with err saying why.
 */
static int set_string(struct cdo_config *c, const struct setting *st,
                      char **dst, const char *val, char *err, size_t errlen)
{
  char *s;
  int r;

  if (st->type == T_URL && (r = check_urls(val, err, errlen)) < 0)
    return r;
  if (st->type == T_URL && *dst != NULL && c->cache_layer == c->layer)
    s = cdo__strjoin(*dst, " ", val);
  else
    s = strdup(val);
  if (s == NULL)
    return CDO__ERR(ENOMEM);
  free(*dst);
  *dst = s;
  if (st->type == T_URL)
    c->cache_layer = c->layer;
  return 0;
}

/* Applies one setting; split: list values are whitespace-separated words. */
static int apply(struct cdo_config *c, const struct setting *st,
                 const char *val, int split, char *err, size_t errlen)
{
  char *field = (char *)c + st->off;
  const char *what = NULL;
  int r = 0, b;

  if (val == NULL && st->type != T_BOOL && st->type != T_NOFAIL) {
    cdo__fmt(err, errlen, "missing value: expected %s", expected(st));
    return CDO_EBADVALUE;
  }
  switch (st->type) {
  case T_DURATION_POS:
  case T_DURATION:
  case T_SIZE:
    r = cdo__value_parse((enum cdo__vtype)st->type, val, field);
    break;
  case T_STORE_OPT:
    r = set_store_opt(c, st, val, &what);
    break;
  case T_KEYFILE:
    if (*val == 0) {
      r = CDO_EBADVALUE;
      break;
    }
    r = read_sign_key(c, val, err, errlen);
    if (r < 0)
      return r;
    /* fall through */
  case T_URL:
  case T_STRING:
    if (*val == 0) {
      r = CDO_EBADVALUE;
      break;
    }
    r = set_string(c, st, (char **)(void *)field, val, err, errlen);
    if (r < 0)
      return r; /* err says why, or out of memory */
    break;
  case T_LIST:
  case T_PATTERNS:
    if (val[strspn(val, split || st->type == T_PATTERNS ? " \t\n" : "")] == 0)
      r = CDO_EBADVALUE;
    else
      r = set_list(c, (struct cdo_strv *)(void *)field, val,
                   split || st->type == T_PATTERNS);
    break;
  case T_BOOL:
    r = parse_bool(val, &b);
    if (r == 0)
      memcpy(field, &b, sizeof(b));
    break;
  case T_NOFAIL:
    r = parse_bool(val, &b);
    if (r == 0 && b)
      c->fail_ttl_ms = 0;
    break;
  }
  if (r == CDO_EBADVALUE)
    cdo__fmt(err, errlen, "'%s': expected %s",
             st->type == T_STORE_OPT && strcmp(st->option, "password") == 0
                 ? "***"
                 : val,
             what ? what : expected(st));
  return r;
}

/* apply(), and on success records where the value came from. */
static int apply_from(struct cdo_config *c, const struct setting *st,
                      const char *val, int kind, unsigned line, char *err,
                      size_t errlen)
{
  int r = apply(c, st, val, kind != CDO_ORIGIN_FLAG, err, errlen);

  if (r == 0) {
    c->origin[st - settings].kind = (unsigned char)kind;
    c->origin[st - settings].line = line;
  }
  return r;
}

int cdo_config_set(struct cdo_config *c, const char *name, const char *value,
                   char *err, size_t errlen)
{
  const struct setting *st = find(name);

  if (st == NULL) {
    cdo__fmt(err, errlen, "unknown setting '%s'", name);
    return CDO__ERR(ENOENT);
  }
  return apply_from(c, st, value, CDO_ORIGIN_FLAG, 0, err, errlen);
}

/*
 * Fills vals[i] with the value of settings[i]'s variable in envp (NULL:
 * this process's environment), in one pass over the environment.
 */
extern char **environ;

static void env_values(char *const envp[], const char *vals[])
{
  size_t i;

  memset(vals, 0, CDO__ARRAY_SIZE(settings) * sizeof(*vals));
  for (envp = envp ? envp : environ; envp && *envp; envp++) {
    size_t n;

    if (strncmp(*envp, "CACHEDO_", 8) != 0)
      continue;
    n = strcspn(*envp, "=");
    for (i = 0; i < CDO__ARRAY_SIZE(settings); i++) {
      const char *e = settings[i].env;

      if (e && vals[i] == NULL && strncmp(e, *envp, n) == 0 && e[n] == 0 &&
          (*envp)[n] == '=')
        vals[i] = *envp + n + 1; /* the first of duplicates, as getenv */
    }
  }
}

int cdo_config_load_env(struct cdo_config *c, char *const envp[], char *err,
                        size_t errlen)
{
  const char *vals[CDO__ARRAY_SIZE(settings)];
  char why[300];
  size_t i;

  env_values(envp, vals);
  for (i = 0; i < CDO__ARRAY_SIZE(settings); i++) {
    const struct setting *st = &settings[i];
    const char *v = vals[i];
    int r;

    /* set but empty (or, for patterns, blank): as if unset */
    if (v == NULL || *v == 0 ||
        (st->type == T_PATTERNS && v[strspn(v, " \t\n")] == 0))
      continue;
    r = apply_from(c, st, v, CDO_ORIGIN_ENV, 0, why, sizeof(why));
    if (r < 0) {
      cdo__fmt(err, errlen, "invalid %s %s", st->env, why);
      return r;
    }
  }
  return 0;
}

static char *trim(char *s)
{
  char *e;

  while (isspace((unsigned char)*s))
    s++;
  e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1]))
    *--e = 0;
  return s;
}

/* Cuts a comment off s: from a '#' at its start or after a blank. */
static void cut_comment(char *s)
{
  char *p;

  for (p = s; *p; p++) {
    if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
      *p = 0;
      return;
    }
  }
}

/* "unknown setting 'KEY' (did you mean ...? valid: ...)" into err. */
static void unknown_setting(const char *where, const char *key, char *err,
                            size_t errlen)
{
  const char *names[CDO__ARRAY_SIZE(settings)];
  char near[100], all[500];
  size_t i, used = 0;

  for (i = 0; i < CDO__ARRAY_SIZE(settings); i++) {
    names[i] = settings[i].name;
    if (used < sizeof(all))
      used += (size_t)snprintf(all + used, sizeof(all) - used, "%s%s",
                               i ? ", " : "", names[i]);
  }
  cdo_nearest(key, strlen(key), names, CDO__ARRAY_SIZE(settings), "", near,
              sizeof(near));
  cdo__fmt(err, errlen, "%s: unknown setting '%s' (%s%s%svalid: %s)", where,
           key, near[0] ? "did you mean " : "", near, near[0] ? "? " : "", all);
}

/* Applies one line of the config file; 0 or CDO_EBADVALUE (err set). */
static int file_line(struct cdo_config *c, char *line, unsigned lineno,
                     char *err, size_t errlen)
{
  char *s, *eq, *key, *val, where[4200], why[300];
  const struct setting *st;
  int r;

  cut_comment(line);
  s = trim(line);
  if (*s == 0)
    return 0;
  cdo__fmt(where, sizeof(where), "%s:%u", c->file, lineno);
  eq = strchr(s, '=');
  if (eq == NULL) {
    cdo__fmt(err, errlen, "%s: cannot parse '%s' (expected 'key = value')",
             where, s);
    return CDO_EBADVALUE;
  }
  *eq = 0;
  key = trim(s);
  val = trim(eq + 1);
  st = find(key);
  if (st == NULL) {
    unknown_setting(where, key, err, errlen);
    return CDO_EBADVALUE;
  }
  r = apply_from(c, st, val, CDO_ORIGIN_FILE, lineno, why, sizeof(why));
  if (r < 0)
    cdo__fmt(err, errlen, "%s: invalid %s %s", where, key, why);
  return r;
}

int cdo_config_load_file(struct cdo_config *c, const char *path, char *err,
                         size_t errlen)
{
  char *line = NULL;
  ssize_t len;
  size_t cap = 0;
  unsigned lineno = 0;
  FILE *f;
  int r = 0;

  free(c->file);
  if (path == NULL) {
    char *dir = cdo__xdg_dir("XDG_CONFIG_HOME", ".config");
    size_t n;

    if (dir == NULL)
      return 0;
    n = strlen(dir) + sizeof("/cachedo/config");
    c->file = malloc(n);
    if (c->file != NULL)
      cdo__fmt(c->file, n, "%s/cachedo/config", dir);
    free(dir);
  } else {
    c->file = strdup(path);
  }
  if (c->file == NULL)
    return CDO__ERR(ENOMEM);
  f = fopen(c->file, "re");
  if (f == NULL) {
    r = errno == ENOENT ? 0 : CDO__ERR(errno);
    if (r < 0)
      cdo__fmt(err, errlen, "cannot read config file '%s': %s", c->file,
               strerror(errno));
    free(c->file);
    c->file = NULL;
    return r;
  }
  while (r == 0 && (len = getline(&line, &cap, f)) >= 0) {
    if (memchr(line, 0, (size_t)len) != NULL) { /* it would cut the line */
      cdo__fmt(err, errlen,
               "%s:%u: a NUL byte in the line (a config file is text)", c->file,
               ++lineno);
      r = CDO_EBADVALUE;
      break;
    }
    r = file_line(c, line, ++lineno, err, errlen);
  }
  free(line);
  fclose(f);
  return r;
}

/* ms exactly, as a config file would say it: "1h30m", "500ms", "0". */
static void exact_duration(int64_t ms, char *buf, size_t len)
{
  static const struct {
    const char *unit;
    int64_t ms;
  } u[] = {{"w", 604800000}, {"d", 86400000}, {"h", 3600000},
           {"m", 60000},     {"s", 1000},     {"ms", 1}};
  size_t i, used = 0;

  buf[0] = 0;
  if (ms <= 0)
    cdo__fmt(buf, len, "0");
  for (i = 0; i < CDO__ARRAY_SIZE(u) && ms > 0 && used < len; i++) {
    if (ms >= u[i].ms)
      used += (size_t)snprintf(buf + used, len - used, "%lld%s",
                               (long long)(ms / u[i].ms), u[i].unit);
    ms %= u[i].ms;
  }
}

/* n bytes exactly: "256M", "1536K", "1000". */
static void exact_size(uint64_t n, char *buf, size_t len)
{
  static const char unit[] = "TGMK";
  int i;

  for (i = 0; i < 4 && n > 0; i++) {
    uint64_t mult = (uint64_t)1 << (10 * (4 - i));

    if (n % mult == 0) {
      cdo__fmt(buf, len, "%llu%c", (unsigned long long)(n / mult), unit[i]);
      return;
    }
  }
  cdo__fmt(buf, len, "%llu", (unsigned long long)n);
}

/* The value of setting st in c, as a config file would spell it. */
static void show_value(const struct cdo_config *c, const struct setting *st,
                       char *buf, size_t len)
{
  const char *field = (const char *)c + st->off;
  int64_t ms;
  uint64_t n;
  int b;
  size_t i, used = 0;

  buf[0] = 0;
  switch (st->type) {
  case T_DURATION_POS:
  case T_DURATION:
    memcpy(&ms, field, sizeof(ms));
    exact_duration(ms < 0 ? c->ttl_ms : ms, buf, len); /* fail-ttl: the ttl */
    break;
  case T_SIZE:
    memcpy(&n, field, sizeof(n));
    exact_size(n, buf, len);
    break;
  case T_URL:
  case T_KEYFILE: /* its path; the key itself is never shown */
  case T_STRING: {
    char *v = *(char *const *)(const void *)field;
    char *def = v == NULL && st->type == T_URL ? cdo__default_url() : NULL;

    cdo__fmt(buf, len, "%s", v ? v : def ? def : "");
    if (st->type == T_URL)
      cdo__url_mask(buf);
    free(def);
    break;
  }
  case T_LIST:
  case T_PATTERNS: {
    const struct cdo_strv *v = (const void *)field;

    for (i = 0; i < v->n && used < len; i++)
      used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? " " : "",
                               v->v[i]);
    break;
  }
  case T_STORE_OPT: {
    const struct cdo_strv *v = (const void *)field;
    size_t bn = strlen(st->backend), on = strlen(st->option);
    const char *val = cdo__store_option_default(st->backend, st->option);

    for (i = 0; i < v->n; i++) /* "backend.option=value", the last wins */
      if (strncmp(v->v[i], st->backend, bn) == 0 && v->v[i][bn] == '.' &&
          strncmp(v->v[i] + bn + 1, st->option, on) == 0 &&
          v->v[i][bn + 1 + on] == '=')
        val = v->v[i] + bn + on + 2;
    cdo__fmt(buf, len, "%s",
             strcmp(st->option, "password") || !*val ? val : "***");
    break;
  }
  case T_BOOL:
  case T_NOFAIL:
    memcpy(&b, field, sizeof(b));
    if (st->type == T_NOFAIL)
      b = c->fail_ttl_ms == 0;
    cdo__fmt(buf, len, "%s", b ? "true" : "false");
    break;
  }
}

void cdo_config_show(const struct cdo_config *c, cdo_config_show_fn fn,
                     void *ud)
{
  char value[4200], origin[4200];
  size_t i;

  for (i = 0; i < CDO__ARRAY_SIZE(settings); i++) {
    const struct setting *st = &settings[i];
    const struct cdo_origin *o = &c->origin[i];

    show_value(c, st, value, sizeof(value));
    if (o->kind == CDO_ORIGIN_FILE)
      cdo__fmt(origin, sizeof(origin), "%s:%u", c->file ? c->file : "?",
               o->line);
    else if (o->kind == CDO_ORIGIN_ENV)
      cdo__fmt(origin, sizeof(origin), "%s", st->env);
    else if (o->kind == CDO_ORIGIN_FLAG)
      cdo__fmt(origin, sizeof(origin), "--%s", st->name);
    else if (st->type == T_DURATION && c->fail_ttl_ms <= 0 &&
             st->off == offsetof(struct cdo_config, fail_ttl_ms))
      cdo__fmt(origin, sizeof(origin), "%s",
               c->fail_ttl_ms < 0 ? "default: the ttl" : "no-cache-failures");
    else
      cdo__fmt(origin, sizeof(origin), "default");
    fn(ud, st->name, value, origin);
  }
}
