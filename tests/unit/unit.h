/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the unit tests: private temp directories, entries built
 * in memory or in a spool file, blobs over memory, and capturing fds 1 and 2.
 */
#ifndef CDO_UNIT_H
#define CDO_UNIT_H

#include "entry.h"

#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* Fails the current test with a message unless r is 0. */
#define unit_ok(r) unit_ok_at((r), #r, __FILE__, __LINE__)

static inline void unit_ok_at(int r, const char *what, const char *file,
                              int line)
{
  if (r != 0) {
    print_error("%s returned %d (%s)\n", what, r, cdo_strerror(r));
    _fail(file, line);
  }
}

/* ---- files and directories ---------------------------------------------- */

/* A new private directory under $TMPDIR (or /tmp); free with unit_rmtree. */
static inline char *unit_tmpdir(void)
{
  const char *base = getenv("TMPDIR");
  char buf[4096];
  char *dir;

  if (base == NULL || *base == 0)
    base = "/tmp";
  cdo__fmt(buf, sizeof(buf), "%s/cachedo-unit-XXXXXX", base);
  assert_non_null(mkdtemp(buf));
  dir = strdup(buf);
  assert_non_null(dir);
  return dir;
}

static inline int unit_rm_one(const char *path, const struct stat *st, int type,
                              struct FTW *ftw)
{
  (void)st;
  (void)ftw;
  return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* Removes dir and everything under it, then frees the string. */
static inline void unit_rmtree(char *dir)
{
  if (dir == NULL)
    return;
  nftw(dir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(dir);
}

/* "dir/name", malloc'd. */
static inline char *unit_path(const char *dir, const char *name)
{
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);

  assert_non_null(p);
  cdo__fmt(p, n, "%s/%s", dir, name);
  return p;
}

/* Creates (or replaces) file path holding n bytes of data, with mode. */
static inline void unit_write_file(const char *path, const void *data, size_t n,
                                   mode_t mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

  assert_true(fd >= 0);
  unit_ok(cdo__write_all(fd, data, n));
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

/* All bytes of fd from offset 0 (NUL-terminated, malloc'd); *n their count. */
static inline unsigned char *unit_read_fd(int fd, size_t *n)
{
  struct stat st;
  unsigned char *p;

  assert_int_equal(fstat(fd, &st), 0);
  p = malloc((size_t)st.st_size + 1);
  assert_non_null(p);
  if (st.st_size > 0)
    unit_ok(cdo__pread_all(fd, p, (size_t)st.st_size, 0));
  p[st.st_size] = 0;
  *n = (size_t)st.st_size;
  return p;
}

/* Fills p with n pseudo-random bytes, the same for the same seed. */
static inline void unit_random(void *p, size_t n, uint64_t seed)
{
  unsigned char *c = p;
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
  size_t i;

  for (i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c[i] = (unsigned char)(x >> 24);
  }
}

/* ---- entries ------------------------------------------------------------- */

/*
 * An entry built with the runner's writer (entry.h), its journal in a spool
 * file. Usage: unit_entry_begin, any number of unit_entry_chunk /
 * unit_entry_raw, unit_entry_end; then e.src describes the whole entry,
 * e.meta its trailer, e.head.len is the header's length and e.fd the spool.
 * Release with unit_entry_release.
 */
struct unit_entry {
  struct cdo__entry_writer w;
  struct cdo__buf head; /* the header (borrowed from w) */
  int fd;               /* after end: the spool, or -1 (borrowed from w) */
  struct cdo__meta meta;
  unsigned char tail[CDO__TRAILER_LEN];
  struct cdo__src src;
  char *command; /* argv as --list shows it */
};

static inline void unit_entry_begin(struct unit_entry *e, char *const argv[])
{
  static const struct cdo__key zero;

  memset(e, 0, sizeof(*e));
  unit_ok(cdo__entry_begin(&e->w, &zero, argv, NULL, CDO__ENTRY_SPOOL, NULL));
  e->head = e->w.head; /* the header stays put: the journal is spooled */
  e->fd = -1;
  e->command = cdo__argv_render(argv);
  assert_non_null(e->command);
}

/* Appends raw journal bytes, framed or not. */
static inline void unit_entry_raw(struct unit_entry *e, const void *p, size_t n)
{
  unit_ok(cdo__entry_add_raw(&e->w, p, n));
}

/* Appends one journal chunk: stream CDO__STDOUT or CDO__STDERR, n > 0. */
static inline void unit_entry_chunk(struct unit_entry *e, int stream,
                                    const void *p, size_t n)
{
  unit_ok(cdo__entry_add(&e->w, stream, p, n));
  unit_ok(cdo__entry_cut(&e->w));
}

/* Appends a NUL-terminated string as one chunk. */
static inline void unit_entry_str(struct unit_entry *e, int stream,
                                  const char *s)
{
  unit_entry_chunk(e, stream, s, strlen(s));
}

/* Finishes the entry: computes the trailer and fills e->src. */
static inline void unit_entry_end(struct unit_entry *e, int exit_status,
                                  int64_t created_ms)
{
  struct cdo__meta m = {0};

  m.created_ms = created_ms;
  m.duration_ms = 1234;
  m.exit_status = exit_status;
  m.expires_ms = created_ms + 3600 * 1000;
  unit_ok(cdo__entry_finish(&e->w, &m, &e->src));
  e->meta = e->w.meta;
  e->fd = e->w.spool;
  memcpy(e->tail, e->w.tail, sizeof(e->tail));
}

/*
 * Makes a finished entry one stored under k (the header names its key),
 * signed with mac_key (NULL: unsigned).
 */
static inline void unit_entry_bind(struct unit_entry *e,
                                   const struct cdo__key *k,
                                   const unsigned char *mac_key)
{
  unsigned char jh[32], buf[65536];
  crypto_generichash_state h;
  uint64_t off = 0;

  memcpy(e->w.head.p + 12, k->hash, 32);
  crypto_generichash_init(&h, NULL, 0, 32);
  while (mac_key != NULL && off < e->meta.journal_len) {
    size_t n = e->meta.journal_len - off < sizeof(buf)
                   ? (size_t)(e->meta.journal_len - off)
                   : sizeof(buf);

    unit_ok(cdo__pread_all(e->fd, buf, n, off));
    crypto_generichash_update(&h, buf, n);
    off += n;
  }
  crypto_generichash_final(&h, jh, 32);
  cdo__entry_trailer(e->w.tail, e->w.head.p, e->w.head_len, &e->meta, mac_key,
                     jh);
  memcpy(e->tail, e->w.tail, sizeof(e->tail));
}

static inline void unit_entry_release(struct unit_entry *e)
{
  cdo__entry_writer_release(&e->w);
  free(e->command);
  e->fd = -1;
  e->command = NULL;
}

/* Total bytes of the finished entry. */
static inline uint64_t unit_entry_size(const struct unit_entry *e)
{
  return cdo__src_size(&e->src);
}

/* Copies n bytes at off of a finished entry into buf. */
static inline void unit_entry_read(const struct unit_entry *e, uint64_t off,
                                   void *buf, size_t n)
{
  unsigned char *p = buf;

  while (n > 0) {
    ssize_t r = cdo__src_read(&e->src, off, p, n);

    assert_true(r > 0);
    p += r;
    off += (uint64_t)r;
    n -= (size_t)r;
  }
}

/* The whole finished entry in one malloc'd buffer. */
static inline unsigned char *unit_entry_bytes(const struct unit_entry *e)
{
  size_t n = (size_t)unit_entry_size(e);
  unsigned char *p = malloc(n ? n : 1);

  assert_non_null(p);
  unit_entry_read(e, 0, p, n);
  return p;
}

/* ---- blobs --------------------------------------------------------------- */

/* A memory blob holding a copy of p[0..n). */
static inline struct cdo__blob *unit_blob_mem(const void *p, size_t n)
{
  unsigned char *copy = malloc(n ? n : 1);
  struct cdo__blob *b;

  assert_non_null(copy);
  if (n)
    memcpy(copy, p, n);
  b = cdo__blob_from_mem(copy, n);
  assert_non_null(b);
  return b;
}

static inline int unit_blob_cb_read(struct cdo__blob *b, void *buf, size_t n,
                                    uint64_t off)
{
  memcpy(buf, (const unsigned char *)b->ctx + off, n);
  return 0;
}

static inline void unit_blob_cb_free(struct cdo__blob *b)
{
  free(b->ctx);
  free(b);
}

/* A blob that reaches a copy of p[0..n) only through its read callback. */
static inline struct cdo__blob *unit_blob_cb(const void *p, size_t n)
{
  struct cdo__blob *b = calloc(1, sizeof(*b));

  assert_non_null(b);
  b->ctx = malloc(n ? n : 1);
  assert_non_null(b->ctx);
  if (n)
    memcpy(b->ctx, p, n);
  b->size = n;
  b->fd = -1;
  b->read = unit_blob_cb_read;
  b->free = unit_blob_cb_free;
  return b;
}

/*
 * A file blob: prefix junk bytes, then p[0..n), in an unlinked temp file;
 * the blob covers only p's bytes (b->off = prefix).
 */
static inline struct cdo__blob *unit_blob_fd(const void *p, size_t n,
                                             size_t prefix)
{
  int fd = cdo__tmpfile(NULL);
  struct cdo__blob *b;
  unsigned char junk[4096];

  assert_true(fd >= 0);
  memset(junk, 0xA5, sizeof(junk));
  while (prefix > 0) {
    size_t k = prefix < sizeof(junk) ? prefix : sizeof(junk);

    unit_ok(cdo__write_all(fd, junk, k));
    prefix -= k;
  }
  b = cdo__blob_from_fd(fd, n);
  assert_non_null(b);
  b->off = (uint64_t)lseek(fd, 0, SEEK_CUR);
  unit_ok(cdo__write_all(fd, p, n));
  return b;
}

/* ---- capturing fds 1 and 2 ----------------------------------------------- */

/*
 * Redirects fds 1 and 2 to temp files between begin and end. No assertion
 * may run in between: cmocka reports on fd 1.
 */
struct unit_capture {
  int saved[3];
  int file[3];
  unsigned char *out, *err;
  size_t out_len, err_len;
};

static inline void unit_capture_begin(struct unit_capture *c)
{
  int fd;

  memset(c, 0, sizeof(*c));
  fflush(stdout);
  fflush(stderr);
  for (fd = 1; fd <= 2; fd++) {
    c->saved[fd] = dup(fd);
    c->file[fd] = cdo__tmpfile(NULL);
    assert_true(c->saved[fd] >= 0 && c->file[fd] >= 0);
  }
  for (fd = 1; fd <= 2; fd++)
    dup2(c->file[fd], fd);
}

/* Restores fds 1 and 2 and reads what was written into c->out and c->err. */
static inline void unit_capture_end(struct unit_capture *c)
{
  int fd;

  for (fd = 1; fd <= 2; fd++) {
    dup2(c->saved[fd], fd);
    close(c->saved[fd]);
  }
  c->out = unit_read_fd(c->file[1], &c->out_len);
  c->err = unit_read_fd(c->file[2], &c->err_len);
  close(c->file[1]);
  close(c->file[2]);
}

static inline void unit_capture_release(struct unit_capture *c)
{
  free(c->out);
  free(c->err);
  c->out = c->err = NULL;
}

/* Asserts that got[0..got_len) holds exactly want[0..want_len). */
static inline void unit_assert_bytes(const void *got, size_t got_len,
                                     const void *want, size_t want_len)
{
  assert_int_equal(got_len, want_len);
  if (want_len)
    assert_memory_equal(got, want, want_len);
}

#endif /* CDO_UNIT_H */
