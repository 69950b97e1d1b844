/* SPDX-License-Identifier: MIT */
/*
 * Single-flight locks: the backend's own (ops->locks), else byte-range
 * locks (open file description locks, fcntl F_OFD_SETLK) in ONE file per
 * lock directory, LOCK_FILE: a key's lock is the SLOT_LEN bytes at its
 * slot, chosen by its first 8 bytes, of which there are N_SLOTS. Two keys
 * sharing a slot only make one wait for the other's run, after which it
 * looks its entry up again: never a wrong answer. The holder writes its
 * pid into its slot's bytes, for waiters' messages, and zeros them when
 * done. A lock dies with its holder, so a crashed run never blocks the
 * others for longer than its own life; nothing is left per key.
 */
#include "store_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define LOCK_MAX_AGE_MS 3600000
#define LOCK_FILE       "cachedo.lock"
#define N_SLOTS         65536
#define SLOT_LEN        8

struct range_lk {
  int fd;
  off_t off;
};

/* The default directory of the lock file: per user, on tmpfs if possible. */
static int lock_dir(struct cdo_store *s, char *buf, size_t len)
{
  const struct cdo__store_files *f = s->ops->files;
  const char *d = f && f->lock_dir ? f->lock_dir(s) : NULL;
  const char *run = getenv("XDG_RUNTIME_DIR");

  if (d != NULL)
    cdo__fmt(buf, len, "%s", d);
  else if (run != NULL && run[0] == '/')
    cdo__fmt(buf, len, "%s/cachedo-locks", run);
  else
    cdo__fmt(buf, len, "/tmp/cachedo-locks-%u", (unsigned)geteuid());
  return cdo__mkdir_private(buf, s->errmsg, sizeof(s->errmsg));
}

static void on_alarm(int sig)
{
  (void)sig; /* only interrupts fcntl() */
}

static int range_lock(int fd, off_t off, int cmd)
{
  struct flock fl;

  memset(&fl, 0, sizeof(fl)); /* l_pid must be 0 for OFD locks */
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = off;
  fl.l_len = SLOT_LEN;
  return fcntl(fd, cmd, &fl);
}

/*
 * Locks the slot at off of fd, giving up after wait_ms: an interval
 * timer's SIGALRM (installed without SA_RESTART) interrupts the wait. No
 * polling: the kernel wakes the waiter the moment the holder releases or
 * dies.
 */
static int range_wait(int fd, off_t off, int64_t wait_ms)
{
  struct sigaction sa, old;
  struct itimerval it = {{0, 0}, {0, 0}};
  int r, e;

  if (range_lock(fd, off, F_OFD_SETLK) == 0)
    return 0;
  if (errno != EAGAIN && errno != EACCES)
    return CDO__ERR(errno);
  if (wait_ms <= 0)
    return CDO__ERR(EAGAIN);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, &old);
  it.it_value.tv_sec = (time_t)(wait_ms / 1000);
  it.it_value.tv_usec = (suseconds_t)(wait_ms % 1000 * 1000);
  /* Repeats, in case the first alarm came before fcntl() began to wait. */
  it.it_interval.tv_usec = 10000;
  setitimer(ITIMER_REAL, &it, NULL);
  r = range_lock(fd, off, F_OFD_SETLKW);
  e = errno;
  memset(&it, 0, sizeof(it));
  setitimer(ITIMER_REAL, &it, NULL);
  sigaction(SIGALRM, &old, NULL);
  if (r == 0)
    return 0;
  return e == EINTR ? CDO__ERR(EAGAIN) : CDO__ERR(e);
}

/* Opens the lock file (flags: O_RDWR | O_CREAT, or O_RDONLY); fd or -errno. */
static int open_lock_file(struct cdo_store *s, int flags)
{
  char dir[4096], path[4200];
  int r = lock_dir(s, dir, sizeof(dir)), fd;

  if (r < 0)
    return r;
  cdo__fmt(path, sizeof(path), "%s/%s", dir, LOCK_FILE);
  fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return cdo__store_fail(s, CDO__ERR(errno), "cannot open lock '%s': %s",
                           path, strerror(errno));
  return fd;
}

static off_t slot_of(const struct cdo__key *k)
{
  return (off_t)(cdo__get64(k->hash) % N_SLOTS) * SLOT_LEN;
}

