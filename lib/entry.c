/* SPDX-License-Identifier: MIT */
/*
 * The entry codec: the same bytes go into every backend.
 *
 *   entry    = header journal trailer
 *   header   = "CDOE" version:u8(=2) 0:u8 0:u16 head_len:u32 key:byte{32}
 *              argc:u32 { len:u32 byte{len} }{argc}
 *   journal  = { stream:u8(1=stdout|2=stderr) len:u32 byte{len} }*
 *   trailer  = created_ms:u64 duration_ms:u64 journal_len:u64
 *              journal_sum:u64 exit_status:i32 0:u32 expires_ms:u64
 *              check:u64 mac:byte{32} "CDOT"
 *
 * Integers are big-endian. head_len counts the whole header; key is the
 * SHA-256 key the entry was stored under; journal_len is the size of the
 * journal; journal_sum is cdo__sum() of the journal bytes; expires_ms is
 * when the writer's TTL (and stale window) ends, so that a copy into
 * another cache keeps the remaining lifetime; check is cdo__sum() of the
 * header followed by the first 48 trailer bytes. mac is all zero in an
 * unsigned entry; in a signed one it is keyed BLAKE2b-256 (the signing key)
 * of the header, BLAKE2b-256 of the journal and the first 48 trailer
 * bytes. A reader validates every length before using it: an
 * entry whose sizes, magic, version, framing, checksums or key do not agree
 * is CDO_ECORRUPT; a reader holding a signing key also wants a valid mac
 * (else CDO_EUNSIGNED or CDO_EBADSIG).
 */
#include "entry.h"

#include <poll.h>
#include <sys/sendfile.h>
#include <unistd.h>

#define VERSION         2
#define HEAD_FIXED      44 /* through the key; argc follows */
#define KEY_OFF         12
#define CHECK_OFF       48
#define MAC_OFF         56
#define MAGIC_OFF       88
#define HEAD_MAX        (8u << 20)
#define CHECKED_TRAILER 48

ssize_t cdo__src_read(const struct cdo__src *s, uint64_t off, void *buf,
                      size_t n)
{
  if (off < s->head_len) {
    size_t take = s->head_len - off < n ? s->head_len - (size_t)off : n;

    memcpy(buf, s->head + off, take);
    return (ssize_t)take;
  }
  off -= s->head_len;
  if (off < s->fd_len) {
    ssize_t r;

    if (n > s->fd_len - off)
      n = (size_t)(s->fd_len - off);
    do
      r = pread(s->fd, buf, n, (off_t)off);
    while (r < 0 && errno == EINTR);
    if (r < 0)
      return CDO__ERR(errno);
    if (r == 0)
      return CDO_ECORRUPT; /* the spool shrank under us */
    return r;
  }
  off -= s->fd_len;
  if (off >= s->tail_len)
    return 0;
  if (n > s->tail_len - off)
    n = s->tail_len - (size_t)off;
  memcpy(buf, s->tail + off, n);
  return (ssize_t)n;
}

int cdo__blob_read(struct cdo__blob *b, void *buf, size_t n, uint64_t off)
{
  if (off > b->size || n > b->size - off)
    return CDO_ECORRUPT;
  if (b->mem != NULL) {
    memcpy(buf, b->mem + off, n);
    return 0;
  }
  if (b->fd >= 0)
    return cdo__pread_all(b->fd, buf, n, b->off + off);
  return b->read(b, buf, n, off);
}

void cdo__blob_free(struct cdo__blob *b)
{
  if (b != NULL && b->free != NULL)
    b->free(b);
}

static void free_mem_blob(struct cdo__blob *b)
{
  free((void *)b->mem);
  free(b);
}

struct cdo__blob *cdo__blob_from_mem(unsigned char *p, size_t n)
{
  struct cdo__blob *b = calloc(1, sizeof(*b));

