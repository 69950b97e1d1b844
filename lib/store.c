/* SPDX-License-Identifier: MIT */
/*
 * The store front end: picks the backend by URL scheme, parses the URL's
 * options for it, and keeps in one place what every backend shares:
 * freshness, corrupt-entry handling and the error messages.
 */
#include "store_int.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Entries from this journal size on are checked once per boot (verify). */
#define VERIFIED_MIN ((uint64_t)1 << 20)

/* The backends, each defined in its own store_NAME.c. */
extern const struct cdo__store_ops cdo__store_sqlite, cdo__store_dir,
    cdo__store_mem, cdo__store_redis_tcp, cdo__store_redis_unix,
    cdo__store_exec;

static const struct cdo__store_ops *const backends[] = {
    &cdo__store_sqlite,    &cdo__store_dir,        &cdo__store_mem,
    &cdo__store_redis_tcp, &cdo__store_redis_unix, &cdo__store_exec,
};

int cdo__store_fail(struct cdo_store *s, int code, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
  va_end(ap);
  return code;
}

void cdo__store_warn(struct cdo_store *s, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  if (s->msg == NULL)
    return;
  memcpy(msg, "warning: ", 9);
  va_start(ap, fmt);
  vsnprintf(msg + 9, sizeof(msg) - 9, fmt, ap);
  va_end(ap);
  s->msg(s->msg_ud, 0, msg);
}

