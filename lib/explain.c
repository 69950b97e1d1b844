/* SPDX-License-Identifier: MIT */
/*
 * Why did this miss? Each stored result leaves the digests of its key
 * components (never values) in a small side file keyed by the command's
 * argv; a later miss of the same command compares its own components with
 * the nearest remembered set and names what differs.
 *
 * One file per argv, P-explain/<16 hex digits of cdo__key_argv_digest()>,
 * P being the store's local path prefix (store_int.h), replaced whole by
 * rename. The items are the hashed parts of the key's components (the
 * table in key.c), argv aside:
 *
 *   file  = "cdoexpl2" u32(n) set{n} u64(cdo__sum of everything before)
 *   set   = i64(stored ms) u32(count) item{count}        newest set first
 *   item  = u8(type) u32(len) name 8-byte digest
 *   type  = 'x' executable | 'c' cwd | 'e' variable (name: its name)
 *         | 'p' --pure | 'f' --file (name: its path) | 's' stdin | 'o' scope
 *
 * A digest is SipHash-2-4 (crypto_shorthash, a fixed key) of the type and
 * the value: a miss stores one per component, so it has to be cheap.
 */
#include "job.h"
#include "store_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPL_MAGIC "cdoexpl2"
#define SETS_MAX   8
#define FILE_MAX   (1 << 20)

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

static void digest(unsigned char type, const void *a, size_t an, const void *b,
                   size_t bn, unsigned char out[8])
{
  static const unsigned char key[crypto_shorthash_KEYBYTES] = "cachedo explain";
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
  crypto_shorthash(out, m, n, key);
  if (m != buf)
    free(m);
}

struct set_builder {
  struct set *st;
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
    digest(c->type, p->v1, p->n1, p->v2, p->n2, it->d);
}

/* The job's components; items borrow from j. */
static int job_set(const struct cdo_job *j, struct set *st)
{
  struct set_builder sb = {st, 0, 0};

  st->stored_ms = cdo__now_ms();
  st->n = 0;
  sb.cap = j->n_env + j->n_files + 8; /* every part, at most */
  st->items = malloc(sb.cap * sizeof(*st->items));
  if (st->items == NULL)
    return CDO__ERR(ENOMEM);
  cdo__key_walk(j, 0, add_part, &sb);
  if (sb.r < 0) {
    free(st->items);
    st->items = NULL;
  }
  return sb.r;
}

/* P-explain/<argv digest>: the side file of j's command. */
static int side_path(const struct cdo_job *j, struct cdo_store *s, char *buf,
                     size_t len, char *dir, size_t dirlen)
{
  unsigned char d[32];
  int r;

  r = cdo__store_local_file(s, "-explain", dir, dirlen, 0);
  if (r < 0)
    return r;
  cdo__key_argv_digest(j, d);
  cdo__fmt(buf, len, "%s/%016llx", dir, (unsigned long long)cdo__get64(d));
  return 0;
}

/* ---- the side file ------------------------------------------------------- */

struct side {
  unsigned char *bytes; /* the file; names point into it */
  struct set sets[SETS_MAX];
  size_t n;
};

static void side_release(struct side *sd)
{
  size_t i;

  for (i = 0; i < sd->n; i++)
    free(sd->sets[i].items);
  free(sd->bytes);
  memset(sd, 0, sizeof(*sd));
}

