/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 for the key and the --file digests. On x86-64 processors with the
 * SHA extensions (SHA-NI: sha256rnds2, sha256msg1, sha256msg2) the blocks
 * are compressed by those instructions, chosen at run time (cpu_has_shani);
 * everywhere else, and whenever cdo__sha256_accel(0) says so, libsodium's
 * portable code does the work. Both give the same digest (FIPS 180-4);
 * tests/unit/test_sha256.c holds one to the other.
 */
#include "cdo_int.h"

#include <sodium.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define CDO__HAVE_SHANI 1
#include <immintrin.h>
#include <setjmp.h>
#include <signal.h>
#if defined(__has_include)
#if __has_include(<sys/platform/x86.h>)
#include <sys/platform/x86.h> /* glibc 2.33 and later */
#endif
#endif
#endif

/* -1 not yet asked; 0 portable; 1 SHA-NI. */
static int accel = -1;

#ifdef CDO__HAVE_SHANI

/* FIPS 180-4, 4.2.2: the first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes. */
static const uint32_t K[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static void blocks_shani(uint32_t s[8], const unsigned char *p, size_t n);

#ifndef CPU_FEATURE_ACTIVE
static sigjmp_buf probe_jmp;

static void probe_ill(int sig)
{
  (void)sig;
  siglongjmp(probe_jmp, 1);
}
#endif

/*
 * glibc has asked cpuid at start-up already: its answer costs nothing.
 * Elsewhere (musl), a cpuid traps to the hypervisor in a virtual machine
 * (3.6 us apiece here, and the question takes three), so the instructions
 * are tried instead: one block of "abc" compressed under a handler of
 * SIGILL (two system calls, SA_NODEFER so that the jump out of the handler
 * leaves the signal mask as it was), then checked against FIPS 180-4's
 * digest of it. A processor without them, or a virtual CPU that does not
 * emulate them (valgrind's), raises SIGILL and the portable code is used.
 */
static int cpu_has_shani(void)
{
#ifdef CPU_FEATURE_ACTIVE
  return CPU_FEATURE_ACTIVE(SHA) && CPU_FEATURE_ACTIVE(SSSE3) &&
         CPU_FEATURE_ACTIVE(SSE4_1);
#else
  static const unsigned char abc[64] = {'a', 'b', 'c', 0x80, [63] = 24};
  uint32_t st[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  struct sigaction sa, old;
  volatile int ok = 0;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = probe_ill;
  sa.sa_flags = SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGILL, &sa, &old) < 0)
    return 0;
  if (sigsetjmp(probe_jmp, 0) == 0) {
    blocks_shani(st, abc, 1);
    ok = st[0] == 0xba7816bf && st[1] == 0x8f01cfea && st[2] == 0x414140de &&
         st[3] == 0x5dae2223 && st[4] == 0xb00361a3 && st[5] == 0x96177a9c &&
         st[6] == 0xb410ff61 && st[7] == 0xf20015ad;
  }
  sigaction(SIGILL, &old, NULL);
  return ok;
#endif
}

#define SHANI __attribute__((target("sha,sse4.1,ssse3")))

/*
 * Four rounds: the two halves of k + w each feed one sha256rnds2, which
 * takes the state as CDGH and ABEF and returns the new ABEF (the old ABEF
 * being the new CDGH).
 */
static inline SHANI void rounds4(__m128i *abef, __m128i *cdgh, __m128i w, int i)
{
  __m128i kw = _mm_add_epi32(w, _mm_load_si128((const __m128i *)&K[i]));

  *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, kw);
  kw = _mm_shuffle_epi32(kw, 0x0e); /* the upper two words down */
  *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, kw);
}

/*
 * n blocks of p into s[8] (a..h). The schedule keeps the last 16 words in
 * w0..w3, oldest first: w[t..t+3] = msg2(msg1(w0, w1) + w[t-7..t-4], w3).
 */
