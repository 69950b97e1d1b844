/* SPDX-License-Identifier: MIT */
/*
 * The default backend: SQLite in WAL mode, safe for many processes at once.
 *
 * PATH, a database with small pages, holds every entry's row, with the
 * bytes of entries up to SMALL_MAX in it: a hit is one lookup that touches
 * a few 4 KiB pages (each page a process touches costs it a page fault or
 * two), and a miss usually changes one page. The bytes of a larger entry
 * are a plain file, PATH-blobs/<blob id in 16 hex digits>, which a hit
 * replays as dir: does (sendfile, checked once per boot: store.c).
 *
 *   PATH        entry(key, blob, size, created, expires, duration, status,
 *                     scope, command, bytes) bytes: the entry when size <=
 *                                            SMALL_MAX, else NULL and blob;
 *                                            rows in the order written
 *               pending(blob, started)       big blobs being written, or
 *                                            doomed (started = 0)
 *   PATH-blobs/ one file per big blob
 *   PATH-big    chunk(id = blob << ROW_BITS | seq, bytes): where caches
 *               written before PATH-blobs kept big blobs, in rows of ROW
 *               bytes; still read (a blob with no file is looked up there)
 *               and emptied by deletes, never written
 *   PATH-keys   the key filter (keyfilter.c): one bit per stored key, set
 *               in the transaction that stores it
 *
 * A small entry is written in one statement. A big one is first listed in
 * pending under a new random blob id, then written to its file (no fsync:
 * a file torn by a crash fails the entry's checksums, is a miss and goes),
 * then published in one transaction of PATH that points entry.key at it.
 * A reader sees a whole old or a whole new entry; a blob whose file is
 * missing is a miss. A replaced or deleted big blob is marked doomed in the
 * same transaction and its file removed right after; a writer that dies
 * leaves a pending blob, which --gc removes. A writer holds flock(2)
 * LOCK_SH on the empty file PATH-writers while its blob is pending: --gc,
 * when it gets LOCK_EX at once, knows every pending blob is a dead one,
 * and removes every file of PATH-blobs that no row names.
 *
 * A lookup first asks the key filter; when it says the key is not stored
 * (a first run of a command), PATH is not opened for it at all. Else it
 * opens PATH as a reader (use_db): a lookup, most runs' one use of it,
 * maps the -shm read-only and, alone with the database, reads the WAL into
 * its own memory rather than rebuilding the shared wal-index. Any other
 * use, a write above all, reopens PATH as a writer; a miss does that while
 * its command runs (sqlite_prime), and a --refresh run, or a first run the
 * filter answered, opens it only then (open_later).
 *
 * PATH's WAL is not checkpointed when a connection closes, nor by the
 * writer of a miss, which would cost fsyncs on the user's run: once it
 * holds WAL_FRAMES frames, the miss leaves the checkpoint to a detached
 * child (sqlite_tidy), which also restarts the WAL, so that the writers
 * that follow only append to it, with no fsync. A process opening PATH
 * has about that many frames to scan.
 */
#include "store_int.h"

#include <sodium.h>
#include <dirent.h>
#include <limits.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION     6
#define SET_VERSION        "PRAGMA user_version = 6"
#define SMALL_MAX          ((uint64_t)256 << 10)
#define ROW                (1 << 20)
#define ROW_BITS           16
#define WAL_FRAMES         12 /* see maybe_checkpoint */
#define TIDY_ROUNDS        8
#define BUSY_MS            60000
#define CHECKPOINT_BUSY_MS 50
#define PENDING_MAX_AGE_MS 3600000
#define BATCH_OPS          4096
#define EVICT_TX_ROWS      65536 /* rowids an eviction transaction spans */
#define NEWEST_PLAUSIBLE   255   /* a larger schema version is damage */
#define FILTER_SLACK       4096  /* stale bits of the key filter let be */

/* How PATH is open (struct sqlite_store's mode; see use_db). */
#define DB_READER 1
#define DB_WRITER 2

/* Which file SQLite found damaged (struct sqlite_store's damaged). */
#define DAMAGED_DB  1
#define DAMAGED_BIG 2

struct sqlite_store {
  struct cdo_store base;
  sqlite3 *db;  /* PATH */
  sqlite3 *big; /* PATH-big, once needed */
  char *path;
  char *big_path;
  char *blobs;    /* PATH-blobs */
  char *keys;     /* PATH-keys, the key filter (keyfilter.c) */
  int mode;       /* how db is open: DB_READER or DB_WRITER (use_db) */
  int tuned;      /* writer pragmas applied to db */
  int wal_frames; /* frames in db's WAL after our last commit */
  int batch;      /* in a batch (sqlite_batch) */
  int batch_ops;  /* operations in the batch's open transaction */
  int doomed;     /* big blobs doomed by the open transaction */
  int bulk;       /* in bulk work, which checkpoints (maybe_checkpoint) */
  int wal_keep;   /* checkpoint leaves the WAL file its length */
  /* In a batch, the statements of a delete by key, prepared once. */
  sqlite3_stmt *del_sel, *del_doom;
  /* Kept for the connection's life (prepared by sqlite_prime, or first
   * use): the schema version, an entry's blob and size, an entry's row. */
  sqlite3_stmt *version, *old, *ins;
  int damaged;    /* DAMAGED_* bits: SQLite called the file damaged */
  int replaced;   /* damaged files were replaced (once per store) */
  int clearing;   /* in --clear: a newer schema version counts as damage */
  int writers_fd; /* PATH-writers, once needed; -1 before */
  int busy_ms;    /* how long db and big wait for a lock (set_busy) */
  int64_t busy_since_us;  /* when the current wait began (on_busy) */
  struct stat id, big_id; /* the files db and big opened */
};