  if (b == NULL) {
    free(p);
    return NULL;
  }
  b->size = n;
  b->mem = p;
  b->fd = -1;
  b->free = free_mem_blob;
  return b;
}

static void free_fd_blob(struct cdo__blob *b)
{
  close(b->fd);
  free(b);
}

struct cdo__blob *cdo__blob_from_fd(int fd, uint64_t size)
{
  struct cdo__blob *b = calloc(1, sizeof(*b));

  if (b == NULL) {
    close(fd);
    return NULL;
  }
  b->size = size;
  b->fd = fd;
  b->free = free_fd_blob;
  return b;
}

int cdo__entry_header(struct cdo__buf *b, const struct cdo__key *k,
                      char *const argv[])
{
  size_t argc = 0, i;
  int r;

  while (argv[argc] != NULL)
    argc++;
  r = cdo__buf_add(b, "CDOE", 4);
  r = r ? r : cdo__buf_u8(b, VERSION);
  r = r ? r : cdo__buf_add(b, "\0\0\0", 3);
  r = r ? r : cdo__buf_u32(b, 0); /* head_len, patched below */
  r = r ? r : cdo__buf_add(b, k->hash, sizeof(k->hash));
  r = r ? r : cdo__buf_u32(b, (uint32_t)argc);
  for (i = 0; r == 0 && i < argc; i++) {
    size_t n = strlen(argv[i]);

    r = cdo__buf_u32(b, (uint32_t)n);
    r = r ? r : cdo__buf_add(b, argv[i], n);
  }
  if (r == 0 && b->len > HEAD_MAX)
    r = CDO_ETOOBIG;
  if (r == 0)
    cdo__put32(b->p + 8, (uint32_t)b->len);
  return r;
}

static uint64_t trailer_check(const unsigned char *head, size_t head_len,
                              const unsigned char *trailer)
{
  struct cdo__sum s;

  cdo__sum_init(&s);
  cdo__sum_update(&s, head, head_len);
  cdo__sum_update(&s, trailer, CHECKED_TRAILER);
  return cdo__sum_final(&s);
}

/* The mac of a signed entry: see the grammar. */
static void entry_mac(unsigned char out[32], const unsigned char *mac_key,
                      const unsigned char *head, size_t head_len,
                      const unsigned char journal_hash[32],
                      const unsigned char *trailer)
{
  crypto_generichash_state h;

  crypto_generichash_init(&h, mac_key, CDO__SIGN_KEY_LEN, 32);
  crypto_generichash_update(&h, head, head_len);
  crypto_generichash_update(&h, journal_hash, 32);
  crypto_generichash_update(&h, trailer, CHECKED_TRAILER);
  crypto_generichash_final(&h, out, 32);
}

void cdo__entry_trailer(unsigned char out[CDO__TRAILER_LEN],
                        const unsigned char *head, size_t head_len,
                        const struct cdo__meta *m, const unsigned char *mac_key,
                        const unsigned char journal_hash[32])
{
  cdo__put64(out, (uint64_t)m->created_ms);
  cdo__put64(out + 8, (uint64_t)m->duration_ms);
  cdo__put64(out + 16, m->journal_len);
  cdo__put64(out + 24, m->journal_sum);
  cdo__put32(out + 32, (uint32_t)m->exit_status);
  cdo__put32(out + 36, 0);
  cdo__put64(out + 40, (uint64_t)m->expires_ms);
  cdo__put64(out + CHECK_OFF, trailer_check(head, head_len, out));
  if (mac_key != NULL)
    entry_mac(out + MAC_OFF, mac_key, head, head_len, journal_hash, out);
  else
    memset(out + MAC_OFF, 0, 32);
  memcpy(out + MAGIC_OFF, "CDOT", 4);
}

/* ---- the writer ---------------------------------------------------------- */

static int writer_fail(struct cdo__entry_writer *w, const char *what, int r)
{
  w->failed = what;
  return r;
}