void cdo_store_set_msg(struct cdo_store *s, cdo_msg_fn fn, void *ud)
{
  for (; s != NULL; s = s->next) { /* tiers opened later copy it */
    s->msg = fn;
    s->msg_ud = ud;
  }
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

const char *cdo__store_urls(void)
{
  static char urls[300];
  size_t i, n = 0, last = CDO__ARRAY_SIZE(backends) - 1;

  for (i = 0; i <= last && (i > 0 || urls[0] == 0); i++)
    n += (size_t)snprintf(urls + n, sizeof(urls) - n, "%s%s",
                          i == 0      ? ""
                          : i == last ? " or "
                                      : ", ",
                          backends[i]->usage);
  return urls;
}

/* The names of ops's options, ", "-separated, into buf. */
static const char *option_names(const struct cdo__store_ops *ops, char *buf,
                                size_t len)
{
  const struct cdo__store_opt *o;
  size_t n = 0;

  buf[0] = 0;
  for (o = ops->options; o != NULL && o->name != NULL && n < len; o++)
    n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", o->name);
  return buf[0] ? buf : "none";
}

int cdo_backend_info(size_t i, struct cdo_backend_info *info)
{
  static char names[CDO__ARRAY_SIZE(backends)][128];

  if (i >= CDO__ARRAY_SIZE(backends))
    return CDO__ERR(ENOENT);
  if (names[i][0] == 0 && backends[i]->options != NULL)
    option_names(backends[i], names[i], sizeof(names[i]));
  info->scheme = backends[i]->scheme;
  info->usage = backends[i]->usage;
  info->about = backends[i]->about;
  info->options = names[i];
  return 0;
}

/* ---- URL options --------------------------------------------------------- */

static const struct cdo__store_opt *
find_option(const struct cdo__store_ops *ops, const char *name, size_t n)
{
  const struct cdo__store_opt *o;

  for (o = ops->options; o != NULL && o->name != NULL; o++)
    if (strlen(o->name) == n && strncmp(o->name, name, n) == 0)
      return o;
  return NULL;
}

static void free_option(struct cdo_store *s, const struct cdo__store_opt *o)
{
  char **p = (char **)(void *)((char *)s + o->off);

  if (*p != NULL && o->secret)
    explicit_bzero(*p, strlen(*p));
  free(*p);
  *p = NULL;
}

/* Sets option o of s from val; s NULL: only checks val. */
static int set_option(struct cdo_store *s, const struct cdo__store_opt *o,
                      const char *val)
{
  int64_t v = 0;
  char *dup;

  if (cdo__value_parse(o->type, val, &v) < 0)
    return CDO_EBADVALUE;
  if (s == NULL)
    return 0;
  if (o->type != CDO__V_STRING) {
    memcpy((char *)s + o->off, &v, sizeof(v));
    return 0;
  }
  dup = strdup(val);
  if (dup == NULL)
    return CDO__ERR(ENOMEM);
  free_option(s, o);
  *(char **)(void *)((char *)s + o->off) = dup;
  return 0;
}

int cdo__store_option_check(const char *name, const char *option,
                            const char *val, const char **what)
{
  const struct cdo__store_opt *o = NULL;
  size_t i;

  for (i = 0; o == NULL && i < CDO__ARRAY_SIZE(backends); i++)
    if (strcmp(backends[i]->name, name) == 0)
      o = find_option(backends[i], option, strlen(option));
  *what = o ? cdo__value_expected(o->type) : "an option of the backend";
  return o ? set_option(NULL, o, val) : CDO_EBADVALUE;
}

const char *cdo__store_option_default(const char *name, const char *option)
{
  const struct cdo__store_opt *o = NULL;
  size_t i;

  for (i = 0; o == NULL && i < CDO__ARRAY_SIZE(backends); i++)
    if (strcmp(backends[i]->name, name) == 0)
      o = find_option(backends[i], option, strlen(option));
  return o && o->def ? o->def : "";
}

/*
 * The option every backend takes, read-only=1 (a tier that is only read):
 * sets it in s (NULL: only checks). 0 or CDO_EBADVALUE.
 */
static int front_option(struct cdo_store *s, const char *v, size_t n)
{
  int on;

  if (n == 1 && (*v == '1' || *v == '0'))
    on = *v == '1';
  else if ((n == 4 && strncmp(v, "true", 4) == 0) ||
           (n == 3 && strncmp(v, "yes", 3) == 0))
    on = 1;
  else if ((n == 5 && strncmp(v, "false", 5) == 0) ||
           (n == 2 && strncmp(v, "no", 2) == 0))
    on = 0;
  else
    return CDO_EBADVALUE;
  if (s != NULL && on)
    s->read_only = 1;
  return 0;
}

/*
 * Applies the options "name=value&..." of query (s NULL: only checks them).
 * 0, or CDO_EBADURL with err saying which option is wrong.
 */
static int apply_query(const struct cdo__store_ops *ops, struct cdo_store *s,
                       const char *query, char *err, size_t errlen)
{
  const char *p = query;
  char names[200];

  while (*p != 0) {
    size_t n = strcspn(p, "&"), k = strcspn(p, "=");
    const struct cdo__store_opt *o;

    if (k < n && k == 9 && strncmp(p, "read-only", 9) == 0) {
      int r = front_option(s, p + k + 1, n - k - 1);

      if (r < 0) {
        cdo__fmt(err, errlen, "bad option '%.*s': expected read-only=1 or 0",
                 (int)n, p);
        return CDO_EBADURL;
      }
      p += n + (p[n] == '&');
      continue;
    }
    o = find_option(ops, p, k < n ? k : n);
    char *val = o && k < n ? cdo__pct_decode(p + k + 1, n - k - 1) : NULL;
    int r = val == NULL ? CDO_EBADVALUE : set_option(s, o, val);

    if (val != NULL && o->secret)
      explicit_bzero(val, strlen(val));
    free(val);
    if (r == CDO__ERR(ENOMEM))
      return r;
    if (r < 0 && o == NULL)
      cdo__fmt(err, errlen, "unknown option '%.*s' (the %s backend takes %s)",
               (int)(k < n ? k : n), p, ops->name,
               option_names(ops, names, sizeof(names)));
    else if (r < 0 && k < n)
      cdo__fmt(err, errlen, "bad option '%.*s': expected %s",
               o->secret ? (int)k : (int)n, p, cdo__value_expected(o->type));
    else if (r < 0)
      cdo__fmt(err, errlen, "bad option '%.*s': expected %s=VALUE", (int)n, p,
               o->name);
    if (r < 0)
      return CDO_EBADURL;
    p += n + (p[n] == '&');
  }
  return 0;
}

/*
 * Splits rest (the URL after its scheme) into the address the backend
 * opens and its options (after the '?'), both malloc'd; *query is NULL
 * when there are none.
 */
static int split_query(const struct cdo__store_ops *ops, const char *rest,
                       char **addr, char **query)
{
  const char *q = ops->query ? ops->query(rest) : strstr(rest, "?read-only="),
             *end;
  size_t n;

  *query = NULL;
  if (q == NULL) {
    *addr = strdup(rest);
    return *addr ? 0 : CDO__ERR(ENOMEM);
  }
  end = q + strcspn(q, " \t\n");
  *query = strndup(q + 1, (size_t)(end - q - 1));
  end += strspn(end, " \t\n");
  n = (size_t)(q - rest);
  *addr = malloc(n + strlen(end) + 1);
  if (*query == NULL || *addr == NULL) {
    free(*query);
    free(*addr);
    *query = *addr = NULL;
    return CDO__ERR(ENOMEM);
  }
  memcpy(*addr, rest, n);
  memcpy(*addr + n, end, strlen(end) + 1);
  return 0;
}

static void free_query(char *query)
{
  if (query != NULL)
    explicit_bzero(query, strlen(query)); /* may hold a password */
  free(query);
}

/*
 * Fills s's options: the defaults, the settings mapped onto them, then the
 * URL's own (rest, after the scheme). Sets *addr to rest without the
 * options (malloc'd). 0, or a negative code with err saying why.
 */
static int load_options(struct cdo_store *s, const char *rest, char **addr,
                        char *err, size_t errlen)
{
  const struct cdo__store_ops *ops = s->ops;
  const struct cdo__store_opt *o;
  const struct cdo_strv *v = &s->cfg->store_opts;
  size_t i, nl = strlen(ops->name);
  char *query = NULL;
  int r = 0;

  *addr = NULL;
  for (o = ops->options; o != NULL && o->name != NULL && r == 0; o++)
    if (o->def != NULL)
      r = set_option(s, o, o->def);
  for (i = 0; i < v->n && r == 0; i++) {
    const char *line = v->v[i], *eq = strchr(line, '=');

    if (strncmp(line, ops->name, nl) == 0 && line[nl] == '.' && eq != NULL &&
        (o = find_option(ops, line + nl + 1, (size_t)(eq - line - nl - 1))))
      r = set_option(s, o, eq + 1);
  }
  if (r == 0)
    r = split_query(ops, rest, addr, &query);
  if (r == 0 && query != NULL)
    r = apply_query(ops, s, query, err, errlen);
  free_query(query);
  return r;
}

/*
 * What to say about a URL no backend takes: a path without a scheme gets
 * the URL it probably meant, a known scheme written with the wrong
 * separators ("redis:/host") its right form.
 */
static void url_hint(const char *url, char *err, size_t errlen)
{
  size_t n = strcspn(url, ":/"), i, len = strlen(url);
  char meant[600];
  struct stat st;

  for (i = 0;
       n > 0 && (url[n] == ':' || url[n] == 0) && i < CDO__ARRAY_SIZE(backends);
       i++) {
    const char *sc = backends[i]->scheme, *rest = url + n + (url[n] == ':');

    if (strncasecmp(sc, url, n) != 0 || sc[n] != ':')
      continue;
    while (*rest == '/')
      rest++;
    /* unix:///PATH keeps the root of its path */
    cdo__fmt(meant, sizeof(meant), "%s%s%s", sc,
             strcmp(sc, "unix://") == 0 ? "/" : "", rest);
    cdo__url_mask(meant); /* never echo a password */
    cdo__fmt(err, errlen, "a %.*s URL is written %s%s%s%s", (int)n, sc,
             backends[i]->usage, *rest ? " (did you mean " : "",
             *rest ? meant : "", *rest ? "?)" : "");
    return;
  }
  if (url[n] == ':' && n > 0) {
    cdo__fmt(err, errlen, "unknown scheme '%.*s' (expected %s)", (int)n, url,
             cdo__store_urls());
  } else if (strchr(url, ':') == NULL &&
             (strchr(url, '/') != NULL || url[0] == '.' || url[0] == '~' ||
              (len > 3 && strcmp(url + len - 3, ".db") == 0))) {
    cdo__fmt(err, errlen, "no scheme (did you mean %s:%s?)",
             stat(url, &st) == 0 && S_ISDIR(st.st_mode) ? "dir" : "sqlite",
             url);
  } else {
    cdo__fmt(err, errlen, "no scheme (expected %s)", cdo__store_urls());
  }
}

int cdo_url_check(const char *url, char *err, size_t errlen)
{
  const struct cdo__store_ops *ops = find_backend(url, &url);
  char *addr, *query;
  int r;

  if (ops == NULL) {
    url_hint(url, err, errlen);
    return CDO_EBADURL;
  }
  r = split_query(ops, url, &addr, &query);
  if (r == 0 && query != NULL)
    r = apply_query(ops, NULL, query, err, errlen);
  if (r == 0 && ops->check != NULL && ops->check(addr, err, errlen) < 0)
    r = CDO_EBADURL;
  free_query(query);
  free(addr);
  return r;
}

/* Opens the one cache named by url0 (NULL: the default); as cdo_store_open. */
static int open_one(struct cdo_store **out, const struct cdo_config *cfg,
                    const char *url0, char *err, size_t errlen)
{
  const struct cdo__store_ops *ops;
  struct cdo_store *s;
  const char *rest;
  char *url, *addr, where[4200];
  int r;

  *out = NULL;
  url = url0 ? strdup(url0) : cdo__default_url();
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
    cdo__fmt(err, errlen, "invalid cache URL '%s' (expected %s)", url,
             cdo__store_urls());
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
  s->read_only = cfg->read_only;
  r = load_options(s, rest, &addr, s->errmsg, sizeof(s->errmsg));
  if (r == 0)
    r = ops->open(s, addr);
  free(addr);
  cdo__url_mask(url); /* only now: the options were parsed from it */
  if (r < 0) {
    cdo__fmt(err, errlen, "cannot open cache '%s': %s", url,
             s->errmsg[0] ? s->errmsg : cdo_strerror(r));
    cdo_store_close(s);
    return r;
  }
  *out = s;
  return 0;
}

/* ---- tiers --------------------------------------------------------------- */

/*
 * A cache of several tiers is a chain of stores, nearest first. Only the
 * nearest is opened with the cache: each farther one when a lookup, a
 * store or a command first needs it (a near hit never touches the others).
 * A tier that fails is down for the rest of the run and says so once.
 */

char *cdo__store_next_url(const char **list)
{
  const char *p = *list + strspn(*list, " \t\n"), *e = p, *rest;

  if (*p == 0)
    return NULL;
  do { /* words without a scheme are an exec: URL's arguments */
    e += strcspn(e, " \t\n");
    rest = e + strspn(e, " \t\n");
  } while (*rest != 0 && strncmp(p, "exec:", 5) == 0 &&
           find_backend(rest, &(const char *){NULL}) == NULL &&
           (e = rest) != NULL);
  *list = e;
  return strndup(p, (size_t)(e - p));
}

/*
 * Opens the first tier of *list that opens, advancing *list past it;
 * those that fail are noted in note. 0 with *out set, *out NULL when the
 * list ran out, or -ENOMEM.
 */
static int open_tier(struct cdo_store **out, const struct cdo_config *cfg,
                     const char **list, char *note, size_t notelen,
                     int *failure)
{
  char *url, err[600];

  *out = NULL;
  while ((url = cdo__store_next_url(list)) != NULL) {
    int r = open_one(out, cfg, url, err, sizeof(err));

    free(url);
    if (r == 0)
      return 0;
    if (r == CDO__ERR(ENOMEM))
      return r;
    cdo__fmt(note, notelen, "%s", err);
    *failure = r;
  }
  return 0;
}

int cdo_store_open(struct cdo_store **out, const struct cdo_config *cfg,
                   char *err, size_t errlen)
{
  const char *list = cfg->cache;
  char note[600] = "";
  int r, failure = 0;

  const char *probe = list;
  char *first = list ? cdo__store_next_url(&probe) : NULL;

  free(first);
  if (list == NULL || *(probe + strspn(probe, " \t\n")) == 0)
    return open_one(out, cfg, list, err, errlen);
  r = open_tier(out, cfg, &list, note, sizeof(note), &failure);
  if (r == 0 && *out == NULL) {
    cdo__fmt(err, errlen, "%s", note);
    return failure;
  }
  if (r == 0) {
    (*out)->rest = strdup(list);
    cdo__fmt((*out)->skipped, sizeof((*out)->skipped), "%s", note);
  }
  return r;
}

struct cdo_store *cdo__store_next(struct cdo_store *s)
{
  const char *list = s->rest;
  struct cdo_store *n = NULL;
  int failure = 0;

  if (s->next != NULL || list == NULL)
    return s->next;
  if (open_tier(&n, s->cfg, &list, s->skipped, sizeof(s->skipped), &failure) ==
          0 &&
      n != NULL) {
    n->rest = strdup(list);
    n->tier = s->tier + 1;
    n->msg = s->msg;
    n->msg_ud = s->msg_ud;
    s->next = n;
  }
  free(s->rest);
  s->rest = NULL;
  return s->next;
}

struct cdo_store *cdo_store_tier(struct cdo_store *s, int i)
{
  while (s != NULL && i-- > 0)
    s = cdo__store_next(s);
  return s;
}

const char *cdo_store_skipped(const struct cdo_store *s)
{
  return s->skipped[0] ? s->skipped : NULL;
}

/* Marks tier t down for the run after failure r (its errmsg says why). */
static void tier_down(struct cdo_store *t, int r)
{
  t->down = r;
  if (t->errmsg[0] == 0)
    cdo__fmt(t->errmsg, sizeof(t->errmsg), "%s", cdo_strerror(r));
}

int cdo__store_tiered(const struct cdo_store *s)
{
  return s->next != NULL || s->rest != NULL;
}

void cdo_store_close(struct cdo_store *s)
{
  const struct cdo__store_opt *o;

  if (s == NULL)
    return;
  cdo_store_close(s->next);
  free(s->rest);
  s->ops->close(s);
  for (o = s->ops->options; o != NULL && o->name != NULL; o++)
    if (o->type == CDO__V_STRING)
      free_option(s, o);
  free(s->breaker);
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

int cdo__store_writable(struct cdo_store *s, const char *what)
{
  if (!s->read_only)
    return 0;
  return cdo__store_fail(s, CDO_EREADONLY, "cannot %s '%s': it is read-only",
                         what, s->url);
}

int cdo_store_clear(struct cdo_store *s, struct cdo_stats *cleared)
{
  struct cdo_stats before;
  int r = cdo__store_writable(s, "clear");

  if (r < 0)
    return r;
  if (s->ops->clear == NULL)
    return cdo__store_unsupported(s, "clear");
  if (cleared != NULL) {
    memset(cleared, 0, sizeof(*cleared));
    if (cdo_store_stats(s, &before) == 0) {
      cleared->entries = before.entries;
      cleared->bytes = before.bytes;
      cleared->listed = 1;
    }
    s->errmsg[0] = 0; /* a backend that cannot count still clears */
  }
  return s->ops->clear(s, s->cfg->scope);
}

struct listing {
  cdo_list_fn fn;
  void *ud;
  const char *scope; /* only this scope's entries; NULL: all */
  int err;
};

/* A backend's row, filtered by scope, with both argv and command. */
static int list_row(void *ud, const struct cdo_entry_info *e)
{
  struct listing *l = ud;
  struct cdo_entry_info row = *e;
  struct cdo__buf quoted = {0};
  char **argv = NULL;
  int r;

  if (l->scope != NULL &&
      strcmp(e->scope != NULL ? e->scope : "", l->scope) != 0)
    return 0;
  if (row.argv == NULL) {
    row.argv = argv = cdo__argv_unquote(row.command ? row.command : "");
    if (argv == NULL)
      l->err = CDO__ERR(ENOMEM);
  } else if ((l->err = cdo__argv_quote(&quoted, row.argv)) == 0) {
    row.command = (const char *)quoted.p;
  }
  r = l->err < 0 ? 1 : l->fn(l->ud, &row);
  free(argv);
  cdo__buf_release(&quoted);
  return r;
}

int cdo_store_list(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  struct listing l = {fn, ud, s->cfg->scope, 0};
  int r;

  if (s->ops->list == NULL)
    return cdo__store_unsupported(s, "list entries");
  if (l.scope != NULL && !s->ops->lists_scope)
    return cdo__store_unsupported(s, "tell the entries of one scope apart");
  r = s->ops->list(s, list_row, &l);
  if (r == 0 && l.err < 0)
    r = cdo__store_fail(s, l.err, "out of memory");
  return r;
}

static int count_row(void *ud, const struct cdo_entry_info *e)
{
  struct cdo_stats *st = ud;

  st->entries++;
  st->bytes += e->size;
  return 0;
}

int cdo_store_stats(struct cdo_store *s, struct cdo_stats *st)
{
  const struct cdo__store_counters *c = s->ops->counters;
  int r;

  memset(st, 0, sizeof(*st));
  if (s->ops->stats == NULL)
    return cdo__store_unsupported(s, "count entries");
  r = s->ops->stats(s, st);
  if (r == 0 && c != NULL)
    r = c->read(s, st);
  if (r == 0 && s->cfg->scope != NULL) { /* one scope's: count its rows */
    st->entries = st->bytes = 0;
    r = cdo_store_list(s, count_row, st);
  }
  return r;
}

/* A miss for the entry's state r (verify's answer), saying why in s. */
static int lookup_miss(struct cdo_store *s, const struct cdo__key *k, int r)
{
  if (r == CDO_EUNSIGNED || r == CDO_EBADSIG) {
    /* Not ours to trust, nor to remove: our own result replaces it. */
    s->miss_why = r == CDO_EUNSIGNED ? "the stored entry is not signed"
                                     : "the stored entry's signature is "
                                       "not valid";
    return CDO__MISS;
  }
  if (r != CDO_ECORRUPT)
    return r;
  s->miss_why = "the stored entry is corrupt or belongs to another key";
  s->found_corrupt = 1;
  if (!s->read_only)
    s->ops->del(s, k); /* a corrupt entry is a miss, and goes */
  return CDO__MISS;
}

/*
 * Writes into buf the path of s's table of entry files checked whole in
 * this boot (verified.c) when b is such a file worth not reading twice: a
 * large unsigned entry of a store with local files. 0, else -1.
 */
static int verified_table(struct cdo_store *s, const struct cdo__blob *b,
                          const struct cdo__meta *m, char *buf, size_t len)
{
  const struct cdo__store_files *f = s->ops->files;

  if (b->fd < 0 || b->mem != NULL || m->journal_len < VERIFIED_MIN ||
      s->cfg->signing || f == NULL || f->local_path == NULL)
    return -1;
  return cdo__store_local_file(s, "-verified", buf, len, 0) == 0 ? 0 : -1;
}

/*
 * Checks the journal of b (see cdo__entry_verify), once per boot for a
 * large entry file that stays unchanged.
 */
static int verify(struct cdo_store *s, const struct cdo__key *k,
                  struct cdo__blob *b, const struct cdo__meta *m,
                  uint64_t journal_off)
{
  const struct cdo_config *c = s->cfg;
  unsigned char before[CDO__VERIFIED_REC];
  char table[PATH_MAX];
  int once = verified_table(s, b, m, table, sizeof(table)) == 0, r;

  if (once && cdo__verified_seen(table, k->hash, b->fd, b->off, b->size,
                                 m->journal_sum, before))
    return 0;
  r = cdo__entry_verify(b, m, journal_off, c->signing ? c->sign_key : NULL);
  if (r == 0 && once)
    cdo__verified_note(table, k->hash, b->fd, b->off, b->size, m->journal_sum,
                       before);
  return r;
}

/* cdo__store_lookup in one tier. */
static int lookup_one(struct cdo_store *s, const struct cdo__key *k,
                      struct cdo__blob **out, struct cdo__meta *m,
                      uint64_t *journal_off)
{
  const struct cdo_config *c = s->cfg;
  struct cdo__blob *b = NULL;
  int64_t ttl = 0, age = 0;
  int r;

  *out = NULL;
  s->miss_why = NULL;
  s->found_corrupt = 0;
  r = s->ops->get(s, k, &b);
  if (r < 0 || b == NULL)
    return r < 0 ? r : CDO__MISS;
  r = cdo__entry_peek(b, m, k, NULL, journal_off);
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
    r = verify(s, k, b, m, *journal_off);
  }
  if (r < 0) {
    cdo__blob_free(b);
    return lookup_miss(s, k, r);
  }
  *out = b;
  return age < ttl ? CDO__FRESH : CDO__STALE;
}

/* cdo__store_put in one tier. */
static int put_one(struct cdo_store *s, const struct cdo__key *k,
                   const struct cdo__src *src, const struct cdo__put_info *info)
{
  int r = cdo__store_writable(s, "store in");

  if (r < 0)
    return r;
  if (src->fd_len > s->cfg->max_output)
    return cdo__store_fail(s, CDO_ETOOBIG, "%s", cdo_strerror(CDO_ETOOBIG));
  return s->ops->put(s, k, src, info);
}

uint64_t cdo__store_max_entry(const struct cdo_store *s)
{
  return s->cfg->max_output + ((uint64_t)16 << 20);
}

int cdo__store_src_read(struct cdo_store *s, const struct cdo__src *src,
                        uint64_t off, void *buf, size_t n)
{
  unsigned char *p = buf;

  while (n > 0) {
    ssize_t m = cdo__src_read(src, off, p, n);

    if (m <= 0) {
      int r = m < 0 ? (int)m : CDO_ECORRUPT;

      return cdo__store_fail(s, r, "cannot read the spool: %s",
                             cdo_strerror(r));
    }
    p += m;
    off += (uint64_t)m;
    n -= (size_t)m;
  }
  return 0;
}

#define COPY_BUF ((size_t)256 << 10)

/*
 * Copies the spool's journal into fd: in the kernel with copy_file_range
 * when both files allow it, else through a buffer.
 */
static int copy_journal(int fd, const struct cdo__src *src)
{
  uint64_t left = src->fd_len;
  loff_t in = 0;
  unsigned char *buf;
  int r = 0;

  while (left > 0) {
    size_t n = left < ((size_t)1 << 30) ? (size_t)left : ((size_t)1 << 30);
    ssize_t w = copy_file_range(src->fd, &in, fd, NULL, n, 0);

    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                  errno == EOPNOTSUPP || errno == EBADF))
      break; /* not between these files: copy by hand */
    if (w < 0)
      return CDO__ERR(errno);
    if (w == 0)
      return CDO_ECORRUPT; /* the spool shrank under us */
    left -= (uint64_t)w;
  }
  if (left == 0)
    return 0;
  buf = malloc(COPY_BUF);
  if (buf == NULL)
    return CDO__ERR(ENOMEM);
  while (r == 0 && left > 0) {
    uint64_t off = src->head_len + (src->fd_len - left);
    size_t want = left < COPY_BUF ? (size_t)left : COPY_BUF;
    ssize_t got = cdo__src_read(src, off, buf, want);

    if (got <= 0)
      r = got < 0 ? (int)got : CDO_ECORRUPT;
    else
      r = cdo__write_all(fd, buf, (size_t)got);
    if (r == 0)
      left -= (uint64_t)got;
  }
  free(buf);
  return r;
}

