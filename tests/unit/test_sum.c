/* SPDX-License-Identifier: MIT */
/* The entry checksum: streaming equals one-shot; data and length matter. */
#include "unit.h"

#define DATA_LEN 1000

static unsigned char data[DATA_LEN];

static uint64_t sum_in_pieces(const unsigned char *p, size_t n,
                              const size_t *cuts, size_t ncuts)
{
  struct cdo__sum s;
  size_t i, at = 0;

  cdo__sum_init(&s);
  for (i = 0; i < ncuts; i++) {
    cdo__sum_update(&s, p + at, cuts[i] - at);
    at = cuts[i];
  }
  cdo__sum_update(&s, p + at, n - at);
  return cdo__sum_final(&s);
}

/* Every single split point of DATA_LEN bytes, and every prefix length. */
static void test_one_split(void **state)
{
  size_t len, cut;

  (void)state;
  for (len = 0; len <= 200; len++)
    for (cut = 0; cut <= len; cut++)
      assert_true(sum_in_pieces(data, len, &cut, 1) == cdo__sum(data, len));
  for (cut = 0; cut <= DATA_LEN; cut++)
    assert_true(sum_in_pieces(data, DATA_LEN, &cut, 1) ==
                cdo__sum(data, DATA_LEN));
}

/* Many random splits into up to 8 pieces, and one byte at a time. */
static void test_many_splits(void **state)
{
  uint64_t whole = cdo__sum(data, DATA_LEN);
  uint16_t r[9];
  size_t cuts[8], round, i, n;
  struct cdo__sum s;

  (void)state;
  for (round = 0; round < 2000; round++) {
    unit_random(r, sizeof(r), round + 7);
    n = 1 + r[0] % 8u;
    for (i = 0; i < n; i++)
      cuts[i] = r[1 + i] % (DATA_LEN + 1u);
    /* Sort the cut points (insertion sort; n is small). */
    for (i = 1; i < n; i++) {
      size_t v = cuts[i], k = i;

      for (; k > 0 && cuts[k - 1] > v; k--)
        cuts[k] = cuts[k - 1];
      cuts[k] = v;
    }
    assert_true(sum_in_pieces(data, DATA_LEN, cuts, n) == whole);
  }
  cdo__sum_init(&s);
  for (i = 0; i < DATA_LEN; i++)
    cdo__sum_update(&s, data + i, 1);
  assert_true(cdo__sum_final(&s) == whole);
}

/* Final does not consume the state: it can be read, then updated on. */
static void test_final_is_a_peek(void **state)
{
  struct cdo__sum s;

  (void)state;
  cdo__sum_init(&s);
  cdo__sum_update(&s, data, 100);
  assert_true(cdo__sum_final(&s) == cdo__sum(data, 100));
  cdo__sum_update(&s, data + 100, 50);
  assert_true(cdo__sum_final(&s) == cdo__sum(data, 150));
}

/* Flipping any bit of the data changes the sum. */
static void test_data_matters(void **state)
{
  unsigned char copy[96];
  uint64_t orig = cdo__sum(data, sizeof(copy));
  size_t bit;

  (void)state;
  for (bit = 0; bit < sizeof(copy) * 8; bit++) {
    memcpy(copy, data, sizeof(copy));
    copy[bit / 8] ^= (unsigned char)(1u << bit % 8);
    assert_true(cdo__sum(copy, sizeof(copy)) != orig);
  }
  assert_true(cdo__sum("abc", 3) != cdo__sum("abd", 3));
  assert_true(cdo__sum("ab", 2) != cdo__sum("ba", 2));
}

/* Zero bytes appended or removed change the sum: the length is in it. */
static void test_length_matters(void **state)
{
  static const unsigned char zeros[128];
  unsigned char buf[600];
  uint64_t seen[129];
  size_t n, k;

  (void)state;
  for (n = 0; n <= 128; n++) {
    seen[n] = cdo__sum(zeros, n);
    for (k = 0; k < n; k++)
      assert_true(seen[k] != seen[n]);
  }
  memcpy(buf, data, sizeof(buf));
  memset(buf + 500, 0, 100);
  assert_true(cdo__sum(buf, 500) != cdo__sum(buf, 532));
  assert_true(cdo__sum(buf, 510) != cdo__sum(buf, 511));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_split),
      cmocka_unit_test(test_many_splits),
      cmocka_unit_test(test_final_is_a_peek),
      cmocka_unit_test(test_data_matters),
      cmocka_unit_test(test_length_matters),
  };

  unit_random(data, sizeof(data), 1);
  return cmocka_run_group_tests_name("sum", tests, NULL, NULL);
}
