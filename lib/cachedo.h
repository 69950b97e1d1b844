/* SPDX-License-Identifier: MIT */
/*
 * libcachedo: the one public header. cmd/ and any other client include only
 * this file; dependency headers (uv.h, sqlite3.h, hiredis.h) stay behind it.
 */
#ifndef CDO_CACHEDO_H
#define CDO_CACHEDO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDO_VERSION "0.1.0"

/*
 * Error codes. Functions that can fail return 0 or a negative code: either
 * -errno, or one of the CDO_E* codes below, which sit far from errno values.
 */
#define CDO_ERRNO_MAP(XX)                                                      \
  XX(ECORRUPT, -4001, "cache entry is corrupt")                                \
  XX(ETOOBIG, -4002, "output larger than --max-output")                        \
  XX(EBADURL, -4003, "invalid cache URL")                                      \
  XX(ENOBACKEND, -4004, "backend not compiled in")                             \
  XX(EBACKEND, -4005, "cache backend error")                                   \
  XX(EUNSAFE, -4006, "unsafe cache location")                                  \
  XX(EBADVALUE, -4007, "invalid value")                                        \
  XX(EUNSUPP, -4008, "not supported by this backend")                          \
  XX(EFAILED, -4009, "backend marked failed earlier")                          \
  XX(EUNSIGNED, -4010, "the entry is not signed")                              \
  XX(EBADSIG, -4011, "the entry's signature is not valid")                     \
  XX(EREADONLY, -4012, "the cache is read-only")                               \
  XX(EVANISHED, -4013, "the entry was removed while being written")

enum {
#define CDO__XX(name, val, msg) CDO_##name = (val),
  CDO_ERRNO_MAP(CDO__XX)
#undef CDO__XX
};

/* A static message for code (0, -errno or CDO_E*); never NULL. */
const char *cdo_strerror(int code);

/* ---- configuration ------------------------------------------------------ */

/* The most settings there may be (the size of cdo_config's origin). */
#define CDO_CONFIG_MAX 48

enum {
  CDO_ORIGIN_DEFAULT, /* the built-in default */
  CDO_ORIGIN_FILE,    /* a line of the config file */
  CDO_ORIGIN_ENV,     /* a CACHEDO_* variable */
  CDO_ORIGIN_FLAG     /* a command-line option (cdo_config_set) */
};

/* A growable list of strings; every element is owned by the list. */
struct cdo_strv {
  char **v;
  size_t n;
  unsigned layer; /* config layer that last replaced the list */
};

/*
 * Every setting of one invocation. Filled in layers by cdo_config_set():
 * built-in defaults (cdo_config_init), the config file, CACHEDO_* variables,
 * then command-line options. Strings are owned by the struct.
 */
struct cdo_config {
  char *cache;         /* backend URL, or blank-separated URLs of tiers, nearest
                         first; NULL: the default SQLite path */
  int64_t ttl_ms;      /* > 0 */
  int64_t fail_ttl_ms; /* < 0: same as ttl_ms; 0: store no failures */
  int64_t stale_ms;    /* >= 0 */
  int64_t lock_timeout_ms; /* >= 0 */
  uint64_t max_output;     /* bytes of journal that may be stored */
  uint64_t max_size;       /* bytes; 0: unlimited */
  /*
   * Defaults for backends' URL options, from the settings that predate
   * them (redis-timeout, exec-timeout, ...): "backend.option=value", a
   * later one winning; an option in the URL wins over them all.
   */
  struct cdo_strv store_opts;
  char *scope;         /* NULL: none */
  char *sign_key_file; /* NULL: entries are not signed */
  /* With signing: the key derived from sign_key_file's secret. */
  unsigned char sign_key[32];
  int signing, read_only;
  unsigned cache_layer;       /* the config layer that set cache */
  struct cdo_strv env;        /* allowlist patterns; empty: default policy */
  struct cdo_strv ignore_env; /* patterns dropped from the hashed set */
  struct cdo_strv files;      /* --file paths */
  int no_env, no_cwd, pure, use_stdin, refresh, no_cache;
  int tty; /* run the command on a pseudo-terminal (stdout and stderr one) */
  int verbose, quiet;
  /*
   * Set for what the user asked of the cache itself (--clear, --forget,
   * --stats, --list, --gc): backends then try the server even inside a
   * breaker window, which only spares runs the wait.
   */
  int deliberate;
  /*
   * Set by a front end whose job only runs its command, uncached (a run
   * with --no-cache): cdo_job_new() then neither gathers nor hashes the
   * key (no cwd, --file or --stdin digests; the environment only for
   * --pure), and cdo_job_run() uses no store.
   */
  int keyless;
  unsigned layer; /* current layer, see cdo_config_layer() */
  /* Where each setting's value came from, for cdo_config_show(). */
  struct cdo_origin {
    unsigned char kind; /* CDO_ORIGIN_* */
    unsigned line;      /* CDO_ORIGIN_FILE: the line */
  } origin[CDO_CONFIG_MAX];
  char *file; /* the config file that was read, or NULL */
};

