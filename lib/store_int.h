/* SPDX-License-Identifier: MIT */
/*
 * The backend contract: one const ops table per backend file, chosen by the
 * URL scheme in store.c. Only store*.c include this header.
 */
#ifndef CDO_STORE_INT_H
#define CDO_STORE_INT_H

#include "cdo_int.h"

/* What a backend records next to an entry's bytes, for --list and --gc. */
struct cdo__put_info {
  int64_t created_ms;
  int64_t expires_ms;  /* created + the writer's TTL + stale window */
  int64_t duration_ms;
  int exit_status;
  const char *command; /* argv joined by spaces; borrowed */
  const char *scope;   /* NULL: none; borrowed */
};

/*
 * The base of every open store; each backend's struct embeds it first and
 * is ops->size bytes long. Allocated and freed by store.c.
 */
struct cdo_store {
  const struct cdo__store_ops *ops;
  const struct cdo_config *cfg; /* borrowed */
  char *url;                    /* owned */
  char errmsg[512];             /* the last error, for cdo_store_errmsg() */
};

/*
 * Every member returns 0 or a negative code and, on failure, says why in
 * s->errmsg. Members other than open/close/get/put/del may be NULL: the
 * front end then reports CDO_EUNSUPP.
 */
struct cdo__store_ops {
  const char *scheme; /* URL prefix, e.g. "sqlite:" or "redis://" */
  const char *name;   /* backend name for --version, e.g. "sqlite" */
  size_t size;        /* bytes of the backend's struct */
  /* Checks the rest of the URL (after the scheme); may be NULL. */
  int (*check)(const char *rest, char *err, size_t errlen);
  /* Opens the store at rest; on failure close is still called. */
  int (*open)(struct cdo_store *s, const char *rest);
  /* Releases what open acquired; s itself is freed by the caller. */
  void (*close)(struct cdo_store *s);
  /* A miss is 0 with *out NULL; the caller owns *out (cdo__blob_free). */
  int (*get)(struct cdo_store *s, const struct cdo__key *k,
             struct cdo__blob **out);
  /* Stores src under k atomically: a reader sees the old or the new entry. */
  int (*put)(struct cdo_store *s, const struct cdo__key *k,
             const struct cdo__src *src, const struct cdo__put_info *info);
  /* Removes k's entry; a missing entry is not an error. */
  int (*del)(struct cdo_store *s, const struct cdo__key *k);
  /* Removes every entry, or only scope's when scope is non-NULL. */
  int (*clear)(struct cdo_store *s, const char *scope);
  int (*list)(struct cdo_store *s, cdo_list_fn fn, void *ud);
  int (*stats)(struct cdo_store *s, struct cdo_stats *st);
  /* Removes entries expired by now_ms and leftovers of crashed writers. */
  int (*gc)(struct cdo_store *s, int64_t now_ms, uint64_t *removed);
  /* Directory for the runner's spool (same filesystem helps); may be NULL. */
  const char *(*spool_dir)(struct cdo_store *s);
};

/* Fills s->errmsg (printf-style) and returns code. */
int cdo__store_fail(struct cdo_store *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

extern const struct cdo__store_ops cdo__store_sqlite;

/* ---- the front end's internal API, for run.c ---------------------------- */

enum cdo__fresh { CDO__MISS = 0, CDO__FRESH = 1, CDO__STALE = 2 };

/*
 * Looks k up and judges freshness by the reader's TTLs: returns CDO__FRESH,
 * CDO__STALE (past the TTL but within the stale window) or CDO__MISS, or a
 * negative code when the backend failed. A corrupt entry is removed and is
 * a miss. On FRESH/STALE the caller owns *out and gets its trailer in *m and
 * the journal's offset in *journal_off.
 */
int cdo__store_lookup(struct cdo_store *s, const struct cdo__key *k,
                      struct cdo__blob **out, struct cdo__meta *m,
                      uint64_t *journal_off);
int cdo__store_put(struct cdo_store *s, const struct cdo__key *k,
                   const struct cdo__src *src,
                   const struct cdo__put_info *info);
int cdo__store_del(struct cdo_store *s, const struct cdo__key *k);
const char *cdo__store_spool_dir(struct cdo_store *s);

#endif /* CDO_STORE_INT_H */
