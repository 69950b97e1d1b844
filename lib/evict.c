/* SPDX-License-Identifier: MIT */
/*
 * Upkeep: --gc, and eviction of least-recently-used entries down to
 * --max-size, ordered by the access times that usage.c folds. The hourly
 * upkeep runs both in a detached child that a stored miss starts, never
 * inside a user's run and never on a hit; it waits for the cache to be
 * quiet before it walks it.
 */
#include "store_int.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAINTAIN_EVERY_MS 3600000
#define QUIET_MS          200   /* no run for this long: the cache is quiet */
#define QUIET_WAIT_MS     60000 /* the upkeep waits at most this for it */

int cdo_store_gc(struct cdo_store *s, uint64_t *removed)
{
  int64_t now = cdo__now_ms();
  int r;

  *removed = 0;
  if ((r = cdo__store_writable(s, "collect garbage in")) < 0)
    return r;
  if (s->ops->gc == NULL)
    return cdo__store_unsupported(s, "collect garbage");
  cdo__store_locks_gc(s, now);
  return s->ops->gc(s, now, removed);
}

/* The last use of the entry with this key: its last read, else created. */
static int64_t last_use(const struct cdo__atime *at, size_t n,
                        const unsigned char key[32], int64_t created_ms)
{
  uint64_t prefix = cdo__get64(key);
  size_t lo = 0, hi = n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (at[mid].prefix < prefix)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < n && at[lo].prefix == prefix && at[lo].time_ms > created_ms)
    return at[lo].time_ms;
  return created_ms;
}

/*
 * Eviction in bounded memory, in rounds of two listings. The first adds up
 * the bytes and keeps a uniform sample (reservoir) of SAMPLE_MAX entries'
 * last use and size; from the sample, oldest first, it estimates the
 * last-use time up to which entries must go. The second deletes the
 * entries used no later than that, in the store's batches, until the bytes
 * are under the limit. A cache no larger than the sample is evicted
 * exactly least recently used first; a larger one approximately, as
 * Redis's sampled LRU does, and another round follows when the estimate
 * fell short.
 */
#define SAMPLE_MAX   65536
#define EVICT_ROUNDS 8

struct sample {
  int64_t last_use;
  uint64_t size;
};

struct evict_round {
  struct cdo_store *s;
  struct cdo__usage_sum *sm; /* access times; NULL: none */
  uint64_t total, n, max_bytes, rng;
  struct sample *smp;
  size_t n_smp;
  int64_t cutoff;
  uint64_t *removed, *freed;
  int err;
};

/* A hex digit's value, else -1: by table, as the digits of random keys
 * would mispredict a branch on '0'-'9' against 'a'-'f' about every third
 * time (a million keys per measuring pass). */
static int hex_nibble(char c)
{
  static const signed char plus1[256] = {
      ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
      ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
      ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16};

  return plus1[(unsigned char)c] - 1;
}

/* The key of a listed entry; -1 when it is not one this front end wrote. */
static int parse_key(const char *hex, struct cdo__key *k)
{
  int i, bad = 0;

  for (i = 0; i < 32; i++) {
    int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);

    bad |= hi | lo; /* negative once one is not a digit */
    k->hash[i] = (unsigned char)((unsigned)hi << 4 | (unsigned)lo);
  }
  if (bad < 0)
    return -1;
  memcpy(k->hex, hex, 64);
  k->hex[64] = 0;
  return 0;
}

static int64_t entry_last_use(const struct evict_round *er,
                              const struct cdo__key *k, int64_t created_ms)
{
  if (er->sm == NULL)
    return created_ms;
  return last_use(er->sm->at, er->sm->n_at, k->hash, created_ms);
}

static uint64_t next_rand(uint64_t *x)
{
  *x ^= *x << 13; /* xorshift64: only spreads the sample */
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static int measure_one(void *ud, const struct cdo_entry_info *e)
{
  struct evict_round *er = ud;
  struct cdo__key k;
  struct sample sp;
  uint64_t j;

  if (parse_key(e->key, &k) < 0)
    return 0;
  sp.last_use = entry_last_use(er, &k, e->created_ms);
  sp.size = e->size;
  er->total += e->size;
  er->n++;
  if (er->n_smp < SAMPLE_MAX)
    er->smp[er->n_smp++] = sp;
  else if ((j = next_rand(&er->rng) % er->n) < SAMPLE_MAX)
    er->smp[j] = sp;
  return 0;
}

static int cmp_sample(const void *a, const void *b)
{
  const struct sample *x = a, *y = b;

  return (x->last_use > y->last_use) - (x->last_use < y->last_use);
}

/*
 * From the sample: the last use up to which entries must go. When the
 * sample is not the whole cache, the estimate aims past the need by
 * 1/256 of the bytes, so that one round nearly always suffices: a round
 * that falls short costs two more walks of the cache for a few entries.
 */
static int64_t estimate_cutoff(struct evict_round *er)
{
  double scale = er->n_smp ? (double)er->n / (double)er->n_smp : 1, cum = 0;
  double need = (double)(er->total - er->max_bytes);
  size_t i;

  if (er->n > er->n_smp)
    need += (double)er->total / 256;

  qsort(er->smp, er->n_smp, sizeof(*er->smp), cmp_sample);
  for (i = 0; i < er->n_smp; i++) {
    cum += (double)er->smp[i].size * scale;
    if (cum >= need)
      return er->smp[i].last_use;
  }
  return INT64_MAX;
}

/* Forgets the access time of a deleted entry (atimes_compact drops it). */
static void drop_atime(struct cdo__usage_sum *sm, const unsigned char key[32])
{
  uint64_t prefix = cdo__get64(key);
  size_t lo = 0, hi = sm->n_at;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (sm->at[mid].prefix < prefix)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < sm->n_at && sm->at[lo].prefix == prefix)
    sm->at[lo].time_ms = INT64_MIN;
}

