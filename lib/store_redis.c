/* SPDX-License-Identifier: MIT */
/*
 * The Redis backend: one cache shared by many machines through any server
 * speaking RESP, with short timeouts and a circuit breaker so that a sick
 * server costs one invocation one timeout, and the next ones none.
 *
 * Keys (P = "cachedo:v1:" SCOPE ":" HEXKEY, SCOPE empty without --scope):
 *   P              the entry's bytes, expiring (PX) at the writer's TTL
 *   P ":tmp:" T ":" ID  an entry of writer T (a random token; ID its
 *                  connection's CLIENT ID) being written in pieces, renamed
 *                  to P when whole; it expires on its own if T dies, and
 *                  --gc removes it once connection ID is gone
 *   P ":lock"      the single-flight lock: a random token, SET NX PX; its
 *                  owner deletes it and PUBLISHes on the channel P ":lock"
 *   "cachedo:v1:stats"  a hash of usage counters shared by every client
 * It opts into store.c's failure breaker: a connection error or timeout
 * fails the store for the rest of the run, and later runs skip the server
 * within the breaker window.
 */
#include "store_int.h"

#include <ctype.h>
#include <fcntl.h>
#include <hiredis.h>
#include <poll.h>
#include <sodium.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PREFIX          "cachedo:v1:" /* after the URL option prefix= */
#define PIECE           (1 << 20) /* bytes per SETRANGE/APPEND or GETRANGE */
#define TMP_LEASE_MS    60000 /* a writer's temp key outlives it this long */
#define LOCK_LEASE_MS   30000 /* a lock holder's death costs at most this */
#define HOLDER_CHECK_MS 500   /* how often a waiter checks the holder lives */
#define SCAN_COUNT      "1000"
#define BATCH_DELS      1000 /* pipelined dels before their replies are read */
#define HEX_KEY         64
#define IDX_KEYS        4
#define IDX_BATCH       1000 /* entries per index script call */
#define TEXT_(x)        #x
#define TEXT(x)         TEXT_(x) /* a macro's value as a string literal */

struct redis_store {
  struct cdo_store base;
  redisContext *c;   /* commands */
  redisContext *sub; /* lock waits (SUBSCRIBE), opened on demand */
  char *host;        /* TCP, or NULL */
  char *path;        /* unix socket, or NULL */
  int port;
  int64_t db;
  char *user, *pass;
  /* URL options (store.c fills them before open; see redis_options) */
  int64_t timeout_ms, connect_timeout_ms, breaker_ms;
  char *opt_pass;      /* password=, or NULL: the URL's user info has it */
  char *prefix;        /* prefix=, or NULL */
  char *ns;            /* every key's start: the prefix, then PREFIX */
  char *ns_glob;       /* ns with SCAN's special characters escaped */
  char *stats_key;     /* ns "stats": a hash of the fleet's usage counters */
  char *idx[IDX_KEYS]; /* ns "index:...": the entries' index (see below) */
  char where[320];     /* host:port or the socket path, for messages */
  char *channel;       /* the lock channel sub listens on */
  int pending;         /* replies to counting commands not read yet */
  int batch;           /* dels are pipelined (redis_batch) */
  long long client_id; /* CLIENT ID of c; 0: not known */
};

static struct redis_store *rs(struct cdo_store *s)
{
  return (struct redis_store *)s;
}

/* ---- URLs ---------------------------------------------------------------- */

struct redis_url {
  char *host, *path, *user, *pass;
  int port, db;
};

static void url_release(struct redis_url *u)
{
  free(u->host);
  free(u->path);
  free(u->user);
  if (u->pass != NULL)
    sodium_memzero(u->pass, strlen(u->pass));
  free(u->pass);
  memset(u, 0, sizeof(*u));
}

/* Parses digits p[0..n) into 0..max; -1 when not that. */
static long parse_num(const char *p, size_t n, long max)
{
  long v = 0;
  size_t i;

  if (n == 0 || n > 9)
    return -1;
  for (i = 0; i < n; i++) {
    if (!isdigit((unsigned char)p[i]))
      return -1;
    v = v * 10 + (p[i] - '0');
  }
  return v <= max ? v : -1;
}

static const char tcp_form[] = "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]";
static const char unix_form[] = "unix:///PATH.sock[?db=N]";

/* rest follows "redis://". Never puts the password in err. */
/*
 * %-decodes [p, end) into *out (NULL when empty); what names the part in
 * the error. 0 or CDO_EBADURL.
 */
static int url_part(const char *p, const char *end, const char *what,
                    char **out, char *err, size_t errlen)
{
  *out = cdo__pct_decode(p, (size_t)(end - p));
  if (*out == NULL) {
    cdo__fmt(err, errlen, "bad %%-escape in the %s (expected %s)", what,
             tcp_form);
    return CDO_EBADURL;
  }
  if (**out == 0) {
    free(*out);
    *out = NULL;
  }
  return 0;
}

static int parse_tcp(const char *rest, struct redis_url *u, char *err,
                     size_t errlen)
{
  /* The last '@' ends the user info: a password may hold '/', ':', '@'. */
  const char *at = strrchr(rest, '@'), *h, *p, *end;
  size_t hlen;
  long v;

  end = (at ? at + 1 : rest) + strcspn(at ? at + 1 : rest, "/");
  if (at != NULL) {
    const char *colon = memchr(rest, ':', (size_t)(at - rest));

    if (colon != NULL &&
        url_part(colon + 1, at, "password", &u->pass, err, errlen) < 0)
      return CDO_EBADURL;
    if (url_part(rest, colon ? colon : at, "user name", &u->user, err, errlen) <
        0)
      return CDO_EBADURL;
  }
  h = at ? at + 1 : rest;
  if (*h == '[') {
    const char *close = memchr(h, ']', (size_t)(end - h));

    if (close == NULL) {
      cdo__fmt(err, errlen, "unclosed '[' in the host (expected %s)", tcp_form);
      return CDO_EBADURL;
    }
    u->host = strndup(h + 1, (size_t)(close - h - 1));
    p = close + 1;
  } else {
    hlen = strcspn(h, ":/");
    if (h + hlen > end)
      hlen = (size_t)(end - h);
    u->host = strndup(h, hlen);
    p = h + hlen;
  }
  if (u->host == NULL)
    return CDO__ERR(ENOMEM);
  if (*u->host == 0) {
    cdo__fmt(err, errlen, "no host (expected %s)", tcp_form);
    return CDO_EBADURL;
  }
  u->port = 6379;
  if (p < end && *p == ':') {
    v = parse_num(p + 1, (size_t)(end - p - 1), 65535);
    if (v <= 0) {
      cdo__fmt(err, errlen, "bad port '%.*s' (expected %s)", (int)(end - p - 1),
               p + 1, tcp_form);
      return CDO_EBADURL;
    }
    u->port = (int)v;
  } else if (p < end) {
    cdo__fmt(err, errlen, "unexpected '%.*s' after the host (expected %s)",
             (int)(end - p), p, tcp_form);
    return CDO_EBADURL;
  }
  if (*end == '/' && end[1] != 0) {
    v = parse_num(end + 1, strlen(end + 1), 1000000);
    if (v < 0) {
      cdo__fmt(err, errlen, "bad database '%s' (expected a number; %s)",
               end + 1, tcp_form);
      return CDO_EBADURL;
    }
    u->db = (int)v;
  }
  return 0;
}

/* rest follows "unix://" (its ?db=N is an option): an absolute path. */
static int parse_unix(const char *rest, struct redis_url *u, char *err,
                      size_t errlen)
{
  if (rest[0] != '/' || rest[1] == 0) {
    cdo__fmt(err, errlen, "expected an absolute socket path (%s)", unix_form);
    return CDO_EBADURL;
  }
  u->path = strdup(rest);
  return u->path ? 0 : CDO__ERR(ENOMEM);
}

static int check_tcp(const char *rest, char *err, size_t errlen)
{
  struct redis_url u = {0};
  int r = parse_tcp(rest, &u, err, errlen);

  url_release(&u);
  return r;
}

static int check_unix(const char *rest, char *err, size_t errlen)
{
  struct redis_url u = {0};
  int r = parse_unix(rest, &u, err, errlen);

  url_release(&u);
  return r;
}

/* ---- connections, failures and the breaker ------------------------------- */

static struct timeval ms_tv(int64_t ms)
{
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};

  return tv;
}

/*
 * A connection error or timeout on c: the store is failed for the rest of
 * this run, and the breaker remembers it for the next runs.
 */
static int conn_fail(struct redis_store *r, redisContext *c, int saved_errno,
                     const char *what)
{
  char why[300];

  if (c != NULL && c->err == REDIS_ERR_IO &&
      (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)) {
    char t[32];

    cdo_format_duration(r->timeout_ms, t, sizeof(t));
    cdo__fmt(why, sizeof(why), "no answer within %s", t);
  } else if (c != NULL && c->err == REDIS_ERR_EOF) {
    cdo__fmt(why, sizeof(why), "connection closed by the server");
  } else {
    cdo__fmt(why, sizeof(why), "%s", c != NULL ? c->errstr : "out of memory");
  }
  cdo__breaker_trip(&r->base, why);
  return cdo__store_fail(&r->base, CDO_EBACKEND, "%s %s: %s", what, r->where,
                         why);
}

/* A reply that is an error: fails with the server's message. */
static int reply_fail(struct redis_store *r, redisReply *rep, const char *what)
{
  cdo__store_fail(&r->base, CDO_EBACKEND, "%s: %.*s", what,
                  (int)(rep->len < 300 ? rep->len : 300), rep->str);
  freeReplyObject(rep);
  return CDO_EBACKEND;
}