int cdo__store_src_write(int fd, const struct cdo__src *src)
{
  int r = cdo__write_all(fd, src->head, src->head_len);

  if (r == 0)
    r = copy_journal(fd, src);
  if (r == 0)
    r = cdo__write_all(fd, src->tail, src->tail_len);
  return r;
}

static int del_one(struct cdo_store *s, const struct cdo__key *k)
{
  int r = cdo__store_writable(s, "remove an entry from");

  return r < 0 ? r : s->ops->del(s, k);
}

/*
 * The bytes of blob b as a source to put: in place when they are in
 * memory, else copied to a spool file (*fd, closed by the caller).
 */
static int blob_src(struct cdo__blob *b, struct cdo__src *src, int *fd)
{
  unsigned char buf[65536];
  uint64_t off;
  int r = 0;

  memset(src, 0, sizeof(*src));
  src->fd = *fd = -1;
  if (b->mem != NULL) {
    src->head = b->mem;
    src->head_len = (size_t)b->size;
    return 0;
  }
  *fd = cdo__tmpfile(NULL);
  if (*fd < 0)
    return *fd;
  for (off = 0; r == 0 && off < b->size; off += sizeof(buf)) {
    size_t n =
        b->size - off < sizeof(buf) ? (size_t)(b->size - off) : sizeof(buf);

    r = cdo__blob_read(b, buf, n, off);
    if (r == 0)
      r = cdo__write_all(*fd, buf, n);
  }
  src->fd = *fd;
  src->fd_len = b->size;
  return r;
}

