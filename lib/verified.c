/* SPDX-License-Identifier: MIT */
/*
 * Entry files checked whole in this boot: a large hit reads its entry once
 * to check the journal's checksum and once more to replay it, and the check
 * costs as much as `cat` itself. Once an entry file has passed, a record of
 * that file's identity lets later hits in the same boot replay it without
 * reading it twice, as long as nothing about the file changed.
 *
 * The table is one file per cache (P-verified), SLOTS records of SLOT
 * bytes, the slot chosen by the key; a record is replaced whole by one
 * pwrite(2), and no lock is taken:
 *
 *   record = key:byte{32} u64(boot) u64(dev) u64(ino) u64(file size)
 *            u64(mtime s) u64(mtime ns) u64(ctime s) u64(ctime ns)
 *            u64(offset) u64(entry size) u64(journal sum)
 *            u64(cdo__sum of the record before it)
 *
 * boot is cdo__sum of /proc/sys/kernel/random/boot_id, so a reboot (after
 * which a file written without fsync may have lost its data) forgets every
 * record. Any write to a file moves its ctime, which a process cannot set
 * back. A file is recorded only when its identity was the same before the
 * check and after it, and when its ctime is old enough that a later write
 * cannot get the same one: AGE_FINE_MS for timestamps with sub-millisecond
 * digits (the clock tick of a coarse timestamp is at most 10 ms), else
 * AGE_COARSE_MS (file systems that keep whole seconds, or two). A torn,
 * damaged or colliding record does not match, and the entry is checked as
 * before.
 */
#include "cdo_int.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SLOTS         1024
#define SLOT          CDO__VERIFIED_REC
#define BODY          (SLOT - 8) /* the record before its check */
#define AGE_FINE_MS   100
#define AGE_COARSE_MS 2500

/*
 * cdo__sum of this boot's id, read once per process (a hit that checks
 * and records a file needs it twice); 0 when it cannot be read.
 */
static uint64_t boot_id(void)
{
  static uint64_t id_sum;
  char id[64];
  ssize_t n;
  int fd;

  if (id_sum != 0)
    return id_sum;
  fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  n = read(fd, id, sizeof(id));
  close(fd);
  if (n >= 16)
    id_sum = cdo__sum(id, (size_t)n) | 1;
  return id_sum;
}

/*
 * The record fd's file would have now (entry at [off, off + size) with
 * journal sum jsum, stored under key); 0, or -1 when the file cannot have
 * one (not a regular file, unlinked, no boot id).
 */
static int record_for(unsigned char rec[SLOT], const unsigned char key[32],
                      int fd, uint64_t off, uint64_t size, uint64_t jsum,
                      struct stat *st)
{
  uint64_t boot, v[11];
  size_t i;

  if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || st->st_nlink == 0)
    return -1;
  boot = boot_id();
  if (boot == 0)
    return -1;
  v[0] = boot;
  v[1] = (uint64_t)st->st_dev;
  v[2] = (uint64_t)st->st_ino;
  v[3] = (uint64_t)st->st_size;
  v[4] = (uint64_t)st->st_mtim.tv_sec;
  v[5] = (uint64_t)st->st_mtim.tv_nsec;
  v[6] = (uint64_t)st->st_ctim.tv_sec;
  v[7] = (uint64_t)st->st_ctim.tv_nsec;
  v[8] = off;
  v[9] = size;
  v[10] = jsum;
  memset(rec, 0, SLOT);
  memcpy(rec, key, 32);
  for (i = 0; i < 11; i++)
    cdo__put64(rec + 32 + 8 * i, v[i]);
  cdo__put64(rec + BODY, cdo__sum(rec, BODY));
  return 0;
}

static off_t slot_of(const unsigned char key[32])
{
  return (off_t)(((unsigned)key[16] << 8 | key[17]) % SLOTS) * SLOT;
}

int cdo__verified_seen(const char *table, const unsigned char key[32], int fd,
                       uint64_t off, uint64_t size, uint64_t jsum,
                       unsigned char before[CDO__VERIFIED_REC])
{
  unsigned char got[SLOT];
  struct stat st;
  int t, same;

  memset(before, 0, SLOT);
  if (record_for(before, key, fd, off, size, jsum, &st) < 0)
    return 0;
  t = open(table, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (t < 0)
    return 0;
  same = cdo__pread_all(t, got, SLOT, (uint64_t)slot_of(key)) == 0 &&
         memcmp(got, before, SLOT) == 0;
  close(t);
  return same;
}

/* Is st's ctime old enough now (see the top)? */
static int settled(const struct stat *st)
{
  struct timespec now;
  int64_t age_ms, min_ms;

  if (clock_gettime(CLOCK_REALTIME, &now) < 0)
    return 0;
  age_ms = ((int64_t)now.tv_sec - (int64_t)st->st_ctim.tv_sec) * 1000 +
           ((int64_t)now.tv_nsec - (int64_t)st->st_ctim.tv_nsec) / 1000000;
  min_ms = st->st_ctim.tv_nsec % 1000000 != 0 ? AGE_FINE_MS : AGE_COARSE_MS;
  return age_ms >= min_ms;
}

void cdo__verified_note(const char *table, const unsigned char key[32], int fd,
                        uint64_t off, uint64_t size, uint64_t jsum,
                        const unsigned char before[CDO__VERIFIED_REC])
{
  unsigned char rec[SLOT];
  struct stat st;
  int t;

  if (record_for(rec, key, fd, off, size, jsum, &st) < 0 ||
      memcmp(rec, before, SLOT) != 0 || !settled(&st))
    return;
  t = open(table, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (t < 0)
    return;
  if (pwrite(t, rec, SLOT, slot_of(key)) != SLOT) {
    /* a record not written is a check done again next time */
  }
  close(t);
}
