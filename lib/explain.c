/* SPDX-License-Identifier: MIT */
/*
 * Why did this miss? Each stored result leaves the digests of its key
 * components (never values) in a small side file keyed by the command's
 * argv; a later miss of the same command compares its own components with
 * the nearest remembered set and names what differs.
 *
 * All commands share one append-only log, P-explain.log, P being the
 * store's local path prefix (store_int.h): a stored miss appends one
 * record with a single O_APPEND write, reading nothing; once the log
 * passes LOG_MAX bytes the writer renames it to P-explain.old (the
 * generation before is dropped), so the two stay under 2 * LOG_MAX
 * whatever the number of commands, and no file is kept per command. A
 * reader (-v, --explain -v) scans both for the command's records, newest
 * last. The items are the hashed parts of the key's components (the table
 * in key.c), argv aside:
 *
 *   record = u8(0xe8) u8(0) u16(0) u32(len) 8-byte argv digest set{len bytes}
 *            u64(cdo__sum of the record before it)
 *   set    = i64(stored ms) u32(count) item{count}
 *   item   = u8(type) u32(len) name 8-byte digest
 *   type   = 'x' executable | 'c' cwd | 'e' variable (name: its name)
 *          | 'p' --pure | 't' --tty | 'f' --file (name: its path) | 's' stdin |
 * 'o' scope
 *
 * A record that does not check out (torn by a crash) is skipped, one byte
 * at a time, until one does.
 *
 * A digest is SipHash-2-4 (crypto_shorthash) of the type and the value,
 * keyed with the first 16 bytes of the cache's salt: a miss stores one per
 * component, so it has to be cheap, and without the salt nobody can check
 * a guessed value against it. The salt is 32 random bytes in the file
 * P-salt, made with mode 0600 the first time the cache needs it.
 */
#include "job.h"
#include "store_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC_MAGIC 0xe8 /* 0xe7: digests under a fixed key */
#define REC_HEAD  16
#define SETS_MAX  8
#define LOG_MAX   (8 << 20)

struct item {
  unsigned char type;
  const char *name; /* borrowed: from the job, or from the file's bytes */
  size_t name_len;
  unsigned char d[8];
};

struct set {
  int64_t stored_ms;
  struct item *items;
  size_t n;
};

/* ---- the salt ----------------------------------------------------------- */

/* Reads the salt file at path into salt: 0, or -errno / CDO_ECORRUPT. */
static int salt_read(const char *path, unsigned char salt[CDO__SALT_LEN])
{
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY), r;

  if (fd < 0)
    return CDO__ERR(errno);
  r = fstat(fd, &st) < 0 ? CDO__ERR(errno) : 0;
  if (r == 0 && (!S_ISREG(st.st_mode) || st.st_size != CDO__SALT_LEN))
    r = CDO_ECORRUPT;
  if (r == 0)
    r = cdo__pread_all(fd, salt, CDO__SALT_LEN, 0);
  close(fd);
  return r;
}

/* Makes the salt file at path, unless another process made it first. */
static int salt_make(const char *path, unsigned char salt[CDO__SALT_LEN])
{
  char tmp[PATH_MAX + 16];
  int fd, r;

  cdo__fmt(tmp, sizeof(tmp), "%s.XXXXXX", path);
  fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
  if (fd < 0)
    return CDO__ERR(errno);
  if (sodium_init() < 0) {
    close(fd);
    unlink(tmp);
    return CDO__ERR(EIO);
  }
  randombytes_buf(salt, CDO__SALT_LEN);
  r = cdo__write_all(fd, salt, CDO__SALT_LEN);
  close(fd);
  /* link(2) fails on an existing file: the first salt made stays. */
  if (r == 0 && link(tmp, path) < 0)
    r = errno == EEXIST ? salt_read(path, salt) : CDO__ERR(errno);
  unlink(tmp);
  return r;
}

int cdo__store_salt(struct cdo_store *s, int create, const unsigned char **salt)
{
  char path[PATH_MAX];
  int r;

  *salt = NULL;
  if (!s->salted) {
    create = create && !s->read_only;
    r = cdo__store_local_file(s, "-salt", path, sizeof(path), create);
    if (r < 0)
      return r;
    r = salt_read(path, s->salt);
    if (r == CDO__ERR(ENOENT) && create)
      r = salt_make(path, s->salt);
    if (r < 0)
      return r;
    s->salted = 1;
  }
  *salt = s->salt;
  return 0;
}