/*
 * Copies the entry b (k's, described by m) that tier `from` answered with
 * into the writable tiers before it, for what is left of its lifetime.
 */
static void backfill(struct cdo_store *s, struct cdo_store *from,
                     const struct cdo__key *k, struct cdo__blob *b,
                     const struct cdo__meta *m)
{
  struct cdo__put_info info = {m->created_ms,  m->expires_ms, m->duration_ms,
                               m->exit_status, NULL,          s->cfg->scope};
  struct cdo__meta m2;
  struct cdo__src src;
  uint64_t joff;
  char **argv = NULL, *command = NULL;
  int fd = -1;

  if (m->expires_ms <= cdo__now_ms() ||
      cdo__entry_peek(b, &m2, k, &argv, &joff) < 0 ||
      (command = cdo__argv_render(argv)) == NULL ||
      blob_src(b, &src, &fd) < 0) {
    free(argv);
    free(command);
    if (fd >= 0)
      close(fd);
    return;
  }
  info.command = command;
  for (; s != from; s = s->next) {
    int r = s->down || s->read_only ? 0 : put_one(s, k, &src, &info);

    if (r < 0)
      tier_down(s, r);
  }
  free(argv);
  free(command);
  if (fd >= 0)
    close(fd);
}

int cdo__store_lookup(struct cdo_store *s, const struct cdo__key *k,
                      struct cdo__blob **out, struct cdo__meta *m,
                      uint64_t *journal_off)
{
  struct cdo_store *t;
  const char *why = NULL;
  int r, corrupt = 0, failure = 0, answered = 0;

  if (!cdo__store_tiered(s))
    return lookup_one(s, k, out, m, journal_off);
  s->answered = NULL;
  for (t = s; t != NULL; t = cdo__store_next(t)) {
    if (t->down)
      continue;
    r = lookup_one(t, k, out, m, journal_off);
    if (r < 0) {
      tier_down(t, r);
      failure = r;
      continue;
    }
    answered = 1;
    corrupt |= t->found_corrupt;
    if (why == NULL)
      why = t->miss_why;
    if (r != CDO__MISS) {
      s->answered = t;
      if (t != s)
        backfill(s, t, k, *out, m);
      return r;
    }
  }
  s->miss_why = why;
  s->found_corrupt = corrupt;
  return answered ? CDO__MISS : failure;
}

