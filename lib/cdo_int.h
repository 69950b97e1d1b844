/* SPDX-License-Identifier: MIT */
/*
 * Internal umbrella header: the first include of every file in lib/. Shared
 * helpers (buffers, clocks, checksums, files); the entry codec is entry.h.
 */
#ifndef CDO_INT_H
#define CDO_INT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_TMPFILE, sendfile, splice, copy_file_range */
#endif

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium/crypto_hash_sha256.h>
#include <sys/types.h>

#include "cachedo.h"

#define CDO__ERR(e)        (-(e))
#define CDO__SIGN_KEY_LEN  32 /* bytes of cdo_config.sign_key */
#define CDO__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* snprintf into a fixed buffer; never overflows, always terminates. */
void cdo__fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats a message line and hands it to fn (NULL: nothing). */
void cdo__vmsg(cdo_msg_fn fn, void *ud, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/*
 * Replaces a password in a URL in place: "scheme://user:PASSWORD@host" and
 * a "password=..." URL option.
 */
void cdo__url_mask(char *url);
/* a, sep and b in one malloc'd string; NULL on ENOMEM. */
char *cdo__strjoin(const char *a, const char *sep, const char *b);
/* A malloc'd copy of p[0, n) with %XX escapes decoded; NULL if bad or ENOMEM.
 */
char *cdo__pct_decode(const char *p, size_t n);

/* ---- typed values: settings (config.c) and URL options (store.c) -------- */

enum cdo__vtype {
  CDO__V_DURATION_POS, /* int64_t ms, > 0 */
  CDO__V_DURATION,     /* int64_t ms, >= 0 */
  CDO__V_SIZE,         /* uint64_t bytes */
  CDO__V_STRING,       /* non-empty */
  CDO__V_NUMBER,       /* int64_t, 0 to 1000000 */
  CDO__V_COUNT
};
/* What a value of type t looks like, for "expected ..." messages. */
const char *cdo__value_expected(enum cdo__vtype t);
/*
 * Parses val as a t into *out (int64_t or uint64_t; a string is only
 * checked, out may be NULL). 0 or CDO_EBADVALUE.
 */
int cdo__value_parse(enum cdo__vtype t, const char *val, void *out);

/* ---- growable byte buffer ------------------------------------------------ */

/* Invariant: b->p is NULL or holds len bytes plus a NUL; cap >= len + 1. */
struct cdo__buf {
  unsigned char *p;
  size_t len, cap;
};
int cdo__buf_add(struct cdo__buf *b, const void *data, size_t n);
int cdo__buf_u8(struct cdo__buf *b, unsigned v);
int cdo__buf_u32(struct cdo__buf *b, uint32_t v);
int cdo__buf_u64(struct cdo__buf *b, uint64_t v);
void cdo__buf_release(struct cdo__buf *b);

/* Big-endian integer access. */
static inline void cdo__put32(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}
static inline void cdo__put64(unsigned char *p, uint64_t v)
{
  cdo__put32(p, (uint32_t)(v >> 32));
  cdo__put32(p + 4, (uint32_t)v);
}
static inline uint32_t cdo__get32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}
static inline uint64_t cdo__get64(const unsigned char *p)
{
  return (uint64_t)cdo__get32(p) << 32 | cdo__get32(p + 4);
}

/* ---- clocks -------------------------------------------------------------- */

int64_t cdo__now_ms(void);  /* wall clock, ms since the epoch */
int64_t cdo__mono_ms(void); /* monotonic, ms */
int64_t cdo__mono_us(void); /* monotonic, us */
/* st's modification time, ms since the epoch. */
struct stat;
int64_t cdo__mtime_ms(const struct stat *st);

/*
 * The next pause, in us, of a process that has waited waited_us for a lock
 * another process holds, and may wait limit_us in all: 100 us at first,
 * then an eighth of the time waited so far, at most 10 ms, never past the
 * limit; -1 once the limit is reached. A lock held for a few ms is taken
 * about as soon as it is free (a wait overshoots by 1/8 at most, or 100 us),
 * and a long wait costs one try every 10 ms.
 */
int64_t cdo__backoff_us(int64_t waited_us, int64_t limit_us);

