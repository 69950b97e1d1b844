/* SPDX-License-Identifier: MIT */
/*
 * The backend contract: one const ops table per backend file, chosen by the
 * URL scheme in store.c (lib/README says what a new backend provides).
 * Included by the backends and by the front end that drives them: store.c,
 * lock.c, usage.c, evict.c, explain.c and the job's files.
 */
#ifndef CDO_STORE_INT_H
#define CDO_STORE_INT_H

#include "entry.h"

/* What a backend records next to an entry's bytes, for --list and --gc. */
struct cdo__put_info {
  int64_t created_ms;
  int64_t expires_ms; /* created + the writer's TTL + stale window */
  int64_t duration_ms;
  int exit_status;
  const char *command; /* argv quoted by cdo__argv_quote; borrowed */
  const char *scope;   /* NULL: none; borrowed */
};

/* One run, as cdo__store_record() hands it to a backend's count member. */
struct cdo__usage {
  int64_t time_ms;  /* wall clock at the end of the run */
  int64_t saved_ms; /* hits and stale answers: the entry's run time, less
                       waited_ms */
  enum cdo_outcome outcome;
  int error_kind;             /* -1, or the CDO_ERRKIND_* of a cache failure */
  const struct cdo__key *key; /* NULL when unknown */
  int64_t waited_ms; /* > 0: a hit that waited this long for the identical
                        run it replays */
};

/* When entries were last read, folded from the usage records. */
struct cdo__atime {
  uint64_t prefix; /* the key's first 8 bytes, big-endian */
  int64_t time_ms;
};

/* The usage summary (usage.c): counters, and access times for eviction. */
struct cdo__usage_sum {
  uint64_t offset; /* bytes of the usage file folded in */
  int64_t since_ms;
  uint64_t n[CDO_UNCACHED + 1]; /* by enum cdo_outcome */
  int64_t saved_ms;
  uint64_t waits;    /* hits that waited for an identical run */
  int64_t waited_ms; /* how long they waited, in all */
  uint64_t kinds[CDO_ERRKIND_COUNT];
  struct cdo__atime *at; /* sorted by prefix, one per prefix */
  size_t n_at, cap_at;
};
void cdo__usage_sum_release(struct cdo__usage_sum *sm);

/*
 * The base of every open store; each backend's struct embeds it first and
 * is ops->size bytes long. Allocated and freed by store.c.
 */
struct cdo_store {
  const struct cdo__store_ops *ops;
  const struct cdo_config *cfg; /* borrowed */
  char *url;                    /* owned */
  char errmsg[512];             /* the last error, for cdo_store_errmsg() */
  /* The failure breaker (cdo__breaker_*), for a backend that opts in. */
  int failed;       /* failed this run: no more tries */
  char *breaker;    /* the file remembering a failure; NULL: none; owned */
  int breaker_seen; /* that file was there at open */
  int read_only;    /* reads only: no put, del, count, lease */
  int tidy;         /* its writes left work for ops->tidy */
  /* What the last lookup found: why it missed (static, or NULL) and
   * whether the entry was corrupt or another key's. */
  const char *miss_why;
  int found_corrupt;
  /* Tiers: the next farther one, once opened; the URLs of those not yet
   * tried (owned); this one's place (0: nearest); a failure this run that
   * took it out (0: none), said once (warned); what failed to open after
   * it (for a warning); in the nearest: the tier that answered the last
   * lookup, and the one that takes single-flight locks. */
  struct cdo_store *next;
  char *rest;
  int tier, down, warned;
  char skipped[600];
  struct cdo_store *answered, *lock_tier;
  unsigned char salt[32]; /* with salted: the cache's explain salt */
  int salted;
  cdo_msg_fn msg; /* warnings; NULL: none shown */
  void *msg_ud;
};

/*
 * Optional: single-flight locks the backend keeps itself (e.g. leases on a
 * server every client sees). Without them, lock.c takes byte-range locks in
 * one file under files->lock_dir.
 */
struct cdo__store_locks {
  /*
   * Takes k's run lock, waiting up to wait_ms (0: only try) for another
   * holder to release it. Returns 0 with *lk set when taken (pass *lk to
   * unlock), CDO__ERR(EAGAIN) when still held by another, or an error. A
   * holder that dies must release it (a lease that expires).
   */
  int (*lock)(struct cdo_store *s, const struct cdo__key *k, int64_t wait_ms,
              void **lk);
  /* Releases and frees lk. */
  void (*unlock)(struct cdo_store *s, const struct cdo__key *k, void *lk);
  /*
   * For locks that are leases: extends lk to a full lease again; the
   * runner calls it every 10 s while the command runs. 0, or
   * CDO__ERR(ENOLCK) when the lock was lost. NULL: no renewal needed.
   */
  int (*renew)(struct cdo_store *s, const struct cdo__key *k, void *lk);
};

