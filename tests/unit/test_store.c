/* SPDX-License-Identifier: MIT */
/*
 * The store contract: one suite, run once per backend in the table at the
 * end, through the public store API and the front end's lookup, put, del,
 * locks and counters. It is the checklist of a new backend: everything a
 * backend promises is tested here. What knows a backend's layout (its URL
 * for a test, its damage hook, tests of its own layout) lives beside it in
 * store_<name>_test.c, included below; a new backend adds that file, one
 * #include and one row.
 */
#include "store_int.h"
#include "unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <inttypes.h>
#include <sqlite3.h>
#include <hiredis.h>

/* ---- the backends under test --------------------------------------------- */

/*
 * One row per backend, from its store_<name>_test.c. url() writes the URL
 * of a store inside dir (the group's private temp dir) into buf and
 * returns NULL, or returns why the backend cannot be tested here: its
 * tests are then skipped, or fail when CI=true. damage() corrupts k's
 * stored entry in place (see enum damage); NULL skips the corruption test.
 * lose_lock(), for a backend whose locks are leases, makes the lease of
 * k's lock run out now (NULL: its locks cannot be lost). own: tests of the
 * backend's own layout, run once after the contract.
 */
enum damage {
  FLIP,    /* flip the low bit of the byte at off */
  TRUNCATE /* keep only the first off bytes */
};

struct unit_own {
  const char *name;
  CMUnitTestFunction fn;
};

struct backend {
  const char *name;
  const char *(*url)(const char *dir, char *buf, size_t len);
  int (*damage)(const char *url, const struct cdo__key *k, enum damage how,
                uint64_t off);
  int (*lose_lock)(const char *url, const struct cdo__key *k);
  const struct unit_own *own;
  size_t n_own;
};

/* ---- fixtures ------------------------------------------------------------ */

/* The group state of one backend; each test gets a fresh cfg and store. */
struct suite {
  const struct backend *be;
  char *dir;
  char url[4200];
  const char *skip;      /* non-NULL: why this backend cannot run here */
  struct cdo_config cfg; /* outlives store */
  struct cdo_store *store;
};

static const struct backend *current;

static int group_setup(void **state)
{
  struct suite *su = calloc(1, sizeof(*su));

  if (su == NULL)
    return -1;
  su->be = current;
  su->dir = unit_tmpdir();
  /* The front end's own files of a store without a local path go here. */
  cdo__fmt(su->url, sizeof(su->url), "%s/xdg-cache", su->dir);
  if (setenv("XDG_CACHE_HOME", su->url, 1) < 0)
    return -1;
  /* Lock files of stores without a lock directory of their own: private to
   * this run, so two runs of the suite (or a cachedo in use) never share a
   * slot. */
  cdo__fmt(su->url, sizeof(su->url), "%s/xdg-run", su->dir);
  if (setenv("XDG_RUNTIME_DIR", su->url, 1) < 0)
    return -1;
  su->skip = su->be->url(su->dir, su->url, sizeof(su->url));
  *state = su;
  return 0;
}

static int group_teardown(void **state)
{
  struct suite *su = *state;

  unit_rmtree(su->dir);
  free(su);
  return 0;
}

/* Opens an empty store with the default settings. */
static int test_setup(void **state)
{
  struct suite *su = *state;
  char err[600];
  int r;

  cdo_config_init(&su->cfg);
  if (su->skip != NULL)
    return 0;
  r = cdo_config_set(&su->cfg, "cache", su->url, err, sizeof(err));
  if (r == 0)
    r = cdo_store_open(&su->store, &su->cfg, err, sizeof(err));
  if (r == 0 && cdo_store_clear(su->store, NULL) < 0) {
    cdo__fmt(err, sizeof(err), "clear: %s", cdo_store_errmsg(su->store));
    r = -1;
  }
  if (r < 0)
    print_error("%s: %s\n", su->url, err);
  return r < 0 ? -1 : 0;
}

static int test_teardown(void **state)
{
  struct suite *su = *state;

  cdo_store_close(su->store);
  su->store = NULL;
  cdo_config_release(&su->cfg);
  return 0;
}

/* The suite of this test; skips it (fails it under CI) when unavailable. */
static struct suite *begin(void **state)
{
  struct suite *su = *state;
  const char *ci = getenv("CI");

  if (su->skip != NULL) {
    if (ci != NULL && strcmp(ci, "true") == 0)
      fail_msg("%s: %s (CI=true: every backend must run)", su->be->name,
               su->skip);
    print_message("# %s: %s\n", su->be->name, su->skip);
    skip();
  }
  return su;
}

/* ---- helpers ------------------------------------------------------------- */

#define SEC 1000

/* A key whose hash starts with name. */
static void make_key(struct cdo__key *k, const char *name)
{
  static const char hex[] = "0123456789abcdef";
  size_t i;

  memset(k, 0, sizeof(*k));
  memcpy(k->hash, name, strnlen(name, sizeof(k->hash)));
  for (i = 0; i < 32; i++) {
    k->hex[2 * i] = hex[k->hash[i] >> 4];
    k->hex[2 * i + 1] = hex[k->hash[i] & 15];
  }
}

/*
 * Builds an entry for `cmd WORD` exactly size bytes long, its journal made
 * of chunks of up to 64 KiB on alternating streams; size 0: an empty journal.
 */