/*
 * The table's rows are kept in the order they were written (rowids that
 * grow), the key in an index of its own: the oldest entries, which
 * eviction takes, are then whole pages at the start of the table, which
 * SQLite frees without writing them. (Keyed by the key itself, a table of
 * random keys has the oldest spread over every page, and deleting half of
 * it rewrote every page: in SQLite's shell, deleting the oldest 500k of 1M
 * such rows took 9.3 s keyed by key, 3.0 s in rowid order.) --list, newest
 * first, reads the table in about its own order too. A lookup costs one
 * more descent, through the key's index.
 */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS entry("
    " key BLOB NOT NULL UNIQUE, blob INTEGER NOT NULL, size INTEGER NOT NULL,"
    " created INTEGER NOT NULL, expires INTEGER NOT NULL,"
    " duration INTEGER NOT NULL, status INTEGER NOT NULL, scope TEXT,"
    " command TEXT NOT NULL, bytes BLOB);"
    "CREATE TABLE IF NOT EXISTS pending(blob INTEGER PRIMARY KEY,"
    " started INTEGER NOT NULL);"
    /* The one index besides the key's, kept as it is for eviction and
     * upkeep: it holds what eviction's measuring pass reads (the order of
     * use, the key, the size: do_scan walks it and never the table, whose
     * rows are ten times larger), --gc finds the expired by walking it
     * whole (a few dozen bytes an entry), --stats counts from it, and
     * --list streams newest first in its order. One index rather than
     * one per use: each deleted row updates every index. (Named apart from
     * the entry_created of versions 3 and 4, which stays on entry_old.) */
    "CREATE INDEX IF NOT EXISTS entry_age"
    " ON entry(created, key, size, expires);";

static const char big_schema[] =
    "CREATE TABLE IF NOT EXISTS chunk(id INTEGER PRIMARY KEY, bytes BLOB);";

static struct sqlite_store *sq(struct cdo_store *s)
{
  return (struct sqlite_store *)s;
}

/* Did the last statement fail for want of a table or column? */
static int schema_missing(sqlite3 *db)
{
  return sqlite3_errcode(db) == SQLITE_ERROR &&
         (strstr(sqlite3_errmsg(db), "no such table") != NULL ||
          strstr(sqlite3_errmsg(db), "no such column") != NULL);
}

/*
 * Did SQLite fail on db because the file is damaged: corrupt, not a
 * database, or read-only by its header although we may write to it?
 */
static int is_damage(sqlite3 *db)
{
  int rc = sqlite3_extended_errcode(db);
  const char *f = sqlite3_db_filename(db, "main");

  return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB ||
         (rc == SQLITE_READONLY && f != NULL && access(f, W_OK) == 0);
}

static int db_fail(struct sqlite_store *q, sqlite3 *db, const char *what)
{
  int rc = sqlite3_extended_errcode(db);

  /* A table missing after ensure_schema: the file is not what its schema
   * version says (e.g. PATH and PATH-big swapped). */
  if (is_damage(db) || schema_missing(db))
    q->damaged |= db == q->big ? DAMAGED_BIG : DAMAGED_DB;

  cdo__store_fail(&q->base,
                  (rc & 0xff) == SQLITE_BUSY ? CDO__ERR(EBUSY) : CDO_EBACKEND,
                  "%s: %s", what, sqlite3_errmsg(db));
  return (rc & 0xff) == SQLITE_BUSY ? CDO__ERR(EBUSY) : CDO_EBACKEND;
}

static int exec(struct sqlite_store *q, sqlite3 *db, const char *sql)
{
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
    return db_fail(q, db, sql);
  return 0;
}

static int prepare(struct sqlite_store *q, sqlite3 *db, const char *sql,
                   sqlite3_stmt **st)
{
  if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
    return db_fail(q, db, "cannot prepare statement");
  return 0;
}

static int step_done(struct sqlite_store *q, sqlite3 *db, sqlite3_stmt *st,
                     const char *what)
{
  int rc = sqlite3_step(st);

  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_fail(q, db, what);
}

/*
 * *st, prepared from sql on its first use and kept (reset after each use);
 * NULL when it cannot be (the caller reports why). Kept statements are
 * finalized by forget_stmts.
 */
static sqlite3_stmt *kept(struct sqlite_store *q, sqlite3_stmt **st,
                          const char *sql)
{
  if (*st == NULL && sqlite3_prepare_v2(q->db, sql, -1, st, NULL) != SQLITE_OK)
    *st = NULL;
  return *st;
}

/* Finalizes the statements of q->db kept between uses: before it closes. */
static void forget_stmts(struct sqlite_store *q)
{
  sqlite3_stmt **all[] = {&q->del_sel, &q->del_doom, &q->version, &q->old,
                          &q->ins};
  size_t i;

  for (i = 0; i < CDO__ARRAY_SIZE(all); i++) {
    sqlite3_finalize(*all[i]);
    *all[i] = NULL;
  }
}

static void rollback(sqlite3 *db)
{
  if (db != NULL && !sqlite3_get_autocommit(db))
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

static int sqlite_check(const char *rest, char *err, size_t errlen)
{
  if (*rest == 0) {
    cdo__fmt(err, errlen, "no path (expected sqlite:PATH)");
    return CDO_EBADURL;
  }
  return 0;
}

/* ---- opening ------------------------------------------------------------- */

/* Counts the frames of PATH's WAL after each commit (see maybe_checkpoint). */
static int on_wal(void *ud, sqlite3 *db, const char *name, int frames)
{
  (void)db;
  (void)name;
  ((struct sqlite_store *)ud)->wal_frames = frames;
  return SQLITE_OK;
}

/*
 * SQLite's busy handler: sleeps by cdo__backoff_us and tries again, until
 * q->busy_ms. SQLite's own (sqlite3_busy_timeout) sleeps 1, 2, 5, 10 ...
 * ms in turn, so that a write behind another's lock held for 3 ms (a
 * miss's commit, the WAL restart in sqlite_tidy, whose fsync is a few ms)
 * waits 8; this one takes the lock within ~1/8 of the wait after it is
 * freed.
 */
static int on_busy(void *ud, int count)
{
  struct sqlite_store *q = ud;
  int64_t now = cdo__mono_us(), d;
  struct timespec ts;

  if (count == 0)
    q->busy_since_us = now;
  d = cdo__backoff_us(now - q->busy_since_us, (int64_t)q->busy_ms * 1000);
  if (d < 0)
    return 0;
  ts.tv_sec = (time_t)(d / 1000000);
  ts.tv_nsec = (long)(d % 1000000) * 1000;
  nanosleep(&ts, NULL);
  return 1;
}

/* Waits up to ms for the locks db's statements need (on_busy). */
static void set_busy(struct sqlite_store *q, sqlite3 *db, int ms)
{
  q->busy_ms = ms;
  sqlite3_busy_handler(db, on_busy, q);
}

/*
 * The URI that opens path with its -shm read-only (readonly_shm=1), into
 * buf; 0, or -1 when it does not fit. '%', '?' and '#' are escaped; an
 * absolute path gets an empty authority ("file:///..."), so that one
 * starting with "//" is not read as a host.
 */
static int reader_uri(const char *path, char *buf, size_t len)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = (size_t)snprintf(buf, len, "file:%s", *path == '/' ? "//" : "");

  for (; *path != 0 && n + 4 < len; path++) {
    if (*path == '%' || *path == '?' || *path == '#') {
      buf[n++] = '%';
      buf[n++] = hex[(unsigned char)*path >> 4];
      buf[n++] = hex[*path & 15];
    } else
      buf[n++] = *path;
  }
  if (*path != 0 || n + sizeof("?readonly_shm=1") > len)
    return -1;
  memcpy(buf + n, "?readonly_shm=1", sizeof("?readonly_shm=1"));
  return 0;
}

/*
 * Opens path into *db with the settings both files share; *id gets the
 * file's identity, so a damaged file is replaced only while it is still
 * the one at path. A reader (see use_db) maps the -shm read-only.
 */
static int open_file(struct sqlite_store *q, const char *path, sqlite3 **db,
                     struct stat *id, int reader)
{
  char uri[PATH_MAX * 3 + 32];
  int one = 1, rc,
      flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW;
  mode_t old = umask(077); /* the database and its -wal and -shm: 0600 */

  if (reader && reader_uri(path, uri, sizeof(uri)) == 0)
    flags |= SQLITE_OPEN_URI;
  rc = sqlite3_open_v2(flags & SQLITE_OPEN_URI ? uri : path, db, flags, NULL);
  umask(old);
  if (rc != SQLITE_OK)
    return cdo__store_fail(&q->base, CDO_EBACKEND, "%s",
                           *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
  if (stat(path, id) < 0)
    memset(id, 0, sizeof(*id));
  set_busy(q, *db, BUSY_MS);
  /* Each invocation opens and closes the database: keep the -wal file
   * between them rather than deleting and recreating it every time. */
  sqlite3_file_control(*db, "main", SQLITE_FCNTL_PERSIST_WAL, &one);
  return 0;
}

/* Opens PATH into q->db, as mode says. */
static int open_db(struct sqlite_store *q, int mode)
{
  int r = open_file(q, q->path, &q->db, &q->id, mode == DB_READER);

  if (r < 0)
    return r;
  q->mode = mode;
  sqlite3_db_config(q->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
  sqlite3_wal_hook(q->db, on_wal, q);
  return 0;
}

/*
 * PATH opens at its first use (use_db): not at all for a lookup the key
 * filter answers, while its command runs for a miss (sqlite_prime), where
 * opening costs the run least. Only a regular file this process may write,
 * or none yet (SQLite creates it, 0600), waits so; anything else (a folder,
 * a symlink, a FIFO, a file it may only read) is opened now, as any store,
 * so that SQLite says at once what is wrong with it and a cache of tiers
 * passes over it. Two system calls, where a hit had six to open a file.
 */
static int open_later(struct sqlite_store *q)
{
  struct stat st;

  if (lstat(q->path, &st) < 0)
    return errno == ENOENT ? 0 : open_db(q, DB_WRITER);
  return S_ISREG(st.st_mode) && access(q->path, W_OK) == 0
             ? 0
             : open_db(q, DB_WRITER);
}

/*
 * PATH opens as a reader, for the lookup that most runs are: its -shm is
 * mapped read-only, so that a process alone with the database reads the
 * WAL into its own memory instead of truncating the -shm, growing it page
 * by page and rebuilding it there (a tenth of a small hit's time). A
 * reader cannot write, nor always read (no -shm yet, or none of the
 * wal-index's read marks fits and it may not set one): everything but a
 * lookup, and a lookup the reader failed, first reopens PATH as a writer,
 * once. 0 or the writer's error.
 */
static int use_db(struct sqlite_store *q, int mode)
{
  if (q->mode == DB_WRITER || q->mode == mode)
    return 0;
  if (q->mode == 0 && mode == DB_READER)
    return open_db(q, DB_READER);
  forget_stmts(q);
  sqlite3_close_v2(q->db);
  q->db = NULL;
  q->mode = q->tuned = q->wal_frames = 0;
  q->damaged = 0; /* what the reader saw, the writer sees again */
  q->base.errmsg[0] = 0;
  return open_db(q, DB_WRITER);
}

/*
 * SQLite's memory comes first from a static arena, ARENA bytes of bss that
 * only the pages touched cost, handed out in order; a block freed is
 * reused only when it was the last one handed out (SQLite frees most of
 * what a run allocates at its close). Past the arena, and for blocks that
 * outgrow it, the C library's malloc. A run of cachedo, a hit or a miss,
 * makes ~100 allocations through SQLite, ~250 KiB in all: from the arena
 * they cost no system call, where musl's allocator maps and unmaps a group
 * of pages for most of the sizes SQLite asks for (a --refresh miss made 32
 * mmap and munmap calls, 18 with the arena, and took 0.94x-0.97x the time
 * in pairs). Each block has an 8-byte header that holds its size. Not
 * under AddressSanitizer, which is to see each of SQLite's blocks as its
 * own.
 */
#define ARENA   (512 << 10)
#define MEM_HDR 8
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_OFF 1
#endif
#endif
#ifndef ARENA_OFF
#define ARENA_OFF 0
#endif

static struct {
  size_t used, last; /* bytes handed out; the offset of the last block */
  _Alignas(16) unsigned char bytes[ARENA];
} arena;

static int in_arena(const void *p)
{
  return (const unsigned char *)p >= arena.bytes &&
         (const unsigned char *)p < arena.bytes + ARENA;
}

static int mem_roundup(int n)
{
  return n > INT_MAX - 7 ? n : (n + 7) & ~7;
}

static void *mem_block(unsigned char *b, int n)
{
  memcpy(b, &(uint64_t){(uint64_t)n}, MEM_HDR);
  return b + MEM_HDR;
}

static void *mem_malloc(int n)
{
  size_t need = (size_t)mem_roundup(n) + MEM_HDR;
  unsigned char *b;

  if (n < 0)
    return NULL;
  if (need <= ARENA - arena.used) {
    arena.last = arena.used;
    arena.used += need;
    return mem_block(arena.bytes + arena.last, n);
  }
  b = malloc(need);
  return b ? mem_block(b, n) : NULL;
}

static int mem_size(void *p)
{
  uint64_t n;

  memcpy(&n, (unsigned char *)p - MEM_HDR, MEM_HDR);
  return (int)n;
}

static void mem_free(void *p)
{
  unsigned char *b = (unsigned char *)p - MEM_HDR;

  if (!in_arena(p))
    free(b);
  else if ((size_t)(b - arena.bytes) == arena.last)
    arena.used = arena.last;
}

static void *mem_realloc(void *p, int n)
{
  unsigned char *b = (unsigned char *)p - MEM_HDR;
  size_t need = (size_t)mem_roundup(n) + MEM_HDR;
  void *q;

  if (!in_arena(p)) {
    b = realloc(b, need);
    return b ? mem_block(b, n) : NULL;
  }
  if ((size_t)(b - arena.bytes) == arena.last && need <= ARENA - arena.last) {
    arena.used = arena.last + need;
    return mem_block(b, n);
  }
  q = mem_malloc(n);
  if (q != NULL) {
    memcpy(q, p, (size_t)(mem_size(p) < n ? mem_size(p) : n));
    mem_free(p);
  }
  return q;
}

static int mem_init(void *ud)
{
  (void)ud;
  return SQLITE_OK;
}

static void mem_shutdown(void *ud)
{
  (void)ud;
}

static const sqlite3_mem_methods arena_methods = {
    mem_malloc,  mem_free, mem_realloc,  mem_size,
    mem_roundup, mem_init, mem_shutdown, NULL};

static int sqlite_open(struct cdo_store *s, const char *rest)
{
  struct sqlite_store *q = sq(s);
  size_t n = strlen(rest);
  char *dir, *slash;
  int r;

  q->writers_fd = -1;
  q->path = strdup(rest);
  q->big_path = malloc(n + sizeof("-big"));
  q->blobs = malloc(n + sizeof("-blobs"));
  q->keys = malloc(n + sizeof("-keys"));
  dir = strdup(rest);
  if (q->path == NULL || q->big_path == NULL || q->blobs == NULL ||
      q->keys == NULL || dir == NULL) {
    free(dir);
    return CDO__ERR(ENOMEM);
  }
  memcpy(q->big_path, rest, n);
  memcpy(q->big_path + n, "-big", sizeof("-big"));
  memcpy(q->blobs, rest, n);
  memcpy(q->blobs + n, "-blobs", sizeof("-blobs"));
  memcpy(q->keys, rest, n);
  memcpy(q->keys + n, "-keys", sizeof("-keys"));
  slash = strrchr(dir, '/');
  if (slash == dir)
    slash[1] = 0;
  else if (slash != NULL)
    *slash = 0;
  else
    memcpy(dir, ".", 2); /* dir holds at least the path, so 2 bytes */
  r = cdo__mkdir_private(dir, s->errmsg, sizeof(s->errmsg));
  free(dir);
  if (r < 0)
    return r;
  /* One thread, one connection at a time: no mutexes, no accounting; page
   * buffers allocated as pages are read, not 20 at once (each one touched
   * is a page fault, and a lookup reads a few). */
  sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
  if (!ARENA_OFF)
    sqlite3_config(SQLITE_CONFIG_MALLOC, &arena_methods);
  /* PATH opens at its first use: a lookup the key filter answers opens
   * it not at all, and a miss opens it as a writer while the command runs
   * (sqlite_prime); see open_later. */
  return open_later(q);
}

static void sqlite_close(struct cdo_store *s)
{
  struct sqlite_store *q = sq(s);

  forget_stmts(q);
  sqlite3_close_v2(q->big);
  sqlite3_close_v2(q->db);
  if (q->writers_fd >= 0)
    close(q->writers_fd);
  free(q->path);
  free(q->big_path);
  free(q->blobs);
  free(q->keys);
}

/*
 * Puts db in WAL mode, a property of the file, kept once set. Best effort:
 * with another process in the middle of a transaction SQLite may refuse at
 * once rather than wait, and every writer calls this again.
 */
static void wal_mode(sqlite3 *db)
{
  sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
}

/* ---- the key filter (keyfilter.c) --------------------------------------- */

/*
 * Makes PATH-keys anew from the keys of PATH's entries, in the write
 * transaction the caller holds, so that no writer stores a key between
 * the walk and the rename (a writer sets its bit under that lock, in the
 * file then at PATH-keys). The walk reads the smallest index that holds
 * the key: O(entries) time, and 2 MiB of memory whatever their number.
 * Best effort: a filter not made leaves the old one, whose bits are a
 * superset of the stored keys', or none ("maybe").
 */
static int write_filter(struct sqlite_store *q)
{
  struct cdo__keyfilter *f = cdo__keyfilter_new();
  sqlite3_stmt *st = NULL;
  int rc = SQLITE_ERROR, r = CDO__ERR(ENOMEM);

  if (f != NULL && sqlite3_prepare_v2(q->db, "SELECT key FROM entry", -1, &st,
                                      NULL) == SQLITE_OK) {
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      if (sqlite3_column_bytes(st, 0) == 32)
        cdo__keyfilter_set(f, sqlite3_column_blob(st, 0));
    r = rc == SQLITE_DONE ? cdo__keyfilter_save(f, q->keys, q->path)
                          : db_fail(q, q->db, "cannot read the keys");
  }
  sqlite3_finalize(st);
  cdo__keyfilter_free(f);
  return r;
}

/* write_filter in a write transaction of its own, which changes nothing. */
static int remake_filter(struct sqlite_store *q)
{
  int r = exec(q, q->db, "BEGIN IMMEDIATE");

  if (r == 0)
    r = write_filter(q);
  rollback(q->db);
  return r;
}

/*
 * Sets k's bit, in the write transaction that stores its entry. A filter
 * that cannot take it goes: a filter without the bit would hide the entry.
 */
static int note_key(struct sqlite_store *q, const struct cdo__key *k)
{
  int r = cdo__keyfilter_add(q->keys, q->path, k->hash);

  if (r < 0 && unlink(q->keys) < 0 && errno != ENOENT)
    return cdo__store_fail(&q->base, r, "cannot update '%s': %s", q->keys,
                           cdo_strerror(r));
  return 0;
}

/*
 * Creates or upgrades db's tables under the write lock. page_size only
 * takes effect while the file is still empty, so it comes first, then WAL
 * mode (outside a transaction). Version 1 kept every entry's bytes in
 * 1 MiB chunks in one file: its tables are dropped (it is a cache);
 * version 2 lacked the index and version 3 had two others: they are
 * replaced by sql's.
 */
static int init_schema(struct sqlite_store *q, sqlite3 *db, const char *sql,
                       const char *page_size)
{
  sqlite3_stmt *st = NULL;
  int version = -1, keep, r;

  r = exec(q, db, page_size);
  if (r == 0) {
    wal_mode(db);
    r = exec(q, db, "BEGIN IMMEDIATE");
  }
  if (r < 0)
    return r;
  r = prepare(q, db, "PRAGMA user_version", &st);
  if (r == 0 && sqlite3_step(st) == SQLITE_ROW)
    version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (r == 0 && version > SCHEMA_VERSION &&
      (q->clearing || version > NEWEST_PLAUSIBLE))
    q->damaged |= db == q->big ? DAMAGED_BIG : DAMAGED_DB;
  if (r == 0 && version > SCHEMA_VERSION)
    r = cdo__store_fail(&q->base, CDO_EBACKEND,
                        "'%s' has schema version %d, newer than this "
                        "cachedo's (%d)",
                        sqlite3_db_filename(db, "main"), version,
                        SCHEMA_VERSION);
  if (r == 0 && version < 0)
    r = db_fail(q, db, "cannot read the schema version");
  if (r == 0 && version == 1)
    r = exec(q, db,
             "DROP TABLE IF EXISTS entry; DROP TABLE IF EXISTS chunk;"
             "DROP TABLE IF EXISTS pending");
  /* Versions 2 to 4 kept the table in key order: it is set aside whole,
   * by a rename (in a user's run, no walk of it), and the detached child
   * this run starts drops it (drop_old). Its entries are misses now. */
  if (r == 0 && version >= 2 && version < 5 && db == q->db) {
    r = exec(q, db, "ALTER TABLE entry RENAME TO entry_old");
    q->base.tidy = 1;
  }
  /* Version 5 had the tables of 6 but no key filter: the detached child
   * this run starts makes one from the keys (sqlite_tidy); until then
   * every lookup reads the table. */
  keep = version == 5 && db == q->db;
  if (r == 0 && keep) {
    unlink(q->keys);
    q->base.tidy = 1;
  }
  if (r == 0 && version < SCHEMA_VERSION && !keep)
    r = exec(q, db, sql);
  /* Tables made now are empty: so is the filter (errors: none, "maybe"). */
  if (r == 0 && version < SCHEMA_VERSION && !keep && db == q->db)
    write_filter(q);
  if (r == 0 && version < SCHEMA_VERSION)
    r = exec(q, db, SET_VERSION);
  if (r == 0)
    r = exec(q, db, "COMMIT");
  if (r < 0)
    rollback(db);
  return r;
}

/*
 * Creates PATH's tables when they are missing; call outside transactions.
 * The schema version is written in the transaction that creates them, so
 * it tells cheaply (no schema to parse) whether they are there.
 */
static int schema_version(struct sqlite_store *q)
{
  sqlite3_stmt *st = kept(q, &q->version, "PRAGMA user_version");
  int version = -1;

  if (st != NULL && sqlite3_step(st) == SQLITE_ROW)
    version = sqlite3_column_int(st, 0);
  if (st != NULL)
    sqlite3_reset(st);
  return version;
}

static int ensure_schema(struct sqlite_store *q)
{
  int version = schema_version(q);

  if (q->version == NULL)
    return db_fail(q, q->db, "cannot read the cache");
  if (version == SCHEMA_VERSION)
    return 0;
  return init_schema(q, q->db, schema, "PRAGMA page_size = 4096");
}

/* Opens PATH-big, once, creating it when needed. */
static int open_big(struct sqlite_store *q)
{
  sqlite3_stmt *st = NULL;
  int r;

  if (q->big != NULL)
    return 0;
  r = open_file(q, q->big_path, &q->big, &q->big_id, 0);
  if (r == 0) {
    /* The last connection to close checkpoints and truncates the WAL. */
    sqlite3_exec(q->big, "PRAGMA journal_size_limit = 0", NULL, NULL, NULL);
    if (sqlite3_prepare_v2(q->big, "SELECT 1 FROM chunk", -1, &st, NULL) ==
        SQLITE_OK)
      sqlite3_finalize(st);
    else if (!schema_missing(q->big))
      r = db_fail(q, q->big, "cannot read the cache");
    else
      r = init_schema(q, q->big, big_schema, "PRAGMA page_size = 65536");
  }
  if (r < 0) {
    sqlite3_close_v2(q->big);
    q->big = NULL;
  }
  return r;
}

/*
 * Is db in WAL mode? Known once a statement has read it: SQLite then has
 * the WAL open (a database in rollback mode has no journal open between
 * transactions).
 */
static int in_wal(sqlite3 *db)
{
  sqlite3_file *f = NULL;

  return sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) ==
             SQLITE_OK &&
         f != NULL && f->pMethods != NULL;
}

/*
 * Applies the writer's pragmas, once per connection; WAL mode only when
 * the file is not in it yet (e.g. its creator could not switch it).
 */
static int tune_for_writing(struct sqlite_store *q)
{
  int r;

  if (q->tuned)
    return 0;
  q->tuned = 1;
  r = exec(q, q->db, "PRAGMA synchronous = NORMAL");
  if (r == 0 && !in_wal(q->db))
    wal_mode(q->db);
  return r;
}

/*
 * Copies PATH's WAL into the database (PASSIVE: it waits for no reader or
 * writer; SQLite fsyncs the WAL, then the database) and, when every frame
 * is in, restarts the WAL with one small write: the schema version,
 * rewritten as it is. SQLite fsyncs the header of a restarted WAL (and,
 * the first time, its directory); done here, that is not left to the next
 * writer, a user's miss, which then only appends. The file is cut back to
 * that one frame. 1 when all that was done, else 0 (a reader held frames
 * back, or a writer was at work: the next miss asks again).
 */
static int checkpoint(struct sqlite_store *q)
{
  int log = -1, copied = -1, version = -1, done = 0;

  if (sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log,
                                &copied) != SQLITE_OK ||
      log <= 0 || copied < log)
    return 0;
  q->wal_frames = 0;
  sqlite3_exec(q->db,
               q->wal_keep ? "PRAGMA journal_size_limit = -1"
                           : "PRAGMA journal_size_limit = 0",
               NULL, NULL, NULL);
  set_busy(q, q->db, CHECKPOINT_BUSY_MS);
  if (sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK)
    version = schema_version(q);
  if (version == SCHEMA_VERSION &&
      sqlite3_exec(q->db, SET_VERSION, NULL, NULL, NULL) == SQLITE_OK)
    done = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  rollback(q->db);
  set_busy(q, q->db, BUSY_MS);
  return done;
}

/*
 * Once PATH's WAL holds WAL_FRAMES frames: bulk work (batches, eviction,
 * --gc, --clear) checkpoints it there and then; any other write, a user's
 * miss, leaves that to the detached child (s->tidy, sqlite_tidy), so that
 * the run waits for no fsync. Readers are short: a checkpoint they hold
 * up is skipped, and the next write asks again. A miss writes 3 frames
 * (the table's last page, the key index's, entry_age's): 12 is a tidy
 * every 4 misses. At 8, every 3, misses were 5% slower (the fork of the
 * child and its fsyncs are the caller's to share); a hit that reads 12
 * frames more costs about 1%.
 */
static void maybe_checkpoint(struct sqlite_store *q)
{
  if (q->wal_frames < WAL_FRAMES)
    return;
  if (q->bulk)
    checkpoint(q);
  else
    q->base.tidy = 1;
}

/* Opens one operation's write transaction, or joins the batch's. */
static int tx_begin(struct sqlite_store *q)
{
  if (q->batch && !sqlite3_get_autocommit(q->db))
    return 0;
  return exec(q, q->db, "BEGIN IMMEDIATE");
}

/* Commits one operation's transaction; in a batch, every BATCH_OPS. */
static int tx_commit(struct sqlite_store *q)
{
  if (q->batch && ++q->batch_ops < BATCH_OPS)
    return 0;
  q->batch_ops = 0;
  return exec(q, q->db, "COMMIT");
}

static int purge(struct sqlite_store *q, sqlite3_int64 cutoff, uint64_t *n);

/*
 * After tx_commit: once nothing is left uncommitted, deletes the big blobs
 * the transactions doomed (doomed: this one did) and truncates the WAL
 * when it has grown.
 */
static int tx_after(struct sqlite_store *q, int doomed)
{
  int r = 0;

  q->doomed |= doomed;
  if (!sqlite3_get_autocommit(q->db))
    return 0; /* the batch goes on */
  if (q->doomed) {
    q->doomed = 0;
    r = purge(q, 1, NULL);
  }
  maybe_checkpoint(q);
  return r;
}

/* ---- big blobs' files ---------------------------------------------------- */

/* The path of blob's file in PATH-blobs. */
static void blob_file(const struct sqlite_store *q, sqlite3_int64 blob,
                      char *buf, size_t len)
{
  cdo__fmt(buf, len, "%s/%016llx", q->blobs, (unsigned long long)blob);
}

static int cmp_blob(const void *a, const void *b)
{
  sqlite3_int64 x = *(const sqlite3_int64 *)a, y = *(const sqlite3_int64 *)b;

  return x < y ? -1 : x > y;
}

/*
 * Removes what PATH-blobs holds but the files of the n blob ids in keep
 * (sorted): whatever else is there is no blob any row names.
 */
static void remove_blob_files(struct sqlite_store *q, const sqlite3_int64 *keep,
                              size_t n)
{
  DIR *d = opendir(q->blobs);
  struct dirent *e;

  if (d == NULL)
    return;
  while ((e = readdir(d)) != NULL) {
    sqlite3_int64 id;
    char *end;

    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    id = (sqlite3_int64)strtoull(e->d_name, &end, 16);
    if (n > 0 && *end == 0 && strlen(e->d_name) == 16 &&
        bsearch(&id, keep, n, sizeof(*keep), cmp_blob) != NULL)
      continue;
    unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

/* ---- damaged files ------------------------------------------------------- */

/* Is path still the file id describes? */
static int same_file(const char *path, const struct stat *id)
{
  struct stat now;

  return id->st_ino != 0 && stat(path, &now) == 0 && now.st_ino == id->st_ino &&
         now.st_dev == id->st_dev;
}

/* Removes path and its -wal and -shm files. */
static void unlink_db(const char *path)
{
  char p[PATH_MAX];

  unlink(path);
  cdo__fmt(p, sizeof(p), "%s-wal", path);
  unlink(p);
  cdo__fmt(p, sizeof(p), "%s-shm", path);
  unlink(p);
}

/*
 * PATH was damaged: moves it to PATH.corrupt (for a person to look at),
 * drops its WAL and PATH-big (whose bytes only PATH could find), and opens
 * a new empty PATH. Nothing is moved when another process replaced PATH
 * first. why is the error that showed the damage.
 */
static int replace_db(struct sqlite_store *q, const char *why)
{
  char aside[PATH_MAX];

  forget_stmts(q); /* of the old connection */
  sqlite3_close_v2(q->big);
  sqlite3_close_v2(q->db);
  q->big = q->db = NULL;
  q->mode = q->tuned = q->wal_frames = 0;
  cdo__fmt(aside, sizeof(aside), "%s.corrupt", q->path);
  if (same_file(q->path, &q->id)) {
    unlink_db(aside);
    if (rename(q->path, aside) < 0)
      unlink(q->path);
    unlink_db(q->path);
    unlink_db(q->big_path);
    remove_blob_files(q, NULL, 0);
    cdo__store_warn(&q->base,
                    "cache database '%s' was damaged (%s): moved it to '%s' "
                    "and started an empty one",
                    q->path, why, aside);
  }
  return open_db(q, DB_WRITER);
}

/*
 * PATH-big was damaged: removes it and the big entries of PATH, whose rows
 * do not tell which of them it held, with their files.
 */
static int replace_big(struct sqlite_store *q, const char *why)
{
  char sql[128];

  sqlite3_close_v2(q->big);
  q->big = NULL;
  if (same_file(q->big_path, &q->big_id)) {
    unlink_db(q->big_path);
    cdo__store_warn(&q->base,
                    "cache file '%s' was damaged (%s): removed it and the "
                    "entries larger than %llu KiB it held",
                    q->big_path, why, (unsigned long long)(SMALL_MAX >> 10));
  }
  cdo__fmt(sql, sizeof(sql),
           "DELETE FROM entry WHERE size > %llu; DELETE FROM pending",
           (unsigned long long)SMALL_MAX);
  sqlite3_exec(q->db, sql, NULL, NULL, NULL); /* else reads drop them */
  remove_blob_files(q, NULL, 0);              /* no row names them now */
  return 0;
}

/*
 * After a failure: replaces the files SQLite found damaged, once per
 * store. Returns 1 when it did (the caller tries again), else 0.
 */
static int repaired(struct sqlite_store *q)
{
  char why[256];
  int r;

  if (q->damaged == 0 || q->replaced)
    return 0;
  q->replaced = 1;
  cdo__fmt(why, sizeof(why), "%s", q->base.errmsg);
  r = q->damaged & DAMAGED_DB ? replace_db(q, why) : replace_big(q, why);
  q->damaged = 0;
  return r == 0;
}

/* ---- reading ------------------------------------------------------------- */

/*
 * A big entry, read a whole row at a time (a row's pages are then read
 * straight through, with no partial page read twice) inside one read
 * transaction of PATH-big that lasts as long as the blob, so that checking
 * and replaying see the same rows.
 */
struct big_reader {
  struct sqlite_store *q;
  sqlite3_blob *h;    /* on row cur */
  sqlite3_int64 base; /* id of row 0 */
  uint64_t rows;      /* rows the entry has */
  uint64_t cur;       /* row held in buf, or UINT64_MAX */
  unsigned char *buf; /* ROW bytes */
  size_t len;         /* of row cur */
  int in_tx;          /* the read transaction is ours */
};

/*
 * A failed read of a big entry: on a damaged file the entry is corrupt, so
 * the front end drops it, and its del replaces the file.
 */
static int big_fail(struct big_reader *br, const char *what)
{
  int r = db_fail(br->q, br->q->big, what);

  return br->q->damaged ? CDO_ECORRUPT : r;
}

/* Reads row i into br->buf, checking that it is there and whole. */
static int big_load(struct big_reader *br, uint64_t i, uint64_t size)
{
  sqlite3 *db = br->q->big;
  sqlite3_int64 id = br->base + (sqlite3_int64)i;
  uint64_t want = i + 1 < br->rows ? ROW : size - i * ROW;
  int rc;

  br->cur = UINT64_MAX;
  if (!br->in_tx && sqlite3_get_autocommit(db)) {
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
      return big_fail(br, "cannot read the cache");
    br->in_tx = 1;
  }
  if (br->h == NULL)
    rc = sqlite3_blob_open(db, "main", "chunk", "bytes", id, 0, &br->h);
  else
    rc = sqlite3_blob_reopen(br->h, id);
  if (rc == SQLITE_ERROR)
    return CDO_ECORRUPT; /* no such row */
  if (rc != SQLITE_OK)
    return big_fail(br, "cannot read the cache");
  if ((uint64_t)sqlite3_blob_bytes(br->h) != want)
    return CDO_ECORRUPT;
  if (sqlite3_blob_read(br->h, br->buf, (int)want, 0) != SQLITE_OK)
    return big_fail(br, "cannot read the cache");
  br->len = (size_t)want;
  br->cur = i;
  return 0;
}

static int big_view(struct cdo__blob *b, uint64_t off, size_t want,
                    const unsigned char **p, size_t *n)
{
  struct big_reader *br = b->ctx;
  uint64_t i = off / ROW;
  size_t in = (size_t)(off % ROW);

  if (off >= b->size)
    return CDO_ECORRUPT;
  if (i != br->cur) {
    int r = big_load(br, i, b->size);

    if (r < 0)
      return r;
  }
  *p = br->buf + in;
  *n = br->len - in < want ? br->len - in : want;
  return 0;
}

static int big_read(struct cdo__blob *b, void *buf, size_t n, uint64_t off)
{
  unsigned char *out = buf;

  while (n > 0) {
    const unsigned char *p;
    size_t got;
    int r = big_view(b, off, n, &p, &got);

    if (r < 0)
      return r;
    memcpy(out, p, got);
    out += got;
    off += got;
    n -= got;
  }
  return 0;
}

static void big_free(struct cdo__blob *b)
{
  struct big_reader *br = b->ctx;

  sqlite3_blob_close(br->h);
  if (br->in_tx)
    sqlite3_exec(br->q->big, "COMMIT", NULL, NULL, NULL);
  cdo__piece_free(br->buf);
  free(br);
  free(b);
}

/* A blob over the big entry of blob id blob and size bytes; 0 or error. */
static int big_blob(struct sqlite_store *q, sqlite3_int64 blob, uint64_t size,
                    struct cdo__blob **out)
{
  struct big_reader *br;
  struct cdo__blob *b;
  int r = open_big(q);

  if (r < 0)
    return r;
  br = calloc(1, sizeof(*br));
  b = calloc(1, sizeof(*b));
  if (br != NULL)
    br->buf = cdo__piece_alloc(ROW);
  if (br == NULL || b == NULL || br->buf == NULL) {
    if (br != NULL)
      cdo__piece_free(br->buf);
    free(br);
    free(b);
    return CDO__ERR(ENOMEM);
  }
  br->q = q;
  br->base = blob << ROW_BITS;
  br->rows = (size + ROW - 1) / ROW;
  br->cur = UINT64_MAX;
  b->size = size;
  b->fd = -1;
  b->read = big_read;
  b->view = big_view;
  b->free = big_free;
  b->ctx = br;
  *out = b;
  return 0;
}

/*
 * A blob over the file of big entry blob, of size bytes. A missing or
 * foreign file gives an empty blob, which the codec calls corrupt (a miss,
 * and the row goes); a blob with no file, in a cache that has PATH-big,
 * was written there by an older cachedo. 0 or an error.
 */
static int file_blob(struct sqlite_store *q, sqlite3_int64 blob, uint64_t size,
                     struct cdo__blob **out)
{
  char p[PATH_MAX];
  struct stat st;
  int fd;

  blob_file(q, blob, p, sizeof(p));
  fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR) &&
      lstat(q->big_path, &st) == 0)
    return big_blob(q, blob, size, out);
  if (fd < 0 && errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
    return cdo__store_fail(&q->base, CDO__ERR(errno), "cannot open '%s': %s", p,
                           strerror(errno));
  if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
                  (uint64_t)st.st_size != size)) {
    close(fd);
    fd = -1;
  }
  *out =
      fd >= 0 ? cdo__blob_from_fd(fd, size) : cdo__blob_from_mem(malloc(1), 0);
  return *out ? 0 : CDO__ERR(ENOMEM);
}