/*
 * Optional: usage counters the backend keeps itself (e.g. a server
 * counting for a whole fleet), instead of the local usage file (usage.c).
 * All three are set. count runs on the hit path: it must cost no more than
 * one pipelined write.
 */
struct cdo__store_counters {
  /* Records one run. */
  int (*count)(struct cdo_store *s, const struct cdo__usage *u);
  /* Fills the counters of *st (hits ... since_ms); entries come from stats. */
  int (*read)(struct cdo_store *s, struct cdo_stats *st);
  /* Resets the counters. */
  int (*zero)(struct cdo_store *s);
};

/* Optional: where a backend with local files wants the front end's ones. */
struct cdo__store_files {
  /* Directory for the runner's spool (same filesystem helps); may be NULL. */
  const char *(*spool_dir)(struct cdo_store *s);
  /* Where lock.c's lock file lives; NULL: a per-user runtime directory. */
  const char *(*lock_dir)(struct cdo_store *s);
  /*
   * A path prefix next to the backend's data, in a directory the backend
   * checked at open, under which the front end keeps its own small files
   * (usage.c adds "-usage" and "-stats", evict.c "-upkeep", explain.c
   * "-explain.log" and "-explain.old"): e.g. the
   * database path. NULL, or a NULL result: those files go under
   * $XDG_CACHE_HOME/cachedo/ instead.
   */
  const char *(*local_path)(struct cdo_store *s);
};

/*
 * An option a backend's URLs take, as ?name=value&name=value. store.c
 * parses it, %-decoded, into the backend's struct at off before open: an
 * int64_t (durations in ms, numbers), or a char * that store.c owns. The
 * default comes first, then the settings mapped onto it (config.c), then
 * the URL.
 */
struct cdo__store_opt {
  const char *name; /* e.g. "timeout" */
  enum cdo__vtype type;
  const char *def; /* the default, as text; NULL: 0 or NULL */
  size_t off;
  int secret; /* a password: never shown, wiped when freed */
};

/*
 * A backend: the storage core, then optional sub-tables. Every member
 * returns 0 or a negative code and, on failure, says why in s->errmsg.
 * open, close, get, put and del are required; clear, list, stats and gc
 * may be NULL (the front end then reports CDO_EUNSUPP), and so may each
 * sub-table.
 */
struct cdo__store_ops {
  const char *scheme; /* URL prefix, e.g. "sqlite:" or "redis://" */
  const char *name;   /* backend name for --version, e.g. "sqlite" */
  const char *usage;  /* the URL's form, e.g. "dir:PATH", for messages */
  const char *about;  /* what it is, in a few words, for --help */
  size_t size;        /* bytes of the backend's struct */
  /* The options its URLs take, ended by a NULL name; NULL: none. */
  const struct cdo__store_opt *options;
  /*
   * Where the options start in rest (after the scheme): at the '?', to
   * the next blank or the end; NULL: none given. Set with options.
   */
  const char *(*query)(const char *rest);
  /*
   * Checks the rest of the URL (after the scheme, without the options);
   * may be NULL.
   */
  int (*check)(const char *rest, char *err, size_t errlen);
  /*
   * For a backend that is another one at a place it works out (mem: is
   * dir: on tmpfs): writes into url the URL to open instead, and is the
   * only member set besides scheme, name and check. 0 or a negative code.
   */
  int (*locate)(const char *rest, char *url, size_t len);