void cdo_job_explain(const struct cdo_job *j, struct cdo_store *s,
                     cdo_explain_fn fn, void *ud)
{
  const unsigned char *salt = NULL;

  if (s != NULL)
    cdo__store_salt(s, 1, &salt);
  cdo__job_explain(j, salt, fn, ud);
}

/* ---- digests ------------------------------------------------------------- */

static void digest(const unsigned char *salt, unsigned char type, const void *a,
                   size_t an, const void *b, size_t bn, unsigned char out[8])
{
  unsigned char buf[512], *m = buf;
  size_t n = 1 + an + (b ? bn : 0);

  if (n > sizeof(buf) && (m = malloc(n)) == NULL) {
    memset(out, 0, 8); /* explanations are best effort */
    return;
  }
  m[0] = type;
  memcpy(m + 1, a, an);
  if (b != NULL)
    memcpy(m + 1 + an, b, bn);
  crypto_shorthash(out, m, n, salt); /* its first 16 bytes */
  if (m != buf)
    free(m);
}

struct set_builder {
  struct set *st;
  const unsigned char *salt;
  size_t cap;
  int r;
};

/* One hashed part of the job's key as an item of the set. */
static void add_part(void *ud, const struct cdo__key_comp *c,
                     const struct cdo__key_part *p)
{
  struct set_builder *sb = ud;
  struct item *it;

  if (c->type == 0 || !p->hashed || sb->r < 0)
    return; /* argv names the side file itself */
  if (sb->st->n == sb->cap) {
    size_t cap = sb->cap ? 2 * sb->cap : 16;
    struct item *v = realloc(sb->st->items, cap * sizeof(*v));

    if (v == NULL) {
      sb->r = CDO__ERR(ENOMEM);
      return;
    }
    sb->st->items = v;
    sb->cap = cap;
  }
  it = &sb->st->items[sb->st->n++];
  it->type = c->type;
  it->name = p->name ? p->name : "";
  it->name_len = p->name ? p->name_len : 0;
  if (p->v1 == NULL)
    memset(it->d, 0, sizeof(it->d)); /* a flag */
  else
    digest(sb->salt, c->type, p->v1, p->n1, p->v2, p->n2, it->d);
}

/* The job's components; items borrow from j. */
static int job_set(const struct cdo_job *j, const unsigned char *salt,
                   struct set *st)
{
  struct set_builder sb = {st, salt, 0, 0};

  st->stored_ms = cdo__now_ms();
  st->n = 0;
  sb.cap = j->n_env + j->n_files + 8; /* every part, at most */
  st->items = malloc(sb.cap * sizeof(*st->items));
  if (st->items == NULL)
    return CDO__ERR(ENOMEM);
  cdo__key_walk(j, 0, NULL, add_part, &sb);
  if (sb.r < 0) {
    free(st->items);
    st->items = NULL;
  }
  return sb.r;
}

/* The log's paths, and the first 8 bytes of j's argv digest. */
static int log_paths(const struct cdo_job *j, struct cdo_store *s, char *log,
                     char *old, size_t len, unsigned char argv[8])
{
  unsigned char d[32];
  int r;

  r = cdo__store_local_file(s, "-explain.log", log, len, 0);
  if (r == 0)
    r = cdo__store_local_file(s, "-explain.old", old, len, 0);
  if (r < 0)
    return r;
  cdo__key_argv_digest(j, d);
  memcpy(argv, d, 8);
  return 0;
}

/* ---- the log ------------------------------------------------------------- */

/* The newest distinct sets of one command, newest first. */
struct side {
  unsigned char *bytes[2]; /* the two files; names point into them */
  struct set sets[SETS_MAX];
  size_t n;
};

static void side_release(struct side *sd)
{
  size_t i;

  for (i = 0; i < sd->n; i++)
    free(sd->sets[i].items);
  free(sd->bytes[0]);
  free(sd->bytes[1]);
  memset(sd, 0, sizeof(*sd));
}

