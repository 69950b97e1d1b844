/* SPDX-License-Identifier: MIT */
/*
 * The directory backend: dir:PATH keeps one file per entry under PATH
 * (mem:, in store_mem.c, is a dir: cache on tmpfs).
 *
 * Layout under the root:
 *
 *   v1/ab/abcdef...          an entry, named by its 64-hex-digit key, in the
 *                            folder named by the key's first two digits
 *   v1/ab/.tmp-0123...       a put in progress (16 random hex digits),
 *                            flock(2)ed by its writer while it lives
 *   v1/locks/cachedo.lock    single-flight byte-range locks (lock.c)
 *   cachedo-usage, ...       the front end's usage counters (usage.c)
 *
 *   file   = entry scope footer
 *   footer = expires_ms:u64 scope_len:u32 "CDOD"
 *
 * The entry is the codec's bytes, as in every backend. The footer keeps what
 * only this backend needs: the writer's expiry (for --gc and --list) and the
 * scope (for --clear --scope), so a file copied elsewhere keeps both.
 *
 * The file's times repeat what whole-cache work needs, so that --gc,
 * --stats and eviction stat(2) each file instead of opening it: mtime =
 * the expiry, plus a stamp in the nanoseconds below the millisecond,
 * 1 + the scope's length + STAMP_SCOPES * a check of both (the entry's
 * size is the file's less footer and scope); atime = the entry's creation.
 * Entry files are opened O_NOATIME, so only a foreign reader moves the
 * atime (which then says when the entry was last read). A file whose
 * times are not such (written by an older version, touched, or with a
 * scope of STAMP_SCOPES bytes or more) is opened, as before: a touch lands
 * on a valid stamp about once in 500 (once in 15 before the check). A put
 * writes a temp file in the entry's folder and swaps it with the entry (see
 * place): a reader sees the old file or the new one. Nothing is fsync'd: a file
 * torn by a crash fails its checksums and is a miss, which removes it.
 */
#include "store_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FOOTER_LEN     16
#define SCOPE_MAX      65535
#define SMALL_MAX      (64 * 1024) /* entries read into memory in one read(2) */
#define TEMP_MAX_AGE_S 3600 /* --gc: older temp and lock files are dead */
#define TEMP_MIN_AGE_S 1    /* --gc: an unlocked temp file this old is dead */
#define TEMP_PREFIX    ".tmp-"
#define TEMP_HEX       16
#define NS_PER_MS      1000000L
#define STAMP_SCOPES   1000 /* shorter scopes are stamped (stamp_times) */
#define UNLINKERS      32   /* threads removing a batch's entries */
#define UNLINK_QUEUE   1024 /* removals waiting for one of them */

/* A path relative to the root, e.g. "v1/ab/abcdef...". */
struct relpath {
  char p[96];
};

/*
 * Removal in a batch (eviction, --gc): unlinking a file whose blocks the
 * filesystem frees (and, mounted with discard, trims) waits for the disk
 * each time; UNLINKERS threads keep that many removals in flight.
 */
struct unlinkers {
  pthread_mutex_t mu;
  pthread_cond_t work, room;
  struct relpath q[UNLINK_QUEUE];
  size_t head, n;        /* the queue: n paths from q[head], circular */
  int stop;              /* leave once the queue is empty */
  int err;               /* the first failure (-errno), 0: none */
  struct relpath failed; /* what it failed to remove */
  pthread_t th[UNLINKERS];
  int started;
};

struct dir_store {
  struct cdo_store base;
  char *root;           /* the directory the URL names */
  char *locks;          /* root/v1/locks */
  char *local;          /* root/cachedo, the front end's files' prefix */
  int fd;               /* root, opened O_PATH */
  struct unlinkers *ul; /* while a batch runs: its removers; else NULL */
};

struct footer {
  int64_t expires_ms;
  uint32_t scope_len;
};

static struct dir_store *ds(struct cdo_store *s)
{
  return (struct dir_store *)s;
}

static void entry_path(struct relpath *rp, const struct cdo__key *k)
{
  cdo__fmt(rp->p, sizeof(rp->p), "v1/%.2s/%s", k->hex, k->hex);
}

static int is_hex(const char *s, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return s[n] == 0;
}

/* ---- damage ------------------------------------------------------------- */

/*
 * Removes name (relative to at) whatever it is, a whole tree included. Only
 * cachedo writes under v1, so anything there that is not what cachedo puts
 * there is damage. 0 or -errno.
 */
