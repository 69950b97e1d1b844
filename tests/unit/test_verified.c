/* SPDX-License-Identifier: MIT */
/*
 * Entry files checked once per boot (verified.c): a record matches only the
 * file it was made for, unchanged, under the same key and journal sum, and
 * is made only for a file that did not change during its check.
 */
#include "unit.h"

#include <time.h>

#define SIZE 4096
#define JSUM 0x1234567890abcdefULL

struct fixture {
  char *dir;
  char table[4096], file[4096];
  unsigned char key[32];
  int fd;
};

/* Waits until a file's ctime is old enough to be recorded (see verified.c). */
static void settle(void)
{
  struct timespec t = {0, 150 * 1000 * 1000};

  nanosleep(&t, NULL);
}

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof(*f));
  unsigned char data[SIZE];

  assert_non_null(f);
  f->dir = unit_tmpdir();
  cdo__fmt(f->table, sizeof(f->table), "%s/cache-verified", f->dir);
  cdo__fmt(f->file, sizeof(f->file), "%s/entry", f->dir);
  unit_random(f->key, sizeof(f->key), 3);
  unit_random(data, sizeof(data), 4);
  f->fd = open(f->file, O_RDWR | O_CREAT | O_EXCL, 0600);
  assert_true(f->fd >= 0);
  unit_ok(cdo__write_all(f->fd, data, sizeof(data)));
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  close(f->fd);
  unit_rmtree(f->dir);
  free(f);
  return 0;
}

static int seen(struct fixture *f, int fd, const unsigned char *key,
                uint64_t size, uint64_t jsum, unsigned char *before)
{
  unsigned char tmp[CDO__VERIFIED_REC];

  return cdo__verified_seen(f->table, key, fd, 0, size, jsum,
                            before ? before : tmp);
}

/* Checks f's entry as the front end does: seen, else note. */
static int check(struct fixture *f)
{
  unsigned char before[CDO__VERIFIED_REC];

  if (seen(f, f->fd, f->key, SIZE, JSUM, before))
    return 1;
  cdo__verified_note(f->table, f->key, f->fd, 0, SIZE, JSUM, before);
  return 0;
}

static void test_recorded_once_settled(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(check(f), 0); /* a file just written: not recorded */
  assert_int_equal(check(f), 0);
  settle();
  assert_int_equal(check(f), 0); /* now recorded */
  assert_int_equal(check(f), 1);
  assert_int_equal(check(f), 1);
}

static void test_other_entry_does_not_match(void **state)
{
  struct fixture *f = *state;
  unsigned char other[32];

  settle();
  check(f);
  assert_int_equal(check(f), 1);
  memcpy(other, f->key, sizeof(other));
  other[31] ^= 1;
  assert_int_equal(seen(f, f->fd, other, SIZE, JSUM, NULL), 0);
  assert_int_equal(seen(f, f->fd, f->key, SIZE - 1, JSUM, NULL), 0);
  assert_int_equal(seen(f, f->fd, f->key, SIZE, JSUM ^ 1, NULL), 0);
}

/* Even the same bytes written again: the file changed, check it again. */
static void test_a_write_forgets(void **state)
{
  struct fixture *f = *state;
  unsigned char c;

  settle();
  check(f);
  assert_int_equal(check(f), 1);
  unit_ok(cdo__pread_all(f->fd, &c, 1, 100));
  assert_int_equal(pwrite(f->fd, &c, 1, 100), 1);
  assert_int_equal(check(f), 0);
}

static void test_changed_during_check_not_recorded(void **state)
{
  struct fixture *f = *state;
  unsigned char before[CDO__VERIFIED_REC];

  settle();
  assert_int_equal(seen(f, f->fd, f->key, SIZE, JSUM, before), 0);
  assert_int_equal(pwrite(f->fd, "x", 1, 7), 1); /* while it is checked */
  settle();
  cdo__verified_note(f->table, f->key, f->fd, 0, SIZE, JSUM, before);
  assert_int_equal(seen(f, f->fd, f->key, SIZE, JSUM, NULL), 0);
}

static void test_replaced_or_unlinked_file(void **state)
{
  struct fixture *f = *state;
  char tmp[4096];
  unsigned char data[SIZE];
  int fd;

  settle();
  check(f);
  assert_int_equal(check(f), 1);
  /* The same bytes renamed over it: another file. */
  cdo__fmt(tmp, sizeof(tmp), "%s/tmp", f->dir);
  unit_ok(cdo__pread_all(f->fd, data, SIZE, 0));
  fd = open(tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
  assert_true(fd >= 0);
  unit_ok(cdo__write_all(fd, data, SIZE));
  assert_int_equal(rename(tmp, f->file), 0);
  assert_int_equal(seen(f, fd, f->key, SIZE, JSUM, NULL), 0);
  /* The old one, now unlinked, no longer counts either. */
  assert_int_equal(seen(f, f->fd, f->key, SIZE, JSUM, NULL), 0);
  close(fd);
}

static void test_damaged_table_does_not_match(void **state)
{
  struct fixture *f = *state;
  struct stat st;
  unsigned char *t;
  size_t i, at;
  int fd;

  settle();
  check(f);
  assert_int_equal(check(f), 1);
  fd = open(f->table, O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(fstat(fd, &st), 0);
  t = malloc((size_t)st.st_size);
  assert_non_null(t);
  unit_ok(cdo__pread_all(fd, t, (size_t)st.st_size, 0));
  /* Every bit of the record, one at a time: none still matches. */
  for (at = 0; at < (size_t)st.st_size && t[at] == 0; at++)
    ;
  at -= at % CDO__VERIFIED_REC;
  for (i = at; i < at + CDO__VERIFIED_REC; i++) {
    int bit;

    for (bit = 0; bit < 8; bit++) {
      unsigned char c = (unsigned char)(t[i] ^ (1u << bit));

      assert_int_equal(pwrite(fd, &c, 1, (off_t)i), 1);
      assert_int_equal(seen(f, f->fd, f->key, SIZE, JSUM, NULL), 0);
      assert_int_equal(pwrite(fd, &t[i], 1, (off_t)i), 1);
    }
  }
  assert_int_equal(seen(f, f->fd, f->key, SIZE, JSUM, NULL), 1);
  assert_int_equal(ftruncate(fd, st.st_size - 1), 0);
  assert_int_equal(seen(f, f->fd, f->key, SIZE, JSUM, NULL), 0);
  close(fd);
  free(t);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_recorded_once_settled, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_other_entry_does_not_match, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_a_write_forgets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_changed_during_check_not_recorded,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_replaced_or_unlinked_file, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_damaged_table_does_not_match, setup,
                                      teardown),
  };

  return cmocka_run_group_tests_name("verified", tests, NULL, NULL);
}
