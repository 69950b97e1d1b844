/* SPDX-License-Identifier: MIT */
/*
 * Usage counters and access times: every run appends one small record to
 * a file next to the cache; --stats and the upkeep (evict.c) fold the
 * records into a summary, whose access times order eviction.
 *
 * Files, for a store whose local path prefix is P (see local_path in
 * store_int.h):
 *
 *   P-usage   append-only records, one O_APPEND write each, no lock taken:
 *     record  = u8(0xc5) u8(outcome) u8(error kind + 1, or 0) u8(flags)
 *               u32(check) i64(time ms) i64(saved ms) 8-byte key prefix
 *     flags bit 0: the key prefix is set; bit 1: a hit that waited for
 *     an identical run, whose i64(saved ms) is u32(saved ms) u32(waited
 *     ms) instead; check: the low 32 bits of cdo__sum over the record with
 *     check zeroed. A record that does not check out is skipped, one byte
 *     at a time, until one does.
 *   P-stats   the summary, replaced whole by rename:
 *     summary = "cdostat2" u64(bytes of P-usage folded) i64(since ms)
 *               u64(count){5, by outcome} i64(saved ms)
 *               u64(waits) i64(waited ms)
 *               u32(kinds) u64(errors){kinds}
 *               u32(n) { 8-byte key prefix i64(last read ms) }{n}
 *               u64(cdo__sum of everything before)
 *     A "cdostat1" summary (before waits were counted) has no waits.
 *
 * Folding takes flock(LOCK_EX) on P-usage (writers never lock it), adds
 * the records past the folded offset, and writes P-stats. Readers take
 * LOCK_SH and add the unfolded tail themselves, writing nothing. When
 * P-usage has grown past ROTATE_BYTES it is truncated after a fold.
 */
#include "store_int.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC_LEN      32
#define REC_MAGIC    0xc5
#define N_OUTCOMES   5
#define SUM_MAGIC    "cdostat2"
#define SUM_MAGIC_V1 "cdostat1"
#define REC_WAITED   2 /* flags: saved and waited as two u32 */
#define ROTATE_BYTES (1 << 20)
#define SUMMARY_MAX  (64 << 20)
#define ATIMES_MAX   (1 << 20)
static int open_file(const char *path, int flags)
{
  return open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
}

/* ---- records ------------------------------------------------------------- */

static uint32_t rec_check(const unsigned char *rec)
{
  unsigned char tmp[REC_LEN];

  memcpy(tmp, rec, REC_LEN);
  memset(tmp + 4, 0, 4);
  return (uint32_t)cdo__sum(tmp, REC_LEN);
}

void cdo__store_record(struct cdo_store *s, const struct cdo__key *k,
                       enum cdo_outcome outcome, int64_t saved_ms, int error)
{
  struct cdo__usage u = {0, saved_ms, outcome, -1, k, 0};

  u.error_kind = error < 0 ? cdo_errkind_of(error) : -1;
  cdo__store_record_usage(s, &u);
}

