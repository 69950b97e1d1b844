/* SPDX-License-Identifier: MIT */
/*
 * The entry checksum: four lanes, each folding one 64x64->128-bit multiply
 * of 16 input bytes per 64-byte block into a rotating accumulator, combined
 * with the length at the end. Not meant to resist an attacker (the cache is
 * private), only to catch torn, truncated or rotted entries at memory speed.
 */
#include "cdo_int.h"

#include <endian.h>

static const uint64_t K[8] = {0xa0761d6478bd642fULL, 0xe7037ed1a0b428dbULL,
                              0x8ebc6af09c88c6e3ULL, 0x589965cc75374cc3ULL,
                              0x1d8e4e27c47d124fULL, 0x9e3779b97f4a7c15ULL,
                              0xbf58476d1ce4e5b9ULL, 0x94d049bb133111ebULL};

static inline uint64_t rotl(uint64_t x, int r)
{
  return (x << r) | (x >> (64 - r));
}

/* Little-endian on every host, so that shared caches agree. */
static inline uint64_t load64(const unsigned char *p)
{
  uint64_t v;

  memcpy(&v, p, 8);
  return le64toh(v);
}

/* Multiplies and folds the 128-bit product to 64 bits. */
static inline uint64_t mum(uint64_t a, uint64_t b)
{
  unsigned __int128 m = (unsigned __int128)a * b;

  return (uint64_t)m ^ (uint64_t)(m >> 64);
}

static void blocks(uint64_t v[4], const unsigned char *p, size_t n)
{
  uint64_t a = v[0], b = v[1], c = v[2], d = v[3];

  for (; n >= 64; n -= 64, p += 64) {
    a = rotl(a, 29) + mum(load64(p) ^ K[0], load64(p + 8) ^ K[1]);
    b = rotl(b, 29) + mum(load64(p + 16) ^ K[2], load64(p + 24) ^ K[3]);
    c = rotl(c, 29) + mum(load64(p + 32) ^ K[4], load64(p + 40) ^ K[5]);
    d = rotl(d, 29) + mum(load64(p + 48) ^ K[6], load64(p + 56) ^ K[7]);
  }
  v[0] = a, v[1] = b, v[2] = c, v[3] = d;
}

void cdo__sum_init(struct cdo__sum *s)
{
  s->v[0] = K[1];
  s->v[1] = K[3];
  s->v[2] = K[5];
  s->v[3] = K[7];
  s->total = 0;
  s->tail_n = 0;
}

void cdo__sum_update(struct cdo__sum *s, const void *data, size_t n)
{
  const unsigned char *p = data;

  s->total += n;
  if (s->tail_n) {
    size_t take =
        sizeof(s->tail) - s->tail_n < n ? sizeof(s->tail) - s->tail_n : n;

    memcpy(s->tail + s->tail_n, p, take);
    s->tail_n += take;
    p += take;
    n -= take;
    if (s->tail_n < sizeof(s->tail))
      return;
    blocks(s->v, s->tail, sizeof(s->tail));
    s->tail_n = 0;
  }
  blocks(s->v, p, n & ~(size_t)63);
  p += n & ~(size_t)63;
  n &= 63;
  memcpy(s->tail, p, n);
  s->tail_n = n;
}

uint64_t cdo__sum_final(const struct cdo__sum *s)
{
  uint64_t h =
      mum(s->v[0] ^ K[0], s->v[1] ^ K[2]) ^ mum(s->v[2] ^ K[4], s->v[3] ^ K[6]);
  unsigned char last[8];
  size_t i;

  h = mum(h ^ s->total, K[5]);
  for (i = 0; i + 8 <= s->tail_n; i += 8)
    h = mum(h ^ load64(s->tail + i), K[(i / 8) & 7] | 1);
  memset(last, 0, sizeof(last));
  memcpy(last, s->tail + i, s->tail_n - i);
  h = mum(h ^ load64(last) ^ (uint64_t)(s->tail_n - i) << 56, K[7]);
  return mum(h ^ (h >> 29), K[1] | 1);
}

uint64_t cdo__sum(const void *data, size_t n)
{
  struct cdo__sum s;

  cdo__sum_init(&s);
  cdo__sum_update(&s, data, n);
  return cdo__sum_final(&s);
}
