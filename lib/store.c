/* SPDX-License-Identifier: MIT */
/*
 * The store front end: picks the backend by URL scheme, and keeps in one
 * place what every backend shares: freshness, corrupt-entry handling and
 * the error messages.
 */
#include "store_int.h"

#include <stdarg.h>

static const struct cdo__store_ops *const backends[] = {
    &cdo__store_sqlite,    &cdo__store_dir,        &cdo__store_mem,
    &cdo__store_redis_tcp, &cdo__store_redis_unix, &cdo__store_exec,
};

static const char expected_urls[] =
    "expected sqlite:PATH, dir:PATH, mem:, redis://HOST[:PORT][/DB], "
    "unix:///PATH.sock or exec:PROGRAM";

int cdo__store_fail(struct cdo_store *s, int code, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
  va_end(ap);
  return code;
}

const char *cdo_backends(void)
{
  static char names[128];
  size_t i, n = 0;

  if (names[0] == 0) {
    for (i = 0; i < CDO__ARRAY_SIZE(backends); i++) {
      const char *name = backends[i]->name;

      if (i > 0 && strcmp(name, backends[i - 1]->name) == 0)
        continue;
      n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", n ? " " : "",
                            name);
    }
  }
  return names;
}

static const struct cdo__store_ops *find_backend(const char *url,
                                                 const char **rest)
{
  size_t i;

  for (i = 0; i < CDO__ARRAY_SIZE(backends); i++) {
    size_t n = strlen(backends[i]->scheme);

    if (strncmp(url, backends[i]->scheme, n) == 0) {
      *rest = url + n;
      return backends[i];
    }
  }
  return NULL;
}

int cdo_url_check(const char *url, char *err, size_t errlen)
{
  const struct cdo__store_ops *ops = find_backend(url, &url);

  if (ops == NULL) {
    size_t n = strcspn(url, ":");

    if (url[n] == ':')
      cdo__fmt(err, errlen, "unknown scheme '%.*s' (%s)", (int)n, url,
               expected_urls);
    else
      cdo__fmt(err, errlen, "no scheme (%s)", expected_urls);
    return CDO_EBADURL;
  }
  if (ops->check != NULL && ops->check(url, err, errlen) < 0)
    return CDO_EBADURL;
  return 0;
}

/* The default URL: sqlite:$XDG_CACHE_HOME/cachedo/cache.db. */
static char *default_url(void)
{
  char *dir = cdo__xdg_dir("XDG_CACHE_HOME", ".cache"), *url;
  size_t n;

  if (dir == NULL)
    return NULL;
  n = strlen(dir) + sizeof("sqlite:/cachedo/cache.db");
  url = malloc(n);
  if (url != NULL)
    cdo__fmt(url, n, "sqlite:%s/cachedo/cache.db", dir);
  free(dir);
  return url;
}

int cdo_store_open(struct cdo_store **out, const struct cdo_config *cfg,
                   char *err, size_t errlen)
{
  const struct cdo__store_ops *ops;
  struct cdo_store *s;
  const char *rest;
  char *url, where[4200];
  int r;

  *out = NULL;
  url = cfg->cache ? strdup(cfg->cache) : default_url();
  if (url == NULL) {
    cdo__fmt(err, errlen,
             "cannot find a cache location: set HOME, "
             "XDG_CACHE_HOME or --cache");
    return CDO_EBADURL;
  }
  ops = find_backend(url, &rest);
  if (ops != NULL && ops->locate != NULL &&
      (ops->locate(rest, where, sizeof(where)) < 0 ||
       (ops = find_backend(where, &rest)) == NULL))
    ops = NULL;
  if (ops == NULL) {
    cdo__fmt(err, errlen, "invalid cache URL '%s' (%s)", url, expected_urls);
    free(url);
    return CDO_EBADURL;
  }
  s = calloc(1, ops->size);
  if (s == NULL) {
    free(url);
    return CDO__ERR(ENOMEM);
  }
  s->ops = ops;
  s->cfg = cfg;
  s->url = url;
  r = ops->open(s, rest);
  if (r < 0) {
    cdo__fmt(err, errlen, "cannot open cache '%s': %s", url,
             s->errmsg[0] ? s->errmsg : cdo_strerror(r));
    cdo_store_close(s);
    return r;
  }
  *out = s;
  return 0;
}