static void make_entry(struct unit_entry *e, const char *word, uint64_t size,
                       int status, int64_t created_ms)
{
  static unsigned char data[65536];
  char *const argv[] = {"cmd", (char *)word, NULL};
  uint64_t left = 0;
  uint32_t n = 0;

  if (data[0] == 0)
    unit_random(data, sizeof(data), 3);
  unit_entry_begin(e, argv);
  if (size > 0) {
    assert_true(size >= e->head.len + CDO__TRAILER_LEN + 6);
    left = size - e->head.len - CDO__TRAILER_LEN;
  }
  while (left > 0) {
    uint64_t take = left - 5;

    if (take > sizeof(data)) {
      take = sizeof(data);
      if (left - 5 - take < 6)
        take -= 6; /* leave room for a whole last chunk */
    }
    cdo__put32(data, n); /* no two chunks alike */
    unit_entry_chunk(e, n++ % 2 ? CDO__STDERR : CDO__STDOUT, data,
                     (size_t)take);
    left -= 5 + take;
  }
  unit_entry_end(e, status, created_ms);
  if (size > 0)
    assert_int_equal(unit_entry_size(e), size);
}

/* Sets the scope of the invocation (NULL: none), as --scope does. */
static void use_scope(struct suite *su, const char *scope)
{
  free(su->cfg.scope);
  su->cfg.scope = scope ? strdup(scope) : NULL;
  assert_true(scope == NULL || su->cfg.scope != NULL);
}

/* Stores e under k as the runner would, with the writer's ttl. */
static int put(struct suite *su, const struct cdo__key *k,
               const struct unit_entry *e, int64_t ttl_ms)
{
  struct cdo__put_info info;

  /* Bound to k, as the runner writes it (e is changed to match). */
  unit_entry_bind((struct unit_entry *)e, k, NULL);
  info.created_ms = e->meta.created_ms;
  info.expires_ms = e->meta.created_ms + ttl_ms;
  info.duration_ms = e->meta.duration_ms;
  info.exit_status = e->meta.exit_status;
  info.command = e->command;
  info.scope = su->cfg.scope;
  return cdo__store_put(su->store, k, &e->src, &info);
}

/* put, which must succeed. */
static void put_ok(struct suite *su, const struct cdo__key *k,
                   const struct unit_entry *e, int64_t ttl_ms)
{
  int r = put(su, k, e, ttl_ms);

  if (r < 0)
    fail_msg("put: %d: %s", r, cdo_store_errmsg(su->store));
}

/* cdo__store_lookup, freeing the blob; returns its answer. */
static int lookup(struct suite *su, const struct cdo__key *k)
{
  struct cdo__blob *b = NULL;
  struct cdo__meta m;
  uint64_t joff;
  int r = cdo__store_lookup(su->store, k, &b, &m, &joff);

  if (r < 0)
    print_error("lookup: %s\n", cdo_store_errmsg(su->store));
  if (r == CDO__MISS)
    assert_null(b);
  else if (r > 0)
    assert_non_null(b);
  if (r >= 0)
    cdo__blob_free(b);
  return r;
}

/*
 * Asserts that k's entry is answered with want (CDO__FRESH or CDO__STALE)
 * holding exactly e's bytes and metadata.
 */
static void assert_holds(struct suite *su, const struct cdo__key *k,
                         const struct unit_entry *e, int want)
{
  static unsigned char got[1 << 20], exp[1 << 20];
  struct cdo__blob *b = NULL;
  struct cdo__meta m;
  uint64_t joff, off;

  unit_entry_bind((struct unit_entry *)e, k, NULL); /* e's bytes under k */
  assert_int_equal(cdo__store_lookup(su->store, k, &b, &m, &joff), want);
  assert_non_null(b);
  assert_int_equal(b->size, unit_entry_size(e));
  assert_int_equal(joff, e->head.len);
  assert_int_equal(m.created_ms, e->meta.created_ms);
  assert_int_equal(m.duration_ms, e->meta.duration_ms);
  assert_int_equal(m.exit_status, e->meta.exit_status);
  assert_int_equal(m.journal_len, e->meta.journal_len);
  assert_true(m.journal_sum == e->meta.journal_sum);
  for (off = 0; off < b->size; off += sizeof(got)) {
    size_t n =
        b->size - off < sizeof(got) ? (size_t)(b->size - off) : sizeof(got);

    unit_ok(cdo__blob_read(b, got, n, off));
    unit_entry_read(e, off, exp, n);
    if (memcmp(got, exp, n) != 0)
      fail_msg("stored bytes differ in [%" PRIu64 ", +%zu)", off, n);
  }
  cdo__blob_free(b);
}

static void assert_fresh(struct suite *su, const struct cdo__key *k,
                         const struct unit_entry *e)
{
  assert_holds(su, k, e, CDO__FRESH);
}

static void assert_miss(struct suite *su, const struct cdo__key *k)
{
  assert_int_equal(lookup(su, k), CDO__MISS);
}

/* Collects cdo_store_list rows; stops after max rows when max > 0. */
struct listing {
  struct cdo_entry_info rows[8];
  char commands[8][64];
  size_t n, max;
};

static int collect(void *ud, const struct cdo_entry_info *info)
{
  struct listing *l = ud;
  struct cdo__buf quoted = {0};

  /* argv and command tell the same arguments apart. */
  unit_ok(cdo__argv_quote(&quoted, info->argv));
  assert_string_equal((char *)quoted.p, info->command);
  cdo__buf_release(&quoted);
  if (l->n < CDO__ARRAY_SIZE(l->rows)) {
    l->rows[l->n] = *info;
    cdo__fmt(l->commands[l->n], sizeof(l->commands[0]), "%s", info->command);
    l->rows[l->n].command = l->commands[l->n];
  }
  l->n++;
  return l->max > 0 && l->n >= l->max;
}

static size_t count_entries(struct suite *su)
{
  struct listing l = {0};
  struct cdo_stats st;

  unit_ok(cdo_store_list(su->store, collect, &l));
  unit_ok(cdo_store_stats(su->store, &st));
  assert_int_equal(st.entries, l.n);
  return l.n;
}