static int do_get(struct cdo_store *s, const struct cdo__key *k,
                  struct cdo__blob **out)
{
  struct sqlite_store *q = sq(s);
  sqlite3_stmt *st = NULL;
  sqlite3_int64 size, blob;
  unsigned char *p;
  int rc, n;

  if (sqlite3_prepare_v2(q->db,
                         "SELECT size, blob, bytes FROM entry WHERE key = ?1",
                         -1, &st, NULL) != SQLITE_OK) {
    if (schema_missing(q->db))
      return 0; /* a new database, or an older layout: nothing stored yet */
    return db_fail(q, q->db, "cannot read the cache");
  }
  sqlite3_bind_blob(st, 1, k->hash, 32, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(q, q->db, "cannot read the cache");
  }
  size = sqlite3_column_int64(st, 0);
  blob = sqlite3_column_int64(st, 1);
  if (size > 0 && (uint64_t)size > SMALL_MAX && blob >= 0 &&
      blob < (sqlite3_int64)1 << (63 - ROW_BITS)) {
    sqlite3_finalize(st);
    return file_blob(q, blob, (uint64_t)size, out);
  }
  /* Whatever bytes are there: the codec tells a damaged entry. */
  n = sqlite3_column_bytes(st, 2);
  p = malloc((size_t)n + 1);
  if (p != NULL && n > 0)
    memcpy(p, sqlite3_column_blob(st, 2), (size_t)n);
  sqlite3_finalize(st);
  *out = p ? cdo__blob_from_mem(p, (size_t)n) : NULL;
  return *out ? 0 : CDO__ERR(ENOMEM);
}