void cdo_store_close(struct cdo_store *s)
{
  if (s == NULL)
    return;
  s->ops->close(s);
  free(s->url);
  free(s);
}

const char *cdo_store_errmsg(const struct cdo_store *s)
{
  return s->errmsg;
}

const char *cdo_store_url(const struct cdo_store *s)
{
  return s->url;
}

int cdo__store_unsupported(struct cdo_store *s, const char *what)
{
  return cdo__store_fail(s, CDO_EUNSUPP, "the %s backend cannot %s",
                         s->ops->name, what);
}

int cdo_store_clear(struct cdo_store *s)
{
  if (s->ops->clear == NULL)
    return cdo__store_unsupported(s, "clear");
  return s->ops->clear(s, s->cfg->scope);
}

int cdo_store_list(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  if (s->ops->list == NULL)
    return cdo__store_unsupported(s, "list entries");
  return s->ops->list(s, fn, ud);
}

int cdo_store_stats(struct cdo_store *s, struct cdo_stats *st)
{
  memset(st, 0, sizeof(*st));
  const struct cdo__store_counters *c = s->ops->counters;
  int r;

  if (s->ops->stats == NULL)
    return cdo__store_unsupported(s, "count entries");
  r = s->ops->stats(s, st);
  if (r == 0 && c != NULL)
    r = c->read(s, st);
  return r;
}

int cdo__store_lookup(struct cdo_store *s, const struct cdo__key *k,
                      struct cdo__blob **out, struct cdo__meta *m,
                      uint64_t *journal_off)
{
  const struct cdo_config *c = s->cfg;
  struct cdo__blob *b = NULL;
  int64_t ttl = 0, age = 0;
  int r;

  *out = NULL;
  r = s->ops->get(s, k, &b);
  if (r < 0 || b == NULL)
    return r < 0 ? r : CDO__MISS;
  r = cdo__entry_peek(b, m, NULL, journal_off);
  if (r == 0) {
    ttl = cdo__entry_ttl(c, m->exit_status);
    age = cdo__now_ms() - m->created_ms;
    if (age < -5000)
      age = INT64_MAX / 2; /* from the future: the clock went back; stale */
    else if (age < 0)
      age = 0;
    if (age >= ttl + c->stale_ms) {
      cdo__blob_free(b);
      return CDO__MISS;
    }
    r = cdo__entry_verify(b, m, *journal_off);
  }
  if (r < 0) {
    cdo__blob_free(b);
    if (r != CDO_ECORRUPT)
      return r;
    s->ops->del(s, k); /* a corrupt entry is a miss, and goes */
    return CDO__MISS;
  }
  *out = b;
  return age < ttl ? CDO__FRESH : CDO__STALE;
}

int cdo__store_put(struct cdo_store *s, const struct cdo__key *k,
                   const struct cdo__src *src, const struct cdo__put_info *info)
{
  return s->ops->put(s, k, src, info);
}

int cdo__store_del(struct cdo_store *s, const struct cdo__key *k)
{
  return s->ops->del(s, k);
}

const char *cdo__store_spool_dir(struct cdo_store *s)
{
  const struct cdo__store_files *f = s->ops->files;

  return f && f->spool_dir ? f->spool_dir(s) : NULL;
}

int cdo__store_local_file(struct cdo_store *s, const char *suffix, char *buf,
                          size_t len, int create)
{
  const struct cdo__store_files *f = s->ops->files;
  const char *p = f && f->local_path ? f->local_path(s) : NULL;
  char *dir, err[256];
  int r = 0;

  if (p != NULL) {
    cdo__fmt(buf, len, "%s%s", p, suffix);
    return 0;
  }
  dir = cdo__xdg_dir("XDG_CACHE_HOME", ".cache");
  if (dir == NULL)
    return CDO__ERR(ENOENT);
  cdo__fmt(buf, len, "%s/cachedo", dir);
  free(dir);
  if (create)
    r = cdo__mkdir_private(buf, err, sizeof(err));
  cdo__fmt(buf + strlen(buf), len - strlen(buf), "/remote-%016llx%s",
           (unsigned long long)cdo__sum(s->url, strlen(s->url)), suffix);
  return r;
}