int cdo__entry_begin(struct cdo__entry_writer *w, const struct cdo__key *k,
                     char *const argv[], const char *spool_dir, int flags,
                     const unsigned char *mac_key)
{
  int r;

  memset(w, 0, sizeof(*w));
  w->spool = -1;
  w->spool_dir = spool_dir;
  w->spool_always = (flags & CDO__ENTRY_SPOOL) != 0;
  cdo__sum_init(&w->sum);
  w->mac_key = mac_key;
  if (mac_key != NULL) {
    /* The state wants 64-byte alignment, more than malloc promises. */
    w->jhash = aligned_alloc(64, sizeof(*w->jhash));
    if (w->jhash == NULL)
      return writer_fail(w, "out of memory", CDO__ERR(ENOMEM));
    crypto_generichash_init(w->jhash, NULL, 0, 32);
  }
  r = cdo__entry_header(&w->head, k, argv);
  if (r < 0)
    return writer_fail(w, "cannot encode the command", r);
  w->head_len = w->head.len;
  return 0;
}

/* Moves the complete chunks to the spool, which it creates first. */
static int writer_spill(struct cdo__entry_writer *w)
{
  int r;

  if (w->spool < 0) {
    r = cdo__tmpfile(w->spool_dir);
    if (r < 0)
      return writer_fail(w, "cannot create a spool file", r);
    w->spool = r;
  }
  r = cdo__write_all(w->spool, w->jbuf, w->jdone);
  if (r < 0)
    return writer_fail(w, "cannot write the spool", r);
  if (w->jlen > 0)
    memmove(w->jbuf, w->jbuf + w->jdone, CDO__CHUNK_HEAD + w->jlen);
  w->jdone = 0;
  return 0;
}

/* Completes the chunk being merged: its header, the checksum, the length. */
static void writer_close_chunk(struct cdo__entry_writer *w)
{
  unsigned char *c = w->jbuf + w->jdone;
  size_t n = CDO__CHUNK_HEAD + w->jlen;

  if (w->jlen == 0)
    return;
  c[0] = (unsigned char)w->jstream;
  cdo__put32(c + 1, (uint32_t)w->jlen);
  cdo__sum_update(&w->sum, c, n);
  if (w->jhash != NULL)
    crypto_generichash_update(w->jhash, c, n);
  w->meta.journal_len += n;
  w->jdone += n;
  w->jlen = 0;
}

/* Makes the journal buffer hold need bytes: doubles it, up to max. */
static int writer_grow(struct cdo__entry_writer *w, size_t need, size_t max)
{
  size_t cap = 2 * w->jcap;
  unsigned char *p;

  if (cap < need)
    cap = need;
  if (cap > max)
    cap = max;
  p = realloc(w->jbuf, cap);
  if (p == NULL)
    return writer_fail(w, "out of memory", CDO__ERR(ENOMEM));
  w->jbuf = p;
  w->jcap = cap;
  return 0;
}

/* Appends n <= CDO__CHUNK_MAX bytes of stream. */
static int writer_add(struct cdo__entry_writer *w, int stream,
                      const unsigned char *p, size_t n)
{
  const size_t max = CDO__CHUNK_HEAD + CDO__CHUNK_MAX;
  size_t need;
  int r;

  if (w->jlen > 0 && (w->jstream != stream || w->jlen + n > CDO__CHUNK_MAX))
    writer_close_chunk(w);
  /* At most one chunk's worth in memory. */
  need = w->jdone + CDO__CHUNK_HEAD + w->jlen + n;
  if (need > max && w->jdone > 0) {
    r = writer_spill(w);
    if (r < 0)
      return r;
    need = CDO__CHUNK_HEAD + w->jlen + n;
  }
  if (need > w->jcap && (r = writer_grow(w, need, max)) < 0)
    return r;
  w->jstream = stream;
  memcpy(w->jbuf + w->jdone + CDO__CHUNK_HEAD + w->jlen, p, n);
  w->jlen += n;
  return 0;
}