/* ---- fast checksum (sum.c) ----------------------------------------------- */

/*
 * A 64-bit non-cryptographic checksum for entries: it catches truncation and
 * bit rot at memory speed. Streaming: init, update any number of times, final.
 */
struct cdo__sum {
  uint64_t v[4];
  uint64_t total;
  unsigned char tail[64];
  size_t tail_n;
};
void cdo__sum_init(struct cdo__sum *s);
void cdo__sum_update(struct cdo__sum *s, const void *data, size_t n);
uint64_t cdo__sum_final(const struct cdo__sum *s);
uint64_t cdo__sum(const void *data, size_t n);

/* ---- entry files checked whole in this boot (verified.c) ---------------- */

#define CDO__VERIFIED_REC 128
/*
 * Has the entry of key at [off, off + size) of fd's file, with journal sum
 * jsum, been checked whole in this boot, with the file unchanged since? 1
 * when table (a file of the cache's) says so, else 0. before gets the
 * file's identity now, for cdo__verified_note.
 */
int cdo__verified_seen(const char *table, const unsigned char key[32], int fd,
                       uint64_t off, uint64_t size, uint64_t jsum,
                       unsigned char before[CDO__VERIFIED_REC]);
/*
 * After the entry passed its check: records it in table, when the file is
 * still what before says (best effort).
 */
void cdo__verified_note(const char *table, const unsigned char key[32], int fd,
                        uint64_t off, uint64_t size, uint64_t jsum,
                        const unsigned char before[CDO__VERIFIED_REC]);

/* ---- the key filter of a local store (keyfilter.c) ---------------------- */

/*
 * A file (path) of one bit per stored key, valid for the database file db
 * (see keyfilter.c). cdo__keyfilter_test: 0 when no entry of hash can be in
 * db, else 1 ("maybe"; also when there is no valid filter). The rest are
 * for a holder of db's write lock: cdo__keyfilter_add sets hash's bit in a
 * valid filter before the entry's commit (0, also when there is none, or
 * -errno: then the filter must go); cdo__keyfilter_valid says whether
 * path is a filter for db; cdo__keyfilter_count, how many bits it has set
 * (-1: not valid). A filter is made whole with new, set for each key
 * stored, save (written beside path and renamed over it, valid for db as
 * it is now; 0 or -errno) and free.
 */
int cdo__keyfilter_test(const char *path, const char *db,
                        const unsigned char *hash);
int cdo__keyfilter_add(const char *path, const char *db,
                       const unsigned char *hash);
int cdo__keyfilter_valid(const char *path, const char *db);
int64_t cdo__keyfilter_count(const char *path, const char *db);
struct cdo__keyfilter;
struct cdo__keyfilter *cdo__keyfilter_new(void);
void cdo__keyfilter_set(struct cdo__keyfilter *f, const unsigned char *hash);
int cdo__keyfilter_save(struct cdo__keyfilter *f, const char *path,
                        const char *db);
void cdo__keyfilter_free(struct cdo__keyfilter *f);

/* ---- SHA-256 (sha256.c) -------------------------------------------------- */

/*
 * SHA-256, streaming: init, update any number of times, final (which wipes
 * the state). SHA-NI instructions where the CPU has them, else libsodium.
 */
struct cdo__sha256 {
  union {
    crypto_hash_sha256_state sodium; /* the portable code */
    struct {
      uint32_t s[8];
      uint64_t bytes; /* hashed so far */
      unsigned char buf[64];
    } x; /* SHA-NI */
  } u;
  int accel;
};
void cdo__sha256_init(struct cdo__sha256 *h);
void cdo__sha256_update(struct cdo__sha256 *h, const void *data, size_t n);
void cdo__sha256_final(struct cdo__sha256 *h, unsigned char out[32]);
void cdo__sha256(const void *data, size_t n, unsigned char out[32]);
/*
 * Whether states initialised from now on use SHA-NI: allow 0 forces the
 * portable code, 1 uses SHA-NI if the CPU has it, -1 only asks. Returns 1
 * when SHA-NI is in use.
 */
int cdo__sha256_accel(int allow);

/* ---- what config.c asks of the stores (store.c) ------------------------- */