/* Edits the file at path in place, where the entry is its first bytes. */
static int damage_file(const char *path, enum damage how, uint64_t off)
{
  unsigned char c;
  int fd, r = -1;

  fd = open(path, O_RDWR);
  if (fd >= 0 && how == TRUNCATE)
    r = ftruncate(fd, (off_t)off);
  else if (fd >= 0 && pread(fd, &c, 1, (off_t)off) == 1) {
    c ^= 1;
    r = pwrite(fd, &c, 1, (off_t)off) == 1 ? 0 : -1;
  }
  if (fd >= 0)
    close(fd);
  if (r < 0)
    print_error("cannot damage %s\n", path);
  return r;
}

/* ---- the contract -------------------------------------------------------- */

static void miss_on_empty(void **state)
{
  struct suite *su = begin(state);
  struct cdo__key k;
  struct cdo_stats st;

  make_key(&k, "nothing here");
  assert_miss(su, &k);
  unit_ok(cdo__store_del(su->store, &k)); /* deleting nothing is fine */
  assert_int_equal(count_entries(su), 0);
  unit_ok(cdo_store_stats(su->store, &st));
  assert_int_equal(st.bytes, 0);
}

/* Round trips of sizes around 1 MiB, where chunked backends split. */
static void put_then_lookup(void **state)
{
  static const uint64_t sizes[] = {
      0, 200, 65536 + 200, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, (2 << 20) + 5,
  };
  struct suite *su = begin(state);
  struct cdo__key k, other;
  struct unit_entry e;
  size_t i;

  make_key(&other, "other");
  for (i = 0; i < CDO__ARRAY_SIZE(sizes); i++) {
    char word[32];

    cdo__fmt(word, sizeof(word), "size-%zu", i);
    make_key(&k, word);
    make_entry(&e, word, sizes[i], 0, cdo__now_ms());
    put_ok(su, &k, &e, 60 * SEC);
    assert_fresh(su, &k, &e);
    assert_miss(su, &other);
    unit_entry_release(&e);
  }
  assert_int_equal(count_entries(su), CDO__ARRAY_SIZE(sizes));
}

static void overwrite_replaces(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry a, b;
  struct cdo__key k;

  make_key(&k, "k");
  make_entry(&a, "first", 3000, 0, cdo__now_ms() - SEC);
  make_entry(&b, "second", 200000, 3, cdo__now_ms());
  put_ok(su, &k, &a, 60 * SEC);
  put_ok(su, &k, &b, 60 * SEC);
  assert_fresh(su, &k, &b);
  assert_int_equal(count_entries(su), 1);
  put_ok(su, &k, &a, 60 * SEC);
  assert_fresh(su, &k, &a);
  assert_int_equal(count_entries(su), 1);
  unit_entry_release(&a);
  unit_entry_release(&b);
}

static void del_removes(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e;
  struct cdo__key k1, k2;

  make_key(&k1, "one");
  make_key(&k2, "two");
  make_entry(&e, "x", 500, 0, cdo__now_ms());
  put_ok(su, &k1, &e, 60 * SEC);
  put_ok(su, &k2, &e, 60 * SEC);
  unit_ok(cdo__store_del(su->store, &k1));
  assert_miss(su, &k1);
  assert_fresh(su, &k2, &e);
  unit_ok(cdo__store_del(su->store, &k1));
  assert_int_equal(count_entries(su), 1);
  unit_entry_release(&e);
}

/*
 * Puts and dels of a batch all land: for a backend that batches, more
 * than one transaction's worth, a big entry among them.
 */
static void batch_commits_everything(void **state)
{
  struct suite *su = begin(state);
  int n = su->store->ops->batch ? 5000 : 20, big_at = (n * 7 / 8) | 1, i;
  struct unit_entry e, big;
  struct cdo__key k;
  char name[16];

  make_entry(&e, "x", 500, 0, cdo__now_ms());
  make_entry(&big, "big", 300 << 10, 0, cdo__now_ms());
  unit_ok(cdo__store_batch(su->store, 1));
  for (i = 0; i < n; i++) {
    snprintf(name, sizeof(name), "b%d", i);
    make_key(&k, name);
    put_ok(su, &k, i == big_at ? &big : &e, 60 * SEC);
  }
  for (i = 0; i < n; i += 2) {
    snprintf(name, sizeof(name), "b%d", i);
    make_key(&k, name);
    unit_ok(cdo__store_del(su->store, &k));
  }
  unit_ok(cdo__store_batch(su->store, 0));
  if (su->store->ops->list != NULL)
    assert_int_equal(count_entries(su), (size_t)n / 2);
  for (i = big_at - 2; i < big_at + 3; i++) {
    snprintf(name, sizeof(name), "b%d", i);
    make_key(&k, name);
    if (i % 2 == 0)
      assert_miss(su, &k);
    else
      assert_fresh(su, &k, i == big_at ? &big : &e);
  }
  unit_entry_release(&e);
  unit_entry_release(&big);
}

static void clear_removes_all(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e;
  struct cdo__key k[3];
  struct cdo_stats st;
  size_t i;

  make_entry(&e, "x", 2 << 20, 0, cdo__now_ms());
  for (i = 0; i < 3; i++) {
    make_key(&k[i], i == 0 ? "a" : i == 1 ? "b" : "c");
    use_scope(su, i == 1 ? "scope" : NULL);
    put_ok(su, &k[i], &e, 60 * SEC);
  }
  use_scope(su, NULL);
  assert_int_equal(count_entries(su), 3);
  unit_ok(cdo_store_clear(su->store, &st)); /* no scope: every entry goes */
  if (st.listed) {
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.bytes, 3 * unit_entry_size(&e));
  }
  for (i = 0; i < 3; i++) {
    use_scope(su, i == 1 ? "scope" : NULL);
    assert_miss(su, &k[i]);
  }
  use_scope(su, NULL);
  assert_int_equal(count_entries(su), 0);
  unit_entry_release(&e);
}