int cdo__entry_add(struct cdo__entry_writer *w, int stream, const void *p,
                   size_t n)
{
  const unsigned char *c = p;

  while (n > 0) {
    size_t take = n < CDO__CHUNK_MAX ? n : CDO__CHUNK_MAX;
    int r = writer_add(w, stream, c, take);

    if (r < 0)
      return r;
    c += take;
    n -= take;
  }
  return 0;
}

int cdo__entry_cut(struct cdo__entry_writer *w)
{
  writer_close_chunk(w);
  return w->spool_always && w->jdone > 0 ? writer_spill(w) : 0;
}

int cdo__entry_add_raw(struct cdo__entry_writer *w, const void *p, size_t n)
{
  int r = cdo__entry_cut(w);

  if (r == 0 && w->jdone > 0)
    r = writer_spill(w);
  if (r == 0 && w->spool < 0) {
    r = cdo__tmpfile(w->spool_dir);
    if (r < 0)
      return writer_fail(w, "cannot create a spool file", r);
    w->spool = r;
    r = 0;
  }
  if (r == 0 && n > 0)
    r = cdo__write_all(w->spool, p, n);
  if (r < 0)
    return writer_fail(w, "cannot write the spool", r);
  if (n > 0)
    cdo__sum_update(&w->sum, p, n);
  if (n > 0 && w->jhash != NULL)
    crypto_generichash_update(w->jhash, p, n);
  w->meta.journal_len += n;
  return 0;
}

int cdo__entry_finish(struct cdo__entry_writer *w, const struct cdo__meta *m,
                      struct cdo__src *src)
{
  unsigned char jhash[32] = {0};
  int r = cdo__entry_cut(w);

  /* The journal is all in jbuf unless it outgrew memory, then all spooled. */
  if (r == 0 && w->spool >= 0 && w->jdone > 0)
    r = writer_spill(w);
  w->meta.created_ms = m->created_ms;
  w->meta.duration_ms = m->duration_ms;
  w->meta.exit_status = m->exit_status;
  w->meta.expires_ms = m->expires_ms;
  w->meta.journal_sum = cdo__sum_final(&w->sum);
  if (w->jhash != NULL)
    crypto_generichash_final(w->jhash, jhash, sizeof(jhash));
  cdo__entry_trailer(w->tail, w->head.p, w->head_len, &w->meta, w->mac_key,
                     jhash);
  /* A journal that stayed in memory follows the header there. */
  if (r == 0 && w->spool < 0 && w->jdone > 0) {
    r = cdo__buf_add(&w->head, w->jbuf, w->jdone);
    if (r < 0)
      return writer_fail(w, "out of memory", r);
    w->jdone = 0;
  }
  if (r < 0)
    return r;
  src->head = w->head.p;
  src->head_len = w->head.len;
  src->fd = w->spool;
  src->fd_len = w->spool >= 0 ? w->meta.journal_len : 0;
  src->tail = w->tail;
  src->tail_len = sizeof(w->tail);
  return 0;
}

void cdo__entry_writer_release(struct cdo__entry_writer *w)
{
  if (w == NULL)
    return;
  cdo__buf_release(&w->head);
  if (w->spool >= 0) {
    if (ftruncate(w->spool, 0) < 0) {
      /* nothing to do: the spool is unlinked and goes with its fd */
    }
    close(w->spool);
  }
  free(w->jbuf);
  free(w->jhash);
  w->jhash = NULL;
  w->jbuf = NULL;
  w->jcap = w->jdone = w->jlen = 0;
  w->spool = -1;
}

/* ---- what an entry means ------------------------------------------------- */

int64_t cdo__entry_ttl(const struct cdo_config *c, int exit_status)
{
  return exit_status != 0 && c->fail_ttl_ms >= 0 ? c->fail_ttl_ms : c->ttl_ms;
}