/* Sets the built-in defaults. */
void cdo_config_init(struct cdo_config *c);
/* Frees what c owns and leaves it initialised to the defaults. */
void cdo_config_release(struct cdo_config *c);
/*
 * Starts a new layer: a list setting given in this layer replaces, rather
 * than extends, what earlier layers set.
 */
void cdo_config_layer(struct cdo_config *c);

/*
 * Sets the option called name (its long option name without dashes, e.g.
 * "ttl") from the string value (NULL for a flag given without a value).
 * Returns 0, CDO_EBADVALUE with err holding "'VALUE': expected ..." or
 * -ENOENT when name is not a setting (err says so). value is copied.
 */
int cdo_config_set(struct cdo_config *c, const char *name, const char *value,
                   char *err, size_t errlen);

/*
 * Applies the CACHEDO_* variables of envp (NULL: the environment). On a
 * bad value returns
 * CDO_EBADVALUE with err holding the whole message, naming the variable.
 */
int cdo_config_load_env(struct cdo_config *c, char *const envp[], char *err,
                        size_t errlen);

/*
 * Applies a config file of `key = value` lines (# comments, blank lines).
 * A missing file is not an error. path NULL: the default location
 * ($XDG_CONFIG_HOME/cachedo/config, else ~/.config/cachedo/config).
 * On a bad line returns CDO_EBADVALUE, err naming the file and line.
 */
int cdo_config_load_file(struct cdo_config *c, const char *path, char *err,
                         size_t errlen);

/*
 * Calls fn once per setting, in a fixed order, with its name, its value as
 * a config file would spell it ("" when unset) and where it came from:
 * "default", "--NAME", "CACHEDO_..." or "FILE:LINE". Strings are borrowed
 * for the call.
 */
typedef void (*cdo_config_show_fn)(void *ud, const char *name,
                                   const char *value, const char *origin);
void cdo_config_show(const struct cdo_config *c, cdo_config_show_fn fn,
                     void *ud);

/*
 * How many single-character edits (insert, delete, replace, swap of two
 * neighbours) turn the n bytes of a into the string b; for "did you mean".
 */
size_t cdo_edit_distance(const char *a, size_t n, const char *b);
/*
 * Writes into buf the names of names[0..count) nearest to the n bytes of
 * word (at most 1 edit for words of up to 4 bytes, else 2), each after
 * prefix and joined by " or ", e.g. "--ttl or --tty"; "" when none is near.
 */
void cdo_nearest(const char *word, size_t n, const char *const *names,
                 size_t count, const char *prefix, char *buf, size_t len);

/* Parses "500ms", "30", "5m" ... into milliseconds. 0 or CDO_EBADVALUE. */
int cdo_parse_duration(const char *s, int64_t *out_ms);
/* Parses "256M", "1K", "10MiB", "123" into bytes. 0 or CDO_EBADVALUE. */
int cdo_parse_size(const char *s, uint64_t *out);
/* Formats a duration for people: "12s", "3m 4s", "2h 5m", "1d 3h". */
void cdo_format_duration(int64_t ms, char *buf, size_t len);
/* Formats a byte count for people: "512 B", "1.5 KiB", "200 MiB". */
void cdo_format_size(uint64_t n, char *buf, size_t len);