/* Connects, authenticates and selects the database. */
static int dial(struct redis_store *r, redisContext **out)
{
  struct timeval ct = ms_tv(r->connect_timeout_ms);
  redisContext *c;
  redisReply *rep = NULL;
  int e, n = 0, i;

  *out = NULL;
  c = r->path ? redisConnectUnixWithTimeout(r->path, ct)
              : redisConnectWithTimeout(r->host, r->port, ct);
  e = errno;
  if (c == NULL || c->err) {
    int rc = conn_fail(r, c, e, "cannot connect to");

    redisFree(c);
    return rc;
  }
  fcntl(c->fd, F_SETFD, FD_CLOEXEC);
  redisSetTimeout(c, ms_tv(r->timeout_ms));
  *out = c;
  /* AUTH and SELECT in one round trip. */
  if (r->pass != NULL && r->user != NULL)
    n += redisAppendCommand(c, "AUTH %s %s", r->user, r->pass) == REDIS_OK;
  else if (r->pass != NULL)
    n += redisAppendCommand(c, "AUTH %s", r->pass) == REDIS_OK;
  if (r->db != 0)
    n += redisAppendCommand(c, "SELECT %lld", (long long)r->db) == REDIS_OK;
  for (i = 0; i < n; i++) {
    if (redisGetReply(c, (void **)&rep) != REDIS_OK)
      return conn_fail(r, c, errno, "lost the connection to");
    if (rep->type == REDIS_REPLY_ERROR) {
      char msg[64];

      cdo__fmt(msg, sizeof(msg), "%s refused",
               i == 0 && r->pass ? "authentication" : "SELECT");
      for (i++; i < n; i++) {
        redisReply *more = NULL;

        if (redisGetReply(c, (void **)&more) == REDIS_OK)
          freeReplyObject(more);
      }
      return reply_fail(r, rep, msg);
    }
    freeReplyObject(rep);
  }
  return 0;
}

/*
 * Reads the replies of counting commands sent without waiting, so that the
 * next reply read is the next command's. 0, or the connection failed.
 */
static int drain(struct redis_store *r)
{
  while (r->pending > 0) {
    redisReply *rep = NULL;

    if (redisGetReply(r->c, (void **)&rep) != REDIS_OK)
      return conn_fail(r, r->c, errno, "lost the connection to");
    freeReplyObject(rep);
    r->pending--;
  }
  return 0;
}

/* Runs one command (hiredis format) on the main connection. */
static redisReply *command(struct redis_store *r, const char *fmt, ...)
{
  redisReply *rep;
  va_list ap;

  if (r->base.failed || r->c == NULL || drain(r) < 0)
    return NULL;
  va_start(ap, fmt);
  rep = redisvCommand(r->c, fmt, ap);
  va_end(ap);
  if (rep == NULL)
    conn_fail(r, r->c, errno, "lost the connection to");
  return rep;
}

/* The code for a NULL reply from command(): failed or never connected. */
static int no_reply(struct redis_store *r)
{
  if (r->base.errmsg[0] == 0)
    cdo__store_fail(&r->base, CDO_EFAILED, "server %s failed earlier",
                    r->where);
  return r->base.failed ? CDO_EFAILED : CDO_EBACKEND;
}

/* head, with SCAN's special characters escaped, then tail; malloc'd. */
static char *glob_escape(const char *head, const char *tail)
{
  char *p = malloc(2 * strlen(head) + strlen(tail) + 1), *o = p;

  if (p == NULL)
    return NULL;
  for (; *head; head++) {
    if (strchr("*?[]\\", *head))
      *o++ = '\\';
    *o++ = *head;
  }
  memcpy(o, tail, strlen(tail) + 1);
  return p;
}

/*
 * The index of the entries, kept by the scripts that write and remove
 * them, so that --stats and eviction need not visit every entry. Members
 * are entry names without ns ("SCOPE:HEXKEY"):
 *   index:created  sorted set, score: created (ms), eviction's order
 *   index:expires  sorted set, score: expiry by the server's clock (ms),
 *                  so that entries the server expired are accounted for
 *   index:size     hash, member -> bytes
 *   index:count    hash: entries, bytes, and built = 1 once the index
 *                  holds every entry (a cache written by an older
 *                  cachedo gains it by one walk of its keys).
 */
static const char *const idx_names[IDX_KEYS] = {
    "index:created", "index:expires", "index:size", "index:count"};

/* ns, ns_glob, stats_key and the index keys, from the prefix= option. */
static int namespace(struct redis_store *r)
{
  const char *pre = r->prefix ? r->prefix : "";
  size_t n = strlen(pre) + sizeof(PREFIX) + 5;
  int i;

  r->ns = malloc(n);
  r->stats_key = malloc(n);
  if (r->ns == NULL || r->stats_key == NULL)
    return CDO__ERR(ENOMEM);
  cdo__fmt(r->ns, n, "%s" PREFIX, pre);
  cdo__fmt(r->stats_key, n, "%sstats", r->ns);
  for (i = 0; i < IDX_KEYS; i++) {
    size_t m = strlen(r->ns) + strlen(idx_names[i]) + 1;

    if ((r->idx[i] = malloc(m)) == NULL)
      return CDO__ERR(ENOMEM);
    cdo__fmt(r->idx[i], m, "%s%s", r->ns, idx_names[i]);
  }
  r->ns_glob = glob_escape(r->ns, "");
  return r->ns_glob ? 0 : CDO__ERR(ENOMEM);
}

static int redis_open(struct cdo_store *s, const char *rest)
{
  struct redis_store *r = rs(s);
  struct redis_url u = {0};
  int unix_sock = strcmp(s->ops->scheme, "unix://") == 0, rc;

  rc = unix_sock ? parse_unix(rest, &u, s->errmsg, sizeof(s->errmsg))
                 : parse_tcp(rest, &u, s->errmsg, sizeof(s->errmsg));
  r->host = u.host;
  r->path = u.path;
  r->user = u.user;
  r->pass = u.pass;
  r->port = u.port;
  if (!unix_sock)
    r->db = u.db; /* unix:// has it as an option */
  if (rc < 0)
    return rc;
  if (r->opt_pass != NULL) { /* the password= option wins over the URL's */
    if (r->pass != NULL)
      sodium_memzero(r->pass, strlen(r->pass));
    free(r->pass);
    r->pass = strdup(r->opt_pass);
    if (r->pass == NULL)
      return CDO__ERR(ENOMEM);
  }
  if (r->path)
    cdo__fmt(r->where, sizeof(r->where), "%s", r->path);
  else if (strchr(r->host, ':'))
    cdo__fmt(r->where, sizeof(r->where), "[%s]:%d", r->host, r->port);
  else
    cdo__fmt(r->where, sizeof(r->where), "%s:%d", r->host, r->port);
  rc = namespace(r);
  if (rc == 0)
    rc = cdo__breaker_open(s, "server", r->where, r->breaker_ms);
  if (rc == 0)
    rc = dial(r, &r->c);
  if (rc == 0)
    cdo__breaker_ok(s); /* the server is back */
  return rc;
}

static void redis_close(struct cdo_store *s)
{
  struct redis_store *r = rs(s);

  redisFree(r->c);
  redisFree(r->sub);
  free(r->host);
  free(r->path);
  free(r->user);
  if (r->pass != NULL)
    sodium_memzero(r->pass, strlen(r->pass));
  free(r->pass);
  free(r->channel);
  free(r->ns);
  free(r->ns_glob);
  free(r->stats_key);
  for (int i = 0; i < IDX_KEYS; i++)
    free(r->idx[i]);
}

/* ---- entries ------------------------------------------------------------- */

/* The entry's key name, plus suffix; malloc'd. */
static char *key_name(struct redis_store *r, const struct cdo__key *k,
                      const char *suffix)
{
  const char *scope = r->base.cfg->scope ? r->base.cfg->scope : "";
  size_t n = strlen(r->ns) + strlen(scope) + 2 + HEX_KEY + strlen(suffix);
  char *name = malloc(n);

  if (name != NULL)
    cdo__fmt(name, n, "%s%s:%s%s", r->ns, scope, k->hex, suffix);
  return name;
}

/*
 * Is name an entry key, "cachedo:v1:" SCOPE ":" 64 hex digits? Temp keys
 * and locks are not.
 */
static int is_entry(const char *name, size_t n)
{
  size_t i;

  if (n < sizeof(PREFIX) + HEX_KEY || name[n - HEX_KEY - 1] != ':')
    return 0;
  for (i = n - HEX_KEY; i < n; i++)
    if (!isxdigit((unsigned char)name[i]) || isupper((unsigned char)name[i]))
      return 0;
  return 1;
}

/*
 * The index scripts. Every one gets KEYS[1..4] = the index keys (C, E, Z,
 * N: created, expires, size, count), KEYS[5] = the usage counters' key,
 * then its own. forget drops a member from the index, index adds or
 * updates one (pttl: the key's time to live, by which the server expires
 * it); fresh marks a cache that nothing has used yet as fully indexed
 * (an older cachedo would have left its usage counters).
 */