/* The header's argv as one malloc'd, NULL-ended array (see entry_peek). */
static int header_argv(const unsigned char *h, size_t n, char ***out)
{
  size_t off = HEAD_FIXED + 4, argc = cdo__get32(h + HEAD_FIXED), i;
  char **v, *s;

  if (argc > n)
    return CDO_ECORRUPT;
  /* Every string fits in the header's bytes, with its NUL. */
  v = malloc((argc + 1) * sizeof(*v) + n + argc + 1);
  if (v == NULL)
    return CDO__ERR(ENOMEM);
  s = (char *)(v + argc + 1);
  for (i = 0; i < argc; i++) {
    size_t l;

    if (n - off < 4)
      goto bad;
    l = cdo__get32(h + off);
    off += 4;
    if (l > n - off || memchr(h + off, 0, l) != NULL)
      goto bad;
    v[i] = s;
    memcpy(s, h + off, l);
    s[l] = 0;
    s += l + 1;
    off += l;
  }
  if (off != n)
    goto bad;
  v[argc] = NULL;
  *out = v;
  return 0;
bad:
  free(v);
  return CDO_ECORRUPT;
}

/* Bytes an argument can hold unquoted in a shell word. */
static int shell_safe(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || strchr("_@%+=:,./-", c) != NULL;
}

int cdo__argv_quote(struct cdo__buf *b, char *const argv[])
{
  size_t i, k;
  int r = 0;

  for (i = 0; r == 0 && argv[i] != NULL; i++) {
    const char *a = argv[i];
    size_t n = strlen(a);

    if (i > 0)
      r = cdo__buf_add(b, " ", 1);
    for (k = 0; k < n && shell_safe((unsigned char)a[k]); k++)
      ;
    if (r < 0 || (n > 0 && k == n)) {
      r = r ? r : cdo__buf_add(b, a, n);
      continue;
    }
    r = cdo__buf_add(b, "'", 1);
    for (k = 0; r == 0 && k < n; k++)
      r = a[k] == '\'' ? cdo__buf_add(b, "'\\''", 4)
                       : cdo__buf_add(b, a + k, 1);
    r = r ? r : cdo__buf_add(b, "'", 1);
  }
  if (r == 0 && b->p == NULL)
    r = cdo__buf_add(b, "", 0);
  return r;
}

/* Splits s at blanks outside quotes into words in out (NUL-separated). */
static int unquote_words(const char *s, char *out, size_t *argc)
{
  int in_word = 0;

  *argc = 0;
  for (; *s; s++) {
    if (*s == ' ') {
      if (in_word)
        *out++ = 0;
      in_word = 0;
      continue;
    }
    if (!in_word)
      (*argc)++;
    in_word = 1;
    if (*s == '\'') {
      for (s++; *s && *s != '\''; s++)
        *out++ = *s;
      if (*s == 0)
        return -1;
    } else if (*s == '\\' && s[1] != 0) {
      *out++ = *++s;
    } else {
      *out++ = *s;
    }
  }
  if (in_word)
    *out = 0;
  return 0;
}

char **cdo__argv_unquote(const char *s)
{
  size_t n = strlen(s), argc, i;
  char *words = malloc(n + 1), *w, **v;

  if (words == NULL)
    return NULL;
  if (unquote_words(s, words, &argc) < 0) {
    /* Not written by cdo__argv_quote: its words as they stand. */
    const char *p = s;

    for (argc = 0, w = words; *(p += strspn(p, " ")) != 0; argc++) {
      size_t l = strcspn(p, " ");

      memcpy(w, p, l);
      w[l] = 0;
      w += l + 1;
      p += l;
    }
  }
  v = malloc((argc + 1) * sizeof(*v) + n + 1);
  if (v == NULL) {
    free(words);
    return NULL;
  }
  w = (char *)(v + argc + 1);
  memcpy(w, words, n + 1);
  free(words);
  for (i = 0; i < argc; i++) {
    v[i] = w;
    w += strlen(w) + 1;
  }
  v[argc] = NULL;
  return v;
}

