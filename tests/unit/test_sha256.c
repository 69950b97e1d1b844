/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 (sha256.c): the SHA-NI code and the portable fallback each give
 * libsodium's digest, whatever the length and however the input is split
 * into updates. Every test runs on both paths; the SHA-NI one where this
 * CPU has the instructions (valgrind's virtual CPU does not).
 */
#include "unit.h"

#include <sodium.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

#define DATA_LEN ((size_t)1 << 20)

static unsigned char *data;

static void reference(const unsigned char *p, size_t n, unsigned char out[32])
{
  crypto_hash_sha256(out, p, n);
}

/* The digest of p[0, n) fed to update in pieces ending at cuts[]. */
static void in_pieces(const unsigned char *p, size_t n, const size_t *cuts,
                      size_t ncuts, unsigned char out[32])
{
  struct cdo__sha256 h;
  size_t i, at = 0;

  cdo__sha256_init(&h);
  for (i = 0; i < ncuts; i++) {
    cdo__sha256_update(&h, p + at, cuts[i] - at);
    at = cuts[i];
  }
  cdo__sha256_update(&h, p + at, n - at);
  cdo__sha256_final(&h, out);
}

static void check_len(size_t n)
{
  unsigned char want[32], got[32];

  reference(data, n, want);
  cdo__sha256(data, n, got);
  assert_memory_equal(got, want, 32);
}

typedef void (*path_test_fn)(void);

/* Runs fn with the portable code forced, then with SHA-NI allowed. */
static void on_both_paths(path_test_fn fn)
{
  struct cdo__sha256 h;
  int allow;

  for (allow = 0; allow <= 1; allow++) {
    int used = cdo__sha256_accel(allow);

    if (allow == 0)
      assert_int_equal(used, 0);
    assert_int_equal(cdo__sha256_accel(-1), used);
    cdo__sha256_init(&h);
    assert_int_equal(h.accel, used);
    fn();
  }
}

/* FIPS 180-4 examples (one block, two blocks, none) and 10^6 x 'a'. */
static void known_vectors(void)
{
  static const struct {
    const char *msg;
    const char *hex;
  } v[] = {
      {"abc",
       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
  };
  unsigned char got[32], want[32];
  char *a = malloc(1000000);
  size_t i;

  for (i = 0; i < CDO__ARRAY_SIZE(v); i++) {
    assert_int_equal(sodium_hex2bin(want, 32, v[i].hex, 64, NULL, NULL, NULL),
                     0);
    cdo__sha256(v[i].msg, strlen(v[i].msg), got);
    assert_memory_equal(got, want, 32);
  }
  assert_non_null(a);
  memset(a, 'a', 1000000);
  sodium_hex2bin(
      want, 32,
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", 64,
      NULL, NULL, NULL);
  cdo__sha256(a, 1000000, got);
  assert_memory_equal(got, want, 32);
  free(a);
}

static void test_known_vectors(void **state)
{
  (void)state;
  on_both_paths(known_vectors);
}

/* Every length from 0 to 300 bytes (padding into one or two blocks), and
 * 1 MiB. */
static void lengths(void)
{
  size_t n;

  for (n = 0; n <= 300; n++)
    check_len(n);
  check_len(DATA_LEN);
  check_len(DATA_LEN - 1);
}

static void test_lengths(void **state)
{
  (void)state;
  on_both_paths(lengths);
}

/* Two updates, split at every offset of every length up to 300; and one
 * byte at a time. */
static void splits(void)
{
  unsigned char want[32], got[32];
  struct cdo__sha256 h;
  size_t n, cut;

  for (n = 0; n <= 300; n++) {
    reference(data, n, want);
    for (cut = 0; cut <= n; cut++) {
      in_pieces(data, n, &cut, 1, got);
      assert_memory_equal(got, want, 32);
    }
  }
  cdo__sha256_init(&h);
  for (n = 0; n < 1000; n++)
    cdo__sha256_update(&h, data + n, 1);
  cdo__sha256_final(&h, got);
  reference(data, 1000, want);
  assert_memory_equal(got, want, 32);
}

static void test_splits(void **state)
{
  (void)state;
  on_both_paths(splits);
}

/* 1 MiB in random pieces: odd offsets, pieces of 0 bytes, block-sized and
 * much larger ones. */
static void big_splits(void)
{
  unsigned char want[32], got[32];
  size_t cuts[16], round, i, n;
  uint32_t r[17];

  reference(data, DATA_LEN, want);
  for (round = 0; round < 20; round++) {
    unit_random(r, sizeof(r), round + 3);
    n = 1 + r[0] % 16u;
    for (i = 0; i < n; i++)
      cuts[i] = r[1 + i] % (DATA_LEN + 1);
    for (i = 1; i < n; i++) {
      size_t v = cuts[i], k = i;

      for (; k > 0 && cuts[k - 1] > v; k--)
        cuts[k] = cuts[k - 1];
      cuts[k] = v;
    }
    in_pieces(data, DATA_LEN, cuts, n, got);
    assert_memory_equal(got, want, 32);
  }
}

static void test_big_splits(void **state)
{
  (void)state;
  on_both_paths(big_splits);
}

/* Different inputs, different digests, on both paths alike. */
static void test_paths_agree(void **state)
{
  unsigned char a[32], b[32];
  size_t n;

  (void)state;
  for (n = 0; n <= 200; n += 7) {
    cdo__sha256_accel(0);
    cdo__sha256(data + n, n * 3, a);
    cdo__sha256_accel(1);
    cdo__sha256(data + n, n * 3, b);
    assert_memory_equal(a, b, 32);
  }
  print_message("[ info     ] SHA-NI %s\n",
                cdo__sha256_accel(1) ? "in use" : "not on this CPU");
}

/*
 * Where cpuid says the CPU has SHA-NI (and SSSE3, SSE4.1), the library
 * uses it, however it finds out (on musl, by trying the instructions). A
 * CPU may run them without cpuid saying so (a hypervisor's mask): then
 * either answer is right.
 */
static void test_uses_shani_where_the_cpu_has_it(void **state)
{
  int has = 0;

  (void)state;
#if defined(__x86_64__) && defined(__GNUC__)
  {
    unsigned a, b, c, d;

    if (__get_cpuid_max(0, NULL) >= 7) {
      __cpuid(1, a, b, c, d);
      has = (c & bit_SSSE3) && (c & bit_SSE4_1);
      __cpuid_count(7, 0, a, b, c, d);
      has = has && (b & (1u << 29)); /* CPUID.(EAX=7,ECX=0):EBX.SHA */
    }
  }
#endif
  if (has)
    assert_int_equal(cdo__sha256_accel(1), 1);
  else
    skip();
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_vectors),
      cmocka_unit_test(test_lengths),
      cmocka_unit_test(test_splits),
      cmocka_unit_test(test_big_splits),
      cmocka_unit_test(test_paths_agree),
      cmocka_unit_test(test_uses_shani_where_the_cpu_has_it),
  };
  int r;

  data = malloc(DATA_LEN);
  assert_non_null(data);
  unit_random(data, DATA_LEN, 5);
  r = cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
  free(data);
  return r;
}