static void atimes_compact(struct cdo__usage_sum *sm)
{
  size_t i, k = 0;

  for (i = 0; i < sm->n_at; i++)
    if (sm->at[i].time_ms != INT64_MIN)
      sm->at[k++] = sm->at[i];
  sm->n_at = k;
}

static int evict_one(void *ud, const struct cdo_entry_info *e)
{
  struct evict_round *er = ud;
  struct cdo__key k;
  int r;

  if (er->total <= er->max_bytes)
    return 1;
  if (parse_key(e->key, &k) < 0 ||
      entry_last_use(er, &k, e->created_ms) > er->cutoff)
    return 0;
  r = er->s->ops->del(er->s, &k);
  if (r < 0) {
    er->err = r;
    return 1;
  }
  er->total -= e->size < er->total ? e->size : er->total;
  (*er->removed)++;
  *er->freed += e->size;
  if (er->sm != NULL)
    drop_atime(er->sm, k.hash);
  return 0;
}

/* The deleting pass by the store's own evict_older. */
static int evict_older(struct evict_round *er)
{
  uint64_t *keep = NULL, freed = *er->freed;
  size_t i, n = 0;
  int r;

  if (er->sm != NULL && er->sm->n_at > 0) {
    keep = malloc(er->sm->n_at * sizeof(*keep));
    if (keep == NULL)
      return CDO__ERR(ENOMEM);
    for (i = 0; i < er->sm->n_at; i++)
      if (er->sm->at[i].time_ms > er->cutoff)
        keep[n++] = er->sm->at[i].prefix;
  }
  r = er->s->ops->evict_older(er->s, er->cutoff, keep, n,
                              er->total - er->max_bytes, er->removed,
                              er->freed);
  freed = *er->freed - freed;
  er->total -= freed < er->total ? freed : er->total;
  free(keep);
  return r;
}

/* Every entry's key, last use and size: by scan where the store has it. */
static int walk(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  return (s->ops->scan != NULL ? s->ops->scan : s->ops->list)(s, fn, ud);
}

/* One round: measure, then delete; *done once under the limit. */
static int evict_round(struct evict_round *er, int *done)
{
  uint64_t before = *er->removed;
  int r, w;

  er->total = er->n = 0;
  er->n_smp = 0;
  er->err = 0;
  r = walk(er->s, measure_one, er);
  if (r < 0 || er->total <= er->max_bytes) {
    *done = 1;
    return r;
  }
  er->cutoff = estimate_cutoff(er);
  if (er->s->ops->evict_older != NULL) {
    r = evict_older(er);
    *done = r < 0 || er->total <= er->max_bytes || *er->removed == before;
    return r;
  }
  r = cdo__store_batch(er->s, 1);
  if (r == 0)
    r = walk(er->s, evict_one, er);
  if (r == 0)
    r = er->err;
  w = cdo__store_batch(er->s, 0);
  if (r == 0)
    r = w;
  *done = r < 0 || er->total <= er->max_bytes || *er->removed == before;
  return r;
}

/* Evicts down to max_bytes; sm: the access times (NULL: creation only). */
static int evict_locked(struct cdo_store *s, struct cdo__usage_sum *sm,
                        uint64_t max_bytes, uint64_t *removed, uint64_t *freed)
{
  struct evict_round er;
  int r = 0, done = 0, round;

  if (s->ops->list == NULL)
    return cdo__store_fail(s, CDO_EUNSUPP,
                           "the %s backend cannot evict entries", s->ops->name);
  memset(&er, 0, sizeof(er));
  er.s = s;
  er.sm = sm;
  er.max_bytes = max_bytes;
  er.removed = removed;
  er.freed = freed;
  er.rng = (uint64_t)cdo__now_ms() | 1;
  er.smp = malloc(SAMPLE_MAX * sizeof(*er.smp));
  if (er.smp == NULL)
    return CDO__ERR(ENOMEM);
  for (round = 0; round < EVICT_ROUNDS && !done; round++)
    r = evict_round(&er, &done);
  free(er.smp);
  if (sm != NULL)
    atimes_compact(sm);
  return r;
}