char *cdo__argv_render(char *const argv[])
{
  struct cdo__buf b = {0};

  if (cdo__argv_quote(&b, argv) < 0) {
    cdo__buf_release(&b);
    return NULL;
  }
  return (char *)b.p;
}

int cdo__entry_peek(struct cdo__blob *b, struct cdo__meta *m,
                    const struct cdo__key *k, char ***argv,
                    uint64_t *journal_off)
{
  unsigned char fixed[HEAD_FIXED], tr[CDO__TRAILER_LEN], small[512];
  unsigned char *head = small;
  uint32_t head_len;
  int r;

  if (argv)
    *argv = NULL;
  if (b->size < HEAD_FIXED + 4 + CDO__TRAILER_LEN)
    return CDO_ECORRUPT;
  r = cdo__blob_read(b, fixed, HEAD_FIXED, 0);
  if (r == 0)
    r = cdo__blob_read(b, tr, CDO__TRAILER_LEN, b->size - CDO__TRAILER_LEN);
  if (r < 0)
    return r == CDO_ECORRUPT || r == CDO__ERR(ENOMEM) ? r : CDO_ECORRUPT;
  head_len = cdo__get32(fixed + 8);
  if (memcmp(fixed, "CDOE", 4) != 0 || fixed[4] != VERSION ||
      memcmp(tr + MAGIC_OFF, "CDOT", 4) != 0 || head_len < HEAD_FIXED + 4 ||
      head_len > HEAD_MAX || head_len > b->size - CDO__TRAILER_LEN)
    return CDO_ECORRUPT;
  m->created_ms = (int64_t)cdo__get64(tr);
  m->duration_ms = (int64_t)cdo__get64(tr + 8);
  m->journal_len = cdo__get64(tr + 16);
  m->journal_sum = cdo__get64(tr + 24);
  m->exit_status = (int)(int32_t)cdo__get32(tr + 32);
  m->expires_ms = (int64_t)cdo__get64(tr + 40);
  if (m->journal_len != b->size - CDO__TRAILER_LEN - head_len)
    return CDO_ECORRUPT;
  if (b->mem != NULL) {
    head = (unsigned char *)b->mem;
  } else if (head_len > sizeof(small)) {
    head = malloc(head_len);
    if (head == NULL)
      return CDO__ERR(ENOMEM);
  }
  if (head != b->mem)
    r = cdo__blob_read(b, head, head_len, 0);
  if (r == 0 && trailer_check(head, head_len, tr) != cdo__get64(tr + CHECK_OFF))
    r = CDO_ECORRUPT;
  /* Stored under another key (moved or copied there): not this entry. */
  if (r == 0 && k != NULL &&
      memcmp(head + KEY_OFF, k->hash, sizeof(k->hash)) != 0)
    r = CDO_ECORRUPT;
  if (r == 0 && argv != NULL)
    r = header_argv(head, head_len, argv);
  if (head != small && head != b->mem)
    free(head);
  *journal_off = head_len;
  return r < 0 && r != CDO__ERR(ENOMEM) ? CDO_ECORRUPT : r;
}

/*
 * Walks journal bytes fed in arbitrary pieces, checking the framing and
 * handing each run of data to emit (NULL: check only).
 */
struct walk {
  unsigned char hdr[CDO__CHUNK_HEAD];
  size_t hdr_n;
  uint64_t left; /* data bytes left in the current chunk */
  int stream;
  int (*emit)(struct walk *w, const unsigned char *p, size_t n);
  crypto_generichash_state *hash; /* non-NULL: hashes the bytes walked */
  int closed[3];                  /* fds whose reader went away */
};

