/* SPDX-License-Identifier: MIT */
/*
 * The SQLite backend's side of the store suite: its URL, its damage hook
 * (it knows the layout of entry rows) and tests of that layout.
 * test_store.c includes this file; the helpers are test_store.c's.
 */

static const char *sqlite_url(const char *dir, char *buf, size_t len)
{
  cdo__fmt(buf, len, "sqlite:%s/c.db", dir);
  return NULL;
}

/* Damages bytes in memory: flips the bit at off, or cuts them there. */
static void damage_bytes(unsigned char *p, int *n, enum damage how,
                         sqlite3_int64 off)
{
  if (how == FLIP)
    p[off] ^= 1;
  else
    *n = (int)off;
}

/*
 * Edits what store_sqlite.c stored directly: an entry of up to 256 KiB is
 * the bytes column of its entry row in PATH; a larger one is the file
 * PATH-blobs/<blob id in 16 hex digits>.
 */
static int sqlite_damage(const char *url, const struct cdo__key *k,
                         enum damage how, uint64_t off)
{
  const char *path = url + strlen("sqlite:");
  char file[4200];
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  sqlite3_int64 blob = -1, size = 0;
  unsigned char *bytes = NULL;
  int rc, n = 0;

  rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
  if (rc == SQLITE_OK)
    sqlite3_busy_timeout(db, 10000);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(
        db, "SELECT blob, size, bytes FROM entry WHERE key = ?1", -1, &st,
        NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_blob(st, 1, k->hash, 32, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
      blob = sqlite3_column_int64(st, 0);
      size = sqlite3_column_int64(st, 1);
      n = sqlite3_column_bytes(st, 2);
      bytes = malloc((size_t)n + 1);
      if (bytes != NULL && n > 0)
        memcpy(bytes, sqlite3_column_blob(st, 2), (size_t)n);
    }
    sqlite3_finalize(st);
    rc = blob >= 0 && bytes != NULL ? SQLITE_OK : SQLITE_NOTFOUND;
  }
  if (rc == SQLITE_OK && size > (256 << 10)) {
    free(bytes);
    sqlite3_close(db);
    cdo__fmt(file, sizeof(file), "%s-blobs/%016llx", path,
             (unsigned long long)blob);
    return damage_file(file, how, off);
  }
  if (rc == SQLITE_OK) {
    damage_bytes(bytes, &n, how, (sqlite3_int64)off);
    rc = sqlite3_prepare_v2(db, "UPDATE entry SET bytes = ?2 WHERE key = ?1",
                            -1, &st, NULL);
  }
  if (rc == SQLITE_OK) {
    sqlite3_bind_blob(st, 1, k->hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, bytes, n, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    sqlite3_finalize(st);
  }
  if (rc != SQLITE_OK)
    print_error("cannot damage the entry: %s\n", sqlite3_errmsg(db));
  free(bytes);
  sqlite3_close(db);
  return rc == SQLITE_OK ? 0 : -1;
}

/* ---- the SQLite backend's own layout ------------------------------------- */

/* The value of the first column of sql's first row in file path; -1 if none. */
static sqlite3_int64 sql_int(const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  sqlite3_int64 v = -1;

  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

/* Runs sql in file path, which must succeed. */
static void sql_exec(const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);

  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    fail_msg("%s: %s: %s", path, sql, sqlite3_errmsg(db));
  sqlite3_close(db);
}

static const char *db_path(struct suite *su)
{
  return su->url + strlen("sqlite:");
}

static void big_path(struct suite *su, char *buf, size_t len)
{
  cdo__fmt(buf, len, "%s-big", db_path(su));
}

/* Rows of 1 MiB that e takes in PATH-big. */
static sqlite3_int64 rows_of(const struct unit_entry *e)
{
  return (sqlite3_int64)((cdo__src_size(&e->src) + (1 << 20) - 1) >> 20);
}

/* The path of big entry k's file, PATH-blobs/<blob id>. */
static void blob_file_of(struct suite *su, const struct cdo__key *k, char *buf,
                         size_t len)
{
  char sql[256];
  static const char hex[] = "0123456789abcdef";
  int i;

  memcpy(sql, "SELECT blob FROM entry WHERE key = x'", 37);
  for (i = 0; i < 32; i++) {
    sql[37 + 2 * i] = hex[k->hash[i] >> 4];
    sql[38 + 2 * i] = hex[k->hash[i] & 15];
  }
  memcpy(sql + 101, "'", 2);
  cdo__fmt(buf, len, "%s-blobs/%016llx", db_path(su),
           (unsigned long long)sql_int(db_path(su), sql));
}

/* How many files PATH-blobs holds. */
static int blob_files(struct suite *su)
{
  char dir[4300];
  struct dirent *e;
  DIR *d;
  int n = 0;

  cdo__fmt(dir, sizeof(dir), "%s-blobs", db_path(su));
  d = opendir(dir);
  while (d != NULL && (e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  if (d != NULL)
    closedir(d);
  return n;
}

/* Is path a database in WAL mode (file format bytes 18 and 19 are 2)? */
static int is_wal(const char *path)
{
  unsigned char h[20];
  FILE *f = fopen(path, "rb");
  int ok = f != NULL && fread(h, 1, sizeof(h), f) == sizeof(h) && h[18] == 2 &&
           h[19] == 2;

  if (f != NULL)
    fclose(f);
  return ok;
}

/*
 * Small entries stay in PATH; a big one is a file of its own in PATH-blobs,
 * and no PATH-big is made. Without its file, the entry is a miss and goes.
 */
static void sqlite_big_entries_have_their_own_file(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry small, big;
  struct cdo__key ks, kb;
  struct stat st;
  char big_db[4300], file[4400];

  big_path(su, big_db, sizeof(big_db));
  make_key(&ks, "small");
  make_key(&kb, "big");
  make_entry(&small, "s", 1000, 0, cdo__now_ms());
  make_entry(&big, "b", (3 << 20) + 5000, 0, cdo__now_ms());
  put_ok(su, &ks, &small, 3600 * SEC);
  assert_int_equal(blob_files(su), 0);
  assert_int_equal(sql_int(db_path(su), "SELECT count(bytes) FROM entry"), 1);
  assert_int_equal(sql_int(db_path(su), "PRAGMA page_size"), 4096);
  assert_true(is_wal(db_path(su)));
  put_ok(su, &kb, &big, 3600 * SEC);
  assert_int_equal(lstat(big_db, &st), -1);
  blob_file_of(su, &kb, file, sizeof(file));
  assert_int_equal(lstat(file, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal((uint64_t)st.st_size, cdo__src_size(&big.src));
  assert_int_equal(blob_files(su), 1);
  assert_int_equal(sql_int(db_path(su), "SELECT count(bytes) FROM entry"), 1);
  assert_fresh(su, &ks, &small);
  assert_fresh(su, &kb, &big);
  assert_int_equal(unlink(file), 0);
  assert_miss(su, &kb);
  assert_int_equal(sql_int(db_path(su), "SELECT count(*) FROM entry"), 1);
  assert_fresh(su, &ks, &small);
  unit_entry_release(&small);
  unit_entry_release(&big);
}

/* Replacing or deleting a big entry removes its file at once. */
static void sqlite_big_rows_go_with_their_entry(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry a, b, c;
  struct cdo__key k;

  make_key(&k, "big");
  make_entry(&a, "a", 3 << 20, 0, cdo__now_ms());
  make_entry(&b, "b", 2 << 20, 0, cdo__now_ms());
  make_entry(&c, "c", 1000, 0, cdo__now_ms());
  put_ok(su, &k, &a, 3600 * SEC);
  put_ok(su, &k, &b, 3600 * SEC);
  assert_int_equal(blob_files(su), 1);
  assert_fresh(su, &k, &b);
  put_ok(su, &k, &c, 3600 * SEC); /* big replaced by small */
  assert_int_equal(blob_files(su), 0);
  assert_fresh(su, &k, &c);
  put_ok(su, &k, &a, 3600 * SEC); /* small replaced by big */
  assert_int_equal(sql_int(db_path(su), "SELECT count(bytes) FROM entry"), 0);
  assert_int_equal(blob_files(su), 1);
  unit_ok(cdo__store_del(su->store, &k));
  assert_int_equal(blob_files(su), 0);
  assert_int_equal(sql_int(db_path(su), "SELECT count(*) FROM pending"), 0);
  put_ok(su, &k, &a, 3600 * SEC);
  unit_ok(cdo_store_clear(su->store, NULL));
  assert_int_equal(blob_files(su), 0);
  unit_entry_release(&a);
  unit_entry_release(&b);
  unit_entry_release(&c);
}

/*
 * A cache written before PATH-blobs kept a big entry's bytes in rows of
 * 1 MiB in PATH-big: still read, and its rows go with it.
 */
static void sqlite_reads_big_entries_of_older_caches(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e;
  struct cdo__key k;
  char big_db[4300], file[4400];
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  sqlite3_int64 blob, seq = 0;
  unsigned char *buf;
  uint64_t size, off;
  int fd;

  big_path(su, big_db, sizeof(big_db));
  make_key(&k, "old");
  make_entry(&e, "o", (2 << 20) + 777, 0, cdo__now_ms());
  put_ok(su, &k, &e, 3600 * SEC);
  blob_file_of(su, &k, file, sizeof(file));
  blob = sql_int(db_path(su), "SELECT blob FROM entry WHERE bytes IS NULL");
  size = cdo__src_size(&e.src);
  buf = malloc(1 << 20);
  assert_non_null(buf);
  fd = open(file, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(sqlite3_open(big_db, &db), SQLITE_OK);
  assert_int_equal(
      sqlite3_exec(db,
                   "PRAGMA page_size = 65536; PRAGMA journal_mode = WAL;"
                   "CREATE TABLE chunk(id INTEGER PRIMARY KEY, bytes BLOB);"
                   "PRAGMA user_version = 3",
                   NULL, NULL, NULL),
      SQLITE_OK);
  assert_int_equal(
      sqlite3_prepare_v2(db, "INSERT INTO chunk VALUES(?1, ?2)", -1, &st, NULL),
      SQLITE_OK);
  for (off = 0; off < size; off += 1 << 20) {
    size_t n = size - off < (1 << 20) ? (size_t)(size - off) : (1 << 20);

    unit_ok(cdo__pread_all(fd, buf, n, off));
    sqlite3_bind_int64(st, 1, (blob << 16) + seq++);
    sqlite3_bind_blob(st, 2, buf, (int)n, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  close(fd);
  free(buf);
  assert_int_equal(unlink(file), 0);
  assert_fresh(su, &k, &e);
  assert_int_equal(sql_int(big_db, "SELECT count(*) FROM chunk"), rows_of(&e));
  unit_ok(cdo__store_del(su->store, &k));
  assert_int_equal(sql_int(big_db, "SELECT count(*) FROM chunk"), 0);
  put_ok(su, &k, &e, 3600 * SEC); /* new bytes go to a file all the same */
  assert_int_equal(blob_files(su), 1);
  assert_int_equal(sql_int(big_db, "SELECT count(*) FROM chunk"), 0);
  assert_fresh(su, &k, &e);
  unit_entry_release(&e);
}

/* Writes a file of a few bytes at PATH-blobs/name. */
static void blob_file_put(struct suite *su, const char *name)
{
  char p[4400];
  int fd;

  cdo__fmt(p, sizeof(p), "%s-blobs/%s", db_path(su), name);
  fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  unit_ok(cdo__write_all(fd, "partial", 7));
  close(fd);
}

static int blob_file_is(struct suite *su, const char *name)
{
  char p[4400];
  struct stat st;

  cdo__fmt(p, sizeof(p), "%s-blobs/%s", db_path(su), name);
  return lstat(p, &st) == 0;
}

/*
 * --gc removes the files of a writer that died an hour ago, not those of
 * one that may live (it holds PATH-writers); once no writer holds that
 * file, every pending blob is a dead writer's and goes, and so does every
 * file no row names. The rows of an older cache's PATH-big go the same way.
 */
static void sqlite_gc_removes_abandoned_rows(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e;
  struct cdo__key k;
  char big_db[4300], sql[256], writers[4300];
  uint64_t removed = 0;
  int64_t now = cdo__now_ms();
  int fd;

  big_path(su, big_db, sizeof(big_db));
  make_key(&k, "big");
  make_entry(&e, "e", 2 << 20, 0, now);
  put_ok(su, &k, &e, 3600 * SEC); /* creates PATH-blobs */
  sql_exec(big_db, "CREATE TABLE IF NOT EXISTS chunk(id INTEGER PRIMARY KEY,"
                   " bytes BLOB);"
                   "INSERT INTO chunk VALUES(7 * 65536, x'00'),"
                   "(7 * 65536 + 1, x'00'), (8 * 65536, x'00')");
  blob_file_put(su, "0000000000000007");
  blob_file_put(su, "0000000000000008");
  blob_file_put(su, "0000000000000009"); /* no row: its rows were lost */
  blob_file_put(su, "junk");
  cdo__fmt(sql, sizeof(sql), "INSERT INTO pending VALUES(7, %lld), (8, %lld)",
           (long long)(now - 7200 * SEC), (long long)(now - 60 * SEC));
  sql_exec(db_path(su), sql);
  cdo__fmt(writers, sizeof(writers), "%s-writers", db_path(su));
  fd = open(writers, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(flock(fd, LOCK_SH), 0); /* a writer at work */
  unit_ok(cdo_store_gc(su->store, &removed));
  assert_int_equal(
      sql_int(big_db, "SELECT count(*) FROM chunk WHERE id / 65536 = 7"), 0);
  assert_int_equal(
      sql_int(big_db, "SELECT count(*) FROM chunk WHERE id / 65536 = 8"), 1);
  assert_false(blob_file_is(su, "0000000000000007"));
  assert_true(blob_file_is(su, "0000000000000008"));
  assert_true(blob_file_is(su, "0000000000000009"));
  assert_true(blob_file_is(su, "junk"));
  assert_int_equal(sql_int(db_path(su), "SELECT blob FROM pending"), 8);
  close(fd); /* no writer left */
  unit_ok(cdo_store_gc(su->store, &removed));
  assert_int_equal(sql_int(big_db, "SELECT count(*) FROM chunk"), 0);
  assert_int_equal(sql_int(db_path(su), "SELECT count(*) FROM pending"), 0);
  assert_int_equal(blob_files(su), 1);
  assert_fresh(su, &k, &e);
  unit_entry_release(&e);
}

/* Frames of 4 KiB in PATH's WAL file. */
static long long wal_frames(struct suite *su)
{
  char wal[4300];
  struct stat st;

  cdo__fmt(wal, sizeof(wal), "%s-wal", db_path(su));
  assert_int_equal(stat(wal, &st), 0);
  return st.st_size <= 32 ? 0 : (st.st_size - 32) / (4096 + 24);
}

/*
 * A put never checkpoints the WAL (its fsyncs would be the user's to wait
 * for): it asks for tidying, and the detached child that
 * cdo__store_maintain plans (and cdo__upkeep_start forks) checkpoints and
 * restarts it, so that the WAL stays a few frames long whatever the
 * number of misses.
 */
static void sqlite_wal_stays_short(void **state)
{
  struct suite *su = begin(state);
  int i, asked = 0;

  for (i = 0; i < 300; i++) {
    struct unit_entry e;
    struct cdo__key k;
    char name[32];

    cdo__fmt(name, sizeof(name), "k%d", i);
    make_key(&k, name);
    make_entry(&e, name, 500, 0, cdo__now_ms());
    put_ok(su, &k, &e, 3600 * SEC);
    unit_entry_release(&e);
    if (i < 10)
      continue; /* puts alone: the WAL grows */
    if (i == 10 && wal_frames(su) <= 16)
      fail_msg("10 puts left %lld frames: a put checkpointed", wal_frames(su));
    asked += su->store->tidy;
    cdo__upkeep_start(cdo__store_maintain(su->store));
    while (waitpid(-1, NULL, 0) > 0)
      ;
    /* A tidy leaves 1 frame; misses add a few until the next. */
    if (wal_frames(su) > 16)
      fail_msg("after %d puts the WAL holds %lld frames", i + 1,
               wal_frames(su));
  }
  assert_true(asked > 0);
  assert_int_equal(count_entries(su), 300);
}

/*
 * A lock held by another process is waited for by fine steps: 100 us
 * apart while the wait is short (SQLite's own handler sleeps 1, 2 and 5
 * ms first), an eighth of the wait so far later on, never more than 10 ms
 * and never past the limit; and a write behind another's transaction
 * waits for it and then goes in.
 */
static void sqlite_waits_for_locks_by_fine_steps(void **state)
{
  struct suite *su = begin(state);
  const int64_t limit = 60000000;
  int64_t waited = 0, d, tries = 0, early = 0;
  struct unit_entry e;
  struct cdo__key k;
  int ready[2], go[2], status;
  char c = 0;
  pid_t pid;

  assert_int_equal(cdo__backoff_us(0, limit), 100);
  assert_int_equal(cdo__backoff_us(799, limit), 100);
  assert_int_equal(cdo__backoff_us(8000, limit), 1000);
  assert_int_equal(cdo__backoff_us(1000000, limit), 10000);
  assert_int_equal(cdo__backoff_us(limit - 50, limit), 50);
  assert_int_equal(cdo__backoff_us(limit, limit), -1);
  while ((d = cdo__backoff_us(waited, limit)) >= 0) {
    assert_true(d > 0 && d <= 10000);
    early += waited < 5000;
    waited += d;
    tries++;
  }
  assert_int_equal(waited, limit); /* the whole limit, and no more */
  assert_true(early >= 15);        /* SQLite's own: 3 tries in 5 ms */
  assert_true(tries < limit / 10000 + 200);

  make_key(&k, "behind");
  make_entry(&e, "behind", 500, 0, cdo__now_ms());
  put_ok(su, &k, &e, 3600 * SEC); /* the database exists, in WAL mode */
  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(go), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    sqlite3 *db = NULL;
    int ok = sqlite3_open(db_path(su), &db) == SQLITE_OK &&
             sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;

    if (write(ready[1], ok ? "1" : "0", 1) != 1 || read(go[0], &c, 1) < 0)
      _exit(2);
    usleep(20000); /* the parent is in its put by now, or soon */
    _exit(ok && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0
                                                                          : 1);
  }
  assert_int_equal(read(ready[0], &c, 1), 1);
  assert_int_equal(c, '1');
  assert_int_equal(write(go[1], "", 1), 1);
  put_ok(su, &k, &e, 3600 * SEC); /* waits for the holder's commit */
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  unit_entry_release(&e);
  close(ready[0]);
  close(ready[1]);
  close(go[0]);
  close(go[1]);
}

/*
 * Eviction's own deleting pass (evict_older): the oldest go, big ones with
 * their files and small ones alike, and nothing newer; the WAL it wrote
 * (left its length between ranges of keys) is cut back at the end.
 */
static void sqlite_eviction_takes_big_files_and_cuts_the_wal(void **state)
{
  struct suite *su = begin(state);
  int64_t t0 = cdo__now_ms() - 1000 * SEC;
  uint64_t bytes = 0, removed, freed, big = (300 << 10) + 7;
  struct cdo__key k[204];
  struct unit_entry e;
  int i;

  /* 200 small entries created a second apart, 4 big ones among them. */
  for (i = 0; i < 204; i++) {
    int is_big = i >= 200;
    int64_t at = is_big ? 25 + 50 * (i - 200) : i;
    char word[16];

    cdo__fmt(word, sizeof(word), "%s%d", is_big ? "big" : "small", i);
    make_key(&k[i], word);
    make_entry(&e, word, is_big ? big : 3000, 0, t0 + at * SEC);
    put_ok(su, &k[i], &e, 3600 * SEC);
    bytes += unit_entry_size(&e);
    unit_entry_release(&e);
  }
  assert_int_equal(blob_files(su), 4);
  assert_true(wal_frames(su) > 16);
  /* Room for all but the 100 oldest small ones and the 2 big among them. */
  unit_ok(cdo_store_evict(su->store, bytes - 100 * 3000 - 2 * big, &removed,
                          &freed));
  assert_int_equal(removed, 102);
  assert_int_equal(freed, 100 * 3000 + 2 * big);
  assert_int_equal(blob_files(su), 2);
  assert_int_equal(sql_int(db_path(su), "SELECT count(*) FROM pending"), 0);
  su->cfg.ttl_ms = 3600 * SEC;
  for (i = 0; i < 204; i++) {
    int gone = i < 100 || i == 200 || i == 201;

    assert_int_equal(lookup(su, &k[i]), gone ? CDO__MISS : CDO__FRESH);
  }
  if (wal_frames(su) > 8) /* a few, from the last deletes */
    fail_msg("eviction left %lld frames in the WAL", wal_frames(su));
}

/* A database of the first layout is emptied and upgraded, not an error. */
static void sqlite_upgrades_version_1(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e;
  struct cdo__key k;

  cdo_store_close(su->store);
  su->store = NULL;
  unlink(db_path(su));
  sql_exec(db_path(su),
           "PRAGMA page_size = 65536; PRAGMA journal_mode = WAL;"
           "CREATE TABLE entry(key BLOB PRIMARY KEY, blob INTEGER NOT NULL,"
           " size INTEGER NOT NULL, created INTEGER NOT NULL,"
           " expires INTEGER NOT NULL, duration INTEGER NOT NULL,"
           " status INTEGER NOT NULL, scope TEXT, command TEXT NOT NULL)"
           " WITHOUT ROWID;"
           "CREATE TABLE chunk(id INTEGER PRIMARY KEY, data BLOB);"
           "CREATE TABLE pending(blob INTEGER PRIMARY KEY,"
           " started INTEGER NOT NULL);"
           "INSERT INTO entry VALUES(x'00', 1, 10, 0, 9e15, 0, 0, NULL, 'x');"
           "PRAGMA user_version = 1");
  {
    char err[600];

    if (cdo_store_open(&su->store, &su->cfg, err, sizeof(err)) < 0)
      fail_msg("%s", err);
  }
  make_key(&k, "after");
  assert_int_equal(lookup(su, &k), CDO__MISS);
  make_entry(&e, "e", 1000, 0, cdo__now_ms());
  put_ok(su, &k, &e, 3600 * SEC);
  assert_fresh(su, &k, &e);
  assert_int_equal(count_entries(su), 1);
  assert_int_equal(sql_int(db_path(su), "PRAGMA user_version"), 6);
  unit_entry_release(&e);
}

/* Tables named name in file path. */
static sqlite3_int64 tables_named(const char *path, const char *name)
{
  char sql[200];

  cdo__fmt(sql, sizeof(sql),
           "SELECT count(*) FROM sqlite_master"
           " WHERE type = 'table' AND name = '%s'",
           name);
  return sql_int(path, sql);
}

/*
 * A database of version 2 (no indexes), 3 (two) or 4 (one) kept its
 * entries in a table in key order. Until a write, its entries are read as
 * they are. The first write sets that table aside (a rename, which walks
 * nothing), so its entries are misses from then on, and asks for the
 * detached tidy, which drops it, with PATH-big (where only such entries
 * had bytes); the next --gc removes the files of its big entries.
 */
static void upgrade_from(void **state, int version)
{
  struct suite *su = begin(state);
  struct unit_entry a, b, big;
  struct cdo__key ka, kb, kbig;
  char sql[1200], big_db[4300], file[4400];
  uint64_t removed = 0;
  struct stat st;

  big_path(su, big_db, sizeof(big_db));
  make_key(&ka, "kept");
  make_key(&kbig, "big");
  make_entry(&a, "a", 1000, 0, cdo__now_ms());
  make_entry(&big, "g", (1 << 20) + 10, 0, cdo__now_ms());
  put_ok(su, &ka, &a, 3600 * SEC);
  put_ok(su, &kbig, &big, 3600 * SEC);
  blob_file_of(su, &kbig, file, sizeof(file));
  cdo_store_close(su->store);
  su->store = NULL;
  cdo__fmt(sql, sizeof(sql),
           "CREATE TABLE old(key BLOB PRIMARY KEY, blob INTEGER NOT NULL,"
           " size INTEGER NOT NULL, created INTEGER NOT NULL,"
           " expires INTEGER NOT NULL, duration INTEGER NOT NULL,"
           " status INTEGER NOT NULL, scope TEXT, command TEXT NOT NULL,"
           " bytes BLOB) WITHOUT ROWID;"
           "INSERT INTO old SELECT key, blob, size, created, expires,"
           " duration, status, scope, command, bytes FROM entry;"
           "DROP TABLE entry; ALTER TABLE old RENAME TO entry; %s"
           "PRAGMA user_version = %d",
           version == 3 ? "CREATE INDEX entry_expires ON entry(expires, size);"
                          "CREATE INDEX entry_created ON entry(created);"
           : version == 4 ? "CREATE INDEX entry_created"
                            " ON entry(created, key, size, expires);"
                          : "",
           version);
  sql_exec(db_path(su), sql);
  sql_exec(big_db, "PRAGMA journal_mode = WAL;"
                   "CREATE TABLE IF NOT EXISTS chunk(id INTEGER PRIMARY KEY,"
                   " bytes BLOB);"
                   "INSERT INTO chunk VALUES(1, x'00');"
                   "PRAGMA user_version = 3");
  {
    char err[600];

    if (cdo_store_open(&su->store, &su->cfg, err, sizeof(err)) < 0)
      fail_msg("%s", err);
  }
  assert_fresh(su, &ka, &a);
  make_key(&kb, "added");
  make_entry(&b, "b", 1000, 0, cdo__now_ms());
  put_ok(su, &kb, &b, 3600 * SEC);
  assert_int_equal(sql_int(db_path(su), "PRAGMA user_version"), 6);
  assert_int_equal(tables_named(db_path(su), "entry_old"), 1);
  assert_true(su->store->tidy);
  assert_miss(su, &ka);
  assert_miss(su, &kbig);
  assert_fresh(su, &kb, &b);
  assert_int_equal(count_entries(su), 1);
  assert_int_equal(lstat(file, &st), 0);
  su->store->ops->tidy(su->store);
  assert_int_equal(tables_named(db_path(su), "entry_old"), 0);
  assert_int_equal(sql_int(big_db, "SELECT count(*) FROM chunk"), 0);
  unit_ok(su->store->ops->gc(su->store, cdo__now_ms(), &removed));
  assert_int_equal(lstat(file, &st), -1);
  assert_int_equal(blob_files(su), 0);
  assert_fresh(su, &kb, &b);
  assert_int_equal(count_entries(su), 1);
  /* The new table: rows by rowid, the key unique in an index of its own. */
  assert_int_equal(sql_int(db_path(su), "SELECT count(*) FROM sqlite_master"
                                        " WHERE tbl_name = 'entry' AND"
                                        " sql LIKE '%WITHOUT ROWID%'"),
                   0);
  assert_int_equal(sql_int(db_path(su), "SELECT count(*) FROM"
                                        " pragma_index_list('entry')"
                                        " WHERE \"unique\" = 1"),
                   1);
  assert_int_equal(sql_int(db_path(su), "SELECT count(*) FROM"
                                        " pragma_index_info('entry_age')"
                                        " WHERE name IN ('size', 'expires')"),
                   2);
  unit_entry_release(&a);
  unit_entry_release(&b);
  unit_entry_release(&big);
}

static void sqlite_upgrades_version_2(void **state)
{
  upgrade_from(state, 2);
}

static void sqlite_upgrades_version_3(void **state)
{
  upgrade_from(state, 3);
}

static void sqlite_upgrades_version_4(void **state)
{
  upgrade_from(state, 4);
}

/*
 * --stats reads a summary written before waits were counted ("cdostat1"),
 * and a hit that waited counts its wait apart from the time it saved.
 */
static void sqlite_usage_counts_waits(void **state)
{
  struct suite *su = begin(state);
  struct cdo__buf b = {0};
  struct cdo__key k;
  struct cdo__usage waited = {0, 300, CDO_HIT, -1, NULL, 700};
  struct cdo_stats st;
  char path[4300];
  size_t i;
  FILE *f;

  unit_ok(cdo__store_local_file(su->store, "-stats", path, sizeof(path), 0));
  unit_ok(cdo__buf_add(&b, "cdostat1", 8));
  unit_ok(cdo__buf_u64(&b, 0));             /* nothing of P-usage folded */
  unit_ok(cdo__buf_u64(&b, 1700000000000)); /* since */
  for (i = 1; i <= 5; i++)                  /* 1 hit, 2 stale, 3 misses ... */
    unit_ok(cdo__buf_u64(&b, i));
  unit_ok(cdo__buf_u64(&b, 5000)); /* saved */
  unit_ok(cdo__buf_u32(&b, 0));    /* error kinds */
  unit_ok(cdo__buf_u32(&b, 0));    /* access times */
  unit_ok(cdo__buf_u64(&b, cdo__sum(b.p, b.len)));
  f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b.p, 1, b.len, f), b.len);
  fclose(f);
  cdo__buf_release(&b);

  make_key(&k, "counted");
  waited.key = &k;
  cdo__store_record(su->store, &k, CDO_HIT, 2000, 0); /* an ordinary hit */
  cdo__store_record_usage(su->store, &waited);
  unit_ok(cdo_store_summary(su->store, &st));
  assert_int_equal(st.hits, 1 + 2);
  assert_int_equal(st.stale, 2);
  assert_int_equal(st.since_ms, 1700000000000);
  assert_int_equal(st.saved_ms, 5000 + 2000 + 300);
  assert_int_equal(st.waits, 1);
  assert_int_equal(st.waited_ms, 700);
  /* A fold writes the new summary; it reads back the same. */
  unit_ok(cdo_store_zero_stats(su->store));
  cdo__store_record_usage(su->store, &waited);
  unit_ok(cdo_store_summary(su->store, &st));
  assert_int_equal(st.hits, 1);
  assert_int_equal(st.waits, 1);
  assert_int_equal(st.waited_ms, 700);
  assert_int_equal(st.saved_ms, 300);
}

/*
 * Priming, the work a miss asks of the store while its command runs,
 * touches only the tiers already open: the farther tier of "sqlite:NEAR
 * sqlite:FAR", not opened yet, stays unopened (FAR is not even created),
 * since opening a far tier (a connect that may time out) would hold up the
 * command's output. The put after it stores in both, and the entry hits.
 */
static void sqlite_prime_opens_no_far_tier(void **state)
{
  struct suite *su = begin(state);
  struct cdo_store *mine = su->store, *s = NULL;
  struct cdo_config cfg;
  struct unit_entry e;
  struct cdo__key k;
  struct stat st;
  char far[4200], list[8500], err[600];

  cdo__fmt(far, sizeof(far), "%s/far-tier.db", su->dir);
  unlink(far);
  cdo__fmt(list, sizeof(list), "%s sqlite:%s", su->url, far);
  cdo_config_init(&cfg);
  if (cdo_config_set(&cfg, "cache", list, err, sizeof(err)) < 0 ||
      cdo_store_open(&s, &cfg, err, sizeof(err)) < 0)
    fail_msg("%s: %s", list, err);
  cdo__store_prime(s);
  assert_null(s->next);
  assert_int_equal(stat(far, &st), -1);
  make_key(&k, "primed");
  make_entry(&e, "primed", 300, 0, cdo__now_ms());
  su->store = s;
  put_ok(su, &k, &e, 3600 * SEC);
  assert_fresh(su, &k, &e);
  su->store = mine;
  assert_non_null(s->next); /* the put went to both tiers */
  assert_int_equal(stat(far, &st), 0);
  assert_fresh(su, &k, &e); /* the near tier alone has it too */
  unit_entry_release(&e);
  cdo_store_close(s);
  cdo_config_release(&cfg);
  unlink(far);
}

/* PATH-keys, the key filter of the store's database. */
static void keys_path(struct suite *su, char *buf, size_t len)
{
  cdo__fmt(buf, len, "%s-keys", db_path(su));
}

/* The key filter's answer for k: 0 "not stored", 1 "maybe". */
static int filter_says(struct suite *su, const struct cdo__key *k)
{
  char keys[4300];

  keys_path(su, keys, sizeof(keys));
  return cdo__keyfilter_test(keys, db_path(su), k->hash);
}

static int64_t filter_bits(struct suite *su)
{
  char keys[4300];

  keys_path(su, keys, sizeof(keys));
  return cdo__keyfilter_count(keys, db_path(su));
}

static void reopen(struct suite *su)
{
  char err[600];

  cdo_store_close(su->store);
  su->store = NULL;
  if (cdo_store_open(&su->store, &su->cfg, err, sizeof(err)) < 0)
    fail_msg("%s", err);
}

/*
 * The key filter: a stored key's bit is set before its entry is there, so
 * "not stored" is never said of a stored entry; a filter that is missing,
 * damaged or another database's says "maybe" and the table answers. The
 * detached tidy makes a missing one, --clear one without the entries it
 * removed, and --gc one whose bits are mostly of deleted entries.
 */
static void sqlite_key_filter(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e;
  struct cdo__key ka, kb, kc, absent, k;
  char keys[4300], copy[4400], sql[4500];
  uint64_t removed = 0;
  int fd, i;

  keys_path(su, keys, sizeof(keys));
  make_key(&ka, "kept");
  make_key(&kb, "bee");
  make_key(&kc, "cleared");
  make_key(&absent, "absent");
  make_entry(&e, "e", 1000, 0, cdo__now_ms());
  /* A new database has an empty filter, which the put fills. */
  assert_int_equal(filter_says(su, &ka), 0);
  put_ok(su, &ka, &e, 3600 * SEC);
  assert_int_equal(filter_says(su, &ka), 1);
  assert_int_equal(filter_says(su, &absent), 0);
  assert_int_equal(filter_bits(su), 1);
  assert_miss(su, &absent);
  reopen(su);
  assert_fresh(su, &ka, &e);

  /* Missing: every lookup reads the table; puts go on; tidy makes it. */
  assert_int_equal(unlink(keys), 0);
  assert_int_equal(filter_says(su, &absent), 1);
  reopen(su);
  assert_fresh(su, &ka, &e);
  put_ok(su, &kb, &e, 3600 * SEC);
  assert_fresh(su, &kb, &e);
  assert_int_equal(filter_bits(su), -1);
  su->store->ops->tidy(su->store);
  assert_int_equal(filter_bits(su), 2);
  assert_int_equal(filter_says(su, &kb), 1);
  assert_int_equal(filter_says(su, &absent), 0);

  /* Damaged: "maybe". */
  fd = open(keys, O_WRONLY);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, "XXXX", 4, 0), 4);
  close(fd);
  assert_int_equal(filter_says(su, &absent), 1);
  reopen(su);
  assert_fresh(su, &ka, &e);
  su->store->ops->tidy(su->store);
  assert_int_equal(filter_says(su, &absent), 0);

  /* Another database put at PATH (a restored copy, say): "maybe", and
   * its own entries are found. */
  cdo_store_close(su->store);
  su->store = NULL;
  cdo__fmt(copy, sizeof(copy), "%s.copy", db_path(su));
  unlink(copy);
  cdo__fmt(sql, sizeof(sql), "VACUUM INTO '%s'", copy);
  sql_exec(db_path(su), sql);
  cdo__fmt(sql, sizeof(sql), "DELETE FROM entry WHERE key = x'%s'", ka.hex);
  sql_exec(copy, sql);
  for (i = 0; i < 2; i++) {
    cdo__fmt(sql, sizeof(sql), "%s%s", db_path(su), i ? "-wal" : "-shm");
    unlink(sql);
  }
  assert_int_equal(rename(copy, db_path(su)), 0);
  assert_int_equal(filter_says(su, &absent), 1);
  reopen(su);
  assert_miss(su, &ka);
  assert_fresh(su, &kb, &e);
  put_ok(su, &kc, &e, 3600 * SEC); /* no filter to set a bit in */
  su->store->ops->tidy(su->store);
  assert_int_equal(filter_bits(su), 2);
  assert_int_equal(filter_says(su, &ka), 0);
  assert_fresh(su, &kc, &e);

  /* --clear leaves a filter without the entries it removed. */
  unit_ok(cdo_store_clear(su->store, NULL));
  assert_int_equal(filter_bits(su), 0);
  assert_miss(su, &kc);

  /* --gc makes it anew once most of its bits are of deleted entries. */
  unit_ok(cdo__store_batch(su->store, 1));
  for (i = 0; i < 6000; i++) {
    make_key(&k, "");
    k.hash[0] = (unsigned char)(i >> 8);
    k.hash[1] = (unsigned char)i;
    k.hash[2] = 0x5a;
    put_ok(su, &k, &e, 3600 * SEC);
  }
  unit_ok(cdo__store_batch(su->store, 0));
  assert_int_equal(filter_bits(su), 6000);
  unit_ok(su->store->ops->gc(su->store, cdo__now_ms(), &removed));
  assert_int_equal(filter_bits(su), 6000); /* all still stored */
  for (i = 0; i < 5500; i++) {
    make_key(&k, "");
    k.hash[0] = (unsigned char)(i >> 8);
    k.hash[1] = (unsigned char)i;
    k.hash[2] = 0x5a;
    unit_ok(cdo__store_del(su->store, &k));
  }
  assert_int_equal(filter_bits(su), 6000);
  unit_ok(su->store->ops->gc(su->store, cdo__now_ms(), &removed));
  assert_int_equal(filter_bits(su), 500);
  assert_int_equal(filter_says(su, &k), 0);
  unit_entry_release(&e);
}

/*
 * A cache of version 5 has the tables of 6 and no key filter: its first
 * write keeps its entries and asks for the tidy, which makes the filter.
 */
static void sqlite_upgrades_version_5(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e;
  struct cdo__key ka, kb, absent;
  char keys[4300];

  keys_path(su, keys, sizeof(keys));
  make_key(&ka, "kept");
  make_key(&kb, "added");
  make_key(&absent, "absent");
  make_entry(&e, "e", 1000, 0, cdo__now_ms());
  put_ok(su, &ka, &e, 3600 * SEC);
  cdo_store_close(su->store);
  su->store = NULL;
  sql_exec(db_path(su), "PRAGMA user_version = 5");
  unlink(keys);
  reopen(su);
  assert_fresh(su, &ka, &e);
  put_ok(su, &kb, &e, 3600 * SEC);
  assert_int_equal(sql_int(db_path(su), "PRAGMA user_version"), 6);
  assert_true(su->store->tidy);
  assert_fresh(su, &ka, &e);
  assert_fresh(su, &kb, &e);
  assert_int_equal(filter_says(su, &absent), 1);
  su->store->ops->tidy(su->store);
  assert_int_equal(filter_bits(su), 2);
  assert_int_equal(filter_says(su, &absent), 0);
  assert_fresh(su, &ka, &e);
  unit_entry_release(&e);
}

static const struct unit_own sqlite_own[] = {
#define C(f)                                                                   \
  {                                                                            \
#f, f                                                                      \
  }
    C(sqlite_big_entries_have_their_own_file),
    C(sqlite_big_rows_go_with_their_entry),
    C(sqlite_reads_big_entries_of_older_caches),
    C(sqlite_gc_removes_abandoned_rows),
    C(sqlite_wal_stays_short),
    C(sqlite_waits_for_locks_by_fine_steps),
    C(sqlite_eviction_takes_big_files_and_cuts_the_wal),
    C(sqlite_upgrades_version_1),
    C(sqlite_upgrades_version_2),
    C(sqlite_upgrades_version_3),
    C(sqlite_upgrades_version_4),
    C(sqlite_upgrades_version_5),
    C(sqlite_key_filter),
    C(sqlite_usage_counts_waits),
    C(sqlite_prime_opens_no_far_tier),
#undef C
};
