/* SPDX-License-Identifier: MIT */
/*
 * Single-flight locks: the backend's own (ops->locks), else flock(2) on one
 * file per key in a private directory. A flock dies with its holder, so a
 * crashed run never blocks the others for longer than its own life.
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

struct flock_lk {
  int fd;
};

/* The default directory of lock files: per user, on tmpfs when possible. */
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
  (void)sig; /* only interrupts flock() */
}

/*
 * flock(fd, LOCK_EX) giving up after wait_ms: an interval timer's SIGALRM
 * (installed without SA_RESTART) interrupts the wait. No polling: the
 * kernel wakes the waiter the moment the holder releases or dies.
 */
static int flock_wait(int fd, int64_t wait_ms)
{
  struct sigaction sa, old;
  struct itimerval it = {{0, 0}, {0, 0}};
  int r, e;

  if (flock(fd, LOCK_EX | LOCK_NB) == 0)
    return 0;
  if (errno != EWOULDBLOCK)
    return CDO__ERR(errno);
  if (wait_ms <= 0)
    return CDO__ERR(EAGAIN);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, &old);
  it.it_value.tv_sec = (time_t)(wait_ms / 1000);
  it.it_value.tv_usec = (suseconds_t)(wait_ms % 1000 * 1000);
  /* Repeats, in case the first alarm came before flock() began to wait. */
  it.it_interval.tv_usec = 10000;
  setitimer(ITIMER_REAL, &it, NULL);
  r = flock(fd, LOCK_EX);
  e = errno;
  memset(&it, 0, sizeof(it));
  setitimer(ITIMER_REAL, &it, NULL);
  sigaction(SIGALRM, &old, NULL);
  if (r == 0)
    return 0;
  return e == EINTR ? CDO__ERR(EAGAIN) : CDO__ERR(e);
}

static int path_of(struct cdo_store *s, const struct cdo__key *k, char *buf,
                   size_t len)
{
  char dir[4096];
  int r = lock_dir(s, dir, sizeof(dir));

  if (r == 0)
    cdo__fmt(buf, len, "%s/%s", dir, k->hex);
  return r;
}

int cdo__store_lock(struct cdo_store *s, const struct cdo__key *k,
                    int64_t wait_ms, void **lk)
{
  struct flock_lk *f;
  char path[4200], pid[32];
  int fd, r;

  *lk = NULL;
  if (s->ops->locks != NULL)
    return s->ops->locks->lock(s, k, wait_ms, lk);
  r = path_of(s, k, path, sizeof(path));
  if (r < 0)
    return r;
  fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return cdo__store_fail(s, CDO__ERR(errno), "cannot open lock '%s': %s",
                           path, strerror(errno));
  r = flock_wait(fd, wait_ms);
  f = r == 0 ? malloc(sizeof(*f)) : NULL;
  if (f == NULL) {
    close(fd);
    return r < 0 ? r : CDO__ERR(ENOMEM);
  }
  f->fd = fd;
  /* Fixed width, so no truncation is needed: the pid is only for messages. */
  cdo__fmt(pid, sizeof(pid), "%-20ld\n", (long)getpid());
  if (pwrite(fd, pid, strlen(pid), 0) < 0) {
    /* a waiter then shows no pid */
  }
  *lk = f;
  return 0;
}

void cdo__store_unlock(struct cdo_store *s, const struct cdo__key *k, void *lk)
{
  struct flock_lk *f = lk;

  if (lk == NULL)
    return;
  if (s->ops->locks != NULL) {
    s->ops->locks->unlock(s, k, lk);
    return;
  }
  close(f->fd); /* releases the flock */
  free(f);
}

long cdo__store_lock_holder(struct cdo_store *s, const struct cdo__key *k)
{
  char path[4200], buf[32];
  ssize_t n;
  int fd;

  if (s->ops->locks != NULL || path_of(s, k, path, sizeof(path)) < 0)
    return 0;
  fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return 0;
  n = pread(fd, buf, sizeof(buf) - 1, 0);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = 0;
  return strtol(buf, NULL, 10);
}

int cdo__store_lock_renew(struct cdo_store *s, const struct cdo__key *k,
                          void *lk)
{
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