/* ---- writing ------------------------------------------------------------- */

/*
 * flock(2) on PATH-writers (see the top): how is LOCK_SH (a writer, which
 * waits for a --gc at work), LOCK_EX | LOCK_NB (--gc) or LOCK_UN. 0 when
 * done, else -1.
 */
static int writers_lock(struct sqlite_store *q, int how)
{
  char p[PATH_MAX];
  int r;

  if (q->writers_fd < 0 && how != LOCK_UN) {
    cdo__fmt(p, sizeof(p), "%s-writers", q->path);
    q->writers_fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (q->writers_fd >= 0 && q->writers_fd <= 2) { /* not a stdio slot */
      int fd = fcntl(q->writers_fd, F_DUPFD_CLOEXEC, 3);

      close(q->writers_fd);
      q->writers_fd = fd;
    }
  }
  if (q->writers_fd < 0)
    return -1;
  while ((r = flock(q->writers_fd, how)) < 0 && errno == EINTR)
    ;
  return r;
}

/* Deletes blob's file, and its rows from PATH-big when there is one. */
static int big_delete(struct sqlite_store *q, sqlite3_int64 blob)
{
  sqlite3_stmt *st = NULL;
  char p[PATH_MAX];
  struct stat sb;
  int r;

  blob_file(q, blob, p, sizeof(p));
  if (unlink(p) < 0 && errno != ENOENT && errno != ENOTDIR)
    return cdo__store_fail(&q->base, CDO__ERR(errno), "cannot remove '%s': %s",
                           p, strerror(errno));
  if (lstat(q->big_path, &sb) < 0)
    return 0;
  r = open_big(q);
  if (r == 0)
    r = prepare(q, q->big, "DELETE FROM chunk WHERE id >= ?1 AND id < ?2", &st);
  if (r == 0) {
    sqlite3_bind_int64(st, 1, blob << ROW_BITS);
    sqlite3_bind_int64(st, 2, (blob + 1) << ROW_BITS);
    r = step_done(q, q->big, st, "cannot delete an entry's bytes");
  }
  sqlite3_finalize(st);
  return r;
}