#define LUA_INDEX                                                              \
  "local C, E, Z, N = KEYS[1], KEYS[2], KEYS[3], KEYS[4] "                     \
  "local function now_ms() local t = redis.call('TIME') "                      \
  "return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end "      \
  "local function forget(m) local z = redis.call('HGET', Z, m) "               \
  "if not z then return false end "                                            \
  "redis.call('HDEL', Z, m) redis.call('ZREM', C, m) redis.call('ZREM', E, "   \
  "m) "                                                                        \
  "redis.call('HINCRBY', N, 'entries', -1) "                                   \
  "redis.call('HINCRBY', N, 'bytes', -tonumber(z)) return tonumber(z) end "    \
  "local function index(m, created, size, pttl) "                              \
  "local z = redis.call('HGET', Z, m) "                                        \
  "if z then redis.call('HINCRBY', N, 'bytes', size - tonumber(z)) else "      \
  "redis.call('HINCRBY', N, 'entries', 1) "                                    \
  "redis.call('HINCRBY', N, 'bytes', size) end "                               \
  "redis.call('HSET', Z, m, size) redis.call('ZADD', C, created, m) "          \
  "if pttl < 0 then redis.call('ZREM', E, m) "                                 \
  "else redis.call('ZADD', E, now_ms() + pttl, m) end end "                    \
  "local function fresh() if redis.call('EXISTS', N) == 0 and "                \
  "redis.call('EXISTS', KEYS[5]) == 0 then "                                   \
  "redis.call('HSET', N, 'built', 1) end end "

/* SET KEYS[6] to ARGV[1] for ARGV[2] ms; ARGV[3]: member, ARGV[4]: created */
static const char put_lua[] =
    LUA_INDEX "fresh() redis.call('SET', KEYS[6], ARGV[1], 'PX', ARGV[2]) "
              "index(ARGV[3], tonumber(ARGV[4]), string.len(ARGV[1]), "
              "tonumber(ARGV[2])) return 1";

/* Unlinks KEYS[6..]; ARGV[i]: KEYS[5 + i]'s member, "" for no entry. */
static const char drop_lua[] =
    LUA_INDEX "local n = 0 for i = 6, #KEYS do "
              "if ARGV[i - 5] ~= '' then forget(ARGV[i - 5]) end "
              "n = n + redis.call('UNLINK', KEYS[i]) end return n";

/*
 * Accounts for up to ARGV[2] entries whose expiry has come (ARGV[1]: ns);
 * how many it looked at.
 */
static const char sweep_lua[] =
    LUA_INDEX "local now = now_ms() "
              "local xs = redis.call('ZRANGEBYSCORE', E, '-inf', now, "
              "'LIMIT', 0, tonumber(ARGV[2])) "
              "for _, m in ipairs(xs) do "
              "local p = redis.call('PTTL', ARGV[1] .. m) "
              "if p == -2 then forget(m) "
              "elseif p == -1 then redis.call('ZREM', E, m) "
              "else redis.call('ZADD', E, now + p, m) end end return #xs";

/*
 * Unlinks the oldest of up to ARGV[3] entries (ARGV[1]: ns) while the
 * bytes exceed ARGV[2]: {removed, freed, bytes left, looked at}.
 */
static const char evict_lua[] =
    LUA_INDEX "local max = tonumber(ARGV[2]) "
              "local bytes = tonumber(redis.call('HGET', N, 'bytes') or '0') "
              "local n, freed, xs = 0, 0, {} "
              "if bytes > max then "
              "xs = redis.call('ZRANGE', C, 0, tonumber(ARGV[3]) - 1) end "
              "for _, m in ipairs(xs) do if bytes <= max then break end "
              "local z = forget(m) or 0 bytes = bytes - z "
              "if redis.call('UNLINK', ARGV[1] .. m) == 1 then "
              "n = n + 1 freed = freed + z end end "
              "return {n, freed, bytes, #xs}";

/*
 * Indexes KEYS[6..] that the index lacks (a cache an older cachedo
 * wrote): ARGV[2i - 1], ARGV[2i]: member and created of KEYS[5 + i].
 */
static const char reindex_lua[] =
    LUA_INDEX "for i = 6, #KEYS do local m = ARGV[2 * (i - 5) - 1] "
              "if redis.call('HEXISTS', Z, m) == 0 and "
              "redis.call('TYPE', KEYS[i])['ok'] == 'string' then "
              "index(m, tonumber(ARGV[2 * (i - 5)]), "
              "redis.call('STRLEN', KEYS[i]), redis.call('PTTL', KEYS[i])) "
              "end end return 0";

/*
 * Did an index script fail on the index itself: a key of another type, a
 * count or size that is not a number (damage, or another program)? The
 * index is then dropped and built anew (idx_ready), as a damaged entry is
 * a miss and replaced.
 */
static int idx_damaged(const redisReply *rep)
{
  return rep->type == REDIS_REPLY_ERROR && rep->str != NULL &&
         (strncmp(rep->str, "WRONGTYPE", 9) == 0 ||
          strstr(rep->str, "not an integer") != NULL ||
          strstr(rep->str, "not a valid float") != NULL ||
          strstr(rep->str, "attempt to") != NULL /* Lua: nil or junk */);
}

/*
 * The index script lua on the names[0, n) and args; its reply or NULL.
 * When the index is damaged, drops it and runs the script once more.
 */
static redisReply *idx_eval(struct redis_store *r, const char *lua,
                            const char *const *names, const size_t *nlen,
                            size_t n, const char *const *args,
                            const size_t *alen, size_t n_args)
{
  size_t total = 3 + IDX_KEYS + 1 + n + n_args, i, k = 0;
  const char **v = malloc(total * sizeof(*v));
  size_t *len = malloc(total * sizeof(*len));
  char numkeys[24];
  redisReply *rep = NULL;

  if (v == NULL || len == NULL) {
    free(v);
    free(len);
    cdo__store_fail(&r->base, CDO__ERR(ENOMEM), "out of memory");
    return NULL;
  }
  cdo__fmt(numkeys, sizeof(numkeys), "%zu", IDX_KEYS + 1 + n);
  v[k] = "EVAL", len[k++] = 4;
  v[k] = lua, len[k++] = strlen(lua);
  v[k] = numkeys, len[k++] = strlen(numkeys);
  for (i = 0; i < IDX_KEYS; i++)
    v[k] = r->idx[i], len[k++] = strlen(r->idx[i]);
  v[k] = r->stats_key, len[k++] = strlen(r->stats_key);
  for (i = 0; i < n; i++)
    v[k] = names[i], len[k++] = nlen[i];
  for (i = 0; i < n_args; i++)
    v[k] = args[i], len[k++] = alen[i];
  for (i = 0; i < 2 && !r->base.failed && r->c != NULL && drain(r) == 0; i++) {
    rep = redisCommandArgv(r->c, (int)k, v, len);
    if (rep == NULL)
      conn_fail(r, r->c, errno, "lost the connection to");
    if (rep == NULL || i > 0 || !idx_damaged(rep))
      break;
    freeReplyObject(rep); /* once more, on an index built anew */
    rep = NULL;
    freeReplyObject(command(r, "DEL %s %s %s %s", r->idx[0], r->idx[1],
                            r->idx[2], r->idx[3]));
  }
  free(v);
  free(len);
  return rep;
}

/* An index script's integer reply (or array's first *n), or an error. */
static int idx_reply(struct redis_store *r, redisReply *rep, const char *what,
                     long long *out, size_t n)
{
  size_t i;

  if (rep == NULL)
    return no_reply(r);
  if (rep->type == REDIS_REPLY_ERROR)
    return reply_fail(r, rep, what);
  for (i = 0; i < n; i++) {
    const redisReply *x = rep->type == REDIS_REPLY_ARRAY && i < rep->elements
                              ? rep->element[i]
                          : i == 0 ? rep
                                   : NULL;

    out[i] = x != NULL && x->type == REDIS_REPLY_INTEGER ? x->integer : 0;
  }
  freeReplyObject(rep);
  return 0;
}

/* GETRANGE name [off, off + n) into buf; *got is the bytes returned. */
static int get_range(struct redis_store *r, const char *name, uint64_t off,
                     size_t n, void *buf, size_t *got)
{
  redisReply *rep =
      command(r, "GETRANGE %s %llu %llu", name, (unsigned long long)off,
              (unsigned long long)(off + n - 1));

  *got = 0;
  if (rep == NULL)
    return no_reply(r);
  if (rep->type == REDIS_REPLY_ERROR)
    return reply_fail(r, rep, "cannot read an entry");
  if (rep->type == REDIS_REPLY_STRING) {
    *got = rep->len < n ? rep->len : n;
    memcpy(buf, rep->str, *got);
  }
  freeReplyObject(rep);
  return 0;
}

/*
 * A large entry's spool, read with pread(2) rather than handed out as an fd
 * blob: replay would map the whole file, and every page of it would count
 * as this process's memory.
 */
static int spool_read(struct cdo__blob *b, void *buf, size_t n, uint64_t off)
{
  return cdo__pread_all((int)(intptr_t)b->ctx, buf, n, off);
}

static void spool_free(struct cdo__blob *b)
{
  close((int)(intptr_t)b->ctx);
  free(b);
}

/*
 * Reads a large entry of size bytes to a spool file in pieces. A key that
 * vanishes, shrinks or is replaced meanwhile (its trailer changed) is a
 * miss: *out stays NULL.
 */
static int get_large(struct redis_store *r, const char *name, uint64_t size,
                     struct cdo__blob **out)
{
  unsigned char t0[CDO__TRAILER_LEN], t1[CDO__TRAILER_LEN];
  unsigned char *buf = malloc(PIECE);
  uint64_t off = 0;
  size_t got = 0, got1 = 0;
  int fd = -1, rc;

