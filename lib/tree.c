/* SPDX-License-Identifier: MIT */
/*
 * --file DIR: a digest of a directory tree's shape, not of its contents,
 * from a sorted walk that is bounded in entries and depth and follows no
 * symbolic link below the top:
 *
 *   tree  = "cachedo-tree" u32(1) entry*    depth first, names sorted
 *   entry = lp(path below DIR) u8(type) [u64(size) i64(mtime s) u32(ns)]
 *   type  = 'f' file | 'l' symbolic link (both with size and mtime)
 *         | 'd' directory | 'o' other
 *   lp(s) = u64(len) bytes;  integers big-endian
 *
 * A directory's own size and mtime are left out: its entries' names say
 * what changed in it, and a file created and removed again changes nothing.
 */
#include "cdo_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

struct tree {
  struct cdo__sha256 h;
  size_t entries;
  char path[PATH_MAX]; /* the entry's path below the top */
  char *err;
  size_t errlen;
  const char *top;
};

static void put(struct tree *t, const void *p, size_t n)
{
  cdo__sha256_update(&t->h, p, n);
}

static int by_name(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **v, size_t n)
{
  while (n > 0)
    free(v[--n]);
  free(v);
}

/* The names in the directory fd, sorted; *n of them. NULL: see errno. */
static char **read_names(int fd, size_t *n)
{
  char **v = NULL, **nv;
  size_t cap = 0;
  struct dirent *e;
  int dfd = dup(fd), oom = 0;
  DIR *d = dfd < 0 ? NULL : fdopendir(dfd);

  *n = 0;
  if (d == NULL) {
    if (dfd >= 0)
      close(dfd);
    return NULL;
  }
  while (!oom && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 32;
      nv = realloc(v, cap * sizeof(*v));
      if (nv == NULL) {
        oom = 1;
        break;
      }
      v = nv;
    }
    if ((v[*n] = strdup(e->d_name)) == NULL)
      oom = 1;
    else
      ++*n;
  }
  closedir(d);
  if (oom) {
    free_names(v, *n);
    *n = 0;
    errno = ENOMEM;
    return NULL;
  }
  if (v == NULL)
    return calloc(1, sizeof(*v)); /* an empty directory */
  qsort(v, *n, sizeof(*v), by_name);
  return v;
}

static int walk(struct tree *t, int fd, size_t len, unsigned depth);

/* Hashes the entry name of the directory fd (its path in t->path). */
static int entry(struct tree *t, int fd, const char *name, unsigned depth)
{
  unsigned char b[20];
  struct stat st;
  char type;
  int sub, r = 0;

  if (++t->entries > CDO__TREE_MAX_ENTRIES) {
    cdo__fmt(t->err, t->errlen,
             "more than %d entries below it (name a smaller directory, or "
             "the files that matter)",
             CDO__TREE_MAX_ENTRIES);
    return CDO_EBADVALUE;
  }
  if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    cdo__fmt(t->err, t->errlen, "cannot read '%s': %s", t->path,
             strerror(errno));
    return CDO__ERR(errno);
  }
  type = S_ISREG(st.st_mode)   ? 'f'
         : S_ISDIR(st.st_mode) ? 'd'
         : S_ISLNK(st.st_mode) ? 'l'
                               : 'o';
  cdo__put64(b, strlen(t->path));
  put(t, b, 8);
  put(t, t->path, strlen(t->path));
  put(t, &type, 1);
  if (type == 'f' || type == 'l') {
    cdo__put64(b, (uint64_t)st.st_size);
    cdo__put64(b + 8, (uint64_t)st.st_mtim.tv_sec);
    cdo__put32(b + 16, (uint32_t)st.st_mtim.tv_nsec);
    put(t, b, 20);
  }
  if (type != 'd')
    return 0;
  if (depth + 1 > CDO__TREE_MAX_DEPTH) {
    cdo__fmt(t->err, t->errlen,
             "more than %d levels of directories below it (at '%s')",
             CDO__TREE_MAX_DEPTH, t->path);
    return CDO_EBADVALUE;
  }
  sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0) {
    cdo__fmt(t->err, t->errlen, "cannot read '%s': %s", t->path,
             strerror(errno));
    return CDO__ERR(errno);
  }
  r = walk(t, sub, strlen(t->path), depth + 1);
  close(sub);
  return r;
}

/* Hashes the entries of the directory fd, whose path is t->path[0..len). */
static int walk(struct tree *t, int fd, size_t len, unsigned depth)
{
  size_t n, i;
  char **names = read_names(fd, &n);
  int r = 0;

  if (names == NULL) {
    cdo__fmt(t->err, t->errlen, "cannot read '%s': %s", len ? t->path : t->top,
             strerror(errno));
    return CDO__ERR(errno);
  }
  for (i = 0; i < n && r == 0; i++) {
    if (len + 1 + strlen(names[i]) >= sizeof(t->path)) {
      cdo__fmt(t->err, t->errlen, "a path below it is too long");
      r = CDO__ERR(ENAMETOOLONG);
      break;
    }
    cdo__fmt(t->path + len, sizeof(t->path) - len, "%s%s", len ? "/" : "",
             names[i]);
    r = entry(t, fd, names[i], depth);
    t->path[len] = 0;
  }
  free_names(names, n);
  return r;
}

int cdo__tree_digest(int fd, const char *top, unsigned char out[32],
                     size_t *entries, char *err, size_t errlen)
{
  struct tree *t = malloc(sizeof(*t));
  unsigned char v[4];
  int r;

  if (t == NULL)
    return CDO__ERR(ENOMEM);
  cdo__sha256_init(&t->h);
  t->entries = 0;
  t->path[0] = 0;
  t->err = err;
  t->errlen = errlen;
  t->top = top;
  put(t, "cachedo-tree", 12);
  cdo__put32(v, 1);
  put(t, v, 4);
  r = walk(t, fd, 0, 0);
  cdo__sha256_final(&t->h, out);
  *entries = t->entries;
  free(t);
  return r;
}