static uint32_t clamp32(int64_t v)
{
  return v <= 0 ? 0 : v >= UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

void cdo__store_record_usage(struct cdo_store *s, const struct cdo__usage *in)
{
  struct cdo__usage u = *in;
  unsigned char rec[REC_LEN] = {0};
  char path[PATH_MAX];
  int fd;

  if (s == NULL || s->read_only || u.outcome < CDO_HIT ||
      u.outcome > CDO_UNCACHED)
    return; /* a read-only cache is not written, not even counters */
  if (u.time_ms == 0)
    u.time_ms = cdo__now_ms();
  if (s->ops->counters != NULL) {
    s->ops->counters->count(s, &u);
    return;
  }
  rec[0] = REC_MAGIC;
  rec[1] = (unsigned char)u.outcome;
  rec[2] = (unsigned char)(u.error_kind + 1);
  rec[3] = u.key != NULL;
  cdo__put64(rec + 8, (uint64_t)u.time_ms);
  if (u.waited_ms > 0) {
    rec[3] |= REC_WAITED;
    cdo__put32(rec + 16, clamp32(u.saved_ms));
    cdo__put32(rec + 20, clamp32(u.waited_ms));
  } else {
    cdo__put64(rec + 16, (uint64_t)(u.saved_ms > 0 ? u.saved_ms : 0));
  }
  if (u.key != NULL)
    memcpy(rec + 24, u.key->hash, 8);
  cdo__put32(rec + 4, rec_check(rec));
  if (cdo__store_local_file(s, "-usage", path, sizeof(path), 0) < 0)
    return;
  fd = open_file(path, O_WRONLY | O_APPEND | O_CREAT);
  if (fd < 0 && errno == ENOENT &&
      (s->ops->files == NULL || s->ops->files->local_path == NULL) &&
      cdo__store_local_file(s, "-usage", path, sizeof(path), 1) == 0)
    fd = open_file(path, O_WRONLY | O_APPEND | O_CREAT);
  if (fd < 0)
    return;
  if (write(fd, rec, REC_LEN) < 0) {
    /* Counting is best effort: a full disk must not fail the run. */
  }
  close(fd);
}

/* ---- the summary --------------------------------------------------------- */

void cdo__usage_sum_release(struct cdo__usage_sum *sm)
{
  free(sm->at);
  memset(sm, 0, sizeof(*sm));
}

static void summary_zero_counters(struct cdo__usage_sum *sm, int64_t now)
{
  memset(sm->n, 0, sizeof(sm->n));
  memset(sm->kinds, 0, sizeof(sm->kinds));
  sm->saved_ms = 0;
  sm->waits = 0;
  sm->waited_ms = 0;
  sm->since_ms = now;
}

static int add_atime(struct cdo__usage_sum *sm, uint64_t prefix, int64_t t)
{
  if (sm->n_at == sm->cap_at) {
    size_t cap = sm->cap_at ? sm->cap_at * 2 : 64;
    struct cdo__atime *p = realloc(sm->at, cap * sizeof(*p));

    if (p == NULL)
      return CDO__ERR(ENOMEM);
    sm->at = p;
    sm->cap_at = cap;
  }
  sm->at[sm->n_at].prefix = prefix;
  sm->at[sm->n_at++].time_ms = t;
  return 0;
}

static int cmp_atime(const void *a, const void *b)
{
  const struct cdo__atime *x = a, *y = b;

  if (x->prefix != y->prefix)
    return x->prefix < y->prefix ? -1 : 1;
  return (x->time_ms < y->time_ms) - (x->time_ms > y->time_ms);
}

static int cmp_atime_age(const void *a, const void *b)
{
  const struct cdo__atime *x = a, *y = b;

  return (x->time_ms < y->time_ms) - (x->time_ms > y->time_ms);
}

/* Sorts by prefix and keeps each prefix's latest time; caps the table. */
static void atimes_normalize(struct cdo__usage_sum *sm)
{
  size_t i, k = 0;

  if (sm->n_at == 0)
    return;
  qsort(sm->at, sm->n_at, sizeof(*sm->at), cmp_atime);
  for (i = 0; i < sm->n_at; i++)
    if (k == 0 || sm->at[k - 1].prefix != sm->at[i].prefix)
      sm->at[k++] = sm->at[i];
  sm->n_at = k;
  if (sm->n_at > ATIMES_MAX) {
    qsort(sm->at, sm->n_at, sizeof(*sm->at), cmp_atime_age);
    sm->n_at = ATIMES_MAX;
    qsort(sm->at, sm->n_at, sizeof(*sm->at), cmp_atime);
  }
}

/* Adds the valid records of buf[0, n); returns how many bytes were used. */
static size_t fold_records(struct cdo__usage_sum *sm, const unsigned char *buf,
                           size_t n)
{
  size_t p = 0;

  while (p + REC_LEN <= n) {
    const unsigned char *r = buf + p;
    int64_t t;

    if (r[0] != REC_MAGIC || r[1] < CDO_HIT || r[1] > N_OUTCOMES ||
        r[2] > CDO_ERRKIND_COUNT || cdo__get32(r + 4) != rec_check(r)) {
      p++; /* a torn or foreign record: find the next good one */
      continue;
    }
    t = (int64_t)cdo__get64(r + 8);
    sm->n[r[1]]++;
    if (r[2] > 0)
      sm->kinds[r[2] - 1]++;
    if ((r[1] == CDO_HIT || r[1] == CDO_STALE) && (r[3] & REC_WAITED)) {
      sm->saved_ms += cdo__get32(r + 16);
      sm->waits++;
      sm->waited_ms += cdo__get32(r + 20);
    } else if (r[1] == CDO_HIT || r[1] == CDO_STALE) {
      sm->saved_ms += (int64_t)cdo__get64(r + 16);
    }
    if (r[1] == CDO_HIT || r[1] == CDO_STALE) {
      if ((r[3] & 1) && add_atime(sm, cdo__get64(r + 24), t) < 0)
        return p; /* out of memory: fold the rest next time */
    }
    p += REC_LEN;
  }
  return p;
}

/* Folds usage bytes [sm->offset, end) of fd into sm; 0 or -errno. */
static int fold_file(struct cdo__usage_sum *sm, int fd, uint64_t end)
{
  unsigned char *buf;
  size_t cap = REC_LEN * 4096, have = 0;

  if (sm->offset > end)
    sm->offset = 0; /* the file was truncated */
  buf = malloc(cap);
  if (buf == NULL)
    return CDO__ERR(ENOMEM);
  while (sm->offset + have < end) {
    size_t want = cap - have, used;
    ssize_t r;

    if (want > end - sm->offset - have)
      want = (size_t)(end - sm->offset - have);
    r = pread(fd, buf + have, want, (off_t)(sm->offset + have));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    have += (size_t)r;
    used = fold_records(sm, buf, have);
    memmove(buf, buf + used, have - used);
    have -= used;
    sm->offset += used;
    if (used == 0 && have == cap)
      break;
  }
  /* Fewer than REC_LEN bytes left: a record still being written. */
  free(buf);
  atimes_normalize(sm);
  return 0;
}

struct cursor {
  const unsigned char *p;
  size_t n;
  int bad;
};

static uint64_t take64(struct cursor *c)
{
  uint64_t v;

  if (c->n < 8) {
    c->bad = 1;
    return 0;
  }
  v = cdo__get64(c->p);
  c->p += 8;
  c->n -= 8;
  return v;
}

static uint32_t take32(struct cursor *c)
{
  uint32_t v;

  if (c->n < 4) {
    c->bad = 1;
    return 0;
  }
  v = cdo__get32(c->p);
  c->p += 4;
  c->n -= 4;
  return v;
}

/* Reads P-stats; a missing or damaged file leaves sm empty (returns 0). */
static int summary_read(const char *path, struct cdo__usage_sum *sm)
{
  struct cursor c;
  struct stat st;
  unsigned char *buf = NULL;
  uint32_t kinds, i, n;
  int fd, r = 0, v1;

  memset(sm, 0, sizeof(*sm));
  fd = open_file(path, O_RDONLY);
  if (fd < 0)
    return errno == ENOENT ? 0 : CDO__ERR(errno);
  if (fstat(fd, &st) < 0 || st.st_size < 16 + 8 || st.st_size > SUMMARY_MAX)
    goto out;
  buf = malloc((size_t)st.st_size);
  if (buf == NULL) {
    r = CDO__ERR(ENOMEM);
    goto out;
  }
  if (cdo__pread_all(fd, buf, (size_t)st.st_size, 0) < 0)
    goto out;
  c.p = buf;
  c.n = (size_t)st.st_size - 8;
  c.bad = 0;
  v1 = memcmp(buf, SUM_MAGIC_V1, 8) == 0;
  if ((!v1 && memcmp(buf, SUM_MAGIC, 8) != 0) ||
      cdo__get64(buf + c.n) != cdo__sum(buf, c.n))
    goto out;
  c.p += 8;
  c.n -= 8;
  sm->offset = take64(&c);
  sm->since_ms = (int64_t)take64(&c);
  for (i = 1; i <= N_OUTCOMES; i++)
    sm->n[i] = take64(&c);
  sm->saved_ms = (int64_t)take64(&c);
  if (!v1) {
    sm->waits = take64(&c);
    sm->waited_ms = (int64_t)take64(&c);
  }
  kinds = take32(&c);
  for (i = 0; i < kinds && !c.bad; i++) {
    uint64_t v = take64(&c);

    sm->kinds[i < CDO_ERRKIND_COUNT ? i : CDO_ERRKIND_OTHER] += v;
  }
  n = take32(&c);
  if (!c.bad && c.n / 16 < n)
    c.bad = 1;
  for (i = 0; i < n && !c.bad && r == 0; i++) {
    uint64_t prefix = take64(&c);

    r = add_atime(sm, prefix, (int64_t)take64(&c));
  }
  if (c.bad || r < 0) {
    cdo__usage_sum_release(sm);
    goto out;
  }
out:
  free(buf);
  close(fd);
  return r;
}

/* Replaces P-stats with sm, atomically. */
static int summary_write(const char *path, const struct cdo__usage_sum *sm)
{
  struct cdo__buf b = {0};
  char tmp[PATH_MAX + 16];
  size_t i;
  int r = 0, fd;

  r |= cdo__buf_add(&b, SUM_MAGIC, 8);
  r |= cdo__buf_u64(&b, sm->offset);
  r |= cdo__buf_u64(&b, (uint64_t)sm->since_ms);
  for (i = 1; i <= N_OUTCOMES; i++)
    r |= cdo__buf_u64(&b, sm->n[i]);
  r |= cdo__buf_u64(&b, (uint64_t)sm->saved_ms);
  r |= cdo__buf_u64(&b, sm->waits);
  r |= cdo__buf_u64(&b, (uint64_t)sm->waited_ms);
  r |= cdo__buf_u32(&b, CDO_ERRKIND_COUNT);
  for (i = 0; i < CDO_ERRKIND_COUNT; i++)
    r |= cdo__buf_u64(&b, sm->kinds[i]);
  r |= cdo__buf_u32(&b, (uint32_t)sm->n_at);
  for (i = 0; i < sm->n_at; i++) {
    r |= cdo__buf_u64(&b, sm->at[i].prefix);
    r |= cdo__buf_u64(&b, (uint64_t)sm->at[i].time_ms);
  }
  if (r == 0)
    r = cdo__buf_u64(&b, cdo__sum(b.p, b.len));
  if (r < 0) {
    cdo__buf_release(&b);
    return CDO__ERR(ENOMEM);
  }
  cdo__fmt(tmp, sizeof(tmp), "%s.XXXXXX", path);
  fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    r = CDO__ERR(errno);
  } else {
    r = cdo__write_all(fd, b.p, b.len);
    close(fd);
    if (r == 0 && rename(tmp, path) < 0)
      r = CDO__ERR(errno);
    if (r < 0)
      unlink(tmp);
  }
  cdo__buf_release(&b);
  return r;
}