static void clear_scope_keeps_others(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e;
  struct cdo__key a, ab, none;
  struct cdo_stats st;

  /* Each entry is written and read under its own scope, as by cachedo. */
  make_key(&a, "in a");
  make_key(&ab, "in ab");
  make_key(&none, "in none");
  make_entry(&e, "x", 1000, 0, cdo__now_ms());
  use_scope(su, "a");
  put_ok(su, &a, &e, 60 * SEC);
  use_scope(su, "ab"); /* a scope that merely starts like "a" */
  put_ok(su, &ab, &e, 60 * SEC);
  use_scope(su, NULL);
  put_ok(su, &none, &e, 60 * SEC);
  use_scope(su, "a");
  unit_ok(cdo_store_clear(su->store, &st));
  if (st.listed)
    assert_int_equal(st.entries, 1);
  assert_miss(su, &a);
  use_scope(su, "ab");
  assert_fresh(su, &ab, &e);
  use_scope(su, NULL);
  assert_fresh(su, &none, &e);
  assert_int_equal(count_entries(su), 2);
  unit_entry_release(&e);
}

/* A listed row carries the exact argv and the scope; --scope filters. */
static void list_argv_and_scope(void **state)
{
  static char *const spaced[] = {"a b", "c", NULL},
                     *split[] = {"a", "b c", NULL};
  struct suite *su = begin(state);
  struct unit_entry e1, e2;
  struct cdo__key k1, k2;
  struct listing l = {0};
  int r;

  make_key(&k1, "spaced");
  make_key(&k2, "split");
  unit_entry_begin(&e1, spaced);
  unit_entry_end(&e1, 0, cdo__now_ms() - SEC);
  unit_entry_begin(&e2, split);
  unit_entry_end(&e2, 0, cdo__now_ms());
  use_scope(su, "s1");
  put_ok(su, &k1, &e1, 60 * SEC);
  use_scope(su, NULL);
  put_ok(su, &k2, &e2, 60 * SEC);
  unit_ok(cdo_store_list(su->store, collect, &l));
  assert_int_equal(l.n, 2);
  /* In the store's order, which need not be the newest first. */
  assert_true(strcmp(l.commands[0], "a 'b c'") == 0 ||
              strcmp(l.commands[1], "a 'b c'") == 0);
  assert_true(strcmp(l.commands[0], "'a b' c") == 0 ||
              strcmp(l.commands[1], "'a b' c") == 0);
  use_scope(su, "s1");
  l.n = 0;
  r = cdo_store_list(su->store, collect, &l);
  if (su->store->ops->lists_scope) {
    unit_ok(r);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.rows[0].command, "'a b' c");
  } else {
    assert_int_equal(r, CDO_EUNSUPP);
  }
  use_scope(su, NULL);
  unit_entry_release(&e1);
  unit_entry_release(&e2);
}

/* The reader's TTL decides, not the writer's. */
static void ttl_is_the_readers(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e, future, skew;
  struct cdo__key k, kf, ks;

  make_key(&k, "aged");
  make_key(&kf, "future");
  make_key(&ks, "skew");
  make_entry(&e, "x", 800, 0, cdo__now_ms() - 10 * SEC);
  make_entry(&future, "y", 800, 0, cdo__now_ms() + 3600 * SEC);
  make_entry(&skew, "z", 800, 0, cdo__now_ms() + 2 * SEC);
  put_ok(su, &k, &e, 3600 * SEC);
  put_ok(su, &kf, &future, 7200 * SEC);
  put_ok(su, &ks, &skew, 3600 * SEC);
  su->cfg.ttl_ms = 60 * SEC;
  assert_fresh(su, &k, &e);
  su->cfg.ttl_ms = 5 * SEC;
  assert_miss(su, &k);
  /* Made an hour from now: the clock went back; not fresh for an hour. */
  assert_miss(su, &kf);
  assert_fresh(su, &ks, &skew); /* a little clock skew is age 0 */
  su->cfg.ttl_ms = 60 * SEC;
  assert_fresh(su, &k, &e); /* still there for a reader with a longer TTL */
  unit_entry_release(&e);
  unit_entry_release(&future);
  unit_entry_release(&skew);
}

static void fail_ttl_for_failures(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry failed, ok;
  struct cdo__key kf, ko;

  make_key(&kf, "failed");
  make_key(&ko, "ok");
  make_entry(&failed, "x", 800, 1, cdo__now_ms() - 10 * SEC);
  make_entry(&ok, "y", 800, 0, cdo__now_ms() - 10 * SEC);
  put_ok(su, &kf, &failed, 3600 * SEC);
  put_ok(su, &ko, &ok, 3600 * SEC);
  su->cfg.ttl_ms = 60 * SEC;
  su->cfg.fail_ttl_ms = -1; /* the same as the TTL */
  assert_fresh(su, &kf, &failed);
  su->cfg.fail_ttl_ms = 5 * SEC;
  assert_miss(su, &kf);
  assert_fresh(su, &ko, &ok); /* status 0: the fail TTL does not apply */
  su->cfg.fail_ttl_ms = 20 * SEC;
  assert_fresh(su, &kf, &failed);
  su->cfg.ttl_ms = 5 * SEC;
  assert_fresh(su, &kf, &failed); /* a longer fail TTL than TTL is fine */
  assert_miss(su, &ko);
  unit_entry_release(&failed);
  unit_entry_release(&ok);
}

static void stale_window(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e;
  struct cdo__key k;

  make_key(&k, "stale");
  make_entry(&e, "x", 5000, 0, cdo__now_ms() - 10 * SEC);
  put_ok(su, &k, &e, 3600 * SEC);
  su->cfg.ttl_ms = 5 * SEC;
  su->cfg.stale_ms = 0;
  assert_miss(su, &k);
  su->cfg.stale_ms = 60 * SEC;
  assert_holds(su, &k, &e, CDO__STALE);
  su->cfg.stale_ms = 3 * SEC;
  assert_miss(su, &k);
  su->cfg.ttl_ms = 20 * SEC;
  assert_fresh(su, &k, &e);
  unit_entry_release(&e);
}