  if (buf == NULL)
    return CDO__ERR(ENOMEM);
  rc = get_range(r, name, size - sizeof(t0), sizeof(t0), t0, &got);
  if (rc == 0 && got == sizeof(t0))
    fd = cdo__tmpfile(NULL);
  if (fd < 0 && rc == 0 && got == sizeof(t0))
    rc = cdo__store_fail(&r->base, fd, "cannot create a spool file: %s",
                         cdo_strerror(fd));
  while (rc == 0 && fd >= 0 && off < size) {
    size_t want = size - off < PIECE ? (size_t)(size - off) : PIECE;

    rc = get_range(r, name, off, want, buf, &got1);
    if (rc == 0 && got1 != want)
      break; /* vanished or shrank */
    if (rc == 0)
      rc = cdo__write_all(fd, buf, want);
    off += want;
  }
  if (rc == 0 && off == size)
    rc = get_range(r, name, size - sizeof(t1), sizeof(t1), t1, &got1);
  free(buf);
  if (rc == 0 && off == size && got1 == sizeof(t1) &&
      memcmp(t0, t1, sizeof(t0)) == 0) {
    *out = calloc(1, sizeof(**out));
    if (*out == NULL) {
      close(fd);
      return CDO__ERR(ENOMEM);
    }
    (*out)->size = size;
    (*out)->fd = -1;
    (*out)->read = spool_read;
    (*out)->free = spool_free;
    (*out)->ctx = (void *)(intptr_t)fd;
    return 0;
  }
  if (fd >= 0)
    close(fd);
  return rc;
}

/* Unlinks k's key when it holds an empty value (damage) rather than none. */
static const char drop_empty_lua[] =
    LUA_INDEX "if redis.call('TYPE', KEYS[6])['ok'] == 'string' and "
              "redis.call('STRLEN', KEYS[6]) == 0 then forget(ARGV[1]) "
              "redis.call('UNLINK', KEYS[6]) end return 0";

/* A miss on k: its key, if it is there but empty, goes with its index. */
static int drop_if_empty(struct redis_store *r, const struct cdo__key *k)
{
  char *name = key_name(r, k, "");
  const char *args[1];
  size_t nlen, alen;
  int rc;

  if (name == NULL)
    return CDO__ERR(ENOMEM);
  nlen = strlen(name);
  args[0] = name + strlen(r->ns);
  alen = nlen - strlen(r->ns);
  rc = idx_reply(r,
                 idx_eval(r, drop_empty_lua, (const char *const *)&name, &nlen,
                          1, args, &alen, 1),
                 "cannot read an entry", NULL, 0);
  free(name);
  return rc;
}

/* GETRANGE of name's first piece, and whether name exists, pipelined. */
static redisReply *get_head(struct redis_store *r, const char *name,
                            int *exists)
{
  redisReply *rep = NULL, *ex = NULL;

  *exists = 0;
  if (r->base.failed || r->c == NULL || drain(r) < 0)
    return NULL;
  if (redisAppendCommand(r->c, "GETRANGE %s 0 %d", name, PIECE - 1) !=
          REDIS_OK ||
      redisAppendCommand(r->c, "EXISTS %s", name) != REDIS_OK ||
      redisGetReply(r->c, (void **)&rep) != REDIS_OK ||
      redisGetReply(r->c, (void **)&ex) != REDIS_OK) {
    freeReplyObject(rep);
    conn_fail(r, r->c, errno, "lost the connection to");
    return NULL;
  }
  *exists = ex->type == REDIS_REPLY_INTEGER && ex->integer == 1;
  freeReplyObject(ex);
  return rep;
}

static int redis_get(struct cdo_store *s, const struct cdo__key *k,
                     struct cdo__blob **out)
{
  struct redis_store *r = rs(s);
  char *name = key_name(r, k, "");
  redisReply *rep;
  int rc = 0, exists;

  *out = NULL;
  if (name == NULL)
    return CDO__ERR(ENOMEM);
  /* One round trip for an entry that fits in a piece; EXISTS, in the
   * same one, tells an empty value (damage, left in the index) from no
   * key. */
  rep = get_head(r, name, &exists);
  if (rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len == 0 &&
      exists && !s->read_only) {
    freeReplyObject(rep);
    free(name);
    return drop_if_empty(r, k);
  }
  if (rep == NULL) {
    rc = no_reply(r);
  } else if (rep->type == REDIS_REPLY_ERROR) {
    if (strncmp(rep->str, "WRONGTYPE", 9) == 0)
      freeReplyObject(rep); /* not ours: a miss, replaced by the next put */
    else
      rc = reply_fail(r, rep, "cannot read an entry");
  } else if (rep->type != REDIS_REPLY_STRING || rep->len == 0) {
    freeReplyObject(rep); /* no such key */
  } else if (rep->len < PIECE) {
    unsigned char *p = malloc(rep->len + 1);

    if (p != NULL)
      memcpy(p, rep->str, rep->len);
    *out = p ? cdo__blob_from_mem(p, rep->len) : NULL; /* owns p */
    if (*out == NULL)
      rc = CDO__ERR(ENOMEM);
    freeReplyObject(rep);
  } else {
    freeReplyObject(rep);
    rep = command(r, "STRLEN %s", name);
    if (rep == NULL)
      rc = no_reply(r);
    else if (rep->type == REDIS_REPLY_INTEGER &&
             rep->integer >= CDO__TRAILER_LEN &&
             /* no larger than any entry we write: a bad value is a miss */
             (uint64_t)rep->integer <= cdo__store_max_entry(s))
      rc = get_large(r, name, (uint64_t)rep->integer, out);
    freeReplyObject(rep);
  }
  free(name);
  return rc;
}

/* Appends piece to the temp key tmp, which must then be end bytes long. */
static int put_piece(struct redis_store *r, const char *tmp,
                     const unsigned char *piece, size_t n, uint64_t end)
{
  redisReply *rep = NULL, *ttl = NULL;
  int rc = 0;

  if (end == n) {
    rep = command(r, "SET %s %b PX %d", tmp, piece, n, TMP_LEASE_MS);
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
      return reply_fail(r, rep, "cannot store the entry");
    freeReplyObject(rep);
    return rep ? 0 : no_reply(r);
  }
  /* APPEND and a renewed lease in one round trip. */
  if (drain(r) < 0)
    return CDO_EFAILED;
  if (redisAppendCommand(r->c, "APPEND %s %b", tmp, piece, n) != REDIS_OK ||
      redisAppendCommand(r->c, "PEXPIRE %s %d", tmp, TMP_LEASE_MS) !=
          REDIS_OK ||
      redisGetReply(r->c, (void **)&rep) != REDIS_OK ||
      redisGetReply(r->c, (void **)&ttl) != REDIS_OK) {
    freeReplyObject(rep);
    return conn_fail(r, r->c, errno, "lost the connection to");
  }
  freeReplyObject(ttl);
  if (rep->type == REDIS_REPLY_ERROR)
    return reply_fail(r, rep, "cannot store the entry");
  if (rep->type != REDIS_REPLY_INTEGER || (uint64_t)rep->integer != end)
    rc = cdo__store_fail(&r->base, CDO_EVANISHED,
                         "the entry's temporary key was removed while being "
                         "written (--clear, or eviction)");
  freeReplyObject(rep);
  return rc;
}

/*
 * Renames KEYS[6] (tmp) to KEYS[7] when it holds ARGV[2] bytes, sets its
 * TTL to ARGV[1] ms, and indexes it (ARGV[3]: member, ARGV[4]: created).
 */
static const char publish_lua[] = LUA_INDEX
    "if redis.call('STRLEN', KEYS[6]) ~= tonumber(ARGV[2]) then return 0 end "
    "fresh() redis.call('RENAME', KEYS[6], KEYS[7]) "
    "redis.call('PEXPIRE', KEYS[7], ARGV[1]) "
    "index(ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[2]), tonumber(ARGV[1])) "
    "return 1";

/* The CLIENT ID of r->c, asked once; 0 when the server does not say. */
static long long client_id(struct redis_store *r)
{
  if (r->client_id == 0) {
    redisReply *id = command(r, "CLIENT ID");

    if (id != NULL && id->type == REDIS_REPLY_INTEGER)
      r->client_id = id->integer;
    freeReplyObject(id);
  }
  return r->client_id;
}

static int put_large(struct redis_store *r, const char *name,
                     const struct cdo__src *src, long long px,
                     long long created)
{
  uint64_t size = cdo__src_size(src), off = 0;
  unsigned char *buf = malloc(PIECE), token[16];
  char tmp[600], hex[33];
  redisReply *rep;
  int rc = 0;

  if (buf == NULL)
    return CDO__ERR(ENOMEM);
  randombytes_buf(token, sizeof(token));
  sodium_bin2hex(hex, sizeof(hex), token, sizeof(token));
  cdo__fmt(tmp, sizeof(tmp), "%s:tmp:%s:%lld", name, hex, client_id(r));
  while (rc == 0 && off < size) {
    size_t n = size - off < PIECE ? (size_t)(size - off) : PIECE;

    rc = cdo__store_src_read(&r->base, src, off, buf, n);
    if (rc < 0)
      cdo__store_fail(&r->base, rc, "cannot read the spool: %s",
                      cdo_strerror(rc));
    else
      rc = put_piece(r, tmp, buf, n, off + n);
    off += n;
  }
  free(buf);
  if (rc == 0) {
    const char *names[2] = {tmp, name}, *args[4];
    size_t nlen[2] = {strlen(tmp), strlen(name)}, alen[4];
    char num[3][24];

    cdo__fmt(num[0], sizeof(num[0]), "%lld", px);
    cdo__fmt(num[1], sizeof(num[1]), "%llu", (unsigned long long)size);
    cdo__fmt(num[2], sizeof(num[2]), "%lld", created);
    args[0] = num[0], args[1] = num[1], args[3] = num[2];
    args[2] = name + strlen(r->ns);
    for (int i = 0; i < 4; i++)
      alen[i] = strlen(args[i]);
    rep = idx_eval(r, publish_lua, names, nlen, 2, args, alen, 4);
    if (rep == NULL)
      return no_reply(r);
    if (rep->type == REDIS_REPLY_ERROR)
      return reply_fail(r, rep, "cannot store the entry");
    if (rep->type != REDIS_REPLY_INTEGER || rep->integer != 1)
      rc = cdo__store_fail(&r->base, CDO_EVANISHED,
                           "the entry's temporary key was removed while being "
                           "written (--clear, or eviction)");
    freeReplyObject(rep);
  }
  if (rc < 0 && !r->base.failed)
    freeReplyObject(command(r, "UNLINK %s", tmp));
  return rc;
}