static SHANI void blocks_shani(uint32_t s[8], const unsigned char *p, size_t n)
{
  const __m128i bswap =
      _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i t = _mm_loadu_si128((const __m128i *)&s[0]); /* a b c d */
  __m128i u = _mm_loadu_si128((const __m128i *)&s[4]); /* e f g h */
  __m128i abef, cdgh;

  /* Lanes from low to high: abef = f e b a, cdgh = h g d c. */
  t = _mm_shuffle_epi32(t, 0xb1);     /* b a d c */
  u = _mm_shuffle_epi32(u, 0x1b);     /* h g f e */
  abef = _mm_alignr_epi8(t, u, 8);    /* f e b a */
  cdgh = _mm_blend_epi16(u, t, 0xf0); /* h g d c */
  for (; n > 0; n--, p += 64) {
    __m128i abef0 = abef, cdgh0 = cdgh, w0, w1, w2, w3;
    int i;

    w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), bswap);
    w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap);
    w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap);
    w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap);
    rounds4(&abef, &cdgh, w0, 0);
    rounds4(&abef, &cdgh, w1, 4);
    rounds4(&abef, &cdgh, w2, 8);
    rounds4(&abef, &cdgh, w3, 12);
    for (i = 16; i < 64; i += 4) {
      __m128i w = _mm_sha256msg1_epu32(w0, w1);

      w = _mm_add_epi32(w, _mm_alignr_epi8(w3, w2, 4));
      w = _mm_sha256msg2_epu32(w, w3);
      rounds4(&abef, &cdgh, w, i);
      w0 = w1;
      w1 = w2;
      w2 = w3;
      w3 = w;
    }
    abef = _mm_add_epi32(abef, abef0);
    cdgh = _mm_add_epi32(cdgh, cdgh0);
  }
  t = _mm_shuffle_epi32(abef, 0x1b);                               /* a b e f */
  u = _mm_shuffle_epi32(cdgh, 0xb1);                               /* g h c d */
  _mm_storeu_si128((__m128i *)&s[0], _mm_blend_epi16(t, u, 0xf0)); /* abcd */
  _mm_storeu_si128((__m128i *)&s[4], _mm_alignr_epi8(u, t, 8));    /* efgh */
}

#else /* no SHA-NI here */

static int cpu_has_shani(void)
{
  return 0;
}

static void blocks_shani(uint32_t s[8], const unsigned char *p, size_t n)
{
  (void)s, (void)p, (void)n;
  abort(); /* never chosen: cpu_has_shani() is 0 */
}

#endif

int cdo__sha256_accel(int allow)
{
  if (allow < 0 && accel >= 0)
    return accel;
  accel = allow != 0 && cpu_has_shani();
  return accel;
}

void cdo__sha256_init(struct cdo__sha256 *h)
{
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                 0xa54ff53a, 0x510e527f, 0x9b05688c,
                                 0x1f83d9ab, 0x5be0cd19};

  h->accel = cdo__sha256_accel(-1);
  if (!h->accel) {
    crypto_hash_sha256_init(&h->u.sodium);
    return;
  }
  memcpy(h->u.x.s, iv, sizeof(iv));
  h->u.x.bytes = 0;
}

void cdo__sha256_update(struct cdo__sha256 *h, const void *data, size_t n)
{
  const unsigned char *p = data;
  size_t have, take;

  if (!h->accel) {
    crypto_hash_sha256_update(&h->u.sodium, p, n);
    return;
  }
  have = (size_t)(h->u.x.bytes & 63);
  h->u.x.bytes += n;
  if (have > 0) {
    take = 64 - have < n ? 64 - have : n;
    memcpy(h->u.x.buf + have, p, take);
    p += take;
    n -= take;
    if (have + take < 64)
      return;
    blocks_shani(h->u.x.s, h->u.x.buf, 1);
  }
  if (n >= 64)
    blocks_shani(h->u.x.s, p, n / 64);
  p += n & ~(size_t)63;
  memcpy(h->u.x.buf, p, n & 63);
}

void cdo__sha256_final(struct cdo__sha256 *h, unsigned char out[32])
{
  size_t have = (size_t)(h->u.x.bytes & 63), i;
  uint64_t bits = h->u.x.bytes * 8;

  if (!h->accel) {
    crypto_hash_sha256_final(&h->u.sodium, out);
    return;
  }
  /* 0x80, zeros up to 56 bytes into a block, the length in bits. */
  h->u.x.buf[have++] = 0x80;
  if (have > 56) {
    memset(h->u.x.buf + have, 0, 64 - have);
    blocks_shani(h->u.x.s, h->u.x.buf, 1);
    have = 0;
  }
  memset(h->u.x.buf + have, 0, 56 - have);
  cdo__put64(h->u.x.buf + 56, bits);
  blocks_shani(h->u.x.s, h->u.x.buf, 1);
  for (i = 0; i < 8; i++)
    cdo__put32(out + 4 * i, h->u.x.s[i]);
  memset(h, 0, sizeof(*h));
}

void cdo__sha256(const void *data, size_t n, unsigned char out[32])
{
  struct cdo__sha256 h;

  cdo__sha256_init(&h);
  cdo__sha256_update(&h, data, n);
  cdo__sha256_final(&h, out);
}