/* Two handles on one URL (two processes, in effect) see each other's work. */
static void second_handle_shares(void **state)
{
  struct suite *su = begin(state);
  struct cdo_store *mine = su->store, *other = NULL;
  struct unit_entry e;
  struct cdo__key k;
  char err[600];

  make_key(&k, "shared");
  make_entry(&e, "x", 3 << 20, 0, cdo__now_ms());
  if (cdo_store_open(&other, &su->cfg, err, sizeof(err)) < 0)
    fail_msg("%s", err);
  put_ok(su, &k, &e, 60 * SEC);
  su->store = other;
  assert_fresh(su, &k, &e);
  unit_ok(cdo__store_del(other, &k));
  su->store = mine;
  assert_miss(su, &k);
  cdo_store_close(other);
  unit_entry_release(&e);
}

/*
 * A put whose spool cannot be read to the end fails and stores nothing,
 * also when the entry spans several of the backend's write batches; the
 * old entry under the key stays.
 */
static void failed_put_stores_nothing(void **state)
{
  static const uint64_t sizes[] = {5000, 3 << 20, 20 << 20};
  struct suite *su = begin(state);
  struct unit_entry old, e;
  struct cdo__key k, fresh;
  size_t i;

  make_key(&k, "k");
  make_entry(&old, "old", 1000, 0, cdo__now_ms());
  put_ok(su, &k, &old, 60 * SEC);
  for (i = 0; i < CDO__ARRAY_SIZE(sizes); i++) {
    make_key(&fresh, i == 0 ? "f0" : i == 1 ? "f1" : "f2");
    make_entry(&e, "x", sizes[i], 0, cdo__now_ms());
    assert_int_equal(ftruncate(e.fd, (off_t)(e.src.fd_len * 9 / 10)), 0);
    assert_true(put(su, &k, &e, 60 * SEC) < 0);
    assert_true(put(su, &fresh, &e, 60 * SEC) < 0);
    assert_miss(su, &fresh);
    assert_fresh(su, &k, &old);
    assert_int_equal(count_entries(su), 1);
    unit_entry_release(&e);
  }
  unit_entry_release(&old);
}

/* Bigger than the SQLite backend's chunk and transaction sizes. */
static void large_entry(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry e;
  struct cdo__key k;

  make_key(&k, "large");
  make_entry(&e, "large", (uint64_t)40 << 20, 0, cdo__now_ms());
  put_ok(su, &k, &e, 60 * SEC);
  assert_fresh(su, &k, &e);
  unit_entry_release(&e);
}

/* A damaged entry is a miss, and it is removed. */
static void corrupt_is_a_miss(void **state)
{
  static const struct {
    enum damage how;
    uint64_t size;
    int64_t off; /* < 0: from the end */
  } cases[] = {
      {FLIP, 2000, 0},    /* header magic */
      {FLIP, 2000, 9},    /* header length */
      {FLIP, 2000, 20},   /* argv */
      {FLIP, 2000, 1000}, /* journal */
      {FLIP, 2000, -76},  /* trailer: journal length */
      {FLIP, 2000, -1},   /* trailer magic */
      {TRUNCATE, 2000, -1},
      {TRUNCATE, 2000, 1000},
      {TRUNCATE, 2000, 0},
      {FLIP, 3 << 20, (5 << 20) / 2}, /* inside a later chunk */
      {TRUNCATE, 3 << 20, -1000},
  };
  struct suite *su = begin(state);
  struct cdo__key k, other;
  struct unit_entry keep;
  size_t i;

  if (su->be->damage == NULL)
    skip();
  make_key(&k, "victim");
  make_key(&other, "bystander");
  make_entry(&keep, "keep", 1000, 0, cdo__now_ms());
  put_ok(su, &other, &keep, 3600 * SEC);
  for (i = 0; i < CDO__ARRAY_SIZE(cases); i++) {
    struct unit_entry e;
    uint64_t off;

    make_entry(&e, "x", cases[i].size, 0, cdo__now_ms());
    off = cases[i].off < 0 ? cases[i].size - (uint64_t)-cases[i].off
                           : (uint64_t)cases[i].off;
    put_ok(su, &k, &e, 3600 * SEC);
    assert_int_equal(count_entries(su), 2);
    if (su->be->damage(su->url, &k, cases[i].how, off) < 0)
      fail_msg("case %zu: cannot damage the entry", i);
    if (lookup(su, &k) != CDO__MISS)
      fail_msg("case %zu: a damaged entry was served", i);
    if (count_entries(su) != 1)
      fail_msg("case %zu: the damaged entry was not removed", i);
    unit_entry_release(&e);
  }
  assert_fresh(su, &other, &keep);
  unit_entry_release(&keep);
}

static void gc_removes_expired(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry old, young;
  struct cdo__key ko, ky;
  uint64_t removed = 99;
  int kept;

  make_key(&ko, "old");
  make_key(&ky, "young");
  make_entry(&old, "old", 700, 0, cdo__now_ms() - 10 * SEC);
  make_entry(&young, "young", 700, 0, cdo__now_ms());
  put_ok(su, &ko, &old, 5 * SEC); /* expired 5 s ago */
  put_ok(su, &ky, &young, 3600 * SEC);
  /*
   * Past the writer's expiry an entry is garbage: a backend may drop it by
   * itself at any moment (a Redis TTL); one that keeps it serves a long-TTL
   * reader until gc removes it, and then never again.
   */
  su->cfg.ttl_ms = 3600 * SEC;
  kept = lookup(su, &ko) == CDO__FRESH;
  unit_ok(cdo_store_gc(su->store, &removed));
  assert_true(removed <= (uint64_t)kept);
  assert_miss(su, &ko);
  assert_fresh(su, &ky, &young);
  unit_ok(cdo_store_gc(su->store, &removed));
  assert_int_equal(removed, 0);
  unit_entry_release(&old);
  unit_entry_release(&young);
}