/* Parses a set of n bytes at p into *set (items point into p); 0 or -1. */
static int parse_set(const unsigned char *p, size_t n, struct set *set)
{
  const unsigned char *end = p + n;
  uint32_t k;

  if (n < 12)
    return -1;
  set->stored_ms = (int64_t)cdo__get64(p);
  k = cdo__get32(p + 8);
  p += 12;
  if ((size_t)(end - p) / 13 < k)
    return -1;
  set->items = calloc(k + 1, sizeof(*set->items));
  if (set->items == NULL)
    return -1;
  for (set->n = 0; set->n < k; set->n++) {
    struct item *it = &set->items[set->n];
    uint32_t nl;

    if (end - p < 5)
      break;
    it->type = p[0];
    nl = cdo__get32(p + 1);
    p += 5;
    if ((size_t)(end - p) < (size_t)nl + 8)
      break;
    it->name = (const char *)p;
    it->name_len = nl;
    memcpy(it->d, p + nl, 8);
    p += nl + 8;
  }
  if (set->n == k)
    return 0;
  free(set->items);
  set->items = NULL;
  return -1;
}

typedef void (*diff_fn)(void *ud, const struct item *now,
                        const struct item *then);
static size_t diff(const struct set *now, const struct set *then, diff_fn fn,
                   void *ud);

/* Keeps set as the newest of sd, unless sd has it already. */
static void side_keep(struct side *sd, struct set *set)
{
  size_t i;

  for (i = 0; i < sd->n; i++) {
    if (diff(set, &sd->sets[i], NULL, NULL) == 0) {
      struct set same = sd->sets[i];

      /* The same inputs, stored again: one set, as new as the newest. */
      same.stored_ms = set->stored_ms;
      free(set->items);
      memmove(sd->sets + 1, sd->sets, i * sizeof(*sd->sets));
      sd->sets[0] = same;
      return;
    }
  }
  if (sd->n == SETS_MAX)
    free(sd->sets[--sd->n].items);
  memmove(sd->sets + 1, sd->sets, sd->n * sizeof(*sd->sets));
  sd->sets[0] = *set;
  sd->n++;
}

/* Adds the sets of argv's records in the file at path, oldest first. */
static void side_scan(const char *path, const unsigned char argv[8],
                      struct side *sd, int which)
{
  unsigned char *p;
  struct stat st;
  size_t n, at = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

  if (fd < 0)
    return;
  if (fstat(fd, &st) < 0 || st.st_size < REC_HEAD + 8 ||
      st.st_size > 4 * (off_t)LOG_MAX ||
      (p = malloc((size_t)st.st_size)) == NULL) {
    close(fd);
    return;
  }
  n = (size_t)st.st_size;
  if (cdo__pread_all(fd, p, n, 0) < 0) {
    close(fd);
    free(p);
    return;
  }
  close(fd);
  sd->bytes[which] = p;
  while (at + REC_HEAD + 8 <= n) {
    const unsigned char *r = p + at;
    size_t len = cdo__get32(r + 4);
    struct set set;

    if (r[0] != REC_MAGIC || len > n - at - REC_HEAD - 8 ||
        cdo__get64(r + REC_HEAD + len) != cdo__sum(r, REC_HEAD + len)) {
      at++; /* torn or foreign: find the next good record */
      continue;
    }
    at += REC_HEAD + len + 8;
    if (memcmp(r + 8, argv, 8) == 0 && parse_set(r + REC_HEAD, len, &set) == 0)
      side_keep(sd, &set);
  }
}

/* The newest sets of argv's command; none when there is no log. */
static void side_read(const char *log, const char *old,
                      const unsigned char argv[8], struct side *sd)
{
  memset(sd, 0, sizeof(*sd));
  side_scan(old, argv, sd, 0);
  side_scan(log, argv, sd, 1);
}

static int same_item(const struct item *a, const struct item *b)
{
  return a->type == b->type && a->name_len == b->name_len &&
         memcmp(a->name, b->name, a->name_len) == 0;
}

/* The item of set named like it, or NULL. */
static const struct item *find(const struct set *set, const struct item *it)
{
  size_t i;

  for (i = 0; i < set->n; i++)
    if (same_item(&set->items[i], it))
      return &set->items[i];
  return NULL;
}

