/* SPDX-License-Identifier: MIT */
/*
 * The entry decoder, as every backend's reader uses it: cdo__entry_peek and
 * cdo__entry_verify over a blob of the bytes, for the key the header names
 * (else a wrong key is all it would ever find). The first byte picks how:
 * bit 0 set, the rest as they are; clear, the rest with a trailer computed
 * for them (header and journal framing then get past the checksums, so the
 * journal walk and the replay, to /dev/null, see fuzzed framing too). Bit 1
 * reads, and with a trailer also writes, as a holder of a signing key.
 */
#include "../../lib/entry.h"
#include "fuzz.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#define KEY_OFF  12 /* the header's key: after magic, version, head_len */
#define HEAD_LEN 8  /* offset of head_len */

static const unsigned char sign_key[CDO__SIGN_KEY_LEN] =
    "cachedo fuzz signing key 32 byte";

/* Replays b's journal with fds 1 and 2 on /dev/null. */
static void replay_quietly(struct cdo__blob *b, const struct cdo__meta *m,
                           uint64_t joff)
{
  int out = dup(1), err = dup(2), null = open("/dev/null", O_WRONLY);

  dup2(null, 1);
  dup2(null, 2);
  cdo__entry_replay(b, m, joff);
  dup2(out, 1);
  dup2(err, 2);
  close(out);
  close(err);
  close(null);
}

/* Decodes the n bytes at p (which the blob takes over). */
static void decode(unsigned char *p, size_t n, const unsigned char *mac_key)
{
  struct cdo__blob *b;
  struct cdo__meta m;
  struct cdo__key k = {{0}, {0}};
  uint64_t joff;
  char **argv = NULL;

  if (n >= KEY_OFF + 32)
    memcpy(k.hash, p + KEY_OFF, 32);
  b = cdo__blob_from_mem(p, n);
  if (b == NULL) {
    free(p);
    return;
  }
  if (cdo__entry_peek(b, &m, &k, &argv, &joff) == 0 &&
      cdo__entry_verify(b, &m, joff, mac_key) == 0)
    replay_quietly(b, &m, joff);
  free(argv);
  cdo__blob_free(b);
}

/*
 * data as header + journal (the header's own head_len says where it ends;
 * what does not fit is taken as all header) with a trailer that agrees.
 */
static void with_trailer(const uint8_t *data, size_t size,
                         const unsigned char *mac_key)
{
  unsigned char *p = malloc(size + CDO__TRAILER_LEN + 1), hash[32];
  struct cdo__meta m = {1, 2, 0, 0, 0, 3};
  size_t head = size;

  if (p == NULL)
    return;
  memcpy(p, data, size);
  if (size >= HEAD_LEN + 4) {
    uint32_t h = (uint32_t)data[HEAD_LEN] << 24 |
                 (uint32_t)data[HEAD_LEN + 1] << 16 |
                 (uint32_t)data[HEAD_LEN + 2] << 8 | data[HEAD_LEN + 3];

    if (h <= size)
      head = h;
  }
  m.journal_len = size - head;
  m.journal_sum = cdo__sum(p + head, size - head);
  m.exit_status = size > 0 ? data[0] : 0;
  crypto_generichash(hash, sizeof(hash), p + head, size - head, NULL, 0);
  cdo__entry_trailer(p + size, p, head, &m, mac_key, hash);
  decode(p, size + CDO__TRAILER_LEN, mac_key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const unsigned char *mac_key;
  unsigned char *p;

  if (size == 0)
    return 0;
  mac_key = data[0] & 2 ? sign_key : NULL;
  if (data[0] & 1) {
    p = malloc(size);
    if (p == NULL)
      return 0;
    memcpy(p, data + 1, size - 1);
    decode(p, size - 1, mac_key);
  } else {
    with_trailer(data + 1, size - 1, mac_key);
  }
  return 0;
}