static int redis_del(struct cdo_store *s, const struct cdo__key *k);

static int redis_put(struct cdo_store *s, const struct cdo__key *k,
                     const struct cdo__src *src,
                     const struct cdo__put_info *info)
{
  struct redis_store *r = rs(s);
  uint64_t size = cdo__src_size(src);
  long long px = (long long)(info->expires_ms - cdo__now_ms());
  char *name;
  int rc;

  if (r->base.failed)
    return no_reply(r);
  if (px < 1) /* already expired: what is stored instead is nothing */
    return redis_del(s, k);
  name = key_name(r, k, "");
  if (name == NULL)
    return CDO__ERR(ENOMEM);
  if (size <= PIECE) {
    unsigned char *buf = malloc((size_t)size + 1);
    char num[2][24];
    redisReply *rep;

    rc = buf ? cdo__store_src_read(s, src, 0, buf, (size_t)size)
             : CDO__ERR(ENOMEM);
    if (rc < 0) {
      cdo__store_fail(s, rc, "cannot read the spool: %s", cdo_strerror(rc));
    } else {
      const char *args[4] = {(const char *)buf, num[0], name + strlen(r->ns),
                             num[1]};
      size_t nlen = strlen(name), alen[4];

      cdo__fmt(num[0], sizeof(num[0]), "%lld", px);
      cdo__fmt(num[1], sizeof(num[1]), "%lld", (long long)info->created_ms);
      alen[0] = (size_t)size;
      for (int i = 1; i < 4; i++)
        alen[i] = strlen(args[i]);
      rep = idx_eval(r, put_lua, (const char *const *)&name, &nlen, 1, args,
                     alen, 4);
      if (rep == NULL)
        rc = no_reply(r);
      else if (rep->type == REDIS_REPLY_ERROR)
        rc = reply_fail(r, rep, "cannot store the entry");
      else
        freeReplyObject(rep);
    }
    free(buf);
  } else {
    rc = put_large(r, name, src, px, (long long)info->created_ms);
  }
  free(name);
  return rc;
}

static int redis_del(struct cdo_store *s, const struct cdo__key *k)
{
  struct redis_store *r = rs(s);
  char *name = key_name(r, k, "");
  redisReply *rep;
  int rc = 0;

  if (name == NULL)
    return CDO__ERR(ENOMEM);
  if (r->batch && r->c != NULL && !r->base.failed) {
    /* Pipelined: the replies are read with the next command's. */
    rc =
        redisAppendCommand(r->c, "EVAL %s 6 %s %s %s %s %s %s %s", drop_lua,
                           r->idx[0], r->idx[1], r->idx[2], r->idx[3],
                           r->stats_key, name, name + strlen(r->ns)) == REDIS_OK
            ? 0
            : CDO__ERR(ENOMEM);
    if (rc == 0 && ++r->pending >= BATCH_DELS)
      rc = drain(r);
    free(name);
    return rc;
  }
  {
    const char *member = name + strlen(r->ns);
    size_t nlen = strlen(name), mlen = strlen(member);

    rep = idx_eval(r, drop_lua, (const char *const *)&name, &nlen, 1, &member,
                   &mlen, 1);
  }
  if (rep == NULL)
    rc = no_reply(r);
  else if (rep->type == REDIS_REPLY_ERROR)
    rc = reply_fail(r, rep, "cannot delete an entry");
  else
    freeReplyObject(rep);
  free(name);
  return rc;
}

/* In a batch, dels go out without waiting for their replies. */
static int redis_batch(struct cdo_store *s, int on)
{
  struct redis_store *r = rs(s);

  r->batch = on;
  return on || r->c == NULL ? 0 : drain(r);
}

/* ---- walking the keys: --clear, --list, --stats -------------------------- */

/* Called with each batch of matching key names; non-zero stops the walk. */
typedef int (*scan_fn)(struct redis_store *r, redisReply **keys, size_t n,
                       void *ud);

static int scan(struct redis_store *r, const char *pattern, scan_fn fn,
                void *ud)
{
  char cursor[32] = "0";
  int rc = 0;

  do {
    redisReply *rep =
        command(r, "SCAN %s MATCH %s COUNT " SCAN_COUNT, cursor, pattern);

    if (rep == NULL)
      return no_reply(r);
    if (rep->type == REDIS_REPLY_ERROR)
      return reply_fail(r, rep, "cannot list keys");
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
      freeReplyObject(rep);
      return cdo__store_fail(&r->base, CDO_EBACKEND,
                             "unexpected reply to SCAN");
    }
    cdo__fmt(cursor, sizeof(cursor), "%.*s", (int)rep->element[0]->len,
             rep->element[0]->str);
    if (rep->element[1]->elements > 0)
      rc = fn(r, rep->element[1]->element, rep->element[1]->elements, ud);
    freeReplyObject(rep);
  } while (rc == 0 && strcmp(cursor, "0") != 0);
  return rc < 0 ? rc : 0;
}

/* A SCAN pattern matching the namespace and scope literally, then ":*". */
static char *scope_pattern(struct redis_store *r, const char *scope)
{
  char *esc = glob_escape(scope, ":*"), *p = NULL;
  size_t n = esc ? strlen(r->ns_glob) + strlen(esc) + 1 : 0;

  if (esc != NULL && (p = malloc(n)) != NULL)
    cdo__fmt(p, n, "%s%s", r->ns_glob, esc);
  free(esc);
  return p;
}

struct clear_state {
  size_t skip; /* with a scope: length of ns SCOPE ":" */
};

/* Is k one of the index keys? */
static int is_index(const struct redis_store *r, const char *k, size_t len)
{
  int i;

  for (i = 0; i < IDX_KEYS; i++)
    if (len == strlen(r->idx[i]) && memcmp(k, r->idx[i], len) == 0)
      return 1;
  return 0;
}

/* Unlinks a batch of keys, entries with their index members. */
static int unlink_batch(struct redis_store *r, redisReply **keys, size_t n,
                        void *ud)
{
  struct clear_state *cs = ud;
  const char **names = malloc((n + 1) * sizeof(*names));
  const char **members = malloc((n + 1) * sizeof(*members));
  size_t *nlen = malloc((n + 1) * sizeof(*nlen));
  size_t *mlen = malloc((n + 1) * sizeof(*mlen));
  size_t i, m = 0, ns = strlen(r->ns);
  int rc = 0;

  if (names == NULL || members == NULL || nlen == NULL || mlen == NULL)
    rc = CDO__ERR(ENOMEM);
  for (i = 0; rc == 0 && i < n; i++) {
    const char *k = keys[i]->str;
    size_t len = keys[i]->len;

    if (keys[i]->type != REDIS_REPLY_STRING)
      continue;
    /* Locks stay: their holders are running. So do the counters. The
     * index goes with a whole cache (built anew at the next --stats, from
     * what is left: damage goes too); one scope's entries leave it one by
     * one. */
    if ((len >= 5 && memcmp(k + len - 5, ":lock", 5) == 0) ||
        (len == strlen(r->stats_key) && memcmp(k, r->stats_key, len) == 0) ||
        (cs->skip && is_index(r, k, len)))
      continue;
    /* With a scope, only its entries and temp keys, not a longer scope's. */
    if (cs->skip &&
        (len < cs->skip + HEX_KEY || !is_entry(k, cs->skip + HEX_KEY) ||
         (len > cs->skip + HEX_KEY &&
          strncmp(k + cs->skip + HEX_KEY, ":tmp:", 5) != 0)))
      continue;
    names[m] = k;
    nlen[m] = len;
    members[m] = cs->skip && is_entry(k, len) ? k + ns : "";
    mlen[m++] = cs->skip && is_entry(k, len) ? len - ns : 0;
  }
  if (rc == 0 && m > 0)
    rc = idx_reply(r, idx_eval(r, drop_lua, names, nlen, m, members, mlen, m),
                   "cannot delete entries", NULL, 0);
  free(names);
  free(members);
  free(nlen);
  free(mlen);
  return rc;
}

static int redis_clear(struct cdo_store *s, const char *scope)
{
  struct redis_store *r = rs(s);
  struct clear_state cs = {0};
  char *pattern;
  int rc;

  pattern = scope ? scope_pattern(r, scope) : glob_escape(r->ns, "*");
  if (pattern == NULL)
    return CDO__ERR(ENOMEM);
  if (scope)
    cs.skip = strlen(r->ns) + strlen(scope) + 1;
  rc = scan(r, pattern, unlink_batch, &cs);
  free(pattern);
  return rc;
}

/* The counter field of an outcome. */
static const char *const outcome_field[] = {
    [CDO_HIT] = "hit",
    [CDO_STALE] = "stale",
    [CDO_MISS_STORED] = "miss_stored",
    [CDO_MISS_NOT_STORED] = "miss_not_stored",
    [CDO_UNCACHED] = "uncached",
};

