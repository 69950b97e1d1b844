/* SPDX-License-Identifier: MIT */
/*
 * The entry checksum: four independent 64-bit multiply-rotate lanes over
 * 32-byte blocks, folded together with the length at the end. Not meant to
 * resist an attacker (the cache directory is private), only to catch torn,
 * truncated or rotted entries at memory speed.
 */
#include "cdo_int.h"

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL

static inline uint64_t rotl(uint64_t x, int r)
{
  return (x << r) | (x >> (64 - r));
}

static inline uint64_t load64(const unsigned char *p)
{
  uint64_t v;

  memcpy(&v, p, 8);
  return v; /* host order: a cache never leaves its machine's byte order */
}

static inline uint64_t lane(uint64_t acc, uint64_t w)
{
  return rotl(acc + w * P2, 31) * P1;
}

static void blocks(uint64_t v[4], const unsigned char *p, size_t n)
{
  uint64_t a = v[0], b = v[1], c = v[2], d = v[3];

  for (; n >= 32; n -= 32, p += 32) {
    a = lane(a, load64(p));
    b = lane(b, load64(p + 8));
    c = lane(c, load64(p + 16));
    d = lane(d, load64(p + 24));
  }
  v[0] = a, v[1] = b, v[2] = c, v[3] = d;
}

void cdo__sum_init(struct cdo__sum *s)
{
  s->v[0] = P1 + P2;
  s->v[1] = P2;
  s->v[2] = 0;
  s->v[3] = 0 - P1;
  s->total = 0;
  s->tail_n = 0;
}

void cdo__sum_update(struct cdo__sum *s, const void *data, size_t n)
{
  const unsigned char *p = data;

  s->total += n;
  if (s->tail_n) {
    size_t take = 32 - s->tail_n < n ? 32 - s->tail_n : n;

    memcpy(s->tail + s->tail_n, p, take);
    s->tail_n += take;
    p += take;
    n -= take;
    if (s->tail_n < 32)
      return;
    blocks(s->v, s->tail, 32);
    s->tail_n = 0;
  }
  blocks(s->v, p, n & ~(size_t)31);
  p += n & ~(size_t)31;
  n &= 31;
  memcpy(s->tail, p, n);
  s->tail_n = n;
}

uint64_t cdo__sum_final(const struct cdo__sum *s)
{
  uint64_t h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) +
               rotl(s->v[3], 18);
  size_t i;

  h = (h ^ s->total) * P1;
  for (i = 0; i < s->tail_n; i++)
    h = rotl(h ^ (s->tail[i] * P3), 11) * P1;
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

uint64_t cdo__sum(const void *data, size_t n)
{
  struct cdo__sum s;

  cdo__sum_init(&s);
  cdo__sum_update(&s, data, n);
  return cdo__sum_final(&s);
}