/* ---- folding under the lock ---------------------------------------------- */

/*
 * Opens P-usage and locks it (how: LOCK_SH to read, LOCK_EX to fold,
 * optionally | LOCK_NB), then reads the summary and adds the unfolded
 * records. A store without a usage file yet reads as all zeros.
 */
int cdo__usage_open(struct cdo_store *s, struct cdo__usage_log *u, int how)
{
  struct stat st;
  int r, excl = (how & LOCK_EX) != 0;

  memset(u, 0, sizeof(*u));
  u->fd = -1;
  r = cdo__store_local_file(s, "-usage", u->usage, sizeof(u->usage), excl);
  if (r == 0)
    r = cdo__store_local_file(s, "-stats", u->stats, sizeof(u->stats), 0);
  if (r < 0)
    return cdo__store_fail(s, r, "cannot find the usage file: %s",
                           cdo_strerror(r));
  u->fd = open_file(u->usage, excl ? O_RDWR | O_CREAT : O_RDONLY);
  if (u->fd < 0) {
    r = CDO__ERR(errno);
    if (r == CDO__ERR(ENOENT) && !excl)
      return summary_read(u->stats, &u->sm);
    return cdo__store_fail(s, r, "cannot open '%s': %s", u->usage,
                           cdo_strerror(r));
  }
  if (flock(u->fd, how) < 0) {
    r = CDO__ERR(errno);
    close(u->fd);
    u->fd = -1;
    return r == CDO__ERR(EWOULDBLOCK)
               ? CDO__ERR(EAGAIN)
               : cdo__store_fail(s, r, "cannot lock '%s': %s", u->usage,
                                 cdo_strerror(r));
  }
  r = summary_read(u->stats, &u->sm);
  if (r == 0 && excl && u->sm.since_ms == 0)
    u->sm.since_ms = cdo__now_ms(); /* the first fold starts the count */
  if (r == 0 && fstat(u->fd, &st) < 0)
    r = CDO__ERR(errno);
  if (r == 0)
    r = fold_file(&u->sm, u->fd, (uint64_t)st.st_size);
  if (r < 0)
    return cdo__store_fail(s, r, "cannot read '%s': %s", u->stats,
                           cdo_strerror(r));
  return 0;
}