/*
 * Deletes the big blobs listed in pending that started before cutoff
 * (doomed ones have started = 0), then their pending rows. *n counts them.
 */
static int purge(struct sqlite_store *q, sqlite3_int64 cutoff, uint64_t *n)
{
  sqlite3_stmt *sel = NULL, *del = NULL;
  int r, rc = SQLITE_DONE;

  r = prepare(q, q->db, "SELECT blob FROM pending WHERE started < ?1", &sel);
  if (r == 0)
    r = prepare(q, q->db, "DELETE FROM pending WHERE blob = ?1", &del);
  if (r == 0)
    sqlite3_bind_int64(sel, 1, cutoff);
  while (r == 0 && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
    sqlite3_int64 blob = sqlite3_column_int64(sel, 0);

    /* One at a time, with no transaction of PATH open meanwhile. */
    sqlite3_reset(sel);
    r = big_delete(q, blob);
    if (r == 0) {
      sqlite3_bind_int64(del, 1, blob);
      r = step_done(q, q->db, del, "cannot remove a pending blob");
    }
    if (r == 0 && n != NULL)
      (*n)++;
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = db_fail(q, q->db, "cannot read pending blobs");
  sqlite3_finalize(sel);
  sqlite3_finalize(del);
  return r;
}

/* Writes src's bytes into blob's new file, making PATH-blobs if needed. */
static int write_blob_file(struct sqlite_store *q, sqlite3_int64 blob,
                           const struct cdo__src *src)
{
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  char p[PATH_MAX];
  int fd, r;

  blob_file(q, blob, p, sizeof(p));
  fd = open(p, flags, 0600);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) {
    if (errno == ENOTDIR) /* damage: something else in the folder's place */
      unlink(q->blobs);
    if (mkdir(q->blobs, 0700) == 0 || errno == EEXIST)
      fd = open(p, flags, 0600);
  }
  if (fd < 0)
    return cdo__store_fail(&q->base, CDO__ERR(errno), "cannot create '%s': %s",
                           p, strerror(errno));
  r = cdo__store_src_write(fd, src);
  if (close(fd) < 0 && r == 0)
    r = CDO__ERR(errno);
  if (r < 0) {
    unlink(p);
    return cdo__store_fail(&q->base, r, "cannot write '%s': %s", p,
                           cdo_strerror(r));
  }
  return 0;
}

#define SQL_OLD "SELECT blob, size FROM entry WHERE key = ?1"
#define SQL_INS                                                                \
  "INSERT OR REPLACE INTO entry(key, blob, size, created, expires, "           \
  "duration, status, scope, command, bytes) "                                  \
  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"

/*
 * Stores k's row in the open transaction of PATH: bytes (size of them) for
 * a small entry, else NULL and blob. A big blob of the entry it replaces is
 * doomed, and *doomed set: purge it after the commit.
 */