int cdo__store_put(struct cdo_store *s, const struct cdo__key *k,
                   const struct cdo__src *src, const struct cdo__put_info *info)
{
  struct cdo_store *t;
  int r, stored = 0, failure = CDO_EREADONLY;

  if (!cdo__store_tiered(s))
    return put_one(s, k, src, info);
  for (t = s; t != NULL; t = cdo__store_next(t)) {
    if (t->down || t->read_only)
      continue;
    r = put_one(t, k, src, info);
    if (r < 0) {
      tier_down(t, r);
      failure = r;
    } else {
      stored = 1;
    }
  }
  return stored ? 0 : cdo__store_fail(s, failure, "no tier took the result");
}

void cdo__store_prime(struct cdo_store *s)
{
  /* Tiers already open only: opening a far one (a connect that may time
   * out) would hold up the command's output, which waits while this runs. */
  for (; s != NULL; s = s->next)
    if (!s->down && !s->read_only && s->ops->prime != NULL)
      s->ops->prime(s);
}

int cdo__store_del(struct cdo_store *s, const struct cdo__key *k)
{
  struct cdo_store *t;
  int r, failure = 0, writable = 0;

  if (!cdo__store_tiered(s))
    return del_one(s, k);
  for (t = s; t != NULL; t = cdo__store_next(t)) {
    if (t->down || t->read_only)
      continue;
    writable = 1;
    r = del_one(t, k);
    if (r < 0 && failure == 0) {
      failure = r;
      cdo__fmt(s->errmsg, sizeof(s->errmsg), "%s: %s", t->url, t->errmsg);
    }
  }
  return writable ? failure : cdo__store_writable(s, "remove an entry from");
}