static const char count_lua[] =
    "redis.call('HSETNX', KEYS[1], 'since_ms', ARGV[1]) "
    "redis.call('HINCRBY', KEYS[1], ARGV[2], 1) "
    "if ARGV[3] ~= '0' then "
    "redis.call('HINCRBY', KEYS[1], 'saved_ms', ARGV[3]) end "
    "if ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[1], ARGV[4], 1) end "
    "if ARGV[5] ~= '0' then redis.call('HINCRBY', KEYS[1], 'waits', 1) "
    "redis.call('HINCRBY', KEYS[1], 'waited_ms', ARGV[5]) end "
    "return 0";

/*
 * Counts one run in the server's hash. The command is sent without waiting
 * for its reply (read before the next command, or dropped at close), so the
 * hit path pays one write, not a round trip.
 */
static int redis_count(struct cdo_store *s, const struct cdo__usage *u)
{
  struct redis_store *r = rs(s);
  char kind[48] = "";
  int done = 0;

  if (r->base.failed || r->c == NULL || u->outcome < CDO_HIT ||
      u->outcome > CDO_UNCACHED)
    return 0;
  if (u->error_kind >= 0)
    cdo__fmt(kind, sizeof(kind), "err_%s", cdo_errkind_name(u->error_kind));
  if (redisAppendCommand(
          r->c, "EVAL %s 1 %s %lld %s %lld %s %lld", count_lua, r->stats_key,
          (long long)u->time_ms, outcome_field[u->outcome],
          (long long)(u->saved_ms > 0 ? u->saved_ms : 0), kind,
          (long long)(u->waited_ms > 0 ? u->waited_ms : 0)) != REDIS_OK)
    return CDO__ERR(ENOMEM);
  r->pending++;
  while (!done)
    if (redisBufferWrite(r->c, &done) != REDIS_OK)
      return conn_fail(r, r->c, errno, "lost the connection to");
  return 0;
}

static int redis_zero_stats(struct cdo_store *s)
{
  struct redis_store *r = rs(s);
  redisReply *rep = command(r, "EVAL %s 1 %s %lld",
                            "redis.call('DEL', KEYS[1]) "
                            "redis.call('HSET', KEYS[1], 'since_ms', ARGV[1]) "
                            "return 0",
                            r->stats_key, (long long)cdo__now_ms());

  if (rep == NULL)
    return no_reply(r);
  if (rep->type == REDIS_REPLY_ERROR)
    return reply_fail(r, rep, "cannot reset the counters");
  freeReplyObject(rep);
  return 0;
}

/* Fills the counters of st from the server's hash. */
static int read_counters(struct redis_store *r, struct cdo_stats *st)
{
  redisReply *rep = command(r, "HGETALL %s", r->stats_key);
  size_t i;
  int k;

  if (rep == NULL)
    return no_reply(r);
  if (rep->type == REDIS_REPLY_ERROR)
    return reply_fail(r, rep, "cannot read the counters");
  for (i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements; i += 2) {
    const char *f = rep->element[i]->str, *v = rep->element[i + 1]->str;
    long long n;

    if (f == NULL || v == NULL)
      continue;
    n = strtoll(v, NULL, 10);
    if (strcmp(f, "since_ms") == 0)
      st->since_ms = n;
    else if (strcmp(f, "saved_ms") == 0)
      st->saved_ms = n;
    else if (strcmp(f, "waits") == 0)
      st->waits = (uint64_t)n;
    else if (strcmp(f, "waited_ms") == 0)
      st->waited_ms = n;
    else if (strcmp(f, "hit") == 0)
      st->hits = (uint64_t)n;
    else if (strcmp(f, "stale") == 0)
      st->stale = (uint64_t)n;
    else if (strncmp(f, "miss_", 5) == 0)
      st->misses += (uint64_t)n;
    else if (strcmp(f, "uncached") == 0)
      st->uncached = (uint64_t)n;
    for (k = 0; strncmp(f, "err_", 4) == 0 && k < CDO_ERRKIND_COUNT; k++) {
      if (strcmp(f + 4, cdo_errkind_name(k)) == 0) {
        st->error_kinds[k] = (uint64_t)n;
        st->errors += (uint64_t)n;
      }
    }
  }
  freeReplyObject(rep);
  return 0;
}

static int redis_read_counters(struct cdo_store *s, struct cdo_stats *st)
{
  return read_counters(rs(s), st);
}

/*
 * --list fetches, per SCAN batch and in one pipelined round trip, each
 * entry's size, first LIST_HEAD bytes, trailer and time to live; the
 * codec then reads the header and trailer from those, and anything else
 * (a header longer than LIST_HEAD) with GETRANGE.
 */
#define LIST_HEAD    4096
#define LIST_REPLIES 4

struct peek_ctx {
  struct redis_store *r;
  const char *name;
  const redisReply *head, *tail;
};

static int peek_read(struct cdo__blob *b, void *buf, size_t n, uint64_t off)
{
  struct peek_ctx *pc = b->ctx;
  uint64_t tail_at = b->size - pc->tail->len;
  size_t got;
  int e;

  if (off + n <= pc->head->len) {
    memcpy(buf, pc->head->str + off, n);
    return 0;
  }
  if (pc->tail->len <= b->size && off >= tail_at && off + n <= b->size) {
    memcpy(buf, pc->tail->str + (off - tail_at), n);
    return 0;
  }
  e = get_range(pc->r, pc->name, off, n, buf, &got);
  return e < 0 ? e : got == n ? 0 : CDO_ECORRUPT;
}

struct list_state {
  cdo_list_fn fn;
  void *ud;
};

/* The scope in an entry's name (ns SCOPE ":" HEXKEY), malloc'd. */
static char *name_scope(const struct redis_store *r, const char *name,
                        size_t len)
{
  size_t ns = strlen(r->ns),
         n = len > ns + 1 + HEX_KEY ? len - ns - 1 - HEX_KEY : 0;

  return n ? strndup(name + ns, n) : NULL;
}

/* Sends the commands for keys[i]; 0, or -1 when it is not an entry. */
static int list_send(struct redis_store *r, const redisReply *key)
{
  if (key->type != REDIS_REPLY_STRING || !is_entry(key->str, key->len))
    return -1;
  redisAppendCommand(r->c, "STRLEN %b", key->str, key->len);
  redisAppendCommand(r->c, "GETRANGE %b 0 %d", key->str, key->len,
                     LIST_HEAD - 1);
  redisAppendCommand(r->c, "GETRANGE %b -%d -1", key->str, key->len,
                     CDO__TRAILER_LEN);
  redisAppendCommand(r->c, "PTTL %b", key->str, key->len);
  return 0;
}

/* Calls fn with the entry of key, from its replies; fn's result. */
static int list_row(struct redis_store *r, const redisReply *key,
                    redisReply **rep, struct list_state *ls, int64_t now)
{
  struct peek_ctx ctx = {r, key->str, rep[1], rep[2]};
  struct cdo__blob b = {0};
  struct cdo_entry_info e;
  struct cdo__meta m;
  uint64_t joff;
  char **argv = NULL, *scope;
  int rc, i;

  for (i = 0; i < LIST_REPLIES; i++)
    if (rep[i]->type == REDIS_REPLY_ERROR)
      return reply_fail(r, rep[i], "cannot list an entry");
  if (rep[0]->type != REDIS_REPLY_INTEGER || rep[0]->integer <= 0 ||
      rep[1]->type != REDIS_REPLY_STRING || rep[2]->type != REDIS_REPLY_STRING)
    return 0; /* gone meanwhile */
  b.size = (uint64_t)rep[0]->integer;
  b.fd = -1;
  b.read = peek_read;
  b.ctx = &ctx;
  rc = cdo__entry_peek(&b, &m, NULL, &argv, &joff);
  if (rc == CDO_ECORRUPT)
    return 0; /* gone, or not an entry */
  if (rc < 0)
    return rc;
  memcpy(e.key, key->str + key->len - HEX_KEY, HEX_KEY);
  e.key[HEX_KEY] = 0;
  e.created_ms = m.created_ms;
  e.expires_ms = rep[3]->type == REDIS_REPLY_INTEGER && rep[3]->integer >= 0
                     ? now + rep[3]->integer
                     : INT64_MAX;
  e.duration_ms = m.duration_ms;
  e.size = b.size;
  e.exit_status = m.exit_status;
  scope = name_scope(r, key->str, key->len);
  if (scope == NULL && key->len > strlen(r->ns) + 1 + HEX_KEY) {
    free(argv);
    return CDO__ERR(ENOMEM);
  }
  e.command = NULL;
  e.argv = argv;
  e.scope = scope;
  rc = ls->fn(ls->ud, &e) != 0;
  free(argv);
  free(scope);
  return rc;
}

/* One SCAN batch: every reply first, then fn (which may delete) per row. */
static int list_batch(struct redis_store *r, redisReply **keys, size_t n,
                      void *ud)
{
  struct list_state *ls = ud;
  redisReply **rep = calloc(n * LIST_REPLIES + 1, sizeof(*rep));
  int64_t now = cdo__now_ms();
  size_t i, sent = 0;
  int rc = drain(r);

  if (rep == NULL)
    return CDO__ERR(ENOMEM);
  for (i = 0; rc == 0 && i < n; i++)
    if (list_send(r, keys[i]) == 0)
      sent++;
  for (i = 0; rc == 0 && i < sent * LIST_REPLIES; i++)
    if (redisGetReply(r->c, (void **)&rep[i]) != REDIS_OK || rep[i] == NULL)
      rc = conn_fail(r, r->c, errno, "lost the connection to");
  for (i = 0, sent = 0; rc == 0 && i < n; i++)
    if (keys[i]->type == REDIS_REPLY_STRING &&
        is_entry(keys[i]->str, keys[i]->len))
      rc = list_row(r, keys[i], rep + LIST_REPLIES * sent++, ls, now);
  for (i = 0; i < n * LIST_REPLIES; i++)
    if (rep[i] != NULL)
      freeReplyObject(rep[i]);
  free(rep);
  return rc;
}