static int remove_any(int at, const char *name)
{
  struct dirent *e;
  DIR *dir;
  int fd, r = 0;

  if (unlinkat(at, name, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return CDO__ERR(errno);
  fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : CDO__ERR(errno);
  dir = fdopendir(fd);
  if (dir == NULL) {
    close(fd);
    return CDO__ERR(ENOMEM);
  }
  while ((e = readdir(dir)) != NULL) {
    int q;

    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    q = remove_any(fd, e->d_name);
    if (r == 0)
      r = q;
  }
  closedir(dir);
  if (unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
    r = CDO__ERR(errno);
  return r;
}

/*
 * Makes sure the folder sub of the root ("v1", "v1/ab") is a directory:
 * creates it when missing, and replaces anything else found there, with a
 * warning. 0 or -errno.
 */
static int ensure_dir(struct dir_store *d, const char *sub)
{
  struct stat st;
  int r;

  if (mkdirat(d->fd, sub, 0700) == 0)
    return 0;
  if (errno != EEXIST)
    return CDO__ERR(errno);
  if (fstatat(d->fd, sub, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return CDO__ERR(errno);
  if (S_ISDIR(st.st_mode))
    return 0;
  r = remove_any(d->fd, sub);
  if (r == 0 && mkdirat(d->fd, sub, 0700) < 0 && errno != EEXIST)
    r = CDO__ERR(errno);
  if (r == 0)
    cdo__store_warn(&d->base,
                    "removed '%s/%s', which was not a folder, and made one",
                    d->root, sub);
  return r;
}

/* ---- opening ------------------------------------------------------------- */

static int dir_check_url(const char *rest, char *err, size_t errlen)
{
  if (*rest == 0) {
    cdo__fmt(err, errlen, "no path (expected dir:PATH)");
    return CDO_EBADURL;
  }
  return 0;
}

/*
 * Checks root (creating it 0700 when missing) and opens it. A root that is
 * not a safe directory of ours is refused.
 */
static int open_root(struct dir_store *d, const char *root)
{
  struct cdo_store *s = &d->base;
  int r;

  d->root = strdup(root);
  d->locks = cdo__strjoin(root, "/", "v1/locks");
  d->local = cdo__strjoin(root, "/", "cachedo");
  if (d->root == NULL || d->locks == NULL || d->local == NULL)
    return CDO__ERR(ENOMEM);
  r = cdo__dir_check(root, s->errmsg, sizeof(s->errmsg));
  if (r == CDO__ERR(ENOENT))
    r = cdo__mkdir_private(root, s->errmsg, sizeof(s->errmsg));
  if (r < 0)
    return r;
  /*
   * Started with fd 0, 1 or 2 closed, the root must not take its number:
   * output is replayed there, and the lock and spool files opened next
   * would land on the others. As SQLite does, such a slot gets /dev/null.
   */
  while ((d->fd = open(root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >=
             0 &&
         d->fd <= 2) {
    int slot = d->fd;

    close(slot);
    d->fd = -1;
    if (open("/dev/null", O_RDWR) != slot)
      return cdo__store_fail(s, CDO__ERR(EBADF), "cannot open /dev/null");
  }
  if (d->fd < 0)
    return cdo__store_fail(s, CDO__ERR(errno), "'%s': %s", root,
                           strerror(errno));
  s->errmsg[0] = 0; /* from a check that found no root yet */
  return 0;
}

static int dir_open(struct cdo_store *s, const char *rest)
{
  ds(s)->fd = -1;
  ds(s)->ul = NULL;
  return open_root(ds(s), rest);
}

static int unlinkers_stop(struct dir_store *d);

static void dir_close(struct cdo_store *s)
{
  struct dir_store *d = ds(s);

  unlinkers_stop(d); /* a batch left on ends with the store */
  if (d->fd >= 0)
    close(d->fd);
  free(d->root);
  free(d->locks);
  free(d->local);
}

/* The runner's spool on the entries' filesystem: copies stay in the kernel. */
static const char *dir_spool_dir(struct cdo_store *s)
{
  return ds(s)->root;
}

/*
 * Where lock.c keeps its one file of byte-range locks. Asked for on a miss
 * only, before anything is stored: v1 and v1/locks are made sure of here,
 * which costs two mkdirat(2).
 */
static const char *dir_lock_dir(struct cdo_store *s)
{
  if (ensure_dir(ds(s), "v1") == 0)
    ensure_dir(ds(s), "v1/locks");
  return ds(s)->locks;
}

/* The front end's usage and stats files: root/cachedo-usage and so on. */
static const char *dir_local_path(struct cdo_store *s)
{
  return ds(s)->local;
}

/* ---- reading ------------------------------------------------------------- */

static int parse_footer(const unsigned char *p, uint64_t file_size,
                        struct footer *f)
{
  if (memcmp(p + 12, "CDOD", 4) != 0)
    return CDO_ECORRUPT;
  f->expires_ms = (int64_t)cdo__get64(p);
  f->scope_len = cdo__get32(p + 8);
  if (f->scope_len > SCOPE_MAX || f->scope_len > file_size - FOOTER_LEN)
    return CDO_ECORRUPT;
  return 0;
}

/* The bytes of the entry itself: the file minus scope and footer. */
static uint64_t entry_size(uint64_t file_size, const struct footer *f)
{
  return file_size - FOOTER_LEN - f->scope_len;
}

/* read(2) exactly n bytes from the current offset; CDO_ECORRUPT on EOF. */
static int read_all(int fd, unsigned char *p, size_t n)
{
  while (n > 0) {
    ssize_t r = read(fd, p, n);

    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return CDO__ERR(errno);
    if (r == 0)
      return CDO_ECORRUPT;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Checks that fd (with fstat st) is a file of ours and reads its footer. */
static int read_footer(int fd, const struct stat *st, struct footer *f)
{
  unsigned char foot[FOOTER_LEN];
  int r;

  if (!S_ISREG(st->st_mode) || st->st_size < FOOTER_LEN)
    return CDO_ECORRUPT;
  r = cdo__pread_all(fd, foot, FOOTER_LEN, (uint64_t)st->st_size - FOOTER_LEN);
  return r < 0 ? r : parse_footer(foot, (uint64_t)st->st_size, f);
}

/*
 * Opens an entry file to read it without dating the access (the atime is
 * the entry's creation: see stamp_times). Only the owner may ask for
 * that: another's file is opened plainly.
 */
static int open_entry(int at, const char *name)
{
  int fd = openat(at, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);

  if (fd < 0 && errno == EPERM)
    fd = openat(at, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  return fd;
}

/*
 * Opens the file name relative to at and fills *f from its footer. Returns
 * the fd, -ENOENT when there is none, CDO_ECORRUPT when it is not a valid
 * file of ours, or another error. *st gets its fstat.
 */
static int open_file(int at, const char *name, struct stat *st,
                     struct footer *f)
{
  int fd, r;

  fd = open_entry(at, name);
  if (fd < 0)
    return errno == ENOTDIR ? CDO__ERR(ENOENT)
           : errno == ELOOP ? CDO_ECORRUPT
                            : CDO__ERR(errno);
  r = fstat(fd, st) < 0 ? CDO__ERR(errno) : read_footer(fd, st, f);
  if (r < 0) {
    close(fd);
    return r;
  }
  return fd;
}

/* Does name, relative to at, still name the file st describes? */
static int names_file(int at, const char *name, const struct stat *st)
{
  struct stat now;

  return fstatat(at, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
         now.st_ino == st->st_ino && now.st_dev == st->st_dev;
}

/* A small entry: the whole file in one read(2), scope and footer included. */
static int get_small(int fd, const struct stat *st, struct cdo__blob **out)
{
  size_t n = (size_t)st->st_size;
  unsigned char *p = malloc(n + 1);
  struct footer f;
  int r;

  if (p == NULL)
    return CDO__ERR(ENOMEM);
  r = read_all(fd, p, n);
  if (r == 0)
    r = parse_footer(p + n - FOOTER_LEN, n, &f);
  if (r < 0) {
    free(p);
    return r;
  }
  *out = cdo__blob_from_mem(p, (size_t)entry_size(n, &f));
  return *out ? 0 : CDO__ERR(ENOMEM);
}

static int dir_get(struct cdo_store *s, const struct cdo__key *k,
                   struct cdo__blob **out)
{
  struct dir_store *d = ds(s);
  struct relpath rp;
  struct stat st;
  struct footer f;
  int fd, r;

  *out = NULL;
  entry_path(&rp, k);
  fd = open_entry(d->fd, rp.p);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 0;
    if (errno == ELOOP) { /* not ours: nothing but us writes here */
      unlinkat(d->fd, rp.p, 0);
      return 0;
    }
    return cdo__store_fail(s, CDO__ERR(errno), "cannot open '%s/%s': %s",
                           d->root, rp.p, strerror(errno));
  }
  if (fstat(fd, &st) < 0) {
    r = CDO__ERR(errno);
    close(fd);
    return cdo__store_fail(s, r, "'%s/%s': %s", d->root, rp.p, cdo_strerror(r));
  }
  if (S_ISREG(st.st_mode) && st.st_size >= FOOTER_LEN &&
      st.st_size <= SMALL_MAX) {
    r = get_small(fd, &st, out);
  } else {
    r = read_footer(fd, &st, &f);
    if (r == 0) { /* mapped to verify, sendfile'd to replay */
      *out = cdo__blob_from_fd(fd, entry_size((uint64_t)st.st_size, &f));
      return *out ? 0 : CDO__ERR(ENOMEM); /* the blob owns fd */
    }
  }
  close(fd);
  if (r == CDO_ECORRUPT) { /* a torn or foreign file: a miss, and it goes */
    if (names_file(d->fd, rp.p, &st)) /* and not a newer put */
      remove_any(d->fd, rp.p);
    return 0;
  }
  if (r < 0)
    return cdo__store_fail(s, r, "cannot read '%s/%s': %s", d->root, rp.p,
                           cdo_strerror(r));
  return 0;
}

/* ---- writing ------------------------------------------------------------- */

/*
 * Creates v1 and v1/<sub> (mode 0700) as far as they are missing, and
 * replaces whatever else is in their place.
 */
static int make_dirs(struct dir_store *d, const char *sub)
{
  char p[64];
  int r = ensure_dir(d, "v1");

  cdo__fmt(p, sizeof(p), "v1/%s", sub);
  return r < 0 ? r : ensure_dir(d, p);
}

/*
 * Creates the temp file for k's put in k's folder; its relative path goes
 * into *rp. Returns the fd or an error.
 */
static int create_temp(struct dir_store *d, const struct cdo__key *k,
                       struct relpath *rp)
{
  static const char hex[] = "0123456789abcdef";
  int tries, fd = CDO__ERR(EEXIST), i;

  for (tries = 0; tries < 8; tries++) {
    unsigned char rnd[TEMP_HEX / 2];
    char name[TEMP_HEX + 1];

    if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
      uint64_t v = (uint64_t)cdo__mono_ms() * 2654435761u ^
                   (uint64_t)getpid() << 32 ^ (uint64_t)tries;

      cdo__put64(rnd, v);
    }
    for (i = 0; i < TEMP_HEX / 2; i++) {
      name[2 * i] = hex[rnd[i] >> 4];
      name[2 * i + 1] = hex[rnd[i] & 15];
    }
    name[TEMP_HEX] = 0;
    cdo__fmt(rp->p, sizeof(rp->p), "v1/%.2s/" TEMP_PREFIX "%s", k->hex, name);
    fd = openat(d->fd, rp->p,
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      flock(fd, LOCK_EX | LOCK_NB); /* held until closed: --gc sees we live */
      return fd;
    }
    fd = CDO__ERR(errno);
    if (errno == ENOENT || errno == ENOTDIR) { /* first put in this folder,
                                                  after --clear, or damage */
      char sub[3] = {k->hex[0], k->hex[1], 0};
      int r = make_dirs(d, sub);

      if (r < 0)
        return r;
    } else if (errno != EEXIST) {
      return fd;
    }
  }
  return fd;
}

/* Writes the whole file: the entry, then scope and footer. */
static int write_file(int fd, const struct cdo__src *src,
                      const struct cdo__put_info *info)
{
  size_t scope_len = info->scope ? strlen(info->scope) : 0;
  struct cdo__buf tail = {0};
  int r;

  if (scope_len > SCOPE_MAX)
    return CDO_ETOOBIG;
  r = cdo__store_src_write(fd, src);
  if (r == 0)
    r = cdo__buf_add(&tail, info->scope, scope_len);
  if (r == 0)
    r = cdo__buf_u64(&tail, (uint64_t)info->expires_ms);
  if (r == 0)
    r = cdo__buf_u32(&tail, (uint32_t)scope_len);
  if (r == 0)
    r = cdo__buf_add(&tail, "CDOD", 4);
  if (r == 0)
    r = cdo__write_all(fd, tail.p, tail.len);
  cdo__buf_release(&tail);
  return r;
}

/*
 * The check in an entry file's stamp: 1 to STAMP_SCOPES - 2, from the
 * expiry and the scope's length, so that a touch, which sets the
 * nanoseconds anywhere, seldom lands on a valid stamp.
 */
static long stamp_check(int64_t expires_ms, long scope_len)
{
  uint64_t x = (uint64_t)expires_ms * STAMP_SCOPES + (uint64_t)scope_len;

  x ^= x >> 31;
  x *= 0x9e3779b97f4a7c15ULL;
  x ^= x >> 29;
  return (long)(x % (STAMP_SCOPES - 2)) + 1;
}

/*
 * Dates an entry's file: mtime = its expiry, plus 1 + the scope's length
 * + STAMP_SCOPES * stamp_check in nanoseconds; atime = its creation (see
 * the top of this file). Set after the rename: a temp file keeps the time
 * it was written, which tells a dead writer's. Best effort: the footer is
 * what counts, and a file left undated (so is one with a scope of
 * STAMP_SCOPES bytes or more) is opened by the walks. (A put of the same
 * key racing this one may date the other's file: same scope, since the
 * scope is in the key, and times a few ms apart.)
 */
static void stamp_times(struct dir_store *d, const struct relpath *name,
                        const struct cdo__put_info *info)
{
  long scope_len = info->scope ? (long)strlen(info->scope) : 0;
  struct timespec ts[2];

  if (info->expires_ms < 0 || scope_len >= STAMP_SCOPES)
    return;
  ts[0].tv_sec = (time_t)(info->created_ms / 1000);
  ts[0].tv_nsec = (long)(info->created_ms % 1000) * NS_PER_MS;
  if (info->created_ms < 0)
    ts[0].tv_nsec = UTIME_OMIT;
  ts[1].tv_sec = (time_t)(info->expires_ms / 1000);
  ts[1].tv_nsec = (long)(info->expires_ms % 1000) * NS_PER_MS + 1 + scope_len +
                  STAMP_SCOPES * stamp_check(info->expires_ms, scope_len);
  utimensat(d->fd, name->p, ts, AT_SYMLINK_NOFOLLOW);
}

/*
 * The entry's size and creation from the file's stat alone, as
 * stamp_times dated it: 0, or -1 when its times are not such. A stamp
 * whose check is 0 is an older version's (1 + the scope's length alone),
 * still read as one: a touch lands there once in 1000.
 */
static int stamped(const struct stat *st, uint64_t *size, int64_t *created_ms)
{
  long v = st->st_mtim.tv_nsec % NS_PER_MS - 1;
  long scope_len = v % STAMP_SCOPES, check = v / STAMP_SCOPES;

  if (!S_ISREG(st->st_mode) || v < 0 ||
      (check != 0 && check != stamp_check(cdo__mtime_ms(st), scope_len)) ||
      st->st_size < FOOTER_LEN + scope_len)
    return -1;
  *size = (uint64_t)st->st_size - FOOTER_LEN - (uint64_t)scope_len;
  *created_ms =
      (int64_t)st->st_atim.tv_sec * 1000 + st->st_atim.tv_nsec / NS_PER_MS;
  return 0;
}

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1) /* linux/fs.h; musl's headers lack it */
#endif

/*
 * Puts the written temp file in the entry's place, in one step for readers
 * (they open the old file or the new one). An entry already there is
 * swapped out (renameat2 RENAME_EXCHANGE) and removed under the temp name:
 * a rename over an existing file makes ext4 write the new file's data at
 * once (auto_da_alloc, which guards replace-by-rename without fsync; a
 * torn entry fails its checksums here anyway), ~0.3 ms, and up to 5 ms on
 * the first write after a few idle seconds, where the swap and the unlink
 * take ~0.06 ms. Without an entry, or where the filesystem cannot swap, a
 * plain rename. 0 or -errno.
 */
static int place(struct dir_store *d, const char *tmp, const char *name)
{
#ifdef SYS_renameat2 /* the system call: musl 1.2.3 has no renameat2() */
  if (syscall(SYS_renameat2, d->fd, tmp, d->fd, name, RENAME_EXCHANGE) == 0) {
    remove_any(d->fd, tmp); /* the old entry, or whatever was in its place */
    return 0;
  }
#endif
  if (renameat(d->fd, tmp, d->fd, name) < 0 &&
      (errno != EISDIR || remove_any(d->fd, name) < 0 ||
       renameat(d->fd, tmp, d->fd, name) < 0))
    return CDO__ERR(errno); /* a folder in the entry's place is removed */
  return 0;
}

static int dir_put(struct cdo_store *s, const struct cdo__key *k,
                   const struct cdo__src *src, const struct cdo__put_info *info)
{
  struct dir_store *d = ds(s);
  struct relpath tmp, name;
  int fd, r;

  fd = create_temp(d, k, &tmp);
  if (fd < 0)
    return cdo__store_fail(s, fd, "cannot create a file in '%s/v1/%.2s': %s",
                           d->root, k->hex, cdo_strerror(fd));
  r = write_file(fd, src, info);
  if (close(fd) < 0 && r == 0)
    r = CDO__ERR(errno);
  if (r == 0) {
    entry_path(&name, k);
    r = place(d, tmp.p, name.p);
  }
  /* The temp file or its folder went: --clear ran meanwhile. Not stored. */
  if (r == CDO__ERR(ENOENT))
    return cdo__store_fail(s, CDO_EVANISHED,
                           "'%s' was cleared while the entry was written",
                           d->root);
  if (r < 0) {
    unlinkat(d->fd, tmp.p, 0);
    return cdo__store_fail(s, r, "cannot write '%s/%s': %s", d->root, tmp.p,
                           cdo_strerror(r));
  }
  stamp_times(d, &name, info);
  return 0;
}

/* ---- removing: one by one, or by the batch's threads --------------------- */

static void *unlinker(void *arg)
{
  struct dir_store *d = arg;
  struct unlinkers *u = d->ul;
  struct relpath rp;

  pthread_mutex_lock(&u->mu);
  for (;;) {
    while (u->n == 0 && !u->stop)
      pthread_cond_wait(&u->work, &u->mu);
    if (u->n == 0)
      break;
    rp = u->q[u->head];
    u->head = (u->head + 1) % UNLINK_QUEUE;
    u->n--;
    pthread_cond_signal(&u->room);
    pthread_mutex_unlock(&u->mu);
    if (unlinkat(d->fd, rp.p, 0) < 0 && errno != ENOENT && errno != ENOTDIR) {
      int e = errno;

      pthread_mutex_lock(&u->mu);
      if (u->err == 0) {
        u->err = CDO__ERR(e);
        u->failed = rp;
      }
      pthread_mutex_unlock(&u->mu);
    }
    pthread_mutex_lock(&u->mu);
  }
  pthread_mutex_unlock(&u->mu);
  return NULL;
}

/* Starts the batch's removers; without them removal is one by one. */
static void unlinkers_start(struct dir_store *d)
{
  struct unlinkers *u = calloc(1, sizeof(*u));
  pthread_attr_t attr;
  int i;

  if (u == NULL)
    return;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024); /* each does one unlinkat */
  pthread_mutex_init(&u->mu, NULL);
  pthread_cond_init(&u->work, NULL);
  pthread_cond_init(&u->room, NULL);
  d->ul = u;
  for (i = 0; i < UNLINKERS; i++)
    if (pthread_create(&u->th[u->started], &attr, unlinker, d) == 0)
      u->started++;
  pthread_attr_destroy(&attr);
  if (u->started == 0) {
    free(u);
    d->ul = NULL;
  }
}

/* Waits for every queued removal, ends the threads: the first failure. */
static int unlinkers_stop(struct dir_store *d)
{
  struct unlinkers *u = d->ul;
  int i, r;

  if (u == NULL)
    return 0;
  pthread_mutex_lock(&u->mu);
  u->stop = 1;
  pthread_cond_broadcast(&u->work);
  pthread_mutex_unlock(&u->mu);
  for (i = 0; i < u->started; i++)
    pthread_join(u->th[i], NULL);
  d->ul = NULL;
  r = u->err;
  if (r < 0)
    cdo__store_fail(&d->base, r, "cannot remove '%s/%s': %s", d->root,
                    u->failed.p, cdo_strerror(r));
  pthread_cond_destroy(&u->room);
  pthread_cond_destroy(&u->work);
  pthread_mutex_destroy(&u->mu);
  free(u);
  return r;
}

/*
 * Removes the file at rp (relative to the root); a missing one is no
 * error. In a batch, queues it for the removers (a failure is reported
 * when the batch ends).
 */
static int remove_file(struct dir_store *d, const struct relpath *rp)
{
  struct unlinkers *u = d->ul;

  if (u == NULL) {
    if (unlinkat(d->fd, rp->p, 0) < 0 && errno != ENOENT && errno != ENOTDIR)
      return cdo__store_fail(&d->base, CDO__ERR(errno),
                             "cannot remove '%s/%s': %s", d->root, rp->p,
                             strerror(errno));
    return 0;
  }
  pthread_mutex_lock(&u->mu);
  while (u->n == UNLINK_QUEUE)
    pthread_cond_wait(&u->room, &u->mu);
  u->q[(u->head + u->n) % UNLINK_QUEUE] = *rp;
  u->n++;
  pthread_cond_signal(&u->work);
  pthread_mutex_unlock(&u->mu);
  return 0;
}

static int dir_del(struct cdo_store *s, const struct cdo__key *k)
{
  struct relpath rp;

  entry_path(&rp, k);
  return remove_file(ds(s), &rp);
}

/* Eviction's batches: removals by UNLINKERS threads until it ends. */
static int dir_batch(struct cdo_store *s, int on)
{
  struct dir_store *d = ds(s);

  if (on && d->ul == NULL)
    unlinkers_start(d);
  return on ? 0 : unlinkers_stop(d);
}

/* ---- walking the tree: --clear, --gc, --list, --stats -------------------- */

enum kind { ENTRY, TEMP };

static int walk_fail(struct dir_store *d)
{
  return cdo__store_fail(&d->base, CDO__ERR(errno), "cannot read '%s/v1': %s",
                         d->root, strerror(errno));
}

typedef int walk_fn(struct dir_store *d, int at, const char *name,
                    enum kind kind, void *ud);

/* A file of ours in a folder, as readdir named it. */
struct dent {
  ino_t ino;
  enum kind kind;
  char name[65];
};

static int by_ino(const void *a, const void *b)
{
  const struct dent *x = a, *y = b;

  return (x->ino > y->ino) - (x->ino < y->ino);
}

/* What name, in folder sub, is to the walk: 0 (none of ours) or a kind + 1. */
static int kind_of(const char *name, const char *sub)
{
  if (is_hex(name, 64) && memcmp(name, sub, 2) == 0)
    return ENTRY + 1;
  if (strncmp(name, TEMP_PREFIX, sizeof(TEMP_PREFIX) - 1) == 0 &&
      is_hex(name + sizeof(TEMP_PREFIX) - 1, TEMP_HEX))
    return TEMP + 1;
  return 0;
}

/*
 * Calls fn for every file of ours in folder sub (fd at, which is closed),
 * in the order of their inode numbers: stats and unlinks then go through
 * the inode table in sequence, which on ext4 removes a large share of a
 * big cache much faster than the order of the names' hashes. Memory: one
 * folder's names.
 */
static int walk_folder(struct dir_store *d, int at, const char *sub,
                       walk_fn *fn, void *ud)
{
  DIR *dir = fdopendir(at);
  struct dent *v = NULL, *nv;
  size_t n = 0, cap = 0, i;
  struct dirent *e;
  int r = 0, k;

  if (dir == NULL) {
    close(at);
    return CDO__ERR(ENOMEM);
  }
  while ((e = readdir(dir)) != NULL) {
    if ((k = kind_of(e->d_name, sub)) == 0)
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 256;
      nv = realloc(v, cap * sizeof(*v));
      if (nv == NULL) {
        r = CDO__ERR(ENOMEM);
        break;
      }
      v = nv;
    }
    v[n].ino = e->d_ino;
    v[n].kind = (enum kind)(k - 1);
    memcpy(v[n].name, e->d_name, strlen(e->d_name) + 1);
    n++;
  }
  if (n > 1)
    qsort(v, n, sizeof(*v), by_ino);
  for (i = 0; r == 0 && i < n; i++)
    r = fn(d, at, v[i].name, v[i].kind, ud);
  free(v);
  closedir(dir);
  return r;
}

/*
 * Calls fn for every file of ours under v1: entries (64 hex digits, in the
 * folder of their first two) and temp files. at is the folder's fd. A
 * missing v1 is an empty cache. With prune, folders left empty are removed,
 * and so is what is not a folder in a folder's place.
 */
static int walk(struct dir_store *d, int prune, walk_fn *fn, void *ud)
{
  int v1fd =
      openat(d->fd, "v1", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *v1;
  struct dirent *de;
  int r = 0;

  if (v1fd < 0 && errno == ENOTDIR && prune) /* damage: it goes */
    return remove_any(d->fd, "v1") == 0 ? 0 : walk_fail(d);
  if (v1fd < 0)
    return errno == ENOENT ? 0 : walk_fail(d);
  v1 = fdopendir(v1fd);
  if (v1 == NULL) {
    close(v1fd);
    return CDO__ERR(ENOMEM);
  }
  while (r == 0 && (de = readdir(v1)) != NULL) {
    int at;

    if (!is_hex(de->d_name, 2))
      continue;
    at = openat(v1fd, de->d_name,
                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (at < 0 && prune && (errno == ENOTDIR || errno == ELOOP))
      remove_any(v1fd, de->d_name); /* damage */
    if (at < 0)
      continue; /* not a folder of ours, or gone */
    r = walk_folder(d, at, de->d_name, fn, ud);
    if (prune)
      unlinkat(v1fd, de->d_name, AT_REMOVEDIR); /* fails unless empty */
  }
  closedir(v1);
  return r;
}

static int unlink_at(struct dir_store *d, int at, const char *name)
{
  if (unlinkat(at, name, 0) < 0 && errno != ENOENT)
    return cdo__store_fail(&d->base, CDO__ERR(errno),
                           "cannot remove '%s' in '%s/v1': %s", name, d->root,
                           strerror(errno));
  return 0;
}

/* Is the file's scope (read from fd) equal to scope? */
static int scope_is(int fd, const struct stat *st, const struct footer *f,
                    const char *scope)
{
  size_t n = strlen(scope);
  char buf[256], *p = buf;
  int same;

  if (f->scope_len != n)
    return 0;
  if (n > sizeof(buf) && (p = malloc(n)) == NULL)
    return 0;
  same =
      cdo__pread_all(fd, p, n, (uint64_t)st->st_size - FOOTER_LEN - n) == 0 &&
      memcmp(p, scope, n) == 0;
  if (p != buf)
    free(p);
  return same;
}

static int clear_one(struct dir_store *d, int at, const char *name,
                     enum kind kind, void *ud)
{
  const char *scope = ud;
  struct stat st;
  struct footer f;
  int fd, same;

  if (scope == NULL) /* whatever it is: damage goes too */
    return remove_any(at, name) == 0 ? 0 : unlink_at(d, at, name);
  if (kind != ENTRY)
    return 0;
  fd = open_file(at, name, &st, &f);
  if (fd < 0)
    return 0; /* gone, or corrupt: --gc's business */
  same = scope_is(fd, &st, &f, scope);
  close(fd);
  return same ? unlink_at(d, at, name) : 0;
}

static int dir_clear(struct cdo_store *s, const char *scope)
{
  return walk(ds(s), scope == NULL, clear_one, (void *)scope);
}

/*
 * Is the temp file name (relative to at) a dead writer's? A live writer
 * holds its flock; one that has just created the file and not yet locked
 * it is given TEMP_MIN_AGE_S; and any temp file of an hour is dead. One
 * dated in the future is an entry a writer swapped out (see place) and was
 * killed before it removed: no writer's file, dead unless locked.
 */
static int temp_dead(int at, const char *name, int64_t now_ms)
{
  struct stat st;
  int fd, dead;

  if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return 0;
  if (st.st_mtime < now_ms / 1000 - TEMP_MAX_AGE_S)
    return 1;
  if (st.st_mtime > now_ms / 1000 - TEMP_MIN_AGE_S - 1 &&
      st.st_mtime <= now_ms / 1000 + 1)
    return 0;
  fd = openat(at, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return 0;
  dead = flock(fd, LOCK_EX | LOCK_NB) == 0;
  close(fd);
  return dead;
}

struct gc_state {
  int64_t now_ms;
  uint64_t removed;
  int threads; /* removers started (at the first entry to go) */
};

static int gc_one(struct dir_store *d, int at, const char *name, enum kind kind,
                  void *ud)
{
  struct gc_state *g = ud;
  struct relpath rp;
  struct stat st;
  struct footer f;
  uint64_t size;
  int64_t created_ms;
  int fd, r;

  if (kind == TEMP)
    return temp_dead(at, name, g->now_ms) ? unlink_at(d, at, name) : 0;
  /* Not due by its stamped time (see stamp_times): not even opened. */
  if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      stamped(&st, &size, &created_ms) == 0 && cdo__mtime_ms(&st) > g->now_ms)
    return 0;
  fd = open_file(at, name, &st, &f);
  if (fd == CDO__ERR(ENOENT))
    return 0;
  if (fd >= 0)
    close(fd);
  if (fd >= 0 && f.expires_ms > g->now_ms)
    return 0;
  if (fd < 0 && fd != CDO_ECORRUPT)
    return cdo__store_fail(&d->base, fd, "cannot read '%s' in '%s/v1': %s",
                           name, d->root, cdo_strerror(fd));
  if (!g->threads && d->ul == NULL) {
    unlinkers_start(d);
    g->threads = 1;
  }
  cdo__fmt(rp.p, sizeof(rp.p), "v1/%.2s/%s", name, name);
  r = remove_file(d, &rp);
  if (r == 0)
    g->removed++;
  return r;
}

/*
 * Removes the lock files no one has held for an hour (a holder writes its
 * pid into the file, which dates it). One that a waiter has just opened
 * but not yet locked would let a second run start; the hour makes that a
 * first miss in an hour racing --gc, and the cost one extra run.
 */
static int dir_gc(struct cdo_store *s, int64_t now_ms, uint64_t *removed)
{
  struct gc_state g = {now_ms, 0, 0};
  int r = walk(ds(s), 0, gc_one, &g), w = 0;

  if (g.threads)
    w = unlinkers_stop(ds(s));
  *removed = g.removed;
  return r < 0 ? r : w;
}

struct list_state {
  cdo_list_fn fn;
  void *ud;
  unsigned char *buf; /* SMALL_MAX bytes for a file read whole; or NULL */
};

/*
 * Opens the entry file name for a row: its entry as a blob in *b, the
 * whole file read into buf (one read(2)) when it fits, else on the fd
 * left in *fd (-1: none, closed). *f gets the footer.
 */
static int open_row(int at, const char *name, unsigned char *buf,
                    struct cdo__blob *b, struct footer *f, int *fd)
{
  struct stat st;
  int r;

  memset(b, 0, sizeof(*b));
  b->fd = -1;
  *fd = open_entry(at, name);
  if (*fd < 0)
    return CDO__ERR(ENOENT); /* gone, or not a file of ours */
  if (fstat(*fd, &st) < 0) {
    r = CDO__ERR(errno);
  } else if (buf != NULL && S_ISREG(st.st_mode) && st.st_size >= FOOTER_LEN &&
             st.st_size <= SMALL_MAX) {
    r = read_all(*fd, buf, (size_t)st.st_size);
    if (r == 0)
      r = parse_footer(buf + st.st_size - FOOTER_LEN, (uint64_t)st.st_size, f);
    b->mem = buf;
    close(*fd);
    *fd = -1;
  } else {
    r = read_footer(*fd, &st, f);
    b->fd = *fd;
  }
  if (r == 0)
    b->size = entry_size((uint64_t)st.st_size, f);
  if (r < 0 && *fd >= 0) {
    close(*fd);
    *fd = -1;
  }
  return r;
}

/* The scope stored after the entry (blob b, of file fd); malloc'd. */
static int read_scope(const struct cdo__blob *b, int fd, const struct footer *f,
                      char **out)
{
  *out = NULL;
  if (f->scope_len == 0)
    return 0;
  *out = malloc(f->scope_len + 1);
  if (*out == NULL)
    return CDO__ERR(ENOMEM);
  (*out)[f->scope_len] = 0;
  if (b->mem != NULL)
    memcpy(*out, b->mem + b->size, f->scope_len);
  if ((b->mem == NULL && cdo__pread_all(fd, *out, f->scope_len, b->size) < 0) ||
      memchr(*out, 0, f->scope_len) != NULL) {
    free(*out);
    *out = NULL;
    return CDO_ECORRUPT;
  }
  return 0;
}

/* Each entry as the walk finds it (unordered); fn may delete it. */
static int list_one(struct dir_store *d, int at, const char *name,
                    enum kind kind, void *ud)
{
  struct list_state *ls = ud;
  struct cdo_entry_info e;
  struct cdo__blob b;
  struct cdo__meta m;
  struct footer f;
  uint64_t joff;
  char **argv = NULL, *scope = NULL;
  int fd, r;

  (void)d;
  if (kind != ENTRY)
    return 0;
  r = open_row(at, name, ls->buf, &b, &f, &fd);
  if (r == 0)
    r = read_scope(&b, fd, &f, &scope);
  if (r == 0)
    r = cdo__entry_peek(&b, &m, NULL, &argv, &joff);
  if (fd >= 0)
    close(fd);
  if (r < 0) { /* gone or corrupt: not listed */
    free(scope);
    return r == CDO__ERR(ENOMEM) ? r : 0;
  }
  memcpy(e.key, name, 65);
  e.created_ms = m.created_ms;
  e.expires_ms = f.expires_ms;
  e.duration_ms = m.duration_ms;
  e.size = b.size;
  e.exit_status = m.exit_status;
  e.command = NULL;
  e.argv = argv;
  e.scope = scope;
  r = ls->fn(ls->ud, &e) != 0;
  free(argv);
  free(scope);
  return r;
}

/* Hands fn each entry as one makes its row, in the walk's order. */
static int walk_rows(struct cdo_store *s, walk_fn *one, cdo_list_fn fn,
                     void *ud)
{
  struct list_state ls = {fn, ud, malloc(SMALL_MAX)};
  int r = walk(ds(s), 0, one, &ls);

  free(ls.buf);
  if (r > 0)
    return 0; /* fn stopped the walk */
  return r == CDO__ERR(ENOMEM) ? cdo__store_fail(s, r, "out of memory") : r;
}

/* In the order of the directories (unsorted): memory stays one entry's. */
static int dir_list(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  return walk_rows(s, list_one, fn, ud);
}

/*
 * Each entry, from its stat where the file is dated by stamp_times: key,
 * size, creation (or a foreign reader's last read) and expiry, nothing
 * else. A file not so dated is read, as by list.
 */
static int scan_one(struct dir_store *d, int at, const char *name,
                    enum kind kind, void *ud)
{
  struct list_state *ls = ud;
  struct cdo_entry_info e;
  struct stat st;

  if (kind != ENTRY || fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return 0; /* gone: not listed */
  memset(&e, 0, sizeof(e));
  if (stamped(&st, &e.size, &e.created_ms) < 0)
    return list_one(d, at, name, kind, ud);
  memcpy(e.key, name, 65);
  e.expires_ms = cdo__mtime_ms(&st);
  return ls->fn(ls->ud, &e) != 0;
}

static int dir_scan(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  return walk_rows(s, scan_one, fn, ud);
}

static int stats_row(void *ud, const struct cdo_entry_info *e)
{
  struct cdo_stats *st = ud;

  st->entries++;
  st->bytes += e->size;
  return 0;
}

/*
 * Counts from the files' stat (see scan_one), not their contents: a file
 * damaged inside counts until a read or --gc finds it out.
 */
static int dir_stats(struct cdo_store *s, struct cdo_stats *st)
{
  return dir_scan(s, stats_row, st);
}

static const struct cdo__store_files dir_files = {
    .spool_dir = dir_spool_dir,
    .lock_dir = dir_lock_dir,
    .local_path = dir_local_path,
};

const struct cdo__store_ops cdo__store_dir = {
    .scheme = "dir:",
    .name = "dir",
    .usage = "dir:PATH",
    .about = "a directory, one file per entry",
    .size = sizeof(struct dir_store),
    .check = dir_check_url,
    .open = dir_open,
    .close = dir_close,
    .get = dir_get,
    .put = dir_put,
    .del = dir_del,
    .clear = dir_clear,
    .list = dir_list,
    .lists_scope = 1,
    .scan = dir_scan,
    .stats = dir_stats,
    .gc = dir_gc,
    .batch = dir_batch,
    .idle_upkeep = 1,
    .files = &dir_files,
};