/*
 * --max-size with no reads recorded: the oldest entries go first, and
 * the cache ends at most at the limit.
 */
static void evict_oldest_first(void **state)
{
  struct suite *su = begin(state);
  int64_t t0 = cdo__now_ms() - 1000 * SEC;
  uint64_t bytes = 0, removed, freed, limit;
  struct unit_entry e;
  struct cdo__key k[40];
  struct cdo_stats st;
  size_t i;

  for (i = 0; i < 40; i++) {
    char word[16];

    cdo__fmt(word, sizeof(word), "ev%zu", i);
    make_key(&k[i], word);
    make_entry(&e, word, 1000, 0, t0 + (int64_t)i * SEC);
    put_ok(su, &k[i], &e, 3600 * SEC);
    bytes += unit_entry_size(&e);
    unit_entry_release(&e);
  }
  limit = bytes / 4 + 10;
  unit_ok(cdo_store_evict(su->store, limit, &removed, &freed));
  assert_int_equal(removed, 30);
  assert_int_equal(freed, 30 * 1000);
  unit_ok(cdo_store_stats(su->store, &st));
  assert_true(st.bytes <= limit);
  su->cfg.ttl_ms = 3600 * SEC;
  for (i = 0; i < 40; i++)
    if (i < 30)
      assert_miss(su, &k[i]);
    else
      assert_int_equal(lookup(su, &k[i]), CDO__FRESH);
}

/*
 * Listing and counting read the entries; that is no use of them: with no
 * reads recorded, the oldest by creation still go first afterwards.
 */
static void evict_order_survives_list(void **state)
{
  struct suite *su = begin(state);
  int64_t t0 = cdo__now_ms() - 1000 * SEC;
  uint64_t removed, freed;
  struct listing l = {0};
  struct unit_entry e;
  struct cdo__key k[20];
  struct cdo_stats st;
  size_t i;

  for (i = 0; i < 20; i++) {
    char word[16];

    cdo__fmt(word, sizeof(word), "lo%zu", i);
    make_key(&k[i], word);
    make_entry(&e, word, 1000, 0, t0 + (int64_t)i * SEC);
    put_ok(su, &k[i], &e, 3600 * SEC);
    unit_entry_release(&e);
  }
  unit_ok(cdo_store_list(su->store, collect, &l));
  assert_int_equal(l.n, 20);
  unit_ok(cdo_store_stats(su->store, &st));
  assert_int_equal(st.bytes, 20 * 1000);
  unit_ok(cdo_store_evict(su->store, 10 * 1000, &removed, &freed));
  assert_int_equal(removed, 10);
  su->cfg.ttl_ms = 3600 * SEC;
  for (i = 0; i < 20; i++)
    assert_int_equal(lookup(su, &k[i]), i < 10 ? CDO__MISS : CDO__FRESH);
}

/*
 * Locks in one file: keys sharing a slot wait for each other, others do
 * not; a released slot is free again, and nothing is left per key.
 */
static void locks_share_one_file(void **state)
{
  struct suite *su = begin(state);
  struct cdo__key a, b, c;
  void *la = NULL, *lb = NULL, *lc = NULL;

  if (su->store->ops->locks != NULL)
    skip();              /* the backend's own locks */
  make_key(&a, "slotA"); /* bytes 6 and 7 zero: slot 0 for both */
  make_key(&b, "slotB");
  make_key(&c, "slotC");
  c.hash[7] = 1; /* another slot */
  unit_ok(cdo__store_lock(su->store, &a, 0, &la));
  assert_int_equal(cdo__store_lock(su->store, &b, 0, &lb), CDO__ERR(EAGAIN));
  assert_int_equal(cdo__store_lock(su->store, &a, 0, &lb), CDO__ERR(EAGAIN));
  unit_ok(cdo__store_lock(su->store, &c, 0, &lc));
  assert_int_equal(cdo__store_lock_holder(su->store, &b), (long)getpid());
  cdo__store_unlock(su->store, &a, la);
  assert_int_equal(cdo__store_lock_holder(su->store, &b), 0);
  unit_ok(cdo__store_lock(su->store, &b, 0, &lb));
  cdo__store_unlock(su->store, &b, lb);
  cdo__store_unlock(su->store, &c, lc);
}

static void list_reports_entries(void **state)
{
  struct suite *su = begin(state);
  struct listing l = {0};
  struct unit_entry e[3];
  struct cdo__key k[3];
  int64_t t0 = cdo__now_ms() - 100 * SEC, expires;
  struct cdo_stats st;
  uint64_t bytes = 0;
  size_t i;

  for (i = 0; i < 3; i++) {
    char word[16];

    cdo__fmt(word, sizeof(word), "w%zu", i);
    make_key(&k[i], word);
    make_entry(&e[i], word, 1000 + 100 * i, (int)i, t0 + (int64_t)i * SEC);
    put_ok(su, &k[i], &e[i], (int64_t)(i + 1) * 3600 * SEC);
    bytes += unit_entry_size(&e[i]);
  }
  unit_ok(cdo_store_list(su->store, collect, &l));
  assert_int_equal(l.n, 3);
  for (i = 0; i < 3; i++) {
    /* Newest first where the store orders by time; else in any order. */
    int ordered = strcmp(su->store->ops->name, "sqlite") == 0 ||
                  strcmp(su->store->ops->name, "exec") == 0;
    const struct cdo_entry_info *row = &l.rows[2 - i];
    size_t j;

    for (j = 0; !ordered && j < 3; j++)
      if (strcmp(l.rows[j].key, k[i].hex) == 0)
        row = &l.rows[j];
    assert_string_equal(row->key, k[i].hex);
    assert_int_equal(row->created_ms, e[i].meta.created_ms);
    /* A relative expiry (Redis PX) comes back to within a few ms. */
    expires = e[i].meta.created_ms + (int64_t)(i + 1) * 3600 * SEC;
    assert_in_range(row->expires_ms, expires - SEC, expires + SEC);
    assert_int_equal(row->duration_ms, e[i].meta.duration_ms);
    assert_int_equal(row->size, unit_entry_size(&e[i]));
    assert_int_equal(row->exit_status, (int)i);
    assert_string_equal(row->command, e[i].command);
  }
  unit_ok(cdo_store_stats(su->store, &st));
  assert_int_equal(st.entries, 3);
  assert_int_equal(st.bytes, bytes);

  /* A callback that returns non-zero stops the listing. */
  memset(&l, 0, sizeof(l));
  l.max = 1;
  unit_ok(cdo_store_list(su->store, collect, &l));
  assert_int_equal(l.n, 1);
  if (strcmp(su->store->ops->name, "sqlite") == 0)
    assert_string_equal(l.rows[0].key, k[2].hex);
  for (i = 0; i < 3; i++)
    unit_entry_release(&e[i]);
}