/* ---- stores ------------------------------------------------------------- */

struct cdo_store; /* an open backend; opaque */

/*
 * The space-separated list of compiled-in backend schemes, e.g.
 * "sqlite dir mem redis exec". Static string.
 */
const char *cdo_backends(void);

/* One compiled-in URL form, for help texts. Static strings. */
struct cdo_backend_info {
  const char *scheme;  /* e.g. "redis://" */
  const char *usage;   /* e.g. "redis://HOST[:PORT][/DB]" */
  const char *about;   /* a few words */
  const char *options; /* its URL options' names, ", "-separated, or "" */
};
/* Fills *info for the i-th URL form: 0, or -ENOENT past the last. */
int cdo_backend_info(size_t i, struct cdo_backend_info *info);

/*
 * Checks that url names a known backend and is well formed, without opening
 * anything. 0, or CDO_EBADURL with err saying what is expected.
 */
int cdo_url_check(const char *url, char *err, size_t errlen);

/*
 * Opens the store named by cfg->cache (or the default). On failure returns a
 * negative code, *out is NULL and err holds "cannot open cache 'URL': why".
 * The caller owns *out; close it with cdo_store_close(). cfg is borrowed for
 * the life of the store.
 */
int cdo_store_open(struct cdo_store **out, const struct cdo_config *cfg,
                   char *err, size_t errlen);
/*
 * A cache given as several URLs (--cache repeated, or a blank-separated
 * list) has tiers, nearest first; cdo_store_open opens the nearest that
 * opens. cdo_store_tier returns tier i (0: s itself), opening it when
 * first asked, or NULL past the last; a tier that cannot be opened is
 * skipped, and cdo_store_skipped of the tier before it says why (NULL:
 * nothing skipped). Tiers are closed with s.
 */
struct cdo_store *cdo_store_tier(struct cdo_store *s, int i);
const char *cdo_store_skipped(const struct cdo_store *s);
/* Closes s (NULL is fine). */
void cdo_store_close(struct cdo_store *s);
/*
 * Warnings and notices from the library, one line each without the
 * "cachedo: " prefix or newline. level 0 = warning, 1 = verbose note,
 * 2 = a status line that replaces the previous one (shown only on a
 * terminal), 3 = clear the status line (msg is "").
 */
typedef void (*cdo_msg_fn)(void *ud, int level, const char *msg);
/*
 * Where s sends warnings about what it did on its own, such as replacing a
 * damaged database file (level 0). Unset, they are dropped.
 */
void cdo_store_set_msg(struct cdo_store *s, cdo_msg_fn fn, void *ud);
/* The last error of s; borrowed, valid until the next call on s. */
const char *cdo_store_errmsg(const struct cdo_store *s);
/* The URL the store was opened with (the default resolved); borrowed. */
const char *cdo_store_url(const struct cdo_store *s);

struct cdo_stats;
/*
 * Removes every entry (with cfg->scope: only that scope's). cleared, when
 * not NULL, gets the entries and bytes there were, as counted just before
 * (listed 0: the backend cannot count them).
 */
int cdo_store_clear(struct cdo_store *s, struct cdo_stats *cleared);
/* Removes expired entries and leftovers of crashed writers; *removed counts. */
int cdo_store_gc(struct cdo_store *s, uint64_t *removed);

/* One row of cdo_store_list(); every pointer is borrowed for the callback. */
struct cdo_entry_info {
  char key[65];
  int64_t created_ms;  /* wall clock, ms since the epoch */
  int64_t expires_ms;  /* as set by the writer's TTL */
  int64_t duration_ms; /* how long the command ran */
  uint64_t size;       /* bytes of the stored entry */
  int exit_status;
  const char *command; /* argv as a shell would read it: a 'b c' */
  char *const *argv;   /* the command's arguments, NULL-ended */
  const char *scope;   /* the entry's --scope; NULL: none */
};
typedef int (*cdo_list_fn)(void *ud, const struct cdo_entry_info *info);
/*
 * Calls fn for each entry as the store reads it (newest first on sqlite
 * and exec:, unsorted on dir, mem and Redis); stops when fn returns
 * non-zero. fn may delete the entry it was handed. With a scope configured
 * (--scope), only that scope's entries; a backend that cannot tell scopes
 * apart then fails with CDO_EUNSUPP.
 */
