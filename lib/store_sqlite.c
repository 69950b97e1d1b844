/* SPDX-License-Identifier: MIT */
/*
 * The default backend: one SQLite database in WAL mode, safe for many
 * processes at once.
 *
 * An entry's bytes are split into chunks of CHUNK bytes, rows of table chunk
 * whose rowid is blob << 16 | seq. A put first writes the chunks under a new
 * random blob id (listed in pending while it runs, in transactions of a few
 * chunks so no writer holds the lock for long), then publishes it in one
 * short transaction that points entry.key at the new blob and deletes the
 * old one. A reader therefore sees a whole old or a whole new entry; a
 * writer that dies leaves only a pending blob, which --gc removes.
 */
#include "store_int.h"

#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCHEMA_VERSION     1
#define CHUNK              (1 << 20)
#define CHUNKS_PER_TX      16
#define BUSY_MS            60000
#define PENDING_MAX_AGE_MS 3600000

struct sqlite_store {
  struct cdo_store base;
  sqlite3 *db;
  char *path;
  int tuned; /* write pragmas applied */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS entry("
    " key BLOB PRIMARY KEY, blob INTEGER NOT NULL, size INTEGER NOT NULL,"
    " created INTEGER NOT NULL, expires INTEGER NOT NULL,"
    " duration INTEGER NOT NULL, status INTEGER NOT NULL, scope TEXT,"
    " command TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS chunk(id INTEGER PRIMARY KEY, data BLOB);"
    "CREATE TABLE IF NOT EXISTS pending(blob INTEGER PRIMARY KEY,"
    " started INTEGER NOT NULL);";

static struct sqlite_store *sq(struct cdo_store *s)
{
  return (struct sqlite_store *)s;
}

static int db_fail(struct sqlite_store *q, const char *what)
{
  int rc = sqlite3_extended_errcode(q->db);

  cdo__store_fail(&q->base,
                  (rc & 0xff) == SQLITE_BUSY ? CDO__ERR(EBUSY) : CDO_EBACKEND,
                  "%s: %s", what, sqlite3_errmsg(q->db));
  return (rc & 0xff) == SQLITE_BUSY ? CDO__ERR(EBUSY) : CDO_EBACKEND;
}

static int exec(struct sqlite_store *q, const char *sql)
{
  if (sqlite3_exec(q->db, sql, NULL, NULL, NULL) != SQLITE_OK)
    return db_fail(q, sql);
  return 0;
}

static int prepare(struct sqlite_store *q, const char *sql, sqlite3_stmt **st)
{
  if (sqlite3_prepare_v2(q->db, sql, -1, st, NULL) != SQLITE_OK)
    return db_fail(q, "cannot prepare statement");
  return 0;
}

static void rollback(struct sqlite_store *q)
{
  if (!sqlite3_get_autocommit(q->db))
    sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
}

static int sqlite_check(const char *rest, char *err, size_t errlen)
{
  if (*rest == 0) {
    cdo__fmt(err, errlen, "no path (expected sqlite:PATH)");
    return CDO_EBADURL;
  }
  return 0;
}

/* Creates the schema, once, under the write lock. */
static int init_schema(struct sqlite_store *q)
{
  sqlite3_stmt *st = NULL;
  int version = -1, r;

  /*
   * Large pages: a 1 MiB chunk is then 16 overflow pages rather than 256,
   * which makes reading a large entry several times faster. Only takes
   * effect while the database is still empty.
   */
  r = exec(q, "PRAGMA page_size = 65536");
  if (r == 0)
    r = exec(q, "BEGIN IMMEDIATE");
  if (r < 0)
    return r;
  r = prepare(q, "PRAGMA user_version", &st);
  if (r == 0 && sqlite3_step(st) == SQLITE_ROW)
    version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (r == 0 && version > SCHEMA_VERSION)
    r = cdo__store_fail(&q->base, CDO_EBACKEND,
                        "'%s' has schema version %d, newer than this "
                        "cachedo's (%d)",
                        q->path, version, SCHEMA_VERSION);
  if (r == 0 && version < 0)
    r = db_fail(q, "cannot read the schema version");
  if (r == 0 && version == 0)
    r = exec(q, schema);
  if (r == 0 && version == 0)
    r = exec(q, "PRAGMA user_version = 1");
  if (r == 0)
    r = exec(q, "COMMIT");
  if (r < 0) {
    rollback(q);
    return r;
  }
  /* WAL is a property of the file: set it once, outside a transaction. */
  return version == 0 ? exec(q, "PRAGMA journal_mode = WAL") : 0;
}

static int sqlite_open(struct cdo_store *s, const char *rest)
{
  struct sqlite_store *q = sq(s);
  char *dir, *slash;
  mode_t old;
  int rc, r;

  q->path = strdup(rest);
  dir = strdup(rest);
  if (q->path == NULL || dir == NULL) {
    free(dir);
    return CDO__ERR(ENOMEM);
  }
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
  /* One thread, one connection: no mutexes, no memory accounting. */
  sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  old = umask(077); /* the database and its -wal and -shm: mode 0600 */
  rc = sqlite3_open_v2(
      q->path, &q->db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, NULL);
  umask(old);
  if (rc != SQLITE_OK)
    return cdo__store_fail(s, CDO_EBACKEND, "%s",
                           q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
  sqlite3_busy_timeout(q->db, BUSY_MS);
  /*
   * Each invocation opens and closes the database: keep the -wal file
   * between them rather than deleting and recreating it on every close.
   */
  {
    int one = 1;

    sqlite3_file_control(q->db, "main", SQLITE_FCNTL_PERSIST_WAL, &one);
  }
  /* With a size limit, the last connection to close truncates the WAL, so
   * the next one to open has no old frames to scan. */
  sqlite3_exec(q->db, "PRAGMA journal_size_limit = 0", NULL, NULL, NULL);
  return 0;
}

static void sqlite_close(struct cdo_store *s)
{
  struct sqlite_store *q = sq(s);

  sqlite3_close_v2(q->db);
  free(q->path);
}

/* Creates the schema when the database is new; call outside transactions. */
static int ensure_schema(struct sqlite_store *q)
{
  sqlite3_stmt *st = NULL;

  if (sqlite3_prepare_v2(q->db, "SELECT 1 FROM entry, chunk, pending", -1, &st,
                         NULL) == SQLITE_OK) {
    sqlite3_finalize(st);
    return 0;
  }
  if (sqlite3_errcode(q->db) != SQLITE_ERROR ||
      strstr(sqlite3_errmsg(q->db), "no such table") == NULL)
    return db_fail(q, "cannot read the cache");
  return init_schema(q);
}

/* A large entry read chunk by chunk, inside the read transaction of get. */
struct chunk_reader {
  struct sqlite_store *q;
  sqlite3_stmt *st; /* kept stepped: holds the read transaction open */
  sqlite3_blob *blob;
  sqlite3_int64 base; /* rowid of chunk 0 */
  sqlite3_int64 row;  /* rowid the blob handle is on */
};

static int chunk_read(struct cdo__blob *b, void *buf, size_t n, uint64_t off)
{
  struct chunk_reader *cr = b->ctx;
  unsigned char *p = buf;

  while (n > 0) {
    sqlite3_int64 row = cr->base + (sqlite3_int64)(off / CHUNK);
    int in = (int)(off % CHUNK), rc;
    size_t take = CHUNK - (size_t)in < n ? CHUNK - (size_t)in : n;

    if (cr->blob == NULL)
      rc = sqlite3_blob_open(cr->q->db, "main", "chunk", "data", row, 0,
                             &cr->blob);
    else if (row != cr->row)
      rc = sqlite3_blob_reopen(cr->blob, row);
    else
      rc = SQLITE_OK;
    if (rc != SQLITE_OK)
      return CDO_ECORRUPT;
    cr->row = row;
    if (sqlite3_blob_read(cr->blob, p, (int)take, in) != SQLITE_OK)
      return CDO_ECORRUPT;
    p += take;
    off += take;
    n -= take;
  }
  return 0;
}

static void chunk_free(struct cdo__blob *b)
{
  struct chunk_reader *cr = b->ctx;

  sqlite3_blob_close(cr->blob);
  sqlite3_finalize(cr->st);
  free(cr);
  free(b);
}

static int sqlite_get(struct cdo_store *s, const struct cdo__key *k,
                      struct cdo__blob **out)
{
  struct sqlite_store *q = sq(s);
  sqlite3_stmt *st = NULL;
  sqlite3_int64 size, blob;
  int r = 0, rc, n;

  if (sqlite3_prepare_v2(q->db,
                         "SELECT e.size, e.blob, c.data FROM entry e, chunk c "
                         "WHERE e.key = ?1 AND c.id = e.blob * 65536",
                         -1, &st, NULL) != SQLITE_OK) {
    if (sqlite3_errcode(q->db) == SQLITE_ERROR &&
        strstr(sqlite3_errmsg(q->db), "no such table") != NULL)
      return 0; /* a new database: nothing stored yet */
    return db_fail(q, "cannot read the cache");
  }
  sqlite3_bind_blob(st, 1, k->hash, 32, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_DONE)
    goto out;
  if (rc != SQLITE_ROW) {
    r = db_fail(q, "cannot read the cache");
    goto out;
  }
  size = sqlite3_column_int64(st, 0);
  blob = sqlite3_column_int64(st, 1);
  n = sqlite3_column_bytes(st, 2);
  if (size <= n) {
    unsigned char *p = malloc((size_t)n + 1);

    if (p != NULL)
      memcpy(p, sqlite3_column_blob(st, 2), (size_t)n);
    *out = p ? cdo__blob_from_mem(p, (size_t)n) : NULL;
    r = *out ? 0 : CDO__ERR(ENOMEM);
  } else {
    struct chunk_reader *cr = calloc(1, sizeof(*cr));
    struct cdo__blob *b = calloc(1, sizeof(*b));

    if (cr == NULL || b == NULL) {
      free(cr);
      free(b);
      r = CDO__ERR(ENOMEM);
      goto out;
    }
    cr->q = q;
    cr->st = st;
    cr->base = blob * 65536;
    b->size = (uint64_t)size;
    b->fd = -1;
    b->read = chunk_read;
    b->free = chunk_free;
    b->ctx = cr;
    *out = b;
    return 0; /* the statement, and its snapshot, live as long as b */
  }
out:
  sqlite3_finalize(st);
  return r;
}

/* Applies the writer's pragmas, once per connection. */
static int tune_for_writing(struct sqlite_store *q)
{
  if (q->tuned)
    return 0;
  q->tuned = 1;
  return exec(q, "PRAGMA synchronous = NORMAL");
}

static int step_done(struct sqlite_store *q, sqlite3_stmt *st, const char *what)
{
  int rc = sqlite3_step(st);

  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_fail(q, what);
}

/* Writes src's chunks under blob, a few per transaction. */
static int write_chunks(struct sqlite_store *q, sqlite3_int64 blob,
                        const struct cdo__src *src, int publish_in_last_tx)
{
  uint64_t size = cdo__src_size(src), off = 0;
  unsigned char *buf = malloc(size < CHUNK ? (size_t)size + 1 : CHUNK);
  sqlite3_stmt *ins = NULL;
  sqlite3_int64 seq = 0;
  int r;

  if (buf == NULL)
    return CDO__ERR(ENOMEM);
  r = prepare(q, "INSERT INTO chunk(id, data) VALUES(?1, ?2)", &ins);
  while (r == 0 && off < size) {
    int in_tx = 0;

    r = exec(q, "BEGIN IMMEDIATE");
    while (r == 0 && off < size && in_tx++ < CHUNKS_PER_TX) {
      size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK, got = 0;

      while (r == 0 && got < n) {
        ssize_t m = cdo__src_read(src, off + got, buf + got, n - got);

        if (m <= 0)
          r = m < 0 ? (int)m : CDO_ECORRUPT;
        else
          got += (size_t)m;
      }
      if (r < 0) {
        cdo__store_fail(&q->base, r, "cannot read the spool: %s",
                        cdo_strerror(r));
        break;
      }
      sqlite3_bind_int64(ins, 1, blob * 65536 + seq++);
      sqlite3_bind_blob(ins, 2, buf, (int)n, SQLITE_STATIC);
      r = step_done(q, ins, "cannot store a chunk");
      off += n;
    }
    if (r == 0 && off >= size && publish_in_last_tx)
      break; /* the caller publishes in this same transaction */
    if (r == 0)
      r = exec(q, "COMMIT");
  }
  if (r < 0)
    rollback(q);
  sqlite3_finalize(ins);
  free(buf);
  return r;
}

static int publish(struct sqlite_store *q, const struct cdo__key *k,
                   sqlite3_int64 blob, uint64_t size,
                   const struct cdo__put_info *info)
{
  sqlite3_stmt *st = NULL;
  sqlite3_int64 old = -1;
  int r;

  r = prepare(q, "SELECT blob FROM entry WHERE key = ?1", &st);
  if (r == 0) {
    sqlite3_bind_blob(st, 1, k->hash, 32, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
      old = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    r = prepare(q,
                "INSERT OR REPLACE INTO entry(key, blob, size, created, "
                "expires, duration, status, scope, command) "
                "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                &st);
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
    r = step_done(q, st, "cannot store the entry");
    sqlite3_finalize(st);
  }
  if (r == 0 && old >= 0) {
    char sql[128];

    cdo__fmt(sql, sizeof(sql),
             "DELETE FROM chunk WHERE id BETWEEN %lld AND %lld",
             (long long)old * 65536, (long long)old * 65536 + 65535);
    r = exec(q, sql);
  }
  if (r == 0) {
    char sql[96];

    cdo__fmt(sql, sizeof(sql), "DELETE FROM pending WHERE blob = %lld",
             (long long)blob);
    r = exec(q, sql);
  }
  return r;
}

static int sqlite_put(struct cdo_store *s, const struct cdo__key *k,
                      const struct cdo__src *src,
                      const struct cdo__put_info *info)
{
  struct sqlite_store *q = sq(s);
  uint64_t size = cdo__src_size(src);
  int small = size <= (uint64_t)CHUNK * CHUNKS_PER_TX, r;
  sqlite3_int64 blob;
  char sql[128];

  if (size >= (uint64_t)CHUNK * 65536)
    return cdo__store_fail(s, CDO_ETOOBIG, "entry too large for SQLite");
  r = tune_for_writing(q);
  if (r == 0)
    r = ensure_schema(q);
  if (r < 0)
    return r;
  randombytes_buf(&blob, sizeof(blob));
  blob &= ((sqlite3_int64)1 << 46) - 1;
  if (!small) {
    /* Announce the blob so --gc can tell a dead writer from a live one. */
    cdo__fmt(sql, sizeof(sql),
             "INSERT INTO pending(blob, started) VALUES(%lld, %lld)",
             (long long)blob, (long long)cdo__now_ms());
    r = exec(q, sql);
    if (r < 0)
      return r;
  }
  r = write_chunks(q, blob, src, 1);
  if (r == 0)
    r = publish(q, k, blob, size, info);
  if (r == 0)
    r = exec(q, "COMMIT");
  if (r < 0) {
    rollback(q);
    if (!small) {
      cdo__fmt(sql, sizeof(sql),
               "DELETE FROM chunk WHERE id BETWEEN %lld AND %lld;"
               "DELETE FROM pending WHERE blob = %lld",
               (long long)blob * 65536, (long long)blob * 65536 + 65535,
               (long long)blob);
      sqlite3_exec(q->db, sql, NULL, NULL, NULL);
    }
  }
  return r;
}

/* Deletes the entries selected by where (binding ?1 to arg if given). */
static int delete_where(struct sqlite_store *q, const char *where,
                        const void *arg, int arglen, uint64_t *removed)
{
  sqlite3_stmt *sel = NULL, *del = NULL;
  char sql[256];
  int r, n = 0;

  r = ensure_schema(q);
  if (r == 0)
    r = exec(q, "BEGIN IMMEDIATE");
  if (r < 0)
    return r;
  cdo__fmt(sql, sizeof(sql), "DELETE FROM entry WHERE %s RETURNING blob",
           where);
  r = prepare(q, sql, &sel);
  if (r == 0)
    r = prepare(q,
                "DELETE FROM chunk WHERE id BETWEEN ?1 * 65536 AND "
                "?1 * 65536 + 65535",
                &del);
  if (r == 0 && arg != NULL) {
    if (arglen < 0)
      sqlite3_bind_text(sel, 1, arg, -1, SQLITE_STATIC);
    else if (arglen == 8)
      sqlite3_bind_int64(sel, 1, *(const sqlite3_int64 *)arg);
    else
      sqlite3_bind_blob(sel, 1, arg, arglen, SQLITE_STATIC);
  }
  /* Collect the blobs first: RETURNING rows are all produced up front. */
  if (r == 0) {
    sqlite3_int64 *blobs = NULL;
    size_t nb = 0, cap = 0, i;
    int rc;

    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
      if (nb == cap) {
        sqlite3_int64 *nbl =
            realloc(blobs, (cap = cap ? cap * 2 : 16) * sizeof(*blobs));
        if (nbl == NULL) {
          r = CDO__ERR(ENOMEM);
          break;
        }
        blobs = nbl;
      }
      blobs[nb++] = sqlite3_column_int64(sel, 0);
    }
    if (r == 0 && rc != SQLITE_DONE)
      r = db_fail(q, "cannot delete entries");
    sqlite3_finalize(sel);
    sel = NULL;
    for (i = 0; r == 0 && i < nb; i++) {
      sqlite3_bind_int64(del, 1, blobs[i]);
      r = step_done(q, del, "cannot delete entries");
      n++;
    }
    free(blobs);
  }
  sqlite3_finalize(sel);
  sqlite3_finalize(del);
  if (r == 0)
    r = exec(q, "COMMIT");
  if (r < 0)
    rollback(q);
  if (removed)
    *removed += (uint64_t)n;
  return r;
}

static int sqlite_del(struct cdo_store *s, const struct cdo__key *k)
{
  return delete_where(sq(s), "key = ?1", k->hash, 32, NULL);
}

static int sqlite_clear(struct cdo_store *s, const char *scope)
{
  struct sqlite_store *q = sq(s);
  int r;

  if (scope != NULL)
    return delete_where(q, "scope = ?1", scope, -1, NULL);
  r = delete_where(q, "1", NULL, 0, NULL);
  if (r == 0)
    r = exec(q, "DELETE FROM chunk; DELETE FROM pending");
  return r;
}

static int sqlite_gc(struct cdo_store *s, int64_t now_ms, uint64_t *removed)
{
  struct sqlite_store *q = sq(s);
  sqlite3_int64 now = now_ms, cutoff = now_ms - PENDING_MAX_AGE_MS;
  sqlite3_stmt *st = NULL;
  int r;

  r = delete_where(q, "expires <= ?1", &now, 8, removed);
  if (r < 0)
    return r;
  /* Chunks of writers that died: pending for over an hour. */
  r = exec(q, "BEGIN IMMEDIATE");
  if (r == 0)
    r = prepare(q,
                "DELETE FROM chunk WHERE id / 65536 IN (SELECT blob FROM "
                "pending WHERE started < ?1)",
                &st);
  if (r == 0) {
    sqlite3_bind_int64(st, 1, cutoff);
    r = step_done(q, st, "cannot remove abandoned chunks");
    sqlite3_finalize(st);
  }
  if (r == 0)
    r = prepare(q, "DELETE FROM pending WHERE started < ?1", &st);
  if (r == 0) {
    sqlite3_bind_int64(st, 1, cutoff);
    r = step_done(q, st, "cannot remove abandoned chunks");
    sqlite3_finalize(st);
  }
  if (r == 0)
    r = exec(q, "COMMIT");
  if (r < 0)
    rollback(q);
  return r;
}

static int sqlite_list(struct cdo_store *s, cdo_list_fn fn, void *ud)
{
  static const char hex[] = "0123456789abcdef";
  struct sqlite_store *q = sq(s);
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = ensure_schema(q);
  if (r == 0)
    r = prepare(q,
                "SELECT key, created, expires, duration, size, status, "
                "command FROM entry ORDER BY created DESC",
                &st);
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct cdo_entry_info e;
    const unsigned char *key = sqlite3_column_blob(st, 0);
    int i;

    if (sqlite3_column_bytes(st, 0) != 32)
      continue;
    for (i = 0; i < 32; i++) {
      e.key[2 * i] = hex[key[i] >> 4];
      e.key[2 * i + 1] = hex[key[i] & 15];
    }
    e.key[64] = 0;
    e.created_ms = sqlite3_column_int64(st, 1);
    e.expires_ms = sqlite3_column_int64(st, 2);
    e.duration_ms = sqlite3_column_int64(st, 3);
    e.size = (uint64_t)sqlite3_column_int64(st, 4);
    e.exit_status = sqlite3_column_int(st, 5);
    e.command = (const char *)sqlite3_column_text(st, 6);
    if (fn(ud, &e) != 0)
      break;
  }
  if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = db_fail(q, "cannot list entries");
  sqlite3_finalize(st);
  return r;
}

static int sqlite_stats(struct cdo_store *s, struct cdo_stats *stats)
{
  struct sqlite_store *q = sq(s);
  sqlite3_stmt *st = NULL;
  int r;

  r = ensure_schema(q);
  if (r == 0)
    r = prepare(q, "SELECT count(*), total(size) FROM entry", &st);
  if (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
    stats->entries = (uint64_t)sqlite3_column_int64(st, 0);
    stats->bytes = (uint64_t)sqlite3_column_double(st, 1);
  }
  sqlite3_finalize(st);
  return r;
}

/* The front end's own files (usage, stats) go next to the database. */
static const char *sqlite_local_path(struct cdo_store *s)
{
  return sq(s)->path;
}

const struct cdo__store_ops cdo__store_sqlite = {
    .scheme = "sqlite:",
    .name = "sqlite",
    .size = sizeof(struct sqlite_store),
    .check = sqlite_check,
    .open = sqlite_open,
    .close = sqlite_close,
    .get = sqlite_get,
    .put = sqlite_put,
    .del = sqlite_del,
    .clear = sqlite_clear,
    .list = sqlite_list,
    .stats = sqlite_stats,
    .gc = sqlite_gc,
    .local_path = sqlite_local_path,
};
