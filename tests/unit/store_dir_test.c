/* SPDX-License-Identifier: MIT */
/*
 * The dir: and mem: backends' side of the store suite: their URLs and
 * their damage hook (an entry is a file).
 * test_store.c includes this file; the helpers are test_store.c's.
 */

static const char *dir_url(const char *dir, char *buf, size_t len)
{
  cdo__fmt(buf, len, "dir:%s/d", dir);
  return NULL;
}

/* mem: on a private runtime directory inside dir. */
static const char *mem_url(const char *dir, char *buf, size_t len)
{
  char run[4200];

  cdo__fmt(run, sizeof(run), "%s/run", dir);
  if (mkdir(run, 0700) < 0 || setenv("XDG_RUNTIME_DIR", run, 1) < 0)
    return "cannot make a runtime directory";
  cdo__fmt(buf, len, "mem:");
  return NULL;
}

/* Edits k's file (store_dir.c). */
static int dir_damage(const char *url, const struct cdo__key *k,
                      enum damage how, uint64_t off)
{
  char path[4400];

  if (strncmp(url, "dir:", 4) == 0)
    cdo__fmt(path, sizeof(path), "%s/v1/%.2s/%s", url + 4, k->hex, k->hex);
  else
    cdo__fmt(path, sizeof(path), "%s/cachedo/v1/%.2s/%s",
             getenv("XDG_RUNTIME_DIR"), k->hex, k->hex);
  return damage_file(path, how, off);
}

/* The path of k's file in the dir: store under test. */
static void dir_file(const struct suite *su, const struct cdo__key *k,
                     char *path, size_t len)
{
  cdo__fmt(path, len, "%s/v1/%.2s/%s", su->url + 4, k->hex, k->hex);
}

/*
 * As touch(1), but on a whole millisecond. A put dates a file with 1 + the
 * scope's length in the nanoseconds below the millisecond of its mtime
 * (stamp_times); a touch at an arbitrary nanosecond lands in that window,
 * and is then read as dated, for about one 1000-byte entry in 1000.
 */
static void dir_touch(const struct suite *su, const struct cdo__key *k)
{
  int64_t now = cdo__now_ms();
  struct timespec ts[2];
  char path[4400];

  ts[0].tv_sec = ts[1].tv_sec = (time_t)(now / 1000);
  ts[0].tv_nsec = ts[1].tv_nsec = (long)(now % 1000) * 1000000;
  dir_file(su, k, path, sizeof(path));
  unit_ok(utimensat(AT_FDCWD, path, ts, 0));
}

/*
 * --stats counts from the files' times and sizes, scopes included, and
 * opens none: a file whose footer is damaged but whose times are intact
 * still counts (a read or --gc removes it).
 */
static void dir_stats_from_file_times(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e1, e2;
  struct cdo__key k1, k2;
  struct cdo_stats st;
  struct stat sb;
  struct timespec ts[2];
  char path[4400];

  make_key(&k1, "plain");
  make_key(&k2, "scoped");
  make_entry(&e1, "plain", 1000, 0, cdo__now_ms());
  make_entry(&e2, "scoped", 2000, 0, cdo__now_ms());
  put_ok(su, &k1, &e1, 60 * SEC);
  use_scope(su, "a-scope-of-some-length");
  put_ok(su, &k2, &e2, 60 * SEC);
  use_scope(su, NULL);
  unit_ok(cdo_store_stats(su->store, &st));
  assert_int_equal(st.entries, 2);
  assert_int_equal(st.bytes, 3000);
  /* The footer's magic (its last byte) changed, the times put back. */
  dir_file(su, &k2, path, sizeof(path));
  assert_int_equal(stat(path, &sb), 0);
  unit_ok(damage_file(path, FLIP, (uint64_t)sb.st_size - 1));
  ts[0] = sb.st_atim;
  ts[1] = sb.st_mtim;
  unit_ok(utimensat(AT_FDCWD, path, ts, 0));
  unit_ok(cdo_store_stats(su->store, &st));
  assert_int_equal(st.entries, 2);
  assert_int_equal(st.bytes, 3000);
  unit_entry_release(&e1);
  unit_entry_release(&e2);
}

/*
 * A file whose times are not the ones a put gives it (an older version's,
 * or touched) is read: --stats and eviction still get its exact size and
 * creation.
 */