int cdo_store_list(struct cdo_store *s, cdo_list_fn fn, void *ud);

/* The kinds of cache failure --stats counts: name in the enum, label. */
#define CDO_ERRKIND_MAP(XX)                                                    \
  XX(TIMEOUT, "timeout")                                                       \
  XX(UNREACHABLE, "unreachable")                                               \
  XX(CORRUPT, "corrupt")                                                       \
  XX(DENIED, "denied")                                                         \
  XX(FULL, "full")                                                             \
  XX(OTHER, "other")

enum cdo_errkind {
#define CDO__XX(name, label) CDO_ERRKIND_##name,
  CDO_ERRKIND_MAP(CDO__XX)
#undef CDO__XX
      CDO_ERRKIND_COUNT
};
/* The label of kind, e.g. "timeout"; static. */
const char *cdo_errkind_name(int kind);
/* The kind of cache failure code (-errno or CDO_E*) is. */
int cdo_errkind_of(int code);

struct cdo_stats {
  uint64_t entries, bytes;
  uint64_t hits, misses, stale, errors;
  int64_t saved_ms;  /* sum of the original run time of every hit, less
                        what the hits that waited for it waited */
  uint64_t waits;    /* hits that waited for an identical run, then replayed
                        its result (counted in hits too) */
  int64_t waited_ms; /* how long those waited, in all */
  uint64_t uncached; /* ran without the cache after a cache failure */
  uint64_t error_kinds[CDO_ERRKIND_COUNT]; /* errors, by cdo_errkind */
  int64_t since_ms; /* counting since (creation or --zero-stats); 0: unknown */
  int counted;      /* the counters are kept (hits ... since_ms are real) */
  int listed;       /* the backend reported entries and bytes */
};
/*
 * Fills *st; counters a backend does not keep stay 0. With a scope
 * configured, entries and bytes are that scope's (counted by listing).
 */
int cdo_store_stats(struct cdo_store *s, struct cdo_stats *st);
/*
 * Everything --stats shows: cdo_store_stats() (a backend that cannot count
 * its entries leaves entries, bytes and listed 0) and the usage counters of
 * every run since the last cdo_store_zero_stats(). Reads only.
 */
int cdo_store_summary(struct cdo_store *s, struct cdo_stats *st);
/* Resets the usage counters (not the entries, nor their access times). */
int cdo_store_zero_stats(struct cdo_store *s);
/*
 * Evicts least-recently-used entries until the entries take at most
 * max_bytes; *removed and *freed say how many and how many bytes.
 */
int cdo_store_evict(struct cdo_store *s, uint64_t max_bytes, uint64_t *removed,
                    uint64_t *freed);

/* ---- jobs: one memoized command ----------------------------------------- */

struct cdo_job; /* opaque */

/*
 * Prepares the command argv (argv[0] looked up in PATH) under cfg and envp:
 * resolves the executable, reads stdin when cfg->use_stdin, hashes the key
 * (unless cfg->keyless).
 * cfg, argv and envp are borrowed for the life of the job. The caller owns
 * *out; free it with cdo_job_free(). On failure err holds the message.
 */
int cdo_job_new(struct cdo_job **out, const struct cdo_config *cfg,
                char *const argv[], char *const envp[], cdo_msg_fn msg,
                void *ud, char *err, size_t errlen);
void cdo_job_free(struct cdo_job *j);

/* The key as 64 lower-case hex digits ("" if keyless); borrowed from j. */
const char *cdo_job_key(const struct cdo_job *j);

/*
 * Calls fn once per hashed component: name (e.g. "env") and a description.
 * Values show only as keyed digests under the random salt of store s
 * (made with the cache, kept with it), so that nothing can be checked
 * against a guessed value without the salt; variables whose names look
 * secret (*TOKEN*, *_KEY, ...), and every value when s is NULL or has no
 * salt, show only as "set".
 */