int cdo__store_forget(struct cdo_store *s, const struct cdo__key *k)
{
  struct cdo_store *t;
  int r, had = 0;

  for (t = s; t != NULL && !had; t = cdo__store_next(t)) {
    struct cdo__blob *b = NULL;

    if (t->down || t->read_only)
      continue;
    if (t->ops->get(t, k, &b) == 0)
      had = b != NULL;
    cdo__blob_free(b);
  }
  r = cdo__store_del(s, k);
  return r < 0 ? r : had;
}

int cdo__store_read_only(struct cdo_store *s)
{
  struct cdo_store *t;

  for (t = s; t != NULL; t = cdo__store_next(t))
    if (!t->down && !t->read_only)
      return 0;
  return 1;
}

struct cdo_store *cdo__store_lock_tier(struct cdo_store *s)
{
  struct cdo_store *t, *best = s;

  if (!cdo__store_tiered(s))
    return s;
  if (s->lock_tier != NULL)
    return s->lock_tier;
  for (t = s; t != NULL; t = cdo__store_next(t))
    if (!t->down && !t->read_only && t->ops->locks != NULL)
      best = t;
  s->lock_tier = best;
  return best;
}

void cdo__store_warn_down(struct cdo_store *s, cdo_msg_fn fn, void *ud)
{
  struct cdo_store *t;
  char buf[1200];

  for (t = s; t != NULL; t = t->next) {
    if (t->skipped[0] != 0) {
      cdo__fmt(buf, sizeof(buf), "warning: %s; skipped for this run",
               t->skipped);
      fn(ud, 0, buf);
      t->skipped[0] = 0;
    }
    if (t->down && !t->warned) {
      cdo__fmt(buf, sizeof(buf),
               "warning: cache '%s' failed: %s; skipped for this run", t->url,
               t->errmsg);
      fn(ud, 0, buf);
      t->warned = 1;
    }
  }
}