/* Calls fn (when non-NULL) per difference; returns how many. */
static size_t diff(const struct set *now, const struct set *then, diff_fn fn,
                   void *ud)
{
  size_t i, n = 0;

  for (i = 0; i < now->n; i++) {
    const struct item *t = find(then, &now->items[i]);

    if (t == NULL || memcmp(t->d, now->items[i].d, 8) != 0) {
      n++;
      if (fn)
        fn(ud, &now->items[i], t);
    }
  }
  for (i = 0; i < then->n; i++) {
    if (find(now, &then->items[i]) == NULL) {
      n++;
      if (fn)
        fn(ud, NULL, &then->items[i]);
    }
  }
  return n;
}

static void put_set(struct cdo__buf *b, const struct set *set, int *r)
{
  size_t i;

  *r |= cdo__buf_u64(b, (uint64_t)set->stored_ms);
  *r |= cdo__buf_u32(b, (uint32_t)set->n);
  for (i = 0; i < set->n; i++) {
    *r |= cdo__buf_u8(b, set->items[i].type);
    *r |= cdo__buf_u32(b, (uint32_t)set->items[i].name_len);
    *r |= cdo__buf_add(b, set->items[i].name, set->items[i].name_len);
    *r |= cdo__buf_add(b, set->items[i].d, 8);
  }
}

/* A record made ahead of its append (cdo__explain_prepare). */
struct cdo__explain_rec {
  char log[PATH_MAX], old[PATH_MAX];
  struct cdo__buf b;
};

void cdo__explain_prepare(struct cdo_job *j, struct cdo_store *s)
{
  struct cdo__explain_rec *x;
  unsigned char argv[8];
  struct set now;
  const unsigned char *salt;
  int r = 0;

  if (s == NULL || j->explain != NULL || (x = calloc(1, sizeof(*x))) == NULL)
    return;
  if (log_paths(j, s, x->log, x->old, sizeof(x->log), argv) < 0 ||
      cdo__store_salt(s, 1, &salt) < 0 || job_set(j, salt, &now) < 0) {
    free(x);
    return;
  }
  r |= cdo__buf_u8(&x->b, REC_MAGIC);
  r |= cdo__buf_u8(&x->b, 0);
  r |= cdo__buf_add(&x->b, "\0\0", 2);
  r |= cdo__buf_u32(&x->b, 0); /* the length, patched below */
  r |= cdo__buf_add(&x->b, argv, 8);
  put_set(&x->b, &now, &r);
  if (r == 0) {
    cdo__put32(x->b.p + 4, (uint32_t)(x->b.len - REC_HEAD));
    r = cdo__buf_u64(&x->b, cdo__sum(x->b.p, x->b.len));
  }
  free(now.items);
  if (r == 0)
    j->explain = x;
  else
    cdo__explain_drop(x);
}

void cdo__explain_drop(struct cdo__explain_rec *x)
{
  if (x != NULL)
    cdo__buf_release(&x->b);
  free(x);
}

void cdo__explain_save(struct cdo_job *j, struct cdo_store *s)
{
  struct cdo__explain_rec *x;
  struct stat st;
  int fd;

  cdo__explain_prepare(j, s);
  x = j->explain;
  j->explain = NULL;
  if (x == NULL)
    return;
  fd = open(x->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
            0600);
  if (fd < 0 && errno == ENOENT &&
      cdo__store_local_file(s, "-explain.log", x->log, sizeof(x->log), 1) == 0)
    fd = open(x->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
              0600);
  if (fd >= 0) {
    /* One write: concurrent appenders do not interleave. */
    if (cdo__write_all(fd, x->b.p, x->b.len) == 0 && fstat(fd, &st) == 0 &&
        st.st_size >= LOG_MAX)
      rename(x->log, x->old); /* the older generation goes */
    close(fd);
  }
  cdo__explain_drop(x);
}

/* ---- telling the differences -------------------------------------------- */

struct teller {
  const struct cdo_job *j;
  const unsigned char *salt;
  cdo_explain_fn fn;
  void *ud;
};

/* Is it a --file that did not exist (key.c hashes "absent" for one)? */
static int file_absent(const struct teller *t, const struct item *it)
{
  unsigned char d[8];

  if (it->type != 'f')
    return 0;
  digest(t->salt, 'f', "absent", 6, NULL, 0, d);
  return memcmp(d, it->d, 8) == 0;
}