int cdo_store_evict(struct cdo_store *s, uint64_t max_bytes, uint64_t *removed,
                    uint64_t *freed)
{
  struct cdo__usage_log u;
  int r;

  *removed = *freed = 0;
  if ((r = cdo__store_writable(s, "evict from")) < 0)
    return r;
  if (s->ops->counters != NULL) {
    /* No local access times: the order of creation. */
    if (max_bytes == UINT64_MAX)
      return 0;
    if (s->ops->evict != NULL)
      return s->ops->evict(s, max_bytes, removed, freed);
    return evict_locked(s, NULL, max_bytes, removed, freed);
  }
  r = cdo__usage_open(s, &u, LOCK_EX);
  if (r == 0) {
    int w = 0;

    if (max_bytes != UINT64_MAX)
      r = evict_locked(s, &u.sm, max_bytes, removed, freed);
    w = cdo__usage_save(s, &u); /* the fold, and dropped access times */
    if (r == 0)
      r = w;
  }
  cdo__usage_close(&u);
  return r;
}

/*
 * Claims the hourly upkeep: when P-upkeep is missing or older than the
 * interval, stamps it now (so the misses that follow leave it be) and
 * says so. One stat(2) when not due.
 */
static int upkeep_claim(struct cdo_store *s)
{
  char path[PATH_MAX];
  struct stat st;
  int fd;

  if (cdo__store_local_file(s, "-upkeep", path, sizeof(path), 0) < 0)
    return 0;
  if (stat(path, &st) == 0 &&
      cdo__now_ms() - cdo__mtime_ms(&st) < MAINTAIN_EVERY_MS)
    return 0;
  fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
  if (fd < 0)
    return 0;
  futimens(fd, NULL);
  close(fd);
  return 1;
}

/*
 * In the detached upkeep, before its walks: waits until the cache is
 * quiet, QUIET_WAIT_MS at most: no run at work (holding a single-flight
 * lock: a miss between its lock and its put) and none that used the cache
 * in the last QUIET_MS (each hit and miss appends a record to P-usage,
 * whose mtime so says when the last one did). So a burst of runs, such as
 * the misses that follow the one that started the upkeep, is not slowed
 * by a walk of the whole cache beside it; a busy cache still gets its
 * upkeep, at most that much later.
 */
static void wait_quiet(const char *usage, const char *lock)
{
  int64_t start = cdo__mono_ms(), last;
  struct stat st;

  while (cdo__mono_ms() - start < QUIET_WAIT_MS) {
    last = usage[0] == 0 || stat(usage, &st) < 0 ? 0 : cdo__mtime_ms(&st);
    if (cdo__now_ms() - last >= QUIET_MS &&
        (lock[0] == 0 || !cdo__runs_at_work(lock)))
      return;
    usleep(QUIET_MS * 1000 / 4);
  }
}

/*
 * The upkeep itself, in the detached child: waits for the usage lock
 * (hourly) or leaves at once when another process holds it (fold only),
 * folds the usage records, and hourly removes the expired, evicts down to
 * max-size and prunes old explain data. Leaves u open (and locked): the
 * caller releases it last.
 */
static void upkeep(struct cdo_store *s, int hourly, struct cdo__usage_log *u)
{
  const struct cdo_config *c = s->cfg;
  uint64_t removed = 0, freed = 0;

  alarm(600); /* a lock never released ends the wait, and this process */
  if (cdo__usage_open(s, u, hourly ? LOCK_EX : LOCK_EX | LOCK_NB) < 0)
    return;
  alarm(0);
  if (cdo__usage_save(s, u) == 0 && hourly) {
    if (s->ops->gc != NULL)
      s->ops->gc(s, cdo__now_ms(), &removed);
    cdo__store_locks_gc(s, cdo__now_ms());
    /* Eviction lists the cache: only when a size limit asks for it. */
    if (c->max_size != 0 &&
        evict_locked(s, &u->sm, c->max_size, &removed, &freed) == 0)
      cdo__usage_save(s, u);
    cdo__explain_prune(s, cdo__now_ms() - 30 * 86400000LL);
  }
}

/*
 * Claims the tidying of the tiers whose writes asked for it: for each,
 * flock(2) LOCK_EX | LOCK_NB on its file P-tidy, which the child inherits
 * and holds until it is done, so that one child at a time tidies a cache
 * and a miss that finds one at work starts none. Sets bit i of *tiers for
 * tier i claimed, its descriptor in fds[i]; returns how many.
 */
