/* SPDX-License-Identifier: MIT */
/*
 * fill: writes many real entries into a cache through libcachedo, for the
 * scale benchmarks (bench/run.sh scale).
 *
 *   fill URL N [FIRST]
 *
 * Stores entries FIRST .. FIRST+N-1 (FIRST defaults to 0). Entry i is the
 * result of `echo fill-<i> <padding>` (exit 0, about 200 bytes of stdout),
 * stored under the SHA-256 of "cachedo-bench-fill <i>", created i ms after
 * a point N+FIRST ms in the past (so a higher i is newer: the
 * least recently used are the lowest), fresh for a week. Every entry is a
 * valid one, encoded by the library's codec and written by the backend's
 * put, as a miss would write it (in batches, as eviction deletes); only
 * the command is not run.
 */
#include "store_int.h"

#include <inttypes.h>
#include <sodium.h>

#define PAD                                                                    \
  "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"             \
  "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"             \
  "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

static void key_of(uint64_t i, struct cdo__key *k)
{
  static const char hex[] = "0123456789abcdef";
  char name[64];
  int n = snprintf(name, sizeof(name), "cachedo-bench-fill %" PRIu64, i);
  size_t b;

  crypto_hash_sha256(k->hash, (const unsigned char *)name, (size_t)n);
  for (b = 0; b < 32; b++) {
    k->hex[2 * b] = hex[k->hash[b] >> 4];
    k->hex[2 * b + 1] = hex[k->hash[b] & 15];
  }
  k->hex[64] = 0;
}

/* Stores entry i, created at created_ms, with the library's entry writer. */
static int put_one(struct cdo_store *s, uint64_t i, int64_t created_ms)
{
  char word[32], out[256], command[300];
  char *argv[] = {"echo", word, PAD, NULL};
  struct cdo__entry_writer w;
  struct cdo__meta m = {0};
  struct cdo__put_info info;
  struct cdo__src src;
  struct cdo__key k;
  int n, r;

  snprintf(word, sizeof(word), "fill-%" PRIu64, i);
  n = snprintf(out, sizeof(out), "%s %s\n", word, PAD);
  snprintf(command, sizeof(command), "echo %s %s", word, PAD);
  key_of(i, &k);
  memset(&w, 0, sizeof(w));
  r = cdo__entry_begin(&w, &k, argv, NULL, 0, NULL);
  if (r == 0)
    r = cdo__entry_add(&w, CDO__STDOUT, out, (size_t)n);
  m.created_ms = created_ms;
  m.duration_ms = 100;
  m.expires_ms = created_ms + 7 * 86400000LL;
  if (r == 0)
    r = cdo__entry_finish(&w, &m, &src);
  if (r == 0) {
    info.created_ms = created_ms;
    info.expires_ms = m.expires_ms;
    info.duration_ms = m.duration_ms;
    info.exit_status = 0;
    info.command = command;
    info.scope = NULL;
    r = cdo__store_put(s, &k, &src, &info);
  }
  cdo__entry_writer_release(&w);
  return r;
}

int main(int argc, char **argv)
{
  struct cdo_config cfg;
  struct cdo_store *s = NULL;
  uint64_t n, first = 0, i;
  int64_t start;
  char err[512];
  int r;

  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: fill URL N [FIRST]\n");
    return 2;
  }
  n = strtoull(argv[2], NULL, 10);
  if (argc == 4)
    first = strtoull(argv[3], NULL, 10);
  if (sodium_init() < 0)
    return 1;
  cdo_config_init(&cfg);
  if (cdo_config_set(&cfg, "cache", argv[1], err, sizeof(err)) < 0 ||
      cdo_store_open(&s, &cfg, err, sizeof(err)) < 0) {
    fprintf(stderr, "fill: %s\n", err);
    return 1;
  }
  start = cdo__now_ms() - (int64_t)(first + n);
  r = cdo__store_batch(s, 1);
  for (i = first; i < first + n && r == 0; i++) {
    r = put_one(s, i, start + (int64_t)i);
    if (r == 0 && i + 1 == first + n)
      r = cdo__store_batch(s, 0);
    if (r < 0) {
      fprintf(stderr, "fill: entry %" PRIu64 ": %s\n", i,
              cdo_store_errmsg(s)[0] ? cdo_store_errmsg(s) : cdo_strerror(r));
      cdo_store_close(s);
      return 1;
    }
  }
  cdo_store_close(s);
  cdo_config_release(&cfg);
  return 0;
}
