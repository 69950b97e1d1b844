/* SPDX-License-Identifier: MIT */
/*
 * File helpers: full reads and writes, private directories, temp files;
 * and the detached child that background work runs in.
 */
#include "cdo_int.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

int cdo__write_all(int fd, const void *buf, size_t n)
{
  const char *p = buf;

  while (n > 0) {
    ssize_t w = write(fd, p, n);

    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};

        poll(&pfd, 1, -1);
        continue;
      }
      return CDO__ERR(errno);
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/*
 * The kernel copies file pages (page-aligned) into user memory. When the
 * destination starts just past a page boundary, within a cache line of the
 * source's alignment, some CPUs stall on every store (4K aliasing): on an
 * AMD EPYC, pread(2) of 100 MiB in 64 KiB pieces took 65-75 ms into a
 * buffer at page + 16 and 18-21 ms at page + 2048. malloc hands out large
 * blocks at exactly page + 16, so file reads go into buffers placed half a
 * page in.
 */
#define PIECE_SKEW 2048

void *cdo__piece_alloc(size_t n)
{
  void *p;

  if (posix_memalign(&p, 4096, n + PIECE_SKEW) != 0)
    return NULL;
  return (char *)p + PIECE_SKEW;
}

void cdo__piece_free(void *p)
{
  if (p != NULL)
    free((char *)p - PIECE_SKEW);
}

int cdo__pread_all(int fd, void *buf, size_t n, uint64_t off)
{
  char *p = buf;

  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)off);

    if (r < 0) {
      if (errno == EINTR)
        continue;
      return CDO__ERR(errno);
    }
    if (r == 0)
      return CDO_ECORRUPT;
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

pid_t cdo__detach(void)
{
  pid_t pid;
  int fd;

  fflush(NULL);
  pid = fork();
  if (pid != 0)
    return pid;
  /* Its own session, stdio on /dev/null: `x=$(cachedo ...)` does not wait
   * for it, and no terminal signal reaches it. */
  setsid();
  fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
      close(fd);
  }
  return 0;
}

void cdo__background(int idle)
{
#ifdef SCHED_IDLE
  struct sched_param sp = {0};
#endif

  if (nice(10) == -1) {
    /* the work still runs, at the usual priority */
  }
  if (!idle)
    return;
#ifdef SCHED_IDLE
  /* The system call: musl's sched_setscheduler() only says ENOSYS. */
  syscall(SYS_sched_setscheduler, 0, SCHED_IDLE, &sp);
#endif
#if defined(__linux__) && defined(SYS_ioprio_set)
  /* ioprio_set(IOPRIO_WHO_PROCESS, self, IOPRIO_CLASS_IDLE << 13) */
  syscall(SYS_ioprio_set, 1, 0, 3 << 13);
#endif
}

int cdo__dir_check(const char *path, char *err, size_t errlen)
{
  struct stat st;

  if (lstat(path, &st) < 0) {
    cdo__fmt(err, errlen, "'%s': %s", path, strerror(errno));
    return CDO__ERR(errno);
  }
  if (S_ISLNK(st.st_mode)) {
    cdo__fmt(err, errlen, "'%s' is a symbolic link (expected a directory)",
             path);
    return CDO_EUNSAFE;
  }
  if (!S_ISDIR(st.st_mode)) {
    cdo__fmt(err, errlen, "'%s' is not a directory", path);
    return CDO__ERR(ENOTDIR);
  }
  if ((st.st_mode & S_ISVTX) && (st.st_mode & S_IWOTH)) {
    size_t n = strlen(path);

    cdo__fmt(err, errlen,
             "'%s' is shared by all users (mode %04o): another user could "
             "plant or swap files in it; use a private subdirectory such as "
             "'%.*s/cachedo-%u' (created 0700)",
             path, (unsigned)(st.st_mode & 07777),
             (int)(n > 1 && path[n - 1] == '/' ? n - 1 : n), path,
             (unsigned)geteuid());
    return CDO_EUNSAFE;
  }
  if (st.st_uid != geteuid()) {
    cdo__fmt(err, errlen, "'%s' is owned by uid %u, not by you (uid %u)", path,
             (unsigned)st.st_uid, (unsigned)geteuid());
    return CDO_EUNSAFE;
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    cdo__fmt(err, errlen,
             "'%s' is writable by others (mode %04o; expected 0700)", path,
             (unsigned)(st.st_mode & 07777));
    return CDO_EUNSAFE;
  }
  return 0;
}

int cdo__mkdir_private(const char *path, char *err, size_t errlen)
{
  char *p;
  size_t i, n;
  int r = cdo__dir_check(path, err, errlen);

  if (r != CDO__ERR(ENOENT))
    return r; /* the usual case: it exists (and is safe, or is refused) */
  p = strdup(path);
  if (p == NULL)
    return CDO__ERR(ENOMEM);
  n = strlen(p);
  for (i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != 0)
      continue;
    p[i] = 0;
    if (mkdir(p, 0700) < 0 && errno != EEXIST) {
      int e = errno;

      cdo__fmt(err, errlen, "cannot create directory '%s': %s", p, strerror(e));
      free(p);
      return CDO__ERR(e);
    }
    if (i < n)
      p[i] = '/';
  }
  free(p);
  return cdo__dir_check(path, err, errlen);
}

int cdo__tmpfile(const char *dir)
{
  char tmpl[4096];
  int fd;

  if (dir == NULL) {
    dir = getenv("TMPDIR");
    if (dir == NULL || *dir == 0)
      dir = "/tmp";
  }
  fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
  cdo__fmt(tmpl, sizeof(tmpl), "%s/.cachedo-spool-XXXXXX", dir);
  fd = mkostemp(tmpl, O_CLOEXEC);
  if (fd < 0)
    return CDO__ERR(errno);
  unlink(tmpl);
  return fd;
}

char *cdo__xdg_dir(const char *var, const char *fallback)
{
  const char *v = getenv(var), *home;
  char *out;
  size_t n;

  if (v != NULL && v[0] == '/')
    return strdup(v);
  home = getenv("HOME");
  if (home == NULL || *home == 0)
    return NULL;
  n = strlen(home) + strlen(fallback) + 2;
  out = malloc(n);
  if (out != NULL)
    cdo__fmt(out, n, "%s/%s", home, fallback);
  return out;
}

char *cdo__default_url(void)
{
  char *dir = cdo__xdg_dir("XDG_CACHE_HOME", ".cache"), *url;
  size_t n;

  if (dir == NULL)
    return NULL;
  n = strlen(dir) + sizeof("sqlite:/cachedo/cache.db");
  url = malloc(n);
  if (url != NULL)
    cdo__fmt(url, n, "sqlite:%s/cachedo/cache.db", dir);
  free(dir);
  return url;
}