#define TIDY_TIERS 8
static int tidy_claim(struct cdo_store *s, unsigned *tiers, int fds[])
{
  char path[PATH_MAX];
  int i, n = 0;

  *tiers = 0;
  for (i = 0; s != NULL && i < TIDY_TIERS; s = s->next, i++) {
    fds[i] = -1;
    if (!s->tidy || s->ops->tidy == NULL ||
        cdo__store_local_file(s, "-tidy", path, sizeof(path), 0) < 0)
      continue;
    fds[i] =
        open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
    if (fds[i] >= 0 && flock(fds[i], LOCK_EX | LOCK_NB) < 0) {
      close(fds[i]);
      fds[i] = -1;
    }
    if (fds[i] >= 0) {
      *tiers |= 1u << i;
      n++;
    }
  }
  return n;
}

static void tidy_release(unsigned tiers, const int fds[])
{
  int i;

  for (i = 0; i < TIDY_TIERS; i++)
    if (tiers & 1u << i)
      close(fds[i]);
}

/* What a stored miss leaves to do, for a child forked once s is closed. */
struct cdo__upkeep {
  const struct cdo_config *cfg;
  unsigned tiers;      /* the tiers whose tidying was claimed */
  int fds[TIDY_TIERS]; /* their P-tidy files, flock(2)ed */
  int due, hourly, idle;
  char usage[PATH_MAX]; /* what wait_quiet looks at ("": nothing) */
  char lock[PATH_MAX];
};

struct cdo__upkeep *cdo__store_maintain(struct cdo_store *s)
{
  struct cdo__upkeep *u = calloc(1, sizeof(*u));
  struct cdo_store *t;
  int fold_only = 0, i;

  if (u == NULL)
    return NULL; /* a later miss */
  tidy_claim(s, &u->tiers, u->fds);
  if (s->ops->counters == NULL) {
    u->hourly = upkeep_claim(s);
    u->due = u->hourly ||
             (cdo__usage_due(s, MAINTAIN_EVERY_MS, &fold_only) && fold_only);
  }
  if (!u->due && u->tiers == 0) {
    free(u);
    return NULL;
  }
  u->cfg = s->cfg;
  for (i = 0, t = s; i < TIDY_TIERS && t != NULL; i++, t = t->next)
    if (u->tiers & 1u << i)
      t->tidy = 0;
  /* What the wait for a quiet cache looks at, found while s is open; the
   * wait holds no connection to the cache open. */
  if (u->due) {
    u->idle = s->ops->idle_upkeep;
    if (cdo__store_local_file(s, "-usage", u->usage, sizeof(u->usage), 0) < 0)
      u->usage[0] = 0;
    if (cdo__store_lock_path(s, u->lock, sizeof(u->lock)) < 0)
      u->lock[0] = 0;
  }
  return u;
}

void cdo__upkeep_drop(struct cdo__upkeep *u)
{
  if (u != NULL)
    tidy_release(u->tiers, u->fds);
  free(u);
}

void cdo__upkeep_start(struct cdo__upkeep *u)
{
  struct cdo__usage_log ul = {.fd = -1};
  struct cdo_store *own = NULL;
  char err[300];
  int i;

  if (u == NULL)
    return;
  /* A detached child (`x=$(cachedo ...)` does not wait for it) with its
   * own store. The tidy runs at the caller's priority: SQLite's holds the
   * write lock across an fsync, and a niced holder that busy CPUs kept
   * waiting would keep the misses behind it waiting too. The upkeep after
   * it is niced, and idle where the backend allows. */
  if (cdo__detach() != 0) {
    cdo__upkeep_drop(u); /* the parent, or fork failed: a later miss */
    return;
  }
  if (u->tiers != 0 && cdo_store_open(&own, u->cfg, err, sizeof(err)) == 0)
    for (i = 0; i < TIDY_TIERS; i++) {
      struct cdo_store *t = u->tiers & 1u << i ? cdo_store_tier(own, i) : NULL;

      if (t != NULL && t->ops->tidy != NULL)
        t->ops->tidy(t);
    }
  tidy_release(u->tiers, u->fds);
  if (u->due) {
    cdo_store_close(own);
    own = NULL;
    cdo__background(u->idle);
    wait_quiet(u->usage, u->lock);
    if (cdo_store_open(&own, u->cfg, err, sizeof(err)) == 0)
      upkeep(own, u->hourly, &ul);
  }
  /* The usage lock goes last: once it is free, this process holds no file
   * in the cache, so a waiter may remove or unmount it. (No chdir("/"):
   * a relative cache path is resolved against the inherited cwd.) */
  cdo_store_close(own);
  cdo__usage_close(&ul);
  _exit(0);
}