static int walk_feed(struct walk *w, const unsigned char *p, size_t n)
{
  while (n > 0) {
    if (w->left == 0) {
      size_t take =
          CDO__CHUNK_HEAD - w->hdr_n < n ? CDO__CHUNK_HEAD - w->hdr_n : n;

      memcpy(w->hdr + w->hdr_n, p, take);
      w->hdr_n += take;
      p += take;
      n -= take;
      if (w->hdr_n < CDO__CHUNK_HEAD)
        break;
      w->hdr_n = 0;
      w->stream = w->hdr[0];
      w->left = cdo__get32(w->hdr + 1);
      if ((w->stream != CDO__STDOUT && w->stream != CDO__STDERR) ||
          w->left == 0)
        return CDO_ECORRUPT;
    } else {
      size_t take = w->left < n ? (size_t)w->left : n;
      int r = w->emit ? w->emit(w, p, take) : 0;

      if (r < 0)
        return r;
      w->left -= take;
      p += take;
      n -= take;
    }
  }
  return 0;
}

static int walk_done(const struct walk *w)
{
  return w->left == 0 && w->hdr_n == 0 ? 0 : CDO_ECORRUPT;
}

/*
 * Feeds [off, off + len) of b through walker w, and through sum s when s is
 * non-NULL. A blob that can show its bytes in place (mem, view) is walked
 * without copying; others are read a piece at a time into a buffer that
 * stays in the CPU cache, so memory stays flat whatever the entry's size.
 */
#define PIECE ((size_t)256 << 10)

static int walk_piece(struct walk *w, struct cdo__sum *s,
                      const unsigned char *p, size_t n)
{
  if (s)
    cdo__sum_update(s, p, n);
  if (w->hash)
    crypto_generichash_update(w->hash, p, n);
  return walk_feed(w, p, n);
}

static int walk_blob(struct cdo__blob *b, uint64_t off, uint64_t len,
                     struct walk *w, struct cdo__sum *s)
{
  unsigned char *buf;
  int r = 0;

  if (b->mem != NULL)
    return walk_piece(w, s, b->mem + off, (size_t)len);
  if (b->view != NULL) {
    while (len > 0) {
      const unsigned char *p = NULL;
      size_t n = 0;

      r = b->view(b, off, len < SIZE_MAX ? (size_t)len : SIZE_MAX, &p, &n);
      if (r == 0 && (n == 0 || n > len))
        r = CDO_ECORRUPT;
      if (r == 0)
        r = walk_piece(w, s, p, n);
      if (r < 0)
        return r;
      off += n;
      len -= n;
    }
    return 0;
  }
  buf = cdo__piece_alloc(PIECE);
  if (buf == NULL)
    return CDO__ERR(ENOMEM);
  while (r == 0 && len > 0) {
    size_t n = len < PIECE ? (size_t)len : PIECE;

    r = cdo__blob_read(b, buf, n, off);
    if (r == 0)
      r = walk_piece(w, s, buf, n);
    off += n;
    len -= n;
  }
  cdo__piece_free(buf);
  return r;
}

/*
 * Checks the mac of a signed entry against mac_key, given the BLAKE2b-256
 * of its journal: 0, CDO_EUNSIGNED, CDO_EBADSIG or a read error.
 */
static int check_mac(struct cdo__blob *b, uint64_t journal_off,
                     const unsigned char *mac_key,
                     const unsigned char journal_hash[32])
{
  static const unsigned char zero[32];
  unsigned char tr[CDO__TRAILER_LEN], mac[32], *head;
  int r;

  r = cdo__blob_read(b, tr, sizeof(tr), b->size - sizeof(tr));
  if (r < 0)
    return r;
  if (sodium_memcmp(tr + MAC_OFF, zero, 32) == 0)
    return CDO_EUNSIGNED;
  head = malloc((size_t)journal_off);
  if (head == NULL)
    return CDO__ERR(ENOMEM);
  r = cdo__blob_read(b, head, (size_t)journal_off, 0);
  if (r == 0) {
    entry_mac(mac, mac_key, head, (size_t)journal_off, journal_hash, tr);
    if (crypto_verify_32(mac, tr + MAC_OFF) != 0)
      r = CDO_EBADSIG;
  }
  free(head);
  return r;
}