  /* ---- the storage core ---- */
  /*
   * Opens the store at rest (without the options, which are in s's
   * struct already); on failure close is still called.
   */
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
  /*
   * Calls fn for each entry until fn returns non-zero, streaming: memory
   * must not grow with the number of entries (order: the store's; newest
   * first when it has an index for it). fn may delete the entry it was
   * handed. A row has argv (and command NULL), or command as
   * cdo__argv_quote wrote it (and argv NULL): the front end fills in the
   * other. scope is the entry's, when lists_scope.
   */
  int (*list)(struct cdo_store *s, cdo_list_fn fn, void *ud);
  int lists_scope; /* list fills in each row's scope */
  /*
   * Optional, for a store that can do it for much less than list: as
   * list, but a row need only have key, created_ms and size (created_ms
   * may be a later time the entry was read). Eviction walks with it.
   */
  int (*scan)(struct cdo_store *s, cdo_list_fn fn, void *ud);
  /* Fills the entries and bytes of *st. */
  int (*stats)(struct cdo_store *s, struct cdo_stats *st);
  /* Removes entries expired by now_ms and leftovers of crashed writers. */
  int (*gc)(struct cdo_store *s, int64_t now_ms, uint64_t *removed);
  /*
   * Bulk work (eviction, bench/fill.c): after batch(s, 1), puts and dels
   * may share write transactions or round trips, each of at most a few
   * thousand; batch(s, 0) commits the rest. An operation that failed may
   * have taken uncommitted ones of the batch with it (a cache loses
   * nothing by that). May be NULL: every operation stands alone.
   */
  int (*batch)(struct cdo_store *s, int on);
  /*
   * Eviction's deleting pass, for a store that can do it better than
   * list and del: removes entries created no later than cutoff whose key's
   * first 8 bytes (big-endian) are not in keep[0, n_keep) (read later;
   * ascending), until need bytes are freed, adding to *removed and *freed.
   * May be NULL.
   */
  int (*evict_older)(struct cdo_store *s, int64_t cutoff, const uint64_t *keep,
                     size_t n_keep, uint64_t need, uint64_t *removed,
                     uint64_t *freed);
  /*
   * Work a write leaves that a user's run should not wait for (SQLite: the
   * checkpoint of its WAL, and the fsyncs that go with it). A backend sets
   * s->tidy when its writes left some; cdo__store_maintain then runs tidy
   * in its detached child, on a store of the child's own. May be NULL.
   */
  void (*tidy)(struct cdo_store *s);
  /*
   * Its gc and eviction hold no lock that a user's run waits for: the
   * detached upkeep then runs at idle priority (cdo__background), so that it
   * never takes a core or the disk from a run. Not so SQLite's, which take
   * its write lock: a holder starved by busy CPUs would stall every miss
   * behind it (its upkeep stays niced).
   */
  int idle_upkeep;
  /*
   * Work a put will need, done while the command runs so that it is not
   * added after it (SQLite: reading the schema, preparing the statements
   * of a put). It must not wait for a lock nor change the cache; what it
   * could not do the put does. May be NULL.
   */
  void (*prime)(struct cdo_store *s);

  /*
   * Eviction by a store that keeps its entries' order of creation and
   * their bytes itself: removes the oldest until no more than max_bytes
   * are left, adding to *removed and *freed. Used when there are no local
   * access times (counters). May be NULL.
   */
  int (*evict)(struct cdo_store *s, uint64_t max_bytes, uint64_t *removed,
               uint64_t *freed);

  /* ---- optional sub-tables (NULL: the front end's default) ---- */
  const struct cdo__store_locks *locks;
  const struct cdo__store_counters *counters;
  const struct cdo__store_files *files;
};

/*
 * Tiers (store.c). cdo__store_next opens (once) and returns the tier after
 * s, or NULL. cdo__store_tiered: s has tiers after it. lookup, put and del
 * act on every tier; cdo__store_read_only: no tier can be written;
 * cdo__store_lock_tier: the farthest writable tier with lease locks, else
 * s; cdo__store_warn_down: one warning line per tier that failed or could
 * not be opened, through fn.
 */
struct cdo_store *cdo__store_next(struct cdo_store *s);

int cdo__store_tiered(const struct cdo_store *s);
int cdo__store_read_only(struct cdo_store *s);
struct cdo_store *cdo__store_lock_tier(struct cdo_store *s);
void cdo__store_warn_down(struct cdo_store *s, cdo_msg_fn fn, void *ud);

/*
 * 0 when s may be written; else CDO_EREADONLY, with s->errmsg saying that
 * it cannot `what` (e.g. "clear") s.
 */
int cdo__store_writable(struct cdo_store *s, const char *what);

/*
 * A warning about something the backend did on its own (e.g. replaced a
 * damaged file), through the callback of cdo_store_set_msg().
 */