/* In SCAN's order (unsorted): memory stays one batch's. */
static int redis_list(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  struct list_state ls = {fn, ud};

  char *all = glob_escape(rs(s)->ns, "*");
  int rc = all ? scan(rs(s), all, list_batch, &ls) : CDO__ERR(ENOMEM);

  free(all);
  return rc;
}

/* ---- the index: --stats and eviction ------------------------------------ */

/* Accounts for the entries the server expired, IDX_BATCH at a time. */
static int idx_sweep(struct redis_store *r)
{
  const char *args[2] = {r->ns, TEXT(IDX_BATCH)};
  size_t alen[2] = {strlen(r->ns), strlen(args[1])};
  long long looked = IDX_BATCH;
  int rc = 0;

  while (rc == 0 && looked >= IDX_BATCH)
    rc = idx_reply(r, idx_eval(r, sweep_lua, NULL, NULL, 0, args, alen, 2),
                   "cannot count the entries", &looked, 1);
  return rc;
}

/* Entries listed for reindex_lua, IDX_BATCH at a time. */
struct reindex {
  struct redis_store *r;
  size_t n;
  char *names[IDX_BATCH];
  size_t nlen[IDX_BATCH];
  char created[IDX_BATCH][24];
  const char *args[2 * IDX_BATCH];
  size_t alen[2 * IDX_BATCH];
  int err;
};

static int reindex_flush(struct reindex *x)
{
  size_t i, ns = strlen(x->r->ns);
  int rc = 0;

  for (i = 0; i < x->n; i++) {
    x->args[2 * i] = x->names[i] + ns;
    x->alen[2 * i] = x->nlen[i] - ns;
    x->args[2 * i + 1] = x->created[i];
    x->alen[2 * i + 1] = strlen(x->created[i]);
  }
  if (x->n > 0)
    rc = idx_reply(x->r,
                   idx_eval(x->r, reindex_lua, (const char *const *)x->names,
                            x->nlen, x->n, x->args, x->alen, 2 * x->n),
                   "cannot index the entries", NULL, 0);
  for (i = 0; i < x->n; i++)
    free(x->names[i]);
  x->n = 0;
  return rc;
}

static int reindex_row(void *ud, const struct cdo_entry_info *e)
{
  struct reindex *x = ud;
  const char *scope = e->scope ? e->scope : "";
  size_t len = strlen(x->r->ns) + strlen(scope) + HEX_KEY + 2;
  char *name = malloc(len);

  if (name == NULL) {
    x->err = CDO__ERR(ENOMEM);
    return 1;
  }
  cdo__fmt(name, len, "%s%s:%s", x->r->ns, scope, e->key);
  x->names[x->n] = name;
  x->nlen[x->n] = strlen(name);
  cdo__fmt(x->created[x->n], sizeof(x->created[0]), "%lld",
           (long long)e->created_ms);
  if (++x->n == IDX_BATCH && (x->err = reindex_flush(x)) < 0)
    return 1;
  return 0;
}

static int redis_list(struct cdo_store *s, cdo_list_fn fn, void *ud);

/*
 * Makes sure the index holds every entry: a cache that an older cachedo
 * wrote is walked once (as --list walks it) and its entries indexed.
 */
static int idx_ready(struct redis_store *r)
{
  redisReply *rep = command(r, "HGET %s built", r->idx[3]);
  struct reindex *x;
  int rc;

  if (rep == NULL)
    return no_reply(r);
  if (rep->type == REDIS_REPLY_ERROR)
    return reply_fail(r, rep, "cannot read the index");
  rc = rep->type == REDIS_REPLY_STRING;
  freeReplyObject(rep);
  if (rc)
    return 0;
  if ((x = calloc(1, sizeof(*x))) == NULL)
    return CDO__ERR(ENOMEM);
  x->r = r;
  rc = redis_list(&r->base, reindex_row, x);
  if (rc == 0)
    rc = x->err;
  if (rc == 0)
    rc = reindex_flush(x);
  for (size_t i = 0; i < x->n; i++)
    free(x->names[i]);
  free(x);
  if (rc == 0) {
    rep = command(r, "HSET %s built 1", r->idx[3]);
    rc = rep == NULL ? no_reply(r) : 0;
    freeReplyObject(rep);
  }
  return rc;
}

/* Sizes of the entries of a batch, pipelined. */
static int strlen_batch(struct redis_store *r, redisReply **keys, size_t n,
                        void *ud)
{
  struct cdo_stats *st = ud;
  size_t i, sent = 0;
  int rc = drain(r);

  if (rc < 0)
    return rc;
  for (i = 0; i < n; i++) {
    if (keys[i]->type != REDIS_REPLY_STRING ||
        !is_entry(keys[i]->str, keys[i]->len))
      continue;
    if (redisAppendCommand(r->c, "STRLEN %b", keys[i]->str, keys[i]->len) !=
        REDIS_OK)
      return CDO__ERR(ENOMEM);
    sent++;
  }
  for (i = 0; i < sent; i++) {
    redisReply *rep = NULL;

    if (redisGetReply(r->c, (void **)&rep) != REDIS_OK)
      return conn_fail(r, r->c, errno, "lost the connection to");
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0) {
      st->entries++;
      st->bytes += (uint64_t)rep->integer;
    }
    freeReplyObject(rep);
  }
  return rc;
}

/*
 * Entries and bytes from the index, the expired accounted for; read-only
 * (which must not update the index), by a walk of every key.
 */
static int redis_stats(struct cdo_store *s, struct cdo_stats *st)
{
  struct redis_store *r = rs(s);
  redisReply *rep;
  int rc;

  if (s->read_only) {
    char *all = glob_escape(r->ns, "*");

    rc = all ? scan(r, all, strlen_batch, st) : CDO__ERR(ENOMEM);
    free(all);
    return rc;
  }
  rc = idx_ready(r);
  if (rc == 0)
    rc = idx_sweep(r);
  if (rc < 0)
    return rc;
  rep = command(r, "HMGET %s entries bytes", r->idx[3]);
  if (rep == NULL)
    return no_reply(r);
  if (rep->type == REDIS_REPLY_ERROR)
    return reply_fail(r, rep, "cannot count the entries");
  if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
    long long n = rep->element[0]->str ? atoll(rep->element[0]->str) : 0;
    long long b = rep->element[1]->str ? atoll(rep->element[1]->str) : 0;

    st->entries = n > 0 ? (uint64_t)n : 0;
    st->bytes = b > 0 ? (uint64_t)b : 0;
  }
  freeReplyObject(rep);
  return 0;
}

/* The oldest entries first, by the index, in IDX_BATCH a script call. */
static int redis_evict(struct cdo_store *s, uint64_t max_bytes,
                       uint64_t *removed, uint64_t *freed)
{
  struct redis_store *r = rs(s);
  char max[24];
  const char *args[3] = {r->ns, max, TEXT(IDX_BATCH)};
  size_t alen[3];
  long long out[4] = {0, 0, LLONG_MAX, 1}; /* until the script says */
  int rc = idx_ready(r);

  if (rc == 0)
    rc = idx_sweep(r);
  cdo__fmt(max, sizeof(max), "%llu", (unsigned long long)max_bytes);
  alen[0] = strlen(r->ns);
  alen[1] = strlen(max);
  alen[2] = strlen(args[2]);
  while (rc == 0 && out[3] > 0 && (uint64_t)out[2] > max_bytes) {
    rc = idx_reply(r, idx_eval(r, evict_lua, NULL, NULL, 0, args, alen, 3),
                   "cannot evict entries", out, 4);
    *removed += (uint64_t)(out[0] > 0 ? out[0] : 0);
    *freed += (uint64_t)(out[1] > 0 ? out[1] : 0);
    if (out[2] < 0)
      out[2] = 0;
  }
  return rc;
}

/* Unlinks the temp keys among keys whose writer's connection is gone. */
static int unlink_dead_temps(struct redis_store *r, redisReply **keys, size_t n,
                             void *ud)
{
  size_t i;

  (void)ud;
  for (i = 0; i < n && !r->base.failed; i++) {
    const char *colon;
    long long id;
    redisReply *cl;

    if (keys[i]->type != REDIS_REPLY_STRING ||
        strstr(keys[i]->str, ":tmp:") == NULL)
      continue;
    colon = strrchr(keys[i]->str, ':');
    id = strtoll(colon + 1, NULL, 10);
    if (id <= 0)
      continue; /* no writer named: it expires on its own */
    cl = command(r, "CLIENT LIST ID %lld", id);
    if (cl != NULL && cl->type == REDIS_REPLY_STRING && cl->len == 0)
      freeReplyObject(command(r, "UNLINK %b", keys[i]->str, keys[i]->len));
    freeReplyObject(cl);
  }
  return r->base.failed ? no_reply(r) : 0;
}

/*
 * The server expires entries, and dead writers' temp keys after their
 * lease; --gc removes those at once whose writer's connection is gone.
 */
static int redis_gc(struct cdo_store *s, int64_t now_ms, uint64_t *removed)
{
  (void)now_ms;
  *removed = 0;
  return scan(rs(s), PREFIX "*:tmp:*", unlink_dead_temps, NULL);
}