/*
 * Writes the folded summary (LOCK_EX only) and, when the usage file has
 * grown large and nobody appended since, truncates it.
 */
int cdo__usage_save(struct cdo_store *s, struct cdo__usage_log *u)
{
  struct stat st;
  int r;

  if (u->sm.offset >= ROTATE_BYTES && fstat(u->fd, &st) == 0 &&
      (uint64_t)st.st_size == u->sm.offset && ftruncate(u->fd, 0) == 0)
    u->sm.offset = 0;
  r = summary_write(u->stats, &u->sm);
  if (r < 0)
    return cdo__store_fail(s, r, "cannot write '%s': %s", u->stats,
                           cdo_strerror(r));
  return 0;
}

void cdo__usage_close(struct cdo__usage_log *u)
{
  if (u->fd >= 0)
    close(u->fd); /* releases the lock */
  u->fd = -1;
  cdo__usage_sum_release(&u->sm);
}

/* ---- the public side ----------------------------------------------------- */

int cdo_store_summary(struct cdo_store *s, struct cdo_stats *st)
{
  struct cdo__usage_log u;
  int r, i;

  r = cdo_store_stats(s, st);
  if (r == CDO_EUNSUPP) {
    memset(st, 0, sizeof(*st));
    r = 0;
  } else if (r == 0) {
    st->listed = 1;
  }
  if (r < 0 || s->ops->counters != NULL) {
    st->counted = r == 0;
    return r;
  }
  r = cdo__usage_open(s, &u, LOCK_SH);
  if (r == 0) {
    st->counted = 1;
    st->hits = u.sm.n[CDO_HIT];
    st->stale = u.sm.n[CDO_STALE];
    st->misses = u.sm.n[CDO_MISS_STORED] + u.sm.n[CDO_MISS_NOT_STORED];
    st->uncached = u.sm.n[CDO_UNCACHED];
    st->saved_ms = u.sm.saved_ms;
    st->waits = u.sm.waits;
    st->waited_ms = u.sm.waited_ms;
    st->since_ms = u.sm.since_ms;
    st->errors = 0;
    for (i = 0; i < CDO_ERRKIND_COUNT; i++) {
      st->error_kinds[i] = u.sm.kinds[i];
      st->errors += u.sm.kinds[i];
    }
  }
  cdo__usage_close(&u);
  return r;
}

int cdo_store_zero_stats(struct cdo_store *s)
{
  struct cdo__usage_log u;
  int r = cdo__store_writable(s, "reset the counters of");

  if (r < 0)
    return r;
  if (s->ops->counters != NULL)
    return s->ops->counters->zero(s);
  r = cdo__usage_open(s, &u, LOCK_EX);
  if (r == 0) {
    summary_zero_counters(&u.sm, cdo__now_ms());
    r = cdo__usage_save(s, &u);
  }
  cdo__usage_close(&u);
  return r;
}

int cdo__usage_due(struct cdo_store *s, int64_t every_ms, int *fold_only)
{
  char path[PATH_MAX];
  struct stat st;
  int64_t now = cdo__now_ms();

  *fold_only = 0;
  if (cdo__store_local_file(s, "-stats", path, sizeof(path), 0) < 0)
    return 0;
  if (stat(path, &st) < 0 || now - cdo__mtime_ms(&st) >= every_ms)
    return 1;
  if (cdo__store_local_file(s, "-usage", path, sizeof(path), 0) == 0 &&
      stat(path, &st) == 0 && st.st_size >= ROTATE_BYTES) {
    *fold_only = 1;
    return 1;
  }
  return 0;
}