static int publish(struct sqlite_store *q, const struct cdo__key *k,
                   sqlite3_int64 blob, const unsigned char *bytes,
                   uint64_t size, const struct cdo__put_info *info, int *doomed)
{
  sqlite3_stmt *st = kept(q, &q->old, SQL_OLD);
  sqlite3_int64 old = 0, old_size = 0;
  int r = note_key(q, k);

  if (r == 0 && st == NULL)
    r = db_fail(q, q->db, "cannot prepare statement");
  if (r == 0) {
    sqlite3_bind_blob(st, 1, k->hash, 32, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
      old = sqlite3_column_int64(st, 0);
      old_size = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if ((st = kept(q, &q->ins, SQL_INS)) == NULL)
      r = db_fail(q, q->db, "cannot prepare statement");
  }
  if (r == 0) {
    sqlite3_bind_blob(st, 1, k->hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, blob);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
    sqlite3_bind_int64(st, 4, info->created_ms);
    sqlite3_bind_int64(st, 5, info->expires_ms);
    sqlite3_bind_int64(st, 6, info->duration_ms);
    sqlite3_bind_int(st, 7, info->exit_status);
    if (info->scope)
      sqlite3_bind_text(st, 8, info->scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, info->command, -1, SQLITE_STATIC);
    if (bytes != NULL)
      sqlite3_bind_blob(st, 10, bytes, (int)size, SQLITE_STATIC);
    r = step_done(q, q->db, st, "cannot store the entry");
    sqlite3_clear_bindings(st); /* it pointed at the caller's bytes */
  }
  if (r == 0 && old_size > 0 && (uint64_t)old_size > SMALL_MAX && old != blob) {
    r = prepare(q, q->db,
                "INSERT OR REPLACE INTO pending(blob, started) VALUES(?1, 0)",
                &st);
    if (r == 0) {
      sqlite3_bind_int64(st, 1, old);
      r = step_done(q, q->db, st, "cannot replace the entry");
      sqlite3_finalize(st);
    }
    *doomed = 1;
  }
  if (r == 0 && size > SMALL_MAX) {
    r = prepare(q, q->db, "DELETE FROM pending WHERE blob = ?1", &st);
    if (r == 0) {
      sqlite3_bind_int64(st, 1, blob);
      r = step_done(q, q->db, st, "cannot publish the entry");
      sqlite3_finalize(st);
    }
  }
  return r;
}

static int do_put(struct cdo_store *s, const struct cdo__key *k,
                  const struct cdo__src *src, const struct cdo__put_info *info)
{
  struct sqlite_store *q = sq(s);
  uint64_t size = cdo__src_size(src);
  int big = size > SMALL_MAX, doomed = 0, r;
  unsigned char *buf = NULL;
  sqlite3_stmt *st = NULL;
  sqlite3_int64 blob;

  if (size / ROW >= (uint64_t)1 << ROW_BITS)
    return cdo__store_fail(s, CDO_ETOOBIG, "entry too large for SQLite");
  r = tune_for_writing(q);
  if (r == 0)
    r = ensure_schema(q);
  if (r < 0)
    return r;
  blob = 0;
  if (big) {
    randombytes_buf(&blob, sizeof(blob));
    blob &= ((sqlite3_int64)1 << (63 - ROW_BITS)) - 1;
    /* Announce the blob so --gc can tell a dead writer from a live one. */
    writers_lock(q, LOCK_SH);
    r = prepare(q, q->db, "INSERT INTO pending(blob, started) VALUES(?1, ?2)",
                &st);
    if (r == 0) {
      sqlite3_bind_int64(st, 1, blob);
      sqlite3_bind_int64(st, 2, cdo__now_ms());
      r = step_done(q, q->db, st, "cannot store the entry");
      sqlite3_finalize(st);
    }
    if (r == 0)
      r = write_blob_file(q, blob, src);
  } else {
    buf = malloc((size_t)size + 1);
    r = buf ? cdo__store_src_read(s, src, 0, buf, (size_t)size)
            : CDO__ERR(ENOMEM);
  }
  if (r == 0)
    r = tx_begin(q);
  if (r == 0)
    r = publish(q, k, blob, buf, size, info, &doomed);
  if (r == 0)
    r = tx_commit(q);
  free(buf);
  if (r < 0) {
    rollback(q->db);
    if (big && big_delete(q, blob) == 0 &&
        prepare(q, q->db, "DELETE FROM pending WHERE blob = ?1", &st) == 0) {
      sqlite3_bind_int64(st, 1, blob);
      sqlite3_step(st);
      sqlite3_finalize(st);
    }
  }
  if (big)
    writers_lock(q, LOCK_UN);
  if (r < 0)
    return r;
  tx_after(q, doomed); /* failing here leaves the work to --gc */
  return 0;
}

/*
 * Deletes the entries selected by where, "WHERE ..." with an INDEXED BY
 * before it if need be (binding ?1 to arg if given).
 */
static int delete_where(struct sqlite_store *q, const char *where,
                        const void *arg, int arglen, uint64_t *removed,
                        uint64_t *bytes)
{
  sqlite3_stmt *sel = NULL, *doom = NULL;
  int r, n = 0, doomed = 0, rc = SQLITE_DONE;
  uint64_t sum = 0;
  /* A batch of deletes by key (eviction) reuses its statements. */
  int keyed = q->batch && strcmp(where, "WHERE key = ?1") == 0;
  char sql[256];

  r = q->batch ? 0 : ensure_schema(q); /* a batch made sure at its start */
  if (r == 0)
    r = tx_begin(q);
  if (r < 0)
    return r;
  cdo__fmt(sql, sizeof(sql), "DELETE FROM entry %s RETURNING blob, size",
           where);
  if (keyed && q->del_sel != NULL) {
    sel = q->del_sel;
    doom = q->del_doom;
  } else {
    r = prepare(q, q->db, sql, &sel);
    if (r == 0)
      r = prepare(q, q->db,
                  "INSERT OR REPLACE INTO pending(blob, started) VALUES(?1, 0)",
                  &doom);
    if (r == 0 && keyed) {
      q->del_sel = sel;
      q->del_doom = doom;
    }
  }
  if (r == 0 && arg != NULL) {
    if (arglen < 0)
      sqlite3_bind_text(sel, 1, arg, -1, SQLITE_STATIC);
    else if (arglen == 8)
      sqlite3_bind_int64(sel, 1, *(const sqlite3_int64 *)arg);
    else
      sqlite3_bind_blob(sel, 1, arg, arglen, SQLITE_STATIC);
  }
  /* RETURNING rows are all produced up front: the table may change now. */
  while (r == 0 && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
    sqlite3_int64 size = sqlite3_column_int64(sel, 1);

    if (size > 0 && (uint64_t)size > SMALL_MAX) {
      sqlite3_bind_int64(doom, 1, sqlite3_column_int64(sel, 0));
      r = step_done(q, q->db, doom, "cannot delete entries");
      doomed = 1;
    }
    sum += size > 0 ? (uint64_t)size : 0;
    n++;
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = db_fail(q, q->db, "cannot delete entries");
  if (keyed && sel == q->del_sel) {
    sqlite3_reset(sel);
    sqlite3_clear_bindings(sel);
  } else {
    sqlite3_finalize(sel);
    sqlite3_finalize(doom);
  }
  if (r == 0)
    r = tx_commit(q);
  if (r < 0) {
    rollback(q->db);
    return r;
  }
  if (removed)
    *removed += (uint64_t)n;
  if (bytes)
    *bytes += sum;
  return tx_after(q, doomed);
}

static int do_del(struct cdo_store *s, const struct cdo__key *k)
{
  return delete_where(sq(s), "WHERE key = ?1", k->hash, 32, NULL, NULL);
}

/* Empties PATH-big, when there is one. */
static int clear_big(struct sqlite_store *q)
{
  struct stat st;
  int r = 0;

  if (lstat(q->big_path, &st) == 0) {
    r = open_big(q);
    if (r == 0)
      r = exec(q, q->big, "DELETE FROM chunk");
  }
  return r;
}

/*
 * Sets PRAGMA secure_delete to how (0 off, 1 on, 2 FAST) and returns what
 * it was (-1 if unknown); how -1, an unknown value to restore, does
 * nothing and returns -1. Bulk deletes use FAST: where SQLite is built to
 * overwrite what it deletes (Debian's is), a page that a delete frees is
 * zeroed and written like any other; FAST leaves it as it is on the free
 * list, and zeroes only on pages written anyway. Deleting 500k of 1M
 * entries in rowid order took 2.8 s instead of 6.3 s in SQLite's shell,
 * dropping the whole table 0.15 s instead of 5.8 s. So eviction and the
 * drop of an older version's table leave what they delete on free pages
 * until SQLite reuses them; --clear and --forget keep the build's setting
 * (on such a build, they overwrite it).
 */
static int secure_delete(struct sqlite_store *q, int how)
{
  sqlite3_stmt *st = NULL;
  char sql[40];
  int was = -1;

  if (how < 0)
    return -1;
  if (sqlite3_prepare_v2(q->db, "PRAGMA secure_delete", -1, &st, NULL) ==
          SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    was = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  /* "= 2" would read as a boolean: true */
  cdo__fmt(sql, sizeof(sql), "PRAGMA secure_delete = %s",
           how == 2 ? "FAST"
           : how    ? "ON"
                    : "OFF");
  sqlite3_exec(q->db, sql, NULL, NULL, NULL);
  return was;
}

/*
 * Drops entry_old, the table an older version kept its entries in, which
 * init_schema set aside; with big, empties PATH-big too, where only such
 * entries had bytes (the files of its big entries go with the next
 * sweep_blobs); --clear, which empties it anyway, passes 0. One
 * DROP TABLE, with secure_delete FAST (see secure_delete): SQLite reads every
 * page of the table to free it, and writes little more than the free
 * list's pages. (Deleting its rows a key range at a time, to hold the
 * write lock for less at a time, wrote 700 MB of WAL at 1M entries: each
 * delete moves cells between pages.) A walk of the whole table: only in
 * the detached child and in bulk work, never in a user's run.
 */
static int drop_old(struct sqlite_store *q, int big)
{
  sqlite3_stmt *st = NULL;
  int there = 0, was, r;

  r = prepare(q, q->db,
              "SELECT 1 FROM sqlite_master"
              " WHERE type = 'table' AND name = 'entry_old'",
              &st);
  if (r == 0)
    there = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  if (r < 0 || !there)
    return r;
  was = secure_delete(q, 2);
  r = exec(q, q->db, "DROP TABLE IF EXISTS entry_old");
  secure_delete(q, was);
  if (r == 0 && big)
    r = clear_big(q);
  return r;
}

static int do_clear(struct cdo_store *s, const char *scope)
{
  struct sqlite_store *q = sq(s);
  int r;

  if (scope != NULL)
    return delete_where(q, "WHERE scope = ?1", scope, -1, NULL, NULL);
  r = delete_where(q, "", NULL, 0, NULL, NULL);
  if (r == 0)
    r = drop_old(q, 0);
  if (r == 0)
    r = exec(q, q->db, "DELETE FROM pending");
  /* Bytes of writers still at work go too, as their entries would. */
  if (r == 0)
    remove_blob_files(q, NULL, 0);
  if (r == 0)
    r = clear_big(q);
  /* The bits of the entries gone go too (of those stored since: kept). */
  if (r == 0)
    remake_filter(q);
  return r;
}

/*
 * Removes the files of PATH-blobs that no entry or pending row names (a
 * writer's whose rows a power loss undid); call with no writer at work.
 */
static int sweep_blobs(struct sqlite_store *q)
{
  sqlite3_stmt *st = NULL;
  sqlite3_int64 *keep = NULL, *more;
  size_t n = 0, cap = 0;
  struct stat sb;
  int r, rc = SQLITE_DONE;

  if (lstat(q->blobs, &sb) < 0)
    return 0;
  r = prepare(q, q->db,
              "SELECT blob FROM entry WHERE size > ?1 "
              "UNION SELECT blob FROM pending",
              &st);
  if (r == 0)
    sqlite3_bind_int64(st, 1, (sqlite3_int64)SMALL_MAX);
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? 2 * cap : 256;
      more = realloc(keep, cap * sizeof(*keep));
      if (more == NULL) {
        r = CDO__ERR(ENOMEM);
        break;
      }
      keep = more;
    }
    keep[n++] = sqlite3_column_int64(st, 0);
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = db_fail(q, q->db, "cannot read big entries");
  sqlite3_finalize(st);
  if (r == 0 && n > 1)
    qsort(keep, n, sizeof(*keep), cmp_blob);
  if (r == 0)
    remove_blob_files(q, keep, n);
  free(keep);
  return r;
}

/* Has an entry expired by now? A read; an error says yes (the delete says
 * what went wrong). */
static int any_expired(struct sqlite_store *q, sqlite3_int64 now)
{
  sqlite3_stmt *st = NULL;
  int rc = SQLITE_ROW;

  if (sqlite3_prepare_v2(q->db,
                         "SELECT 1 FROM entry INDEXED BY entry_age"
                         " WHERE expires <= ?1 LIMIT 1",
                         -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, now);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  return rc != SQLITE_DONE;
}

static int sqlite_batch(struct cdo_store *s, int on);
static long wal_file_frames(struct sqlite_store *q);

#define GC_PAGE 4096

/* Up to max keys of entries expired by now, by a read of the index. */
static int expired_keys(struct sqlite_store *q, sqlite3_int64 now,
                        unsigned char (*keys)[32], size_t max, size_t *n)
{
  sqlite3_stmt *st = NULL;
  int r, rc = SQLITE_DONE;

  *n = 0;
  r = prepare(q, q->db,
              "SELECT key FROM entry INDEXED BY entry_age"
              " WHERE expires <= ?1 LIMIT ?2",
              &st);
  if (r == 0) {
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
  }
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
    if (sqlite3_column_bytes(st, 0) == 32)
      memcpy(keys[(*n)++], sqlite3_column_blob(st, 0), 32);
  if (r == 0 && rc != SQLITE_DONE)
    r = db_fail(q, q->db, "cannot find expired entries");
  sqlite3_finalize(st);
  return r;
}

/*
 * Removes the entries expired by now: a read of the index finds their
 * keys, GC_PAGE at a time, then each goes by key (if still expired), in
 * the batch's transactions; so the write lock is held for the deletes,
 * never for the walk of a large cache (a miss waiting for it is a miss
 * that takes as long as the walk).
 */
static int gc_expired(struct sqlite_store *q, sqlite3_int64 now,
                      uint64_t *removed)
{
  unsigned char(*keys)[32] = malloc(GC_PAGE * sizeof(*keys));
  int r, w, bulk = q->bulk;
  char where[80];
  size_t n = 0, i;

  if (keys == NULL)
    return CDO__ERR(ENOMEM);
  cdo__fmt(where, sizeof(where), "WHERE key = ?1 AND expires <= %lld",
           (long long)now);
  r = sqlite_batch(&q->base, 1);
  do {
    if (r == 0)
      r = expired_keys(q, now, keys, GC_PAGE, &n);
    for (i = 0; r == 0 && i < n; i++)
      r = delete_where(q, where, keys[i], 32, removed, NULL);
  } while (r == 0 && n == GC_PAGE);
  w = sqlite_batch(&q->base, 0);
  q->bulk = bulk;
  free(keys);
  return r < 0 ? r : w;
}

static int rowid_span(struct sqlite_store *q, sqlite3_int64 *lo,
                      sqlite3_int64 *hi);

/*
 * Makes the key filter anew when it is missing, or when the bits of
 * deleted entries are more than half of those set (and a few thousand):
 * a count of its bits (2 MiB read) against the span of the table's rowids
 * (two descents), which holds at least as many rows as there are. Rows are
 * in the order written, and what goes most (eviction, expiry) goes from
 * the old end, which shortens the span; deletes elsewhere leave their bits
 * until --clear. The walk that makes it is write_filter's.
 */
static void refilter(struct sqlite_store *q)
{
  int64_t set = cdo__keyfilter_count(q->keys, q->path);
  sqlite3_int64 lo = 0, hi = -1;

  if (set < 0 || (set > FILTER_SLACK && rowid_span(q, &lo, &hi) == 0 &&
                  set > 2 * (hi - lo + 1) + FILTER_SLACK))
    remake_filter(q);
}

static int do_gc(struct cdo_store *s, int64_t now_ms, uint64_t *removed)
{
  struct sqlite_store *q = sq(s);
  sqlite3_int64 now = now_ms;
  int r;

  /* A walk of the index, not of the table; first without the write lock
   * (the hourly upkeep must not hold up the misses' writes while it walks
   * a large cache in which nothing has expired). */
  r = ensure_schema(q);
  if (r == 0)
    r = drop_old(q, 1);
  if (r == 0 && any_expired(q, now))
    r = gc_expired(q, now, removed);
  if (r == 0)
    refilter(q);
  /* Doomed blobs, and those of writers that died: every pending one when
   * no writer is at work, else those pending for an hour. */
  if (r == 0) {
    int alone = writers_lock(q, LOCK_EX | LOCK_NB) == 0;

    r = purge(q, alone ? INT64_MAX : now_ms - PENDING_MAX_AGE_MS, NULL);
    if (r == 0 && alone)
      r = sweep_blobs(q);
    if (alone)
      writers_lock(q, LOCK_UN);
  }
  return r;
}

/*
 * The first and last rowids of PATH's entries (0, -1 when there is none):
 * two descents of the table, each an aggregate SQLite answers from one
 * end of it.
 */
static int rowid_span(struct sqlite_store *q, sqlite3_int64 *lo,
                      sqlite3_int64 *hi)
{
  sqlite3_stmt *st = NULL;
  int r;

  *lo = 0;
  *hi = -1;
  r = prepare(q, q->db,
              "SELECT (SELECT min(rowid) FROM entry),"
              " (SELECT max(rowid) FROM entry)",
              &st);
  if (r == 0 && sqlite3_step(st) == SQLITE_ROW &&
      sqlite3_column_type(st, 0) != SQLITE_NULL) {
    *lo = sqlite3_column_int64(st, 0);
    *hi = sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
  return r;
}

/*
 * What eviction's deleting statement picks, and what it took: the SQL
 * function cachedo_evict_pick(key, created, size) says whether a row goes,
 * and counts it. A function rather than SQL (a subquery on a table of kept
 * keys, RETURNING, a trigger) keeps the DELETE plain, so that SQLite
 * deletes each row as its scan reaches it (one pass over the table's
 * pages, not a pass to collect keys and another to delete); run outside
 * an explicit transaction, it keeps no statement journal either (a copy
 * of every page it changes). A big entry is left to a delete by key, which
 * dooms its blob in the same transaction.
 */
struct evict_pick {
  const uint64_t *keep; /* key prefixes read since the cutoff, ascending */
  size_t n_keep;
  sqlite3_int64 cutoff;
  uint64_t n, bytes;        /* rows picked, their bytes */
  unsigned char (*big)[32]; /* keys of the big entries passed over */
  size_t n_big, cap_big;
};

static int read_since(const struct evict_pick *p, uint64_t prefix)
{
  size_t lo = 0, hi = p->n_keep;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (p->keep[mid] < prefix)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < p->n_keep && p->keep[lo] == prefix;
}

static void evict_pick_fn(sqlite3_context *cx, int argc, sqlite3_value **v)
{
  struct evict_pick *p = sqlite3_user_data(cx);
  const unsigned char *key = sqlite3_value_blob(v[0]);
  sqlite3_int64 size = sqlite3_value_int64(v[2]);

  (void)argc;
  sqlite3_result_int(cx, 0);
  if (key == NULL || sqlite3_value_bytes(v[0]) != 32 ||
      sqlite3_value_int64(v[1]) > p->cutoff || read_since(p, cdo__get64(key)))
    return;
  if (size > 0 && (uint64_t)size > SMALL_MAX) {
    if (p->n_big == p->cap_big) {
      size_t cap = p->cap_big ? 2 * p->cap_big : 64;
      void *more = realloc(p->big, cap * sizeof(*p->big));

      if (more == NULL) {
        sqlite3_result_error_nomem(cx);
        return;
      }
      p->big = more;
      p->cap_big = cap;
    }
    memcpy(p->big[p->n_big++], key, 32);
    return;
  }
  p->n++;
  p->bytes += size > 0 ? (uint64_t)size : 0;
  sqlite3_result_int(cx, 1);
}

/*
 * Deletes the entries of one range of rowids (where) that p picks: the
 * small ones in one statement, its own transaction; then the big ones by
 * key, in the batch's transactions.
 */
static int evict_range(struct sqlite_store *q, struct evict_pick *p,
                       const char *where, uint64_t *removed, uint64_t *freed)
{
  char sql[200];
  size_t i;
  int r, w;

  p->n = p->bytes = 0;
  p->n_big = 0;
  cdo__fmt(sql, sizeof(sql),
           "DELETE FROM entry %s cachedo_evict_pick(key, created, size)",
           where);
  r = exec(q, q->db, sql);
  if (r < 0)
    return r;
  *removed += p->n;
  *freed += p->bytes;
  r = tx_after(q, 0);
  if (r < 0 || p->n_big == 0)
    return r;
  cdo__fmt(sql, sizeof(sql), "WHERE key = ?1 AND created <= %lld",
           (long long)p->cutoff);
  r = sqlite_batch(&q->base, 1);
  for (i = 0; r == 0 && i < p->n_big; i++)
    r = delete_where(q, sql, p->big[i], 32, removed, freed);
  w = sqlite_batch(&q->base, 0);
  q->bulk = 1;
  return r < 0 ? r : w;
}

/*
 * Eviction's deleting pass in SQL: removes the entries created no later
 * than cutoff whose key prefix is not in keep (read since), in rowid
 * order, oldest written first: so the pages it empties, most of those it
 * visits, are freed unwritten, and it stops once need bytes are freed. In
 * transactions of EVICT_TX_ROWS rowids each (in SQLite's shell, 500k of
 * 1M rows deleted in 1, 4 or 8 transactions took 3 to 4 s each way): a
 * transaction holds the write lock, and its pages beyond the page cache
 * go to the WAL before it commits. Each is checkpointed at once, into a
 * WAL left its length meanwhile: the next one overwrites the same frames
 * instead of growing it (or cutting it and growing it again).
 */
static int sqlite_evict_older(struct cdo_store *s, int64_t cutoff,
                              const uint64_t *keep, size_t n_keep,
                              uint64_t need, uint64_t *removed, uint64_t *freed)
{
  struct sqlite_store *q = sq(s);
  struct evict_pick p = {.keep = keep, .n_keep = n_keep, .cutoff = cutoff};
  uint64_t start = *freed;
  sqlite3_int64 lo = 0, hi = -1, at;
  char where[120];
  int r, was;

  q->bulk = 1;
  r = use_db(q, DB_WRITER);
  if (r == 0)
    r = tune_for_writing(q);
  if (r == 0)
    r = ensure_schema(q);
  if (r == 0)
    r = exec(q, q->db, "PRAGMA cache_size = -32768");
  if (r == 0 &&
      sqlite3_create_function_v2(q->db, "cachedo_evict_pick", 3,
                                 SQLITE_UTF8 | SQLITE_DIRECTONLY, &p,
                                 evict_pick_fn, NULL, NULL, NULL) != SQLITE_OK)
    r = db_fail(q, q->db, "cannot evict");
  if (r == 0)
    r = rowid_span(q, &lo, &hi);
  was = r == 0 && lo <= hi ? secure_delete(q, 2) : -1;
  for (at = lo; r == 0 && lo <= hi && *freed - start < need;
       at += EVICT_TX_ROWS) {
    int last = (uint64_t)hi - (uint64_t)at < EVICT_TX_ROWS;

    q->wal_keep = !last; /* the last range's checkpoint cuts it back */
    if (last)
      cdo__fmt(where, sizeof(where), "WHERE rowid >= %lld AND", (long long)at);
    else
      cdo__fmt(where, sizeof(where), "WHERE rowid >= %lld AND rowid < %lld AND",
               (long long)at, (long long)at + EVICT_TX_ROWS);
    r = evict_range(q, &p, where, removed, freed);
    if (last)
      break;
  }
  secure_delete(q, was);
  q->wal_keep = 0;
  if (wal_file_frames(q) > WAL_FRAMES)
    checkpoint(q); /* stopped early: the WAL is cut back all the same */
  sqlite3_create_function_v2(q->db, "cachedo_evict_pick", 3, SQLITE_UTF8, NULL,
                             NULL, NULL, NULL, NULL);
  free(p.big);
  q->bulk = 0;
  return r;
}

/* ---- inspection ---------------------------------------------------------- */

#define LIST_PAGE 1024

/* A page of --list rows, held while no statement is open. */
struct list_page {
  struct cdo_entry_info rows[LIST_PAGE];
  char *commands[LIST_PAGE];
  char *scopes[LIST_PAGE]; /* NULL: none */
  unsigned char last_key[32];
  sqlite3_int64 last_created;
  size_t n;
};

/* The 64 hex digits of a 32-byte key, into out[65]. */
static void key_hex(const unsigned char *key, char *out)
{
  static const char hex[] = "0123456789abcdef";
  int i;

  for (i = 0; i < 32; i++) {
    out[2 * i] = hex[key[i] >> 4];
    out[2 * i + 1] = hex[key[i] & 15];
  }
  out[64] = 0;
}

/* Reads the page after the last row of the previous one (first: any). */
static int list_page(struct sqlite_store *q, struct list_page *pg, int first)
{
  sqlite3_stmt *st = NULL;
  int r, rc = SQLITE_DONE;

  r = prepare(q, q->db,
              first ? "SELECT key, created, expires, duration, size, status, "
                      "command, scope FROM entry "
                      "ORDER BY created DESC, key DESC LIMIT ?3"
                    : "SELECT key, created, expires, duration, size, status, "
                      "command, scope FROM entry "
                      "WHERE (created, key) < (?1, ?2) "
                      "ORDER BY created DESC, key DESC "
                      "LIMIT ?3",
              &st);
  if (r == 0)
    sqlite3_bind_int(st, 3, LIST_PAGE);
  if (r == 0 && !first) {
    sqlite3_bind_int64(st, 1, pg->last_created);
    sqlite3_bind_blob(st, 2, pg->last_key, 32, SQLITE_TRANSIENT);
  }
  pg->n = 0;
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct cdo_entry_info *e = &pg->rows[pg->n];
    const unsigned char *key = sqlite3_column_blob(st, 0);
    const char *cmd = (const char *)sqlite3_column_text(st, 6);
    const char *scope = (const char *)sqlite3_column_text(st, 7);

    if (sqlite3_column_bytes(st, 0) != 32)
      continue;
    memcpy(pg->last_key, key, 32);
    pg->last_created = sqlite3_column_int64(st, 1);
    key_hex(key, e->key);
    e->created_ms = pg->last_created;
    e->expires_ms = sqlite3_column_int64(st, 2);
    e->duration_ms = sqlite3_column_int64(st, 3);
    e->size = (uint64_t)sqlite3_column_int64(st, 4);
    e->exit_status = sqlite3_column_int(st, 5);
    pg->commands[pg->n] = strdup(cmd ? cmd : "");
    pg->scopes[pg->n] = scope ? strdup(scope) : NULL;
    if (pg->commands[pg->n] == NULL || (scope && pg->scopes[pg->n] == NULL)) {
      free(pg->commands[pg->n]);
      free(pg->scopes[pg->n]);
      r = CDO__ERR(ENOMEM);
      break;
    }
    e->command = pg->commands[pg->n];
    e->argv = NULL;
    e->scope = pg->scopes[pg->n++];
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = db_fail(q, q->db, "cannot list entries");
  sqlite3_finalize(st);
  return r;
}

/*
 * Newest first, by the index on created, a page at a time: no statement
 * is open while fn runs, so fn may delete entries (eviction does), and
 * memory stays a page's whatever the number of entries.
 */
static int do_list(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  struct sqlite_store *q = sq(s);
  struct list_page *pg = calloc(1, sizeof(*pg));
  int r, first = 1, stop = 0;
  size_t i;

  if (pg == NULL)
    return CDO__ERR(ENOMEM);
  r = ensure_schema(q);
  /* The table's interior pages stay cached (a row is then one read of a
   * leaf, not five): about 16 MiB, whatever the number of entries. */
  if (r == 0)
    r = exec(q, q->db, "PRAGMA cache_size = -16384");
  while (r == 0 && !stop) {
    r = list_page(q, pg, first);
    first = 0;
    for (i = 0; r == 0 && i < pg->n && !stop; i++)
      stop = fn(ud, &pg->rows[i]) != 0;
    for (i = 0; i < pg->n; i++) {
      free(pg->commands[i]);
      free(pg->scopes[i]);
    }
    if (pg->n < LIST_PAGE)
      break;
  }
  free(pg);
  return r;
}

#define SCAN_PAGE 4096

/* A page of scan rows: key, created and size. */
struct scan_page {
  unsigned char keys[SCAN_PAGE][32];
  sqlite3_int64 created[SCAN_PAGE], size[SCAN_PAGE];
  size_t n;
};

/* Reads the page after (created, key) of the previous one (first: any). */
static int scan_page(struct sqlite_store *q, struct scan_page *pg, int first)
{
  sqlite3_stmt *st = NULL;
  int r, rc = SQLITE_DONE;

  r = prepare(q, q->db,
              first ? "SELECT key, created, size FROM entry"
                      " INDEXED BY entry_age ORDER BY created, key"
                      " LIMIT ?3"
                    : "SELECT key, created, size FROM entry"
                      " INDEXED BY entry_age WHERE (created, key) > (?1, ?2)"
                      " ORDER BY created, key LIMIT ?3",
              &st);
  if (r == 0)
    sqlite3_bind_int(st, 3, SCAN_PAGE);
  if (r == 0 && !first) {
    sqlite3_bind_int64(st, 1, pg->created[pg->n - 1]);
    sqlite3_bind_blob(st, 2, pg->keys[pg->n - 1], 32, SQLITE_TRANSIENT);
  }
  pg->n = 0;
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (sqlite3_column_bytes(st, 0) != 32)
      continue;
    memcpy(pg->keys[pg->n], sqlite3_column_blob(st, 0), 32);
    pg->created[pg->n] = sqlite3_column_int64(st, 1);
    pg->size[pg->n++] = sqlite3_column_int64(st, 2);
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = db_fail(q, q->db, "cannot list entries");
  sqlite3_finalize(st);
  return r;
}

/*
 * Key, created and size of every entry, oldest first, from the index
 * entry_age alone (it holds all three): a few dozen bytes an entry
 * instead of the table's rows. A page at a time, no statement open while
 * fn runs (it may delete).
 */
static int do_scan(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  struct sqlite_store *q = sq(s);
  struct scan_page *pg = malloc(sizeof(*pg));
  struct cdo_entry_info e;
  int r, first = 1, stop = 0;
  size_t i;

  if (pg == NULL)
    return CDO__ERR(ENOMEM);
  memset(&e, 0, sizeof(e));
  pg->n = 0;
  r = ensure_schema(q);
  while (r == 0 && !stop) {
    r = scan_page(q, pg, first);
    first = 0;
    for (i = 0; r == 0 && i < pg->n && !stop; i++) {
      key_hex(pg->keys[i], e.key);
      e.created_ms = pg->created[i];
      e.size = pg->size[i] > 0 ? (uint64_t)pg->size[i] : 0;
      stop = fn(ud, &e) != 0;
    }
    if (pg->n < SCAN_PAGE)
      break;
  }
  free(pg);
  return r;
}

static int do_stats(struct cdo_store *s, struct cdo_stats *stats)
{
  struct sqlite_store *q = sq(s);
  sqlite3_stmt *st = NULL;
  int r;

  r = ensure_schema(q);
  if (r == 0)
    r = prepare(q, q->db, "SELECT count(*), total(size) FROM entry", &st);
  if (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
    stats->entries = (uint64_t)sqlite3_column_int64(st, 0);
    stats->bytes = (uint64_t)sqlite3_column_double(st, 1);
  }
  sqlite3_finalize(st);
  return r;
}

static int sqlite_batch(struct cdo_store *s, int on)
{
  struct sqlite_store *q = sq(s);
  int r = 0, w;

  if (on) {
    q->bulk = 1;
    r = use_db(q, DB_WRITER);
    if (r == 0)
      r = tune_for_writing(q);
    if (r == 0)
      r = ensure_schema(q);
    q->batch = r == 0;
    q->batch_ops = 0;
    return r;
  }
  q->batch = 0;
  sqlite3_finalize(q->del_sel);
  sqlite3_finalize(q->del_doom);
  q->del_sel = q->del_doom = NULL;
  if (!sqlite3_get_autocommit(q->db))
    r = exec(q, q->db, "COMMIT");
  if (r < 0)
    rollback(q->db);
  w = tx_after(q, 0);
  q->bulk = 0;
  return r < 0 ? r : w;
}

/* Frames in PATH's WAL file (cut back to one frame when restarted). */
static long wal_file_frames(struct sqlite_store *q)
{
  char p[PATH_MAX];
  struct stat st;

  cdo__fmt(p, sizeof(p), "%s-wal", q->path);
  return stat(p, &st) < 0 || st.st_size <= 32 ? 0
                                              : (st.st_size - 32) / (4096 + 24);
}

/*
 * In the detached child, after a miss left PATH's WAL long, or set aside
 * an older version's table: drops that table (drop_old), then checkpoints
 * the WAL and restarts it (see checkpoint); again while the misses that
 * found this child at work (and so started none) made it long again, a
 * few rounds at most. The first statement opens the WAL.
 */
static void sqlite_tidy(struct cdo_store *s)
{
  struct sqlite_store *q = sq(s);
  int round;

  if (use_db(q, DB_WRITER) < 0 || tune_for_writing(q) < 0 || !in_wal(q->db))
    return;
  drop_old(q, 1);
  /* A cache of version 5, or a filter removed or damaged: made here, in
   * the detached child, never in a user's run. */
  if (!cdo__keyfilter_valid(q->keys, q->path))
    remake_filter(q);
  for (round = 0; round < TIDY_ROUNDS; round++)
    if ((round > 0 && wal_file_frames(q) < WAL_FRAMES) || !checkpoint(q))
      break;
}

/* The front end's own files (usage, stats) go next to the database. */
static const char *sqlite_local_path(struct cdo_store *s)
{
  return sq(s)->path;
}

/*
 * ---- the members: each tries once more after replacing damaged files;
 * all but a lookup reopen PATH as a writer first (use_db) --------------
 */

static int sqlite_get(struct cdo_store *s, const struct cdo__key *k,
                      struct cdo__blob **out)
{
  struct sqlite_store *q = sq(s);
  int r;

  *out = NULL;
  if (cdo__keyfilter_test(q->keys, q->path, k->hash) == 0)
    return 0; /* certainly not stored: PATH need not be opened */
  if (q->mode == 0)
    use_db(q, DB_READER); /* if it fails, the writer tries */
  if (q->mode == DB_READER && (r = do_get(s, k, out)) >= 0)
    return r;
  r = use_db(q, DB_WRITER); /* what a reader could not read, a writer can */
  if (r == 0)
    r = do_get(s, k, out);
  return r < 0 && repaired(q) ? do_get(s, k, out) : r;
}

static int sqlite_put(struct cdo_store *s, const struct cdo__key *k,
                      const struct cdo__src *src,
                      const struct cdo__put_info *info)
{
  int r = use_db(sq(s), DB_WRITER);

  if (r == 0)
    r = do_put(s, k, src, info);
  return r < 0 && repaired(sq(s)) ? do_put(s, k, src, info) : r;
}

/*
 * While the command runs: opens PATH as a writer (a miss with --refresh
 * has not opened it at all), reads the schema, most of what opening costs,
 * and prepares the put's statements, waiting for no lock; a failure is left
 * for the put to meet and report.
 */
static void sqlite_prime(struct cdo_store *s)
{
  struct sqlite_store *q = sq(s);

  if (use_db(q, DB_WRITER) < 0)
    return;
  set_busy(q, q->db, 0);
  if (schema_version(q) == SCHEMA_VERSION) {
    kept(q, &q->old, SQL_OLD);
    kept(q, &q->ins, SQL_INS);
  }
  set_busy(q, q->db, BUSY_MS);
}

static int sqlite_del(struct cdo_store *s, const struct cdo__key *k)
{
  int r;

  repaired(sq(s)); /* reading the entry may have found the damage */
  if ((r = use_db(sq(s), DB_WRITER)) < 0)
    return r;
  r = do_del(s, k);
  return r < 0 && repaired(sq(s)) ? do_del(s, k) : r;
}

/* Whatever state the files are in, --clear leaves an empty cache. */
static int sqlite_clear(struct cdo_store *s, const char *scope)
{
  int r;

  sq(s)->clearing = sq(s)->bulk = 1;
  r = use_db(sq(s), DB_WRITER);
  if (r == 0)
    r = do_clear(s, scope);
  if (r < 0 && repaired(sq(s)))
    r = do_clear(s, scope);
  sq(s)->clearing = sq(s)->bulk = 0;
  return r;
}

static int sqlite_gc(struct cdo_store *s, int64_t now_ms, uint64_t *removed)
{
  int r;

  sq(s)->bulk = 1;
  r = use_db(sq(s), DB_WRITER);
  if (r == 0)
    r = do_gc(s, now_ms, removed);
  if (r < 0 && repaired(sq(s)))
    r = do_gc(s, now_ms, removed);
  sq(s)->bulk = 0;
  return r;
}

static int sqlite_list(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  int r = use_db(sq(s), DB_WRITER);

  if (r == 0)
    r = do_list(s, fn, ud);
  return r < 0 && repaired(sq(s)) ? do_list(s, fn, ud) : r;
}

static int sqlite_scan(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  int r = use_db(sq(s), DB_WRITER);

  if (r == 0)
    r = do_scan(s, fn, ud);
  return r < 0 && repaired(sq(s)) ? do_scan(s, fn, ud) : r;
}

static int sqlite_stats(struct cdo_store *s, struct cdo_stats *st)
{
  int r = use_db(sq(s), DB_WRITER);

  if (r == 0)
    r = do_stats(s, st);
  return r < 0 && repaired(sq(s)) ? do_stats(s, st) : r;
}

static const struct cdo__store_files sqlite_files = {
    .local_path = sqlite_local_path,
};

const struct cdo__store_ops cdo__store_sqlite = {
    .scheme = "sqlite:",
    .name = "sqlite",
    .usage = "sqlite:PATH",
    .about = "an SQLite database file (the default)",
    .size = sizeof(struct sqlite_store),
    .check = sqlite_check,
    .open = sqlite_open,
    .close = sqlite_close,
    .get = sqlite_get,
    .put = sqlite_put,
    .del = sqlite_del,
    .clear = sqlite_clear,
    .list = sqlite_list,
    .lists_scope = 1,
    .stats = sqlite_stats,
    .gc = sqlite_gc,
    .scan = sqlite_scan,
    .batch = sqlite_batch,
    .evict_older = sqlite_evict_older,
    .tidy = sqlite_tidy,
    .prime = sqlite_prime,
    .files = &sqlite_files,
};