/* ---- single-flight ------------------------------------------------------- */

/* A lock's value: a random token, ":", the holder's CLIENT ID (or 0). */
struct redis_lock {
  char token[64];
};

/* Deletes KEYS[1] if it holds ARGV[1], and wakes its waiters. */
static const char unlock_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "redis.call('DEL', KEYS[1]) redis.call('PUBLISH', KEYS[1], '0') "
    "return 1 end return 0";

/* Extends KEYS[1] to ARGV[2] ms if it still holds ARGV[1]. */
static const char renew_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";

/* Subscribes the second connection to channel (opening it first). */
static int subscribe(struct redis_store *r, const char *channel)
{
  redisReply *rep;
  int rc;

  if (r->channel != NULL && strcmp(r->channel, channel) == 0)
    return 0;
  if (r->sub == NULL) {
    rc = dial(r, &r->sub);
    if (rc < 0)
      return rc;
  }
  rep = redisCommand(r->sub, "SUBSCRIBE %s", channel);
  if (rep == NULL)
    return conn_fail(r, r->sub, errno, "lost the connection to");
  if (rep->type == REDIS_REPLY_ERROR)
    return reply_fail(r, rep, "cannot wait for a lock");
  freeReplyObject(rep);
  free(r->channel);
  r->channel = strdup(channel);
  return r->channel ? 0 : CDO__ERR(ENOMEM);
}

/* Waits up to ms for a message on the subscription; 0 either way. */
static int wait_message(struct redis_store *r, int64_t ms)
{
  struct pollfd pfd = {.fd = r->sub->fd, .events = POLLIN};
  redisReply *rep = NULL;
  int n;

  if (redisGetReplyFromReader(r->sub, (void **)&rep) == REDIS_OK &&
      rep != NULL) {
    freeReplyObject(rep);
    return 0;
  }
  do
    n = poll(&pfd, 1, (int)(ms > 3600000 ? 3600000 : ms));
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    return 0;
  if (redisGetReply(r->sub, (void **)&rep) != REDIS_OK)
    return conn_fail(r, r->sub, errno, "lost the connection to");
  freeReplyObject(rep);
  return 0;
}

/*
 * Removes the lock name when its holder's connection is gone: a holder that
 * died (SIGKILL) is noticed within HOLDER_CHECK_MS instead of its lease. A
 * server that refuses CLIENT LIST leaves the lease to expire.
 */
static int break_if_dead(struct redis_store *r, const char *name)
{
  redisReply *val = command(r, "GET %s", name), *cl;
  const char *colon;
  long long id;

  if (val == NULL)
    return no_reply(r);
  colon = val->type == REDIS_REPLY_STRING ? strrchr(val->str, ':') : NULL;
  id = colon ? strtoll(colon + 1, NULL, 10) : 0;
  if (id <= 0) {
    freeReplyObject(val);
    return 0;
  }
  cl = command(r, "CLIENT LIST ID %lld", id);
  if (cl != NULL && cl->type == REDIS_REPLY_STRING && cl->len == 0)
    freeReplyObject(
        command(r, "EVAL %s 1 %s %b", unlock_lua, name, val->str, val->len));
  freeReplyObject(cl);
  freeReplyObject(val);
  return r->base.failed ? no_reply(r) : 0;
}

static int redis_lock(struct cdo_store *s, const struct cdo__key *k,
                      int64_t wait_ms, void **lk)
{
  struct redis_store *r = rs(s);
  int64_t deadline = cdo__mono_ms() + wait_ms;
  struct redis_lock *l = calloc(1, sizeof(*l));
  unsigned char token[16];
  char *name = key_name(r, k, ":lock");
  int rc = 0;

  *lk = NULL;
  if (l == NULL || name == NULL) {
    free(l);
    free(name);
    return CDO__ERR(ENOMEM);
  }
  randombytes_buf(token, sizeof(token));
  sodium_bin2hex(l->token, 33, token, sizeof(token));
  cdo__fmt(l->token + 32, sizeof(l->token) - 32, ":%lld", client_id(r));
  for (;;) {
    redisReply *rep =
        command(r, "SET %s %s NX PX %d", name, l->token, LOCK_LEASE_MS);
    int64_t left = deadline - cdo__mono_ms(), pttl = -1;

    if (rep == NULL) {
      rc = no_reply(r);
      break;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
      rc = reply_fail(r, rep, "cannot take a lock");
      break;
    }
    if (rep->type == REDIS_REPLY_STATUS) {
      freeReplyObject(rep);
      *lk = l;
      l = NULL;
      break;
    }
    freeReplyObject(rep);
    if (left <= 0) {
      rc = CDO__ERR(EAGAIN);
      break;
    }
    if (r->channel == NULL || strcmp(r->channel, name) != 0) {
      /* Subscribe, then try again: the release may fall in between. */
      rc = subscribe(r, name);
      if (rc < 0)
        break;
      continue;
    }
    /* Wake on the release, or when the holder's lease runs out. */
    rep = command(r, "PTTL %s", name);
    if (rep == NULL) {
      rc = no_reply(r);
      break;
    }
    if (rep->type == REDIS_REPLY_INTEGER)
      pttl = rep->integer;
    freeReplyObject(rep);
    if (pttl == -2)
      continue; /* released meanwhile */
    if (pttl >= 0 && pttl + 1 < left)
      left = pttl + 1;
    if (left > HOLDER_CHECK_MS)
      left = HOLDER_CHECK_MS;
    rc = wait_message(r, left);
    if (rc == 0)
      rc = break_if_dead(r, name);
    if (rc < 0)
      break;
  }
  free(l);
  free(name);
  return rc;
}

static void redis_unlock(struct cdo_store *s, const struct cdo__key *k,
                         void *lk)
{
  struct redis_store *r = rs(s);
  struct redis_lock *l = lk;
  char *name;

  if (l == NULL)
    return;
  name = key_name(r, k, ":lock");
  if (name != NULL)
    freeReplyObject(command(r, "EVAL %s 1 %s %s", unlock_lua, name, l->token));
  free(name);
  free(l);
}

static int redis_renew(struct cdo_store *s, const struct cdo__key *k, void *lk)
{
  struct redis_store *r = rs(s);
  struct redis_lock *l = lk;
  char *name = key_name(r, k, ":lock");
  redisReply *rep;
  int rc = 0;

  if (name == NULL)
    return CDO__ERR(ENOMEM);
  rep = command(r, "EVAL %s 1 %s %s %d", renew_lua, name, l->token,
                LOCK_LEASE_MS);
  if (rep == NULL) {
    rc = no_reply(r);
  } else if (rep->type == REDIS_REPLY_ERROR) {
    rc = reply_fail(r, rep, "cannot renew a lock"); /* frees rep */
  } else {
    if (rep->type != REDIS_REPLY_INTEGER || rep->integer != 1)
      rc = cdo__store_fail(s, CDO__ERR(ENOLCK), "the lock was lost");
    freeReplyObject(rep);
  }
  free(name);
  return rc;
}

static const struct cdo__store_locks redis_locks = {
    .lock = redis_lock,
    .unlock = redis_unlock,
    .renew = redis_renew,
};

static const struct cdo__store_counters redis_counters = {
    .count = redis_count,
    .read = redis_read_counters,
    .zero = redis_zero_stats,
};

#define F(field) offsetof(struct redis_store, field)
#define REDIS_OPTIONS                                                          \
  {"timeout", CDO__V_DURATION_POS, "1s", F(timeout_ms), 0},                    \
      {"connect-timeout", CDO__V_DURATION_POS, "250ms", F(connect_timeout_ms), \
       0},                                                                     \
      {"breaker", CDO__V_DURATION, "30s", F(breaker_ms), 0},                   \
      {"password", CDO__V_STRING, NULL, F(opt_pass), 1},                       \
      {"prefix", CDO__V_STRING, NULL, F(prefix), 0},

static const struct cdo__store_opt tcp_options[] = {
    REDIS_OPTIONS{.name = NULL}};
static const struct cdo__store_opt unix_options[] = {
    {"db", CDO__V_NUMBER, NULL, F(db), 0}, REDIS_OPTIONS{.name = NULL}};
#undef F

/* The options of a redis:// URL follow the host, past any '?' in a password. */
static const char *tcp_query(const char *rest)
{
  const char *at = strrchr(rest, '@');

  return strchr(at ? at : rest, '?');
}

static const char *unix_query(const char *rest)
{
  return strchr(rest, '?');
}

/* redis:// and unix:// differ only in how the URL names the server. */
#define REDIS_OPS(scheme_, usage_, about_, options_, query_, check_)           \
  {                                                                            \
    .scheme = scheme_, .name = "redis", .usage = usage_, .about = about_,      \
    .size = sizeof(struct redis_store), .options = options_, .query = query_,  \
    .check = check_, .open = redis_open, .close = redis_close,                 \
    .get = redis_get, .put = redis_put, .del = redis_del,                      \
    .clear = redis_clear, .list = redis_list, .lists_scope = 1,                \
    .stats = redis_stats, .gc = redis_gc, .batch = redis_batch,                \
    .evict = redis_evict, .locks = &redis_locks, .counters = &redis_counters,  \
  }

const struct cdo__store_ops cdo__store_redis_tcp =
    REDIS_OPS("redis://", "redis://HOST[:PORT][/DB]", "a Redis server over TCP",
              tcp_options, tcp_query, check_tcp);
const struct cdo__store_ops cdo__store_redis_unix =
    REDIS_OPS("unix://", "unix:///PATH.sock", "a Redis server on a unix socket",
              unix_options, unix_query, check_unix);