typedef void (*cdo_explain_fn)(void *ud, const char *component,
                               const char *detail);
void cdo_job_explain(const struct cdo_job *j, struct cdo_store *s,
                     cdo_explain_fn fn, void *ud);

/*
 * Why would this job miss? Compares the job's key components with the ones
 * remembered for the same command (the same argv) when its entries were
 * stored, picks the nearest, and calls fn once with component "nearest"
 * (how old it is), then once per component that differs (detail says how,
 * never with a value). Without a remembered entry, fn is called once with
 * component "nearest" and detail "none". First, when the store holds an
 * entry of the job that does not count (corrupt, another key's, not
 * validly signed), fn is called with component "stored" and why. Costs a
 * small file read; meant for misses and --explain, never for hits. 0 or a
 * negative code.
 */
int cdo_job_explain_miss(struct cdo_job *j, struct cdo_store *s,
                         cdo_explain_fn fn, void *ud);

enum cdo_outcome {
  CDO_HIT = 1,         /* replayed a fresh entry */
  CDO_STALE,           /* replayed a stale entry; a refresh was started */
  CDO_MISS_STORED,     /* ran the command, stored the result */
  CDO_MISS_NOT_STORED, /* ran the command, did not store (reason says why) */
  CDO_UNCACHED         /* ran the command without the cache */
};

struct cdo_result {
  enum cdo_outcome outcome;
  int exit_status;    /* the command's status, or 125/126/127 */
  int term_signal;    /* > 0: the command died of this signal */
  int64_t age_ms;     /* CDO_HIT / CDO_STALE: age of the entry */
  int64_t waited_ms;  /* > 0: a hit that first waited this long for the
                         identical run whose result it replays */
  long wait_pid;      /* that run's process id; 0: unknown */
  char reason[200];   /* CDO_MISS_NOT_STORED / CDO_UNCACHED: why */
  char miss_why[300]; /* a miss with cfg->verbose: what differs from the
                         nearest stored entry of the command, or "" */
  char error[300];    /* exit 125/126/127 from cachedo itself: message */
  char tier[200];     /* a hit of a cache with tiers: the tier's URL */
};

/*
 * Runs the job: answers from store s when a fresh entry is there, else runs
 * the command with its output streamed live to fds 1 and 2 and stores it.
 * s may be NULL (run uncached). Cache failures never fail the job: they are
 * reported once through the job's msg callback and the command runs. Fills
 * *res; returns 0 (the outcome is in res).
 */
int cdo_job_run(struct cdo_job *j, struct cdo_store *s, struct cdo_result *res);

/*
 * After a run that stored a miss: starts the upkeep it found due (hourly,
 * or when the cache's WAL or usage records want tidying), in a child fully
 * detached from the caller that opens its own store; nothing when none is
 * due. Call it after closing every store handle of this process, as
 * cdo_job_refresh. A job freed without it leaves the upkeep to a later
 * miss.
 */
void cdo_job_upkeep(struct cdo_job *j);
/*
 * After a CDO_STALE answer: starts the one background refresh, in a child
 * fully detached from the caller (own session, stdio on /dev/null) that
 * opens its own store. Call it after closing every store handle of this
 * process: an open database connection must not cross fork().
 */
void cdo_job_refresh(struct cdo_job *j);
/*
 * --warm: starts the same detached refresh now, whether or not a fresh
 * entry is there, and returns at once. Single-flight: nothing happens while
 * another run of the job holds its lock; a failing run does not replace a
 * successful result. Returns 0 when started, else the status to exit with
 * (126/127: the command cannot run; 1: no refresh) and err says why. Call it
 * with no store handle open in this process.
 */
int cdo_job_warm(struct cdo_job *j, char *err, size_t errlen);

/* Removes the job's entry from s: 1 when there was one, 0 when not. */
int cdo_job_forget(struct cdo_job *j, struct cdo_store *s);

#ifdef __cplusplus
}
#endif
#endif /* CDO_CACHEDO_H */