/* Is it a --file that is a directory now? */
static int file_tree(const struct cdo_job *j, const struct item *it)
{
  size_t i;

  for (i = 0; it->type == 'f' && i < j->n_files; i++)
    if (strlen(j->files[i].path) == it->name_len &&
        memcmp(j->files[i].path, it->name, it->name_len) == 0)
      return j->files[i].tree;
  return 0;
}

/* What differs in one component, in words; now or then may be NULL. */
static void tell(void *ud, const struct item *now, const struct item *then)
{
  const struct teller *t = ud;
  const struct item *it = now ? now : then;
  const struct cdo__key_comp *c = cdo__key_comp(it->type);
  const char *how = "differs";
  char buf[600];

  if (c != NULL)
    how = c->how[now && then ? 0 : now ? 1 : 2];
  if (now && then && file_absent(t, now))
    how = "absent now";
  else if (now && then && file_absent(t, then))
    how = "present now, absent then";
  else if (now && then && file_tree(t->j, now))
    how = "another tree (names, types, sizes or modification times)";
  if (it->name_len > 0)
    cdo__fmt(buf, sizeof(buf), "%.*s: %s", (int)it->name_len, it->name, how);
  else
    cdo__fmt(buf, sizeof(buf), "%s", how);
  t->fn(t->ud, c ? c->label : "other", buf);
}

static int explain_miss(struct cdo_job *j, struct cdo_store *s,
                        cdo_explain_fn fn, void *ud)
{
  char log[PATH_MAX], old[PATH_MAX], buf[200], age[32];
  struct teller t = {j, NULL, fn, ud};
  unsigned char argv[8];
  struct side sd;
  struct set now;
  const unsigned char *salt;
  size_t i, best = 0, best_n = SIZE_MAX;
  int r;

  r = log_paths(j, s, log, old, sizeof(log), argv);
  if (r < 0)
    return r;
  if (cdo__store_salt(s, 0, &salt) < 0) {
    fn(ud, "nearest", "none"); /* no salt yet: nothing was remembered */
    return 0;
  }
  t.salt = salt;
  r = job_set(j, salt, &now);
  if (r < 0)
    return r;
  side_read(log, old, argv, &sd);
  for (i = 0; i < sd.n; i++) {
    size_t n = diff(&now, &sd.sets[i], NULL, NULL);

    if (n < best_n) {
      best_n = n;
      best = i;
    }
  }
  if (sd.n == 0) {
    fn(ud, "nearest", "none");
  } else {
    cdo_format_duration(now.stored_ms - sd.sets[best].stored_ms, age,
                        sizeof(age));
    if (best_n == 0)
      cdo__fmt(buf, sizeof(buf),
               "stored %s ago with the same inputs "
               "(expired or removed since)",
               age);
    else
      cdo__fmt(buf, sizeof(buf), "stored %s ago; %zu component%s differ%s", age,
               best_n, best_n == 1 ? "" : "s", best_n == 1 ? "s" : "");
    fn(ud, "nearest", buf);
    diff(&now, &sd.sets[best], tell, &t);
  }
  side_release(&sd);
  free(now.items);
  return 0;
}

int cdo_job_explain_miss(struct cdo_job *j, struct cdo_store *s,
                         cdo_explain_fn fn, void *ud)
{
  struct cdo__blob *b = NULL;
  struct cdo__meta m;
  uint64_t joff;
  int r = cdo__store_lookup(s, &j->key, &b, &m, &joff);

  cdo__blob_free(b);
  if (r == CDO__MISS && s->miss_why != NULL)
    fn(ud, "stored", s->miss_why); /* there is one, but it does not count */
  return explain_miss(j, s, fn, ud);
}

int cdo__explain_miss(struct cdo_job *j, struct cdo_store *s, cdo_explain_fn fn,
                      void *ud)
{
  return s != NULL ? explain_miss(j, s, fn, ud) : 0;
}

void cdo__explain_prune(struct cdo_store *s, int64_t older_than_ms)
{
  char dir[PATH_MAX];
  struct dirent *e;
  DIR *d;
  int fd;

  (void)older_than_ms;
  if (cdo__store_local_file(s, "-explain", dir, sizeof(dir), 0) < 0)
    return;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || (d = fdopendir(fd)) == NULL) {
    if (fd >= 0)
      close(fd);
    return;
  }
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      unlinkat(fd, e->d_name, 0);
  closedir(d);
  rmdir(dir);
}
