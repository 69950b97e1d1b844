/* SPDX-License-Identifier: MIT */
/*
 * The key filter of a local store: one bit for each key stored, in a file
 * beside the store's database, at the place the key's first BITS bits
 * name. A clear bit says for certain that no entry of that key is stored,
 * so that a first run of a command need not open the database to find
 * nothing there (for SQLite, an open and a read of the schema cost about
 * what a whole small hit does). A set bit only says "maybe": the lookup
 * then goes to the database, as it would without a filter.
 *
 * A filter is valid for one database file, whose device and inode its
 * header names; one that is missing, damaged, of another layout or of
 * another file says "maybe" for every key. Bits are set, and the file made
 * anew, only by a holder of the database's write lock: a writer sets its
 * key's bit in the transaction that stores the entry, before the commit,
 * so no reader finds a clear bit for a stored entry. Deleted entries leave
 * their bits set (more "maybe"s, never a wrong "no") until the filter is
 * made again from the keys the database holds (cdo__keyfilter_save).
 *
 *   file   = header (HEAD bytes: magic "cdokeys\0", u32 version, u32 bits,
 *            u64 device, u64 inode, in host order; the rest zeros)
 *            bitmap (2^bits bits; bit i is bit i % 8 of byte i / 8)
 *
 * With 2^24 bits (2 MiB, a sparse file until bits touch its pages), a
 * cache of n keys gets a wrong "maybe" for a share 1 - e^(-n / 2^24) of
 * new keys: 0.6% at 100,000 keys, 5.8% at 1,000,000.
 */
#include "cdo_int.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEAD    4096
#define BITS    24
#define VERSION 1
#define MAP     ((size_t)1 << (BITS - 3))

static const char magic[8] = "cdokeys";

struct head {
  char magic[8];
  uint32_t version, bits;
  uint64_t dev, ino;
};

/* The bit of hash: its first BITS bits, big-endian. */
static uint32_t bit_of(const unsigned char *hash)
{
  return ((uint32_t)hash[0] << 16 | (uint32_t)hash[1] << 8 | hash[2]) >>
         (24 - BITS);
}

/* Is fd's header one of this layout, for the file at db now? */
static int valid(int fd, const char *db)
{
  struct head h;
  struct stat st;

  return cdo__pread_all(fd, &h, sizeof(h), 0) == 0 &&
         memcmp(h.magic, magic, sizeof(magic)) == 0 && h.version == VERSION &&
         h.bits == BITS && stat(db, &st) == 0 && h.dev == (uint64_t)st.st_dev &&
         h.ino == (uint64_t)st.st_ino;
}

int cdo__keyfilter_test(const char *path, const char *db,
                        const unsigned char *hash)
{
  uint32_t i = bit_of(hash);
  unsigned char b = 0;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC), r = 1;

  if (fd < 0)
    return 1;
  /* The bit first: a set one ends it, header unread. */
  if (cdo__pread_all(fd, &b, 1, HEAD + i / 8) == 0 && !(b >> (i % 8) & 1))
    r = valid(fd, db) ? 0 : 1;
  close(fd);
  return r;
}

int cdo__keyfilter_add(const char *path, const char *db,
                       const unsigned char *hash)
{
  uint32_t i = bit_of(hash);
  unsigned char b = 0;
  int fd = open(path, O_RDWR | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC), r;

  if (fd < 0)
    return errno == ENOENT ? 0 : CDO__ERR(errno);
  r = cdo__pread_all(fd, &b, 1, HEAD + i / 8);
  if (r == 0 && !(b >> (i % 8) & 1) && valid(fd, db)) {
    b |= (unsigned char)(1u << (i % 8));
    if (pwrite(fd, &b, 1, HEAD + i / 8) != 1)
      r = CDO__ERR(errno ? errno : EIO);
  }
  close(fd);
  return r == CDO_ECORRUPT ? 0 : r; /* short: not a filter, says "maybe" */
}

int cdo__keyfilter_valid(const char *path, const char *db)
{
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC), r;

  if (fd < 0)
    return 0;
  r = valid(fd, db);
  close(fd);
  return r;
}

int64_t cdo__keyfilter_count(const char *path, const char *db)
{
  unsigned char *map;
  int64_t n = -1;
  size_t i;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);

  if (fd < 0)
    return -1;
  map = malloc(MAP);
  if (map != NULL && valid(fd, db) && cdo__pread_all(fd, map, MAP, HEAD) == 0)
    for (n = 0, i = 0; i < MAP; i++)
      n += __builtin_popcount(map[i]);
  free(map);
  close(fd);
  return n;
}

/* fsync(2) of the directory of path (best effort). */
static void sync_dir(const char *path)
{
  char dir[4096];
  const char *slash = strrchr(path, '/');
  int fd;

  if (slash == NULL)
    cdo__fmt(dir, sizeof(dir), ".");
  else
    cdo__fmt(dir, sizeof(dir), "%.*s", (int)(slash - path + (slash == path)),
             path);
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

struct cdo__keyfilter {
  unsigned char map[MAP];
};

struct cdo__keyfilter *cdo__keyfilter_new(void)
{
  return calloc(1, sizeof(struct cdo__keyfilter));
}

void cdo__keyfilter_set(struct cdo__keyfilter *f, const unsigned char *hash)
{
  uint32_t i = bit_of(hash);

  f->map[i / 8] |= (unsigned char)(1u << (i % 8));
}

int cdo__keyfilter_save(struct cdo__keyfilter *f, const char *path,
                        const char *db)
{
  static const unsigned char zero[4096];
  char tmp[4096];
  unsigned char head[HEAD] = {0};
  struct head h = {{0}, VERSION, BITS, 0, 0};
  struct stat st;
  size_t off;
  int fd, r;

  if (stat(db, &st) < 0)
    return CDO__ERR(errno);
  memcpy(h.magic, magic, sizeof(magic));
  h.dev = (uint64_t)st.st_dev;
  h.ino = (uint64_t)st.st_ino;
  memcpy(head, &h, sizeof(h));
  cdo__fmt(tmp, sizeof(tmp), "%s-new", path);
  fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return CDO__ERR(errno);
  /* Only the bitmap's pages with a bit set are written: a small cache's
   * filter stays a sparse file of a few pages. */
  r = ftruncate(fd, (off_t)(HEAD + MAP)) < 0 ? CDO__ERR(errno) : 0;
  for (off = 0; r == 0 && off < MAP; off += sizeof(zero))
    if (memcmp(f->map + off, zero, sizeof(zero)) != 0 &&
        pwrite(fd, f->map + off, sizeof(zero), (off_t)(HEAD + off)) !=
            (ssize_t)sizeof(zero))
      r = CDO__ERR(errno ? errno : EIO);
  if (r == 0 && pwrite(fd, head, HEAD, 0) != HEAD)
    r = CDO__ERR(errno ? errno : EIO);
  /* Durable before it replaces the old one, and the rename too: after a
   * power loss, the old filter (valid for the same database) would lack
   * the bits set in the new one since. Filters are made rarely. */
  if (r == 0 && fdatasync(fd) < 0)
    r = CDO__ERR(errno);
  close(fd);
  if (r == 0 && rename(tmp, path) < 0)
    r = CDO__ERR(errno);
  if (r < 0)
    unlink(tmp);
  else
    sync_dir(path);
  return r;
}

void cdo__keyfilter_free(struct cdo__keyfilter *f)
{
  free(f);
}