int cdo__store_lock(struct cdo_store *s, const struct cdo__key *k,
                    int64_t wait_ms, void **lk)
{
  struct range_lk *f;
  unsigned char pid[SLOT_LEN];
  off_t off = slot_of(k);
  int fd, r;

  s = cdo__store_lock_tier(s); /* with tiers: the farthest lease */

  *lk = NULL;
  if (s->ops->locks != NULL)
    return s->ops->locks->lock(s, k, wait_ms, lk);
  fd = open_lock_file(s, O_RDWR | O_CREAT);
  if (fd < 0)
    return fd;
  r = range_wait(fd, off, wait_ms);
  f = r == 0 ? malloc(sizeof(*f)) : NULL;
  if (f == NULL) {
    close(fd);
    return r < 0 ? r : CDO__ERR(ENOMEM);
  }
  f->fd = fd;
  f->off = off;
  cdo__put64(pid, (uint64_t)getpid());
  if (pwrite(fd, pid, SLOT_LEN, off) < 0) {
    /* a waiter then shows no pid */
  }
  *lk = f;
  return 0;
}

void cdo__store_unlock(struct cdo_store *s, const struct cdo__key *k, void *lk)
{
  static const unsigned char zero[SLOT_LEN];
  struct range_lk *f = lk;

  s = cdo__store_lock_tier(s); /* with tiers: the farthest lease */

  if (lk == NULL)
    return;
  if (s->ops->locks != NULL) {
    s->ops->locks->unlock(s, k, lk);
    return;
  }
  if (pwrite(f->fd, zero, SLOT_LEN, f->off) < 0) {
    /* a stale pid only shows in a waiter's message */
  }
  close(f->fd); /* releases the lock */
  free(f);
}

long cdo__store_lock_holder(struct cdo_store *s, const struct cdo__key *k)
{
  unsigned char buf[SLOT_LEN];
  int fd;
  long pid = 0;

  s = cdo__store_lock_tier(s); /* with tiers: the farthest lease */

  if (s->ops->locks != NULL)
    return 0;
  fd = open_lock_file(s, O_RDONLY);
  if (fd < 0) {
    s->errmsg[0] = 0;
    return 0;
  }
  if (cdo__pread_all(fd, buf, SLOT_LEN, (uint64_t)slot_of(k)) == 0)
    pid = (long)cdo__get64(buf);
  close(fd);
  return pid > 0 ? pid : 0;
}

int cdo__store_lock_path(struct cdo_store *s, char *buf, size_t len)
{
  char dir[4096];

  s = cdo__store_lock_tier(s);
  if (s->ops->locks != NULL || lock_dir(s, dir, sizeof(dir)) < 0) {
    s->errmsg[0] = 0;
    return -1;
  }
  cdo__fmt(buf, len, "%s/%s", dir, LOCK_FILE);
  return 0;
}

int cdo__runs_at_work(const char *lock_path)
{
  struct flock fl;
  int fd = open(lock_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), r;

  if (fd < 0)
    return 0;
  memset(&fl, 0, sizeof(fl)); /* the whole file; l_pid 0 for OFD locks */
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  r = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  close(fd);
  return r;
}

int cdo__store_lock_renew(struct cdo_store *s, const struct cdo__key *k,
                          void *lk)
{
  s = cdo__store_lock_tier(s); /* with tiers: the farthest lease */
  if (lk == NULL || s->ops->locks == NULL || s->ops->locks->renew == NULL)
    return 0;
  return s->ops->locks->renew(s, k, lk);
}

/* Is name in dir still the file open as fd (not replaced meanwhile)? */
static int same_file(int dir, const char *name, const struct stat *st)
{
  struct stat now;

  return fstatat(dir, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
         now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

/* Older versions took flock(2) on a file per key: those files go. */
void cdo__store_locks_gc(struct cdo_store *s, int64_t now_ms)
{
  char dir[4096];
  struct dirent *e;
  DIR *d;
  int dfd;

  if (s->ops->locks != NULL || lock_dir(s, dir, sizeof(dir)) < 0)
    return;
  dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  d = dfd >= 0 ? fdopendir(dfd) : NULL;
  if (d == NULL) {
    if (dfd >= 0)
      close(dfd);
    return;
  }
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    int fd;

    if (strlen(e->d_name) != 64 || strspn(e->d_name, "0123456789abcdef") != 64)
      continue;
    fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
      continue;
    /* Unused for an hour and not held: a waiter that opened it just now
     * could lose single-flight for one run, never correctness. */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 &&
        (int64_t)st.st_mtime * 1000 < now_ms - LOCK_MAX_AGE_MS &&
        same_file(dfd, e->d_name, &st))
      unlinkat(dfd, e->d_name, 0);
    close(fd);
  }
  closedir(d);
}