void cdo__store_warn(struct cdo_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Fills s->errmsg (printf-style) and returns code. */
int cdo__store_fail(struct cdo_store *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* CDO_EUNSUPP, saying "the NAME backend cannot WHAT". */
int cdo__store_unsupported(struct cdo_store *s, const char *what);

/*
 * Reads exactly n bytes at off of src (the entry a put stores) into buf.
 * 0, or a negative code with s->errmsg saying why.
 */
int cdo__store_src_read(struct cdo_store *s, const struct cdo__src *src,
                        uint64_t off, void *buf, size_t n);
/*
 * Writes src's whole bytes at fd's offset, the spool's part copied in the
 * kernel (copy_file_range) when the two files allow it. 0 or an error.
 */
int cdo__store_src_write(int fd, const struct cdo__src *src);
/*
 * The --max-output bound, for backends: no entry this front end writes is
 * larger than this (the journal's bound plus room for header and
 * trailer), so a get that finds more has found something else. Puts of a
 * journal over --max-output never reach a backend.
 */
uint64_t cdo__store_max_entry(const struct cdo_store *s);

/*
 * The failure breaker, for a backend whose server or program can be sick,
 * so that it costs one run one timeout and the next runs none. The backend
 * opts in from open, once it knows its address: cdo__breaker_open(s,
 * "server", "host:6379", window_ms) fails with CDO_EFAILED, saying since
 * when the server is skipped, while a failure remembered by an earlier run
 * is within the window (0: remember nothing). cdo__breaker_trip marks s
 * failed for the rest of this run (s->failed: make no more tries) and
 * remembers why, in a file per backend and address under
 * $XDG_RUNTIME_DIR/cachedo/ (else the cache directory). cdo__breaker_ok
 * forgets it once the server answers again.
 */
int cdo__breaker_open(struct cdo_store *s, const char *who, const char *where,
                      int64_t window_ms);
void cdo__breaker_trip(struct cdo_store *s, const char *why);
void cdo__breaker_ok(struct cdo_store *s);

/* ---- the front end's internal API, for run.c ---------------------------- */

enum cdo__fresh { CDO__MISS = 0, CDO__FRESH = 1, CDO__STALE = 2 };

/*
 * Looks k up and judges freshness by the reader's TTLs: returns CDO__FRESH,
 * CDO__STALE (past the TTL but within the stale window) or CDO__MISS, or a
 * negative code when the backend failed. A corrupt entry, or one stored
 * under another key, is a miss and is removed (unless read-only); with
 * cfg->signing, so is one without a valid signature, which stays. Either
 * way s->miss_why says why. On FRESH/STALE the caller owns *out and gets its
 * trailer in *m and the journal's offset in *journal_off.
 */
int cdo__store_lookup(struct cdo_store *s, const struct cdo__key *k,
                      struct cdo__blob **out, struct cdo__meta *m,
                      uint64_t *journal_off);
int cdo__store_put(struct cdo_store *s, const struct cdo__key *k,
                   const struct cdo__src *src,
                   const struct cdo__put_info *info);
int cdo__store_del(struct cdo_store *s, const struct cdo__key *k);
/* Readies the open tiers a put will write for it (ops->prime), while it
 * runs. */
void cdo__store_prime(struct cdo_store *s);
/* ops->batch, when the backend has it; else 0. */
int cdo__store_batch(struct cdo_store *s, int on);
/* Removes k's entry: 1 when there was one, 0 when not, or an error. */
int cdo__store_forget(struct cdo_store *s, const struct cdo__key *k);
const char *cdo__store_spool_dir(struct cdo_store *s);

/*
 * Single-flight locks (lock.c): ops->locks when the backend has them, else
 * a byte-range lock in one file per lock directory. cdo__store_lock waits up to
 * wait_ms (0: only tries) and returns 0 with *lk set, CDO__ERR(EAGAIN) while
 * another holds it, or an error. The holder's pid is recorded for waiters'
 * messages (0 when unknown). cdo__store_unlock releases and frees lk (NULL:
 * no-op).
 */
int cdo__store_lock(struct cdo_store *s, const struct cdo__key *k,
                    int64_t wait_ms, void **lk);
void cdo__store_unlock(struct cdo_store *s, const struct cdo__key *k, void *lk);
long cdo__store_lock_holder(struct cdo_store *s, const struct cdo__key *k);
/*
 * The path of s's lock file into buf: 0, or -1 for a backend with locks of
 * its own. cdo__runs_at_work: 1 while some run holds a single-flight lock
 * in the lock file at lock_path (a miss between its lock and its put, on
 * this cache or another of the user's), else 0.
 */
int cdo__store_lock_path(struct cdo_store *s, char *buf, size_t len);
int cdo__runs_at_work(const char *lock_path);
/* Removes per-key lock files of older versions unused for an hour. */
void cdo__store_locks_gc(struct cdo_store *s, int64_t now_ms);
/* Extends a lease lock (locks->renew); 0 for locks that need no renewal. */
int cdo__store_lock_renew(struct cdo_store *s, const struct cdo__key *k,
                          void *lk);

/*
 * Counts one run for --stats (usage.c): outcome; saved_ms, for a hit or a
 * stale answer, the stored entry's original run time (else 0); k, the key
 * (a hit's key also dates the entry's last use, for --max-size); error, 0
 * or the code of a cache failure the run met (counted by kind). One
 * O_APPEND write of a fixed-size record to a local file: no lock, no
 * transaction, nothing read. Failures are ignored. s NULL: nothing.
 */
void cdo__store_record(struct cdo_store *s, const struct cdo__key *k,
                       enum cdo_outcome outcome, int64_t saved_ms, int error);
/* The same for a run described whole (time_ms 0: now). */
void cdo__store_record_usage(struct cdo_store *s, const struct cdo__usage *u);
/*
 * Plans the upkeep, rate-limited; call after a miss was stored, never on
 * a hit. At most once an hour per cache (one stat(2) decides; the stamp
 * is the file P-upkeep), or when the usage records want folding, a
 * detached, niced child does the work with its own store, under the
 * usage lock: folds the records, removes expired entries and, with
 * cfg->max_size, evicts least-recently-used ones. The same child (or one
 * of its own when no upkeep is due) runs ops->tidy for each tier whose
 * writes asked for it (s->tidy, claimed here), one child per cache at a
 * time. The caller's run does none of it. Returns the plan (NULL: nothing
 * to do), for cdo__upkeep_start once s is closed: the fork then copies no
 * open connection, and the caller's closing writes no page it shares with
 * the child.
 */
struct cdo__upkeep;
struct cdo__upkeep *cdo__store_maintain(struct cdo_store *s);
/* Forks the child of plan u (NULL: none) and frees u. */
void cdo__upkeep_start(struct cdo__upkeep *u);
/* Frees plan u without starting it: a later miss plans again. */
void cdo__upkeep_drop(struct cdo__upkeep *u);
/*
 * Remembers the digests of j's key components (never values) with the
 * digest of the command's argv, in one record appended to the cache's
 * explain log, so that a later miss of the same command can say what
 * differs (cdo_job_explain_miss). Call after j's result was stored.
 * Failures are ignored. cdo__explain_prepare makes the record ahead (into
 * j->explain, while the command runs: the salt read, the digests), so that
 * the save after the put is one append; cdo__explain_drop frees one
 * unsaved.
 */
struct cdo__explain_rec;
void cdo__explain_prepare(struct cdo_job *j, struct cdo_store *s);
void cdo__explain_save(struct cdo_job *j, struct cdo_store *s);
void cdo__explain_drop(struct cdo__explain_rec *x);
/*
 * What differs from the nearest remembered inputs of j's command, line by
 * line to fn, as cdo_job_explain_miss() tells it but without looking the
 * entry up again (for -v on a miss). s NULL: nothing.
 */
int cdo__explain_miss(struct cdo_job *j, struct cdo_store *s, cdo_explain_fn fn,
                      void *ud);
/*
 * The cache's random salt for what explaining shows or keeps of values
 * (32 bytes in the local file "-salt", mode 0600), made when missing if
 * create is set and s is not read-only. 0 with *salt pointing into s, or a
 * negative code (then nothing may show a digest).
 */
int cdo__store_salt(struct cdo_store *s, int create,
                    const unsigned char **salt);
/* Removes the per-command side files older versions kept (P-explain/). */
void cdo__explain_prune(struct cdo_store *s, int64_t older_than_ms);
/*
 * The usage log of a store, open and folded (usage.c; evict.c uses it).
 * cdo__usage_open locks the usage file (how: LOCK_SH to read, LOCK_EX to
 * fold, optionally | LOCK_NB; CDO__ERR(EAGAIN) when taken), reads the
 * summary and adds the records not yet folded. cdo__usage_save writes the
 * summary back (LOCK_EX only). cdo__usage_close releases both, also after
 * a failed open. cdo__usage_due says whether the summary is older than
 * every_ms, or the log so large that it wants folding (*fold_only).
 */
struct cdo__usage_log {
  char usage[4096], stats[4096];
  int fd; /* the usage file, flock'ed */
  struct cdo__usage_sum sm;
};
int cdo__usage_open(struct cdo_store *s, struct cdo__usage_log *u, int how);
int cdo__usage_save(struct cdo_store *s, struct cdo__usage_log *u);
void cdo__usage_close(struct cdo__usage_log *u);
int cdo__usage_due(struct cdo_store *s, int64_t every_ms, int *fold_only);
/*
 * Writes into buf the path of this store's own file named suffix (e.g.
 * "-usage"): the backend's local_path plus suffix, else under
 * $XDG_CACHE_HOME/cachedo/, a directory made when create is set.
 */
int cdo__store_local_file(struct cdo_store *s, const char *suffix, char *buf,
                          size_t len, int create);

#endif /* CDO_STORE_INT_H */