/* The URL forms, for messages: "sqlite:PATH, dir:PATH, ... or exec:..". */
const char *cdo__store_urls(void);
/*
 * The first URL of a blank-separated list of tiers (malloc'd; NULL at the
 * end), advancing *list past it. After exec:, words without a scheme
 * belong to it, so exec:PROGRAM ARG... stays whole.
 */
char *cdo__store_next_url(const char **list);
/*
 * Checks val for the URL option called option of the backend called name
 * (config.c, for the settings mapped onto options). 0, or CDO_EBADVALUE
 * with *what saying what is expected.
 */
int cdo__store_option_check(const char *name, const char *option,
                            const char *val, const char **what);
/* The default value of that option, as its backend spells it; "" if none. */
const char *cdo__store_option_default(const char *name, const char *option);

/* ---- files (fs.c) -------------------------------------------------------- */

/* write(2) all of buf, waiting on EAGAIN; 0 or -errno. */
int cdo__write_all(int fd, const void *buf, size_t n);
/* pread(2) exactly n bytes; 0, -errno, or CDO_ECORRUPT on early EOF. */
int cdo__pread_all(int fd, void *buf, size_t n, uint64_t off);
/*
 * A buffer of n bytes for reading files into, placed half a page past a
 * page boundary (see fs.c); NULL on ENOMEM. Free with cdo__piece_free.
 */
void *cdo__piece_alloc(size_t n);
void cdo__piece_free(void *p);
/*
 * Creates directory path and missing parents; the directories it creates
 * get mode 0700. Then checks path is safe (see cdo__dir_check).
 */
int cdo__mkdir_private(const char *path, char *err, size_t errlen);
/*
 * A cache directory is safe when it is a real directory (not a symlink),
 * owned by the effective user, and not writable by group or others.
 * 0, or CDO_EUNSAFE / -errno with err saying why.
 */
int cdo__dir_check(const char *path, char *err, size_t errlen);
/*
 * fork(2) for background work: in the child (0 returned) in a session of
 * its own, stdio on /dev/null, at the caller's priority. The parent gets
 * the pid, or -1 when fork failed. Open stores must not cross it: the
 * child closes the ones it inherited before opening its own.
 */
pid_t cdo__detach(void);
/*
 * Lowers the calling process's priority for background work for good
 * (an unprivileged process cannot raise it again): niced by 10; with idle,
 * also run only when the CPU and the disk have nothing else to do (Linux:
 * SCHED_IDLE, I/O class idle), so that it never takes a core or the disk
 * from a user's run. What the system refuses is left as it was. Work that
 * holds a lock a user's run waits for must not run idle: a holder starved
 * by busy CPUs would stall every run behind it.
 */
void cdo__background(int idle);
/* An unlinked temp file in dir (NULL: $TMPDIR or /tmp); fd or -errno. */
int cdo__tmpfile(const char *dir);
/* $XDG_<what>_HOME, else $HOME/<fallback>; malloc'd, NULL if neither. */
char *cdo__xdg_dir(const char *var, const char *fallback);
/* --file DIR: how far the walk of a directory tree may go. */
#define CDO__TREE_MAX_ENTRIES 100000
#define CDO__TREE_MAX_DEPTH   64
/*
 * SHA-256 of the shape of the tree below the directory fd (names, types,
 * sizes, modification times; the grammar is in tree.c), top naming it in
 * messages. *entries counts what was hashed. 0, or a negative code with err
 * saying why.
 */
int cdo__tree_digest(int fd, const char *top, unsigned char out[32],
                     size_t *entries, char *err, size_t errlen);
/* The default cache URL, sqlite:$XDG_CACHE_HOME/cachedo/cache.db; malloc'd,
 * NULL when neither XDG_CACHE_HOME nor HOME is set (or on ENOMEM). */
char *cdo__default_url(void);

/* ---- keys (key.c) -------------------------------------------------------- */

struct cdo__key {
  unsigned char hash[32];
  char hex[65];
};

/* Matches a shell glob against a variable name (fnmatch, no flags). */
int cdo__glob(const char *pattern, const char *name);
/* Is name one of the volatile, session-specific variables never hashed? */
int cdo__env_volatile(const char *name);

#endif /* CDO_INT_H */