int cdo__entry_verify(struct cdo__blob *b, const struct cdo__meta *m,
                      uint64_t journal_off, const unsigned char *mac_key)
{
  crypto_generichash_state jh;
  unsigned char journal_hash[32];
  struct walk w = {0};
  struct cdo__sum s;
  int r;

  cdo__sum_init(&s);
  if (mac_key != NULL) {
    crypto_generichash_init(&jh, NULL, 0, 32);
    w.hash = &jh;
  }
  r = walk_blob(b, journal_off, m->journal_len, &w, &s);
  if (r == 0)
    r = walk_done(&w);
  if (r == 0 && cdo__sum_final(&s) != m->journal_sum)
    r = CDO_ECORRUPT;
  if (r == 0 && mac_key != NULL) {
    crypto_generichash_final(&jh, journal_hash, 32);
    r = check_mac(b, journal_off, mac_key, journal_hash);
    if (r == CDO_EUNSIGNED || r == CDO_EBADSIG)
      return r;
  }
  return r == CDO__ERR(ENOMEM) ? r : (r < 0 ? CDO_ECORRUPT : 0);
}

static int emit_write(struct walk *w, const unsigned char *p, size_t n)
{
  int r;

  if (w->closed[w->stream])
    return 0;
  r = cdo__write_all(w->stream, p, n);
  if (r < 0)
    w->closed[w->stream] = 1; /* EPIPE, EBADF: that reader is gone */
  return 0;
}

/* Replays an fd blob chunk by chunk, with sendfile for the data. */
static int replay_fd(struct cdo__blob *b, uint64_t off, uint64_t end)
{
  int closed[3] = {0, 0, 0};
  unsigned char hdr[CDO__CHUNK_HEAD];

  while (off < end) {
    int r = cdo__pread_all(b->fd, hdr, sizeof(hdr), b->off + off), fd;
    uint64_t left;
    off_t pos;

    if (r < 0)
      return r;
    fd = hdr[0];
    left = cdo__get32(hdr + 1);
    if ((fd != CDO__STDOUT && fd != CDO__STDERR) ||
        left + CDO__CHUNK_HEAD > end - off)
      return CDO_ECORRUPT; /* the file changed since it was verified */
    off += CDO__CHUNK_HEAD;
    pos = (off_t)(b->off + off);
    off += left;
    while (!closed[fd] && left > 0) {
      ssize_t w = sendfile(fd, b->fd, &pos, (size_t)left);

      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0 && (errno == EINVAL || errno == ENOSYS)) {
        unsigned char buf[65536];
        size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);

        r = cdo__pread_all(b->fd, buf, n, (uint64_t)pos);
        if (r < 0)
          return r;
        if (cdo__write_all(fd, buf, n) < 0)
          closed[fd] = 1;
        pos += (off_t)n;
        left -= n;
        continue;
      }
      if (w < 0 && errno == EAGAIN) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};

        poll(&pfd, 1, -1);
        continue;
      }
      if (w == 0)
        return CDO_ECORRUPT; /* the file shrank since it was verified */
      if (w < 0) {
        closed[fd] = 1; /* EPIPE, EBADF: that reader is gone */
        break;
      }
      left -= (uint64_t)w;
    }
  }
  return 0;
}

int cdo__entry_replay(struct cdo__blob *b, const struct cdo__meta *m,
                      uint64_t journal_off)
{
  struct walk w = {.emit = emit_write};

  if (b->mem == NULL && b->fd >= 0 && m->journal_len >= 65536)
    return replay_fd(b, journal_off, journal_off + m->journal_len);
  return walk_blob(b, journal_off, m->journal_len, &w, NULL);
}