/* ---- locks ----------------------------------------------------------------
 */

/* A second handle on the same store, as another process would have. */
static struct cdo_store *second_handle(struct suite *su)
{
  struct cdo_store *s2 = NULL;
  char err[600];

  if (cdo_store_open(&s2, &su->cfg, err, sizeof(err)) < 0)
    fail_msg("second handle: %s", err);
  return s2;
}

/* A lock is held until released; the holder's renewal keeps it. */
static void lock_take_release(void **state)
{
  struct suite *su = begin(state);
  struct cdo_store *s2 = second_handle(su);
  struct cdo__key k, other;
  void *lk = NULL, *lk2 = NULL;

  make_key(&k, "lock");
  make_key(&other, "lock-other");
  unit_ok(cdo__store_lock(su->store, &k, 0, &lk));
  assert_non_null(lk);
  assert_int_equal(cdo__store_lock(s2, &k, 0, &lk2), CDO__ERR(EAGAIN));
  assert_null(lk2);
  assert_int_equal(cdo__store_lock(s2, &k, 300, &lk2), CDO__ERR(EAGAIN));
  unit_ok(cdo__store_lock(s2, &other, 0, &lk2)); /* one lock per key */
  cdo__store_unlock(s2, &other, lk2);
  unit_ok(cdo__store_lock_renew(su->store, &k, lk));
  assert_int_equal(cdo__store_lock(s2, &k, 0, &lk2), CDO__ERR(EAGAIN));
  cdo__store_unlock(su->store, &k, lk);
  unit_ok(cdo__store_lock(s2, &k, 0, &lk2));
  cdo__store_unlock(s2, &k, lk2);
  cdo_store_close(s2);
}