static void dir_undated_files_are_read(void **state)
{
  struct suite *su = begin(state);
  int64_t t0 = cdo__now_ms() - 1000 * SEC;
  uint64_t removed, freed;
  struct unit_entry e;
  struct cdo__key k[6];
  struct cdo_stats st;
  size_t i;

  for (i = 0; i < 6; i++) {
    char word[16];

    cdo__fmt(word, sizeof(word), "ud%zu", i);
    make_key(&k[i], word);
    make_entry(&e, word, 1000, 0, t0 + (int64_t)i * SEC);
    use_scope(su, i % 2 ? "scoped" : NULL);
    put_ok(su, &k[i], &e, 3600 * SEC);
    unit_entry_release(&e);
  }
  use_scope(su, NULL);
  for (i = 6; i-- > 0;) /* the newest touched first: atimes say nothing */
    dir_touch(su, &k[i]);
  unit_ok(cdo_store_stats(su->store, &st));
  assert_int_equal(st.entries, 6);
  assert_int_equal(st.bytes, 6000);
  unit_ok(cdo_store_evict(su->store, 3000, &removed, &freed));
  assert_int_equal(removed, 3);
  assert_int_equal(freed, 3000);
  su->cfg.ttl_ms = 3600 * SEC;
  for (i = 0; i < 6; i++) {
    use_scope(su, i % 2 ? "scoped" : NULL);
    assert_int_equal(lookup(su, &k[i]), i < 3 ? CDO__MISS : CDO__FRESH);
  }
  use_scope(su, NULL);
}

/* Sets both times of k's file, as touch -d does, to ms plus ns. */
static void dir_touch_at(const struct suite *su, const struct cdo__key *k,
                         int64_t ms, long ns)
{
  struct timespec ts[2];
  char path[4400];

  ts[0].tv_sec = ts[1].tv_sec = (time_t)(ms / 1000);
  ts[0].tv_nsec = ts[1].tv_nsec = (long)(ms % 1000) * 1000000 + ns;
  dir_file(su, k, path, sizeof(path));
  unit_ok(utimensat(AT_FDCWD, path, ts, 0));
}

/*
 * A touch sets the nanoseconds below the millisecond anywhere, where 1 in
 * 15 once landed on a valid stamp (1 + a scope length up to 65535): the
 * file was then counted with a wrong size. Now 2 in 1000 do (the stamp has
 * a check): over 1000 touches spread over the millisecond, at most 3 are
 * misread, where 66 were. And --gc opens an expired entry touched into the
 * future, where it trusted any mtime and kept it.
 */
static void dir_touched_stamps_are_not_trusted(void **state)
{
  struct suite *su = begin(state);
  int64_t t = 1893456000000LL; /* 2030-01-01: the same sweep every run */
  uint64_t removed;
  struct unit_entry e;
  struct cdo__key k, old;
  struct cdo_stats st;
  long i, misread = 0;

  make_key(&k, "touched");
  make_entry(&e, "touched", 1000000, 0, cdo__now_ms());
  put_ok(su, &k, &e, 3600 * SEC);
  unit_entry_release(&e);
  unit_ok(cdo_store_stats(su->store, &st));
  assert_int_equal(st.bytes, 1000000);
  for (i = 0; i < 1000; i++) {
    /* In the 1000s: i; below them, a scope length of 1 to 499. */
    dir_touch_at(su, &k, t + i, i * 1000 + 2 + i % 499);
    unit_ok(cdo_store_stats(su->store, &st));
    assert_int_equal(st.entries, 1);
    misread += st.bytes != 1000000;
  }
  assert_true(misread <= 3);
  /* Expired an hour ago, then touched to expire in a day. */
  make_key(&old, "old");
  make_entry(&e, "old", 1000, 0, cdo__now_ms() - 7200 * SEC);
  put_ok(su, &old, &e, 3600 * SEC);
  unit_entry_release(&e);
  dir_touch_at(su, &old, cdo__now_ms() + 86400 * SEC, 999000 + 5);
  unit_ok(cdo_store_gc(su->store, &removed));
  assert_int_equal(removed, 1);
  unit_ok(cdo_store_stats(su->store, &st));
  assert_int_equal(st.entries, 1);
}

static const struct unit_own dir_own[] = {
#define C(f)                                                                   \
  {                                                                            \
#f, f                                                                      \
  }
    C(dir_stats_from_file_times),
    C(dir_undated_files_are_read),
    C(dir_touched_stamps_are_not_trusted),
#undef C
};