int cdo__store_batch(struct cdo_store *s, int on)
{
  return s->ops->batch ? s->ops->batch(s, on) : 0;
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

/* ---- the failure breaker ------------------------------------------------- */

int cdo__breaker_open(struct cdo_store *s, const char *who, const char *where,
                      int64_t window_ms)
{
  char *dir = NULL, buf[600], when[32], left[32], *sp;
  const char *run = getenv("XDG_RUNTIME_DIR");
  int64_t now, at;
  struct stat st;
  struct tm tm;
  ssize_t n;
  size_t len;
  time_t t;
  int fd;

  if (window_ms <= 0)
    return 0;
  if (run != NULL && run[0] == '/')
    dir = strdup(run);
  else
    dir = cdo__xdg_dir("XDG_CACHE_HOME", ".cache");
  if (dir == NULL)
    return 0; /* nowhere to remember failures: every run tries */
  len = strlen(dir) + strlen(s->ops->name) + 40;
  s->breaker = malloc(len);
  if (s->breaker != NULL)
    cdo__fmt(s->breaker, len, "%s/cachedo/%s-%016llx.down", dir, s->ops->name,
             (unsigned long long)cdo__sum(where, strlen(where)));
  free(dir);
  fd = s->breaker ? open(s->breaker, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
  if (fd < 0)
    return 0;
  n = read(fd, buf, sizeof(buf) - 1);
  if (fstat(fd, &st) < 0 || st.st_uid != geteuid())
    n = -1;
  close(fd);
  if (n <= 0)
    return 0;
  s->breaker_seen = 1;
  buf[n] = 0;
  buf[strcspn(buf, "\n")] = 0;
  at = strtoll(buf, &sp, 10);
  now = cdo__now_ms();
  /* What the user asked of the cache itself tries the server regardless. */
  if (*sp != ' ' || at > now + 1000 || now - at >= window_ms ||
      s->cfg->deliberate)
    return 0;
  t = (time_t)(at / 1000);
  localtime_r(&t, &tm);
  strftime(when, sizeof(when), "%H:%M:%S", &tm);
  cdo_format_duration(window_ms - (now - at), left, sizeof(left));
  s->failed = 1;
  return cdo__store_fail(s, CDO_EFAILED,
                         "%s %s skipped since %s, when it failed (%s); "
                         "next try in %s",
                         who, where, when, sp + 1, left);
}

void cdo__breaker_trip(struct cdo_store *s, const char *why)
{
  char tmp[4200], line[600], err[300], *slash;
  int fd;

  s->failed = 1;
  if (s->breaker == NULL)
    return;
  cdo__fmt(tmp, sizeof(tmp), "%s", s->breaker);
  slash = strrchr(tmp, '/');
  *slash = 0;
  if (cdo__mkdir_private(tmp, err, sizeof(err)) < 0)
    return;
  cdo__fmt(tmp, sizeof(tmp), "%s.%ld", s->breaker, (long)getpid());
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  cdo__fmt(line, sizeof(line), "%lld %s\n", (long long)cdo__now_ms(), why);
  if (cdo__write_all(fd, line, strlen(line)) < 0 || close(fd) < 0 ||
      rename(tmp, s->breaker) < 0)
    unlink(tmp);
}

void cdo__breaker_ok(struct cdo_store *s)
{
  if (s->breaker_seen && s->breaker != NULL)
    unlink(s->breaker);
  s->breaker_seen = 0;
}