/* A waiter gets the lock when its holder (another process) lets it go. */
static void lock_wait_for_holder(void **state)
{
  struct suite *su = begin(state);
  struct cdo__key k;
  void *lk = NULL;
  int fds[2], st;
  char c;
  pid_t pid;

  make_key(&k, "lock-wait");
  assert_int_equal(pipe(fds), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) { /* the holder: its own store, as another run's */
    struct cdo_store *s = NULL;
    char err[600];
    void *held = NULL;

    close(fds[0]);
    if (cdo_store_open(&s, &su->cfg, err, sizeof(err)) < 0 ||
        cdo__store_lock(s, &k, 0, &held) < 0)
      _exit(1);
    if (write(fds[1], "h", 1) != 1)
      _exit(1);
    usleep(200000);
    cdo__store_unlock(s, &k, held);
    cdo_store_close(s);
    _exit(0);
  }
  close(fds[1]);
  assert_int_equal(read(fds[0], &c, 1), 1); /* held now */
  close(fds[0]);
  unit_ok(cdo__store_lock(su->store, &k, 30 * SEC, &lk));
  cdo__store_unlock(su->store, &k, lk);
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/*
 * A lease that ran out: renewing says so, and another may take the lock.
 * A lock that is not a lease (flock(2)) is held while its holder lives:
 * renewing it is a no-op that keeps it.
 */
static void lock_lost_lease(void **state)
{
  struct suite *su = begin(state);
  struct cdo_store *s2 = second_handle(su);
  struct cdo__key k;
  void *lk = NULL, *lk2 = NULL;

  make_key(&k, "lock-lost");
  unit_ok(cdo__store_lock(su->store, &k, 0, &lk));
  if (su->be->lose_lock == NULL) {
    unit_ok(cdo__store_lock_renew(su->store, &k, lk));
    assert_int_equal(cdo__store_lock(s2, &k, 0, &lk2), CDO__ERR(EAGAIN));
    cdo__store_unlock(su->store, &k, lk);
    cdo_store_close(s2);
    return;
  }
  assert_int_equal(su->be->lose_lock(su->url, &k), 0);
  unit_ok(cdo__store_lock(s2, &k, 0, &lk2));
  assert_int_equal(cdo__store_lock_renew(su->store, &k, lk), CDO__ERR(ENOLCK));
  cdo__store_unlock(su->store, &k, lk); /* releases nothing of the other's */
  unit_ok(cdo__store_lock_renew(s2, &k, lk2));
  cdo__store_unlock(s2, &k, lk2);
  cdo_store_close(s2);
}

/* ---- counters -------------------------------------------------------------
 */

/* Runs are counted by outcome, failures by kind; zeroing resets them. */
static void counters_count_and_zero(void **state)
{
  struct suite *su = begin(state);
  struct cdo_stats st;
  struct cdo__key k;

  make_key(&k, "counted");
  unit_ok(cdo_store_zero_stats(su->store));
  cdo__store_record(su->store, &k, CDO_HIT, 250, 0);
  cdo__store_record(su->store, &k, CDO_HIT, 250, 0);
  cdo__store_record(su->store, &k, CDO_STALE, 100, 0);
  cdo__store_record(su->store, &k, CDO_MISS_STORED, 0, 0);
  cdo__store_record(su->store, &k, CDO_MISS_NOT_STORED, 0, 0);
  cdo__store_record(su->store, &k, CDO_UNCACHED, 0, CDO__ERR(ETIMEDOUT));
  cdo__store_record(su->store, NULL, CDO_UNCACHED, 0, CDO_ECORRUPT);
  unit_ok(cdo_store_summary(su->store, &st));
  assert_true(st.counted);
  assert_int_equal(st.hits, 2);
  assert_int_equal(st.stale, 1);
  assert_int_equal(st.misses, 2);
  assert_int_equal(st.uncached, 2);
  assert_int_equal(st.saved_ms, 600);
  assert_int_equal(st.errors, 2);
  assert_int_equal(st.error_kinds[CDO_ERRKIND_TIMEOUT], 1);
  assert_int_equal(st.error_kinds[CDO_ERRKIND_CORRUPT], 1);
  assert_true(st.since_ms > 0);
  unit_ok(cdo_store_zero_stats(su->store));
  unit_ok(cdo_store_summary(su->store, &st));
  assert_int_equal(st.hits + st.stale + st.misses + st.uncached, 0);
  assert_int_equal(st.saved_ms, 0);
  assert_int_equal(st.errors, 0);
}

/* ---- the output bound ---------------------------------------------------- */

/* An entry whose journal is over --max-output is refused and not stored. */
static void max_output_bounds_puts(void **state)
{
  struct suite *su = begin(state);
  struct unit_entry small, big;
  struct cdo__key ks, kb;
  char err[200];

  unit_ok(cdo_config_set(&su->cfg, "max-output", "8K", err, sizeof(err)));
  make_key(&ks, "within");
  make_key(&kb, "over");
  make_entry(&small, "small", 8000, 0, cdo__now_ms());
  make_entry(&big, "big", 20000, 0, cdo__now_ms());
  put_ok(su, &ks, &small, 60 * SEC);
  assert_fresh(su, &ks, &small);
  assert_int_equal(put(su, &kb, &big, 60 * SEC), CDO_ETOOBIG);
  assert_miss(su, &kb);
  unit_entry_release(&small);
  unit_entry_release(&big);
}

/* ---- each backend's side ------------------------------------------------- */

#include "store_dir_test.c"
#include "store_exec_test.c"
#include "store_redis_test.c"
#include "store_sqlite_test.c"

static const struct backend backends[] = {
    {"sqlite", sqlite_url, sqlite_damage, NULL, sqlite_own,
     CDO__ARRAY_SIZE(sqlite_own)},
    {"dir", dir_url, dir_damage, NULL, dir_own, CDO__ARRAY_SIZE(dir_own)},
    {"mem", mem_url, dir_damage, NULL, NULL, 0},
    {"redis", redis_url, redis_damage, redis_lose_lock, NULL, 0},
    {"exec", exec_url, exec_damage, NULL, NULL, 0},
};

/* ---- running the suite once per backend ---------------------------------- */

static const struct {
  const char *name;
  CMUnitTestFunction fn;
} contract[] = {
#define C(f)                                                                   \
  {                                                                            \
#f, f                                                                      \
  }
    C(miss_on_empty),
    C(put_then_lookup),
    C(overwrite_replaces),
    C(del_removes),
    C(batch_commits_everything),
    C(clear_removes_all),
    C(clear_scope_keeps_others),
    C(ttl_is_the_readers),
    C(fail_ttl_for_failures),
    C(stale_window),
    C(second_handle_shares),
    C(failed_put_stores_nothing),
    C(large_entry),
    C(corrupt_is_a_miss),
    C(gc_removes_expired),
    C(list_reports_entries),
    C(evict_oldest_first),
    C(evict_order_survives_list),
    C(lock_take_release),
    C(lock_wait_for_holder),
    C(lock_lost_lease),
    C(counters_count_and_zero),
    C(max_output_bounds_puts),
    C(locks_share_one_file),
    C(list_argv_and_scope),
#undef C
};

int main(void)
{
  struct CMUnitTest tests[CDO__ARRAY_SIZE(contract)];
  char names[CDO__ARRAY_SIZE(contract)][96];
  int failed = 0;
  size_t b, i;

  for (b = 0; b < CDO__ARRAY_SIZE(backends); b++) {
    current = &backends[b];
    for (i = 0; i < CDO__ARRAY_SIZE(contract); i++) {
      /* "sqlite: put_then_lookup": TAP lines name the backend. */
      cdo__fmt(names[i], sizeof(names[i]), "%s: %s", current->name,
               contract[i].name);
      tests[i] = (struct CMUnitTest){.name = names[i],
                                     .test_func = contract[i].fn,
                                     .setup_func = test_setup,
                                     .teardown_func = test_teardown};
    }
    failed += cmocka_run_group_tests_name(current->name, tests, group_setup,
                                          group_teardown);
  }
  for (b = 0; b < CDO__ARRAY_SIZE(backends); b++) {
    struct CMUnitTest own[16];
    char group[64];

    current = &backends[b];
    assert_true(current->n_own <= CDO__ARRAY_SIZE(own));
    for (i = 0; i < current->n_own; i++)
      own[i] = (struct CMUnitTest){.name = current->own[i].name,
                                   .test_func = current->own[i].fn,
                                   .setup_func = test_setup,
                                   .teardown_func = test_teardown};
    cdo__fmt(group, sizeof(group), "%s layout", current->name);
    if (current->n_own > 0)
      failed += _cmocka_run_group_tests(group, own, current->n_own, group_setup,
                                        group_teardown);
  }
  return failed;
}
