/* SPDX-License-Identifier: MIT */
/*
 * Upkeep: --gc, and eviction of least-recently-used entries down to
 * --max-size, ordered by the access times that usage.c folds; the hourly
 * upkeep runs both after a miss was stored, never on a hit.
 */
#include "store_int.h"

#include <sys/file.h>

#define MAINTAIN_EVERY_MS 3600000

int cdo_store_gc(struct cdo_store *s, uint64_t *removed)
{
  int64_t now = cdo__now_ms();

  *removed = 0;
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

/* One entry, as the generic eviction sees it. */
struct victim {
  struct cdo__key key;
  uint64_t size;
  int64_t last_use;
};

struct victims {
  struct victim *v;
  size_t n, cap;
  const struct cdo__usage_sum *sm; /* the access times */
  int err;
};

static int hex_nibble(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

static int collect(void *ud, const struct cdo_entry_info *e)
{
  struct victims *vs = ud;
  struct victim *v;
  int i;

  if (vs->n == vs->cap) {
    size_t cap = vs->cap ? vs->cap * 2 : 256;
    struct victim *p = realloc(vs->v, cap * sizeof(*p));

    if (p == NULL) {
      vs->err = CDO__ERR(ENOMEM);
      return 1;
    }
    vs->v = p;
    vs->cap = cap;
  }
  v = &vs->v[vs->n];
  for (i = 0; i < 32; i++) {
    int hi = hex_nibble(e->key[2 * i]), lo = hex_nibble(e->key[2 * i + 1]);

    if (hi < 0 || lo < 0)
      return 0; /* not a key this front end wrote */
    v->key.hash[i] = (unsigned char)(hi << 4 | lo);
  }
  memcpy(v->key.hex, e->key, 65);
  v->size = e->size;
  v->last_use = last_use(vs->sm->at, vs->sm->n_at, v->key.hash, e->created_ms);
  vs->n++;
  return 0;
}

static int cmp_victim(const void *a, const void *b)
{
  const struct victim *x = a, *y = b;

  return (x->last_use > y->last_use) - (x->last_use < y->last_use);
}

static int cmp_prefix(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

  return (x > y) - (x < y);
}

/* Drops the access times of entries that are gone. */
static void prune_atimes(struct cdo__usage_sum *sm, const struct victims *vs,
                         size_t from)
{
  uint64_t *live = malloc((vs->n - from + 1) * sizeof(*live));
  size_t i, k = 0;

  if (live == NULL)
    return;
  for (i = from; i < vs->n; i++)
    live[i - from] = cdo__get64(vs->v[i].key.hash);
  if (vs->n > from)
    qsort(live, vs->n - from, sizeof(*live), cmp_prefix);
  for (i = 0; i < sm->n_at; i++)
    if (bsearch(&sm->at[i].prefix, live, vs->n - from, sizeof(*live),
                cmp_prefix) != NULL)
      sm->at[k++] = sm->at[i];
  sm->n_at = k;
  free(live);
}

/* Evicts under u's exclusive lock; max_bytes UINT64_MAX only prunes. */
static int evict_locked(struct cdo_store *s, struct cdo__usage_log *u,
                        uint64_t max_bytes, uint64_t *removed, uint64_t *freed)
{
  struct victims vs = {NULL, 0, 0, &u->sm, 0};
  uint64_t total = 0;
  size_t i = 0;
  int r = 0;

  if (s->ops->list == NULL)
    return max_bytes == UINT64_MAX
               ? 0
               : cdo__store_fail(s, CDO_EUNSUPP,
                                 "the %s backend cannot evict entries",
                                 s->ops->name);
  r = s->ops->list(s, collect, &vs);
  if (r == 0)
    r = vs.err;
  if (r == 0) {
    for (i = 0; i < vs.n; i++)
      total += vs.v[i].size;
    if (vs.n > 0)
      qsort(vs.v, vs.n, sizeof(*vs.v), cmp_victim);
    for (i = 0; i < vs.n && total > max_bytes && r == 0; i++) {
      r = s->ops->del(s, &vs.v[i].key);
      if (r == 0) {
        total -= vs.v[i].size;
        (*removed)++;
        *freed += vs.v[i].size;
      }
    }
    if (r == 0)
      prune_atimes(&u->sm, &vs, i);
  }
  free(vs.v);
  return r;
}

int cdo_store_evict(struct cdo_store *s, uint64_t max_bytes, uint64_t *removed,
                    uint64_t *freed)
{
  struct cdo__usage_log u;
  int r;

  *removed = *freed = 0;
  if (s->ops->counters != NULL && max_bytes == UINT64_MAX)
    return 0; /* no local access times to prune */
  r = cdo__usage_open(s, &u, LOCK_EX);
  if (r == 0) {
    int w;

    r = evict_locked(s, &u, max_bytes, removed, freed);
    w = cdo__usage_save(s, &u); /* the fold, and pruned access times */
    if (r == 0)
      r = w;
  }
  cdo__usage_close(&u);
  return r;
}

void cdo__store_maintain(struct cdo_store *s)
{
  const struct cdo_config *c = s->cfg;
  uint64_t removed = 0, freed = 0;
  struct cdo__usage_log u;
  int fold_only;

  if (s->ops->counters != NULL ||
      !cdo__usage_due(s, MAINTAIN_EVERY_MS, &fold_only))
    return;
  if (cdo__usage_open(s, &u, LOCK_EX | LOCK_NB) < 0) {
    cdo__usage_close(&u); /* someone else is at it, or no local files */
    return;
  }
  /* Write the summary first: it also stamps the time of this upkeep. */
  if (cdo__usage_save(s, &u) == 0 && !fold_only) {
    if (s->ops->gc != NULL)
      s->ops->gc(s, cdo__now_ms(), &removed);
    cdo__store_locks_gc(s, cdo__now_ms());
    /* Eviction lists every entry: only when a size limit asks for it. */
    if (c->max_size != 0 &&
        evict_locked(s, &u, c->max_size, &removed, &freed) == 0)
      cdo__usage_save(s, &u);
    cdo__explain_prune(s, cdo__now_ms() - 30 * 86400000LL);
  }
  cdo__usage_close(&u);
  s->errmsg[0] = 0; /* upkeep failures are nobody's business */
}