/* Reads the side file; missing or damaged reads as empty. */
static void side_read(const char *path, struct side *sd)
{
  const unsigned char *p, *end;
  struct stat st;
  uint32_t n, i, k;
  int fd;

  memset(sd, 0, sizeof(*sd));
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return;
  if (fstat(fd, &st) < 0 || st.st_size < 20 || st.st_size > FILE_MAX ||
      (sd->bytes = malloc((size_t)st.st_size)) == NULL ||
      cdo__pread_all(fd, sd->bytes, (size_t)st.st_size, 0) < 0) {
    close(fd);
    free(sd->bytes);
    sd->bytes = NULL;
    return;
  }
  close(fd);
  p = sd->bytes;
  end = p + st.st_size - 8;
  if (memcmp(p, EXPL_MAGIC, 8) != 0 ||
      cdo__get64(end) != cdo__sum(p, (size_t)(end - p)))
    goto bad;
  p += 8;
  n = cdo__get32(p);
  p += 4;
  for (i = 0; i < n && i < SETS_MAX; i++) {
    struct set *set = &sd->sets[sd->n];

    if (end - p < 12)
      goto bad;
    set->stored_ms = (int64_t)cdo__get64(p);
    k = cdo__get32(p + 8);
    p += 12;
    if ((size_t)(end - p) / 13 < k)
      goto bad;
    set->items = calloc(k + 1, sizeof(*set->items));
    if (set->items == NULL)
      goto bad;
    sd->n++;
    for (set->n = 0; set->n < k; set->n++) {
      struct item *it = &set->items[set->n];
      uint32_t nl;

      if (end - p < 5)
        goto bad;
      it->type = p[0];
      nl = cdo__get32(p + 1);
      p += 5;
      if ((size_t)(end - p) < (size_t)nl + 8)
        goto bad;
      it->name = (const char *)p;
      it->name_len = nl;
      memcpy(it->d, p + nl, 8);
      p += nl + 8;
    }
  }
  return;
bad:
  side_release(sd);
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

typedef void (*diff_fn)(void *ud, const struct item *now,
                        const struct item *then);

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

void cdo__explain_save(struct cdo_job *j, struct cdo_store *s)
{
  char path[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX + 16], err[256];
  struct cdo__buf b = {0};
  struct side sd;
  struct set now;
  size_t i, kept = 1;
  int r = 0, fd;

  if (s == NULL || side_path(j, s, path, sizeof(path), dir, sizeof(dir)) < 0)
    return;
  if (job_set(j, &now) < 0)
    return;
  side_read(path, &sd);
  if (sd.n > 0 && diff(&now, &sd.sets[0], NULL, NULL) == 0) {
    /* The newest set already is this one (a refresh, an expiry): keep it. */
    side_release(&sd);
    free(now.items);
    return;
  }
  r |= cdo__buf_add(&b, EXPL_MAGIC, 8);
  r |= cdo__buf_u32(&b, 0); /* the count, patched below */
  put_set(&b, &now, &r);
  for (i = 0; i < sd.n && kept < SETS_MAX; i++) {
    if (diff(&now, &sd.sets[i], NULL, NULL) == 0)
      continue; /* the same inputs, stored again */
    put_set(&b, &sd.sets[i], &r);
    kept++;
  }
  if (r == 0) {
    cdo__put32(b.p + 8, (uint32_t)kept);
    r = cdo__buf_u64(&b, cdo__sum(b.p, b.len));
  }
  cdo__fmt(tmp, sizeof(tmp), "%s.XXXXXX", path);
  fd = r == 0 ? mkostemp(tmp, O_CLOEXEC) : -1;
  if (fd < 0 && r == 0 && errno == ENOENT &&
      cdo__store_local_file(s, "-explain", dir, sizeof(dir), 1) == 0 &&
      cdo__mkdir_private(dir, err, sizeof(err)) == 0) {
    cdo__fmt(tmp, sizeof(tmp), "%s.XXXXXX", path);
    fd = mkostemp(tmp, O_CLOEXEC);
  }
  if (fd >= 0) {
    r = cdo__write_all(fd, b.p, b.len);
    close(fd);
    if (r < 0 || rename(tmp, path) < 0)
      unlink(tmp);
  }
  cdo__buf_release(&b);
  side_release(&sd);
  free(now.items);
}

/* ---- telling the differences -------------------------------------------- */

struct teller {
  cdo_explain_fn fn;
  void *ud;
};

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
  if (it->name_len > 0)
    cdo__fmt(buf, sizeof(buf), "%.*s: %s", (int)it->name_len, it->name, how);
  else
    cdo__fmt(buf, sizeof(buf), "%s", how);
  t->fn(t->ud, c ? c->label : "other", buf);
}

int cdo_job_explain_miss(struct cdo_job *j, struct cdo_store *s,
                         cdo_explain_fn fn, void *ud)
{
  char path[PATH_MAX], dir[PATH_MAX], buf[200], age[32];
  struct teller t = {fn, ud};
  struct side sd;
  struct set now;
  size_t i, best = 0, best_n = SIZE_MAX;
  int r;

  r = side_path(j, s, path, sizeof(path), dir, sizeof(dir));
  if (r < 0)
    return r;
  r = job_set(j, &now);
  if (r < 0)
    return r;
  side_read(path, &sd);
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

static void note(void *ud, const char *component, const char *detail)
{
  struct cdo_job *j = ud;

  if (strcmp(component, "nearest") != 0)
    cdo__job_msg(j, 1, "miss: %s %s", component, detail);
  else if (strcmp(detail, "none") == 0)
    cdo__job_msg(j, 1, "miss: no entry of this command was stored before");
  else
    cdo__job_msg(j, 1, "miss: the nearest entry of this command was %s",
                 detail);
}

void cdo__explain_miss_notes(struct cdo_job *j, struct cdo_store *s)
{
  if (s != NULL)
    cdo_job_explain_miss(j, s, note, j);
}

void cdo__explain_prune(struct cdo_store *s, int64_t older_than_ms)
{
  char dir[PATH_MAX];
  struct dirent *e;
  struct stat st;
  DIR *d;
  int fd;

  if (cdo__store_local_file(s, "-explain", dir, sizeof(dir), 0) < 0)
    return;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || (d = fdopendir(fd)) == NULL) {
    if (fd >= 0)
      close(fd);
    return;
  }
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode) &&
        (int64_t)st.st_mtim.tv_sec * 1000 < older_than_ms)
      unlinkat(fd, e->d_name, 0);
  }
  closedir(d);
}
