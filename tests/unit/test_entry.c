/* SPDX-License-Identifier: MIT */
/*
 * The entry codec: round trips through peek, verify and replay for memory,
 * file and callback blobs; every truncation and bit flip is rejected.
 */
#include "unit.h"

#include <signal.h>

/* One journal chunk of a vector; len 0 means strlen(data). */
struct chunk {
  int stream;
  const char *data;
  size_t len;
};

static const struct vector {
  const char *name;
  char *const *argv;
  const char *command; /* argv as cdo__argv_quote writes it */
  int exit_status;
  struct chunk chunks[5]; /* ends at stream 0 */
} vectors[] = {
    {"plain",
     (char *const[]){"echo", "hello world", NULL},
     "echo 'hello world'",
     0,
     {{CDO__STDOUT, "hello world\n", 0}}},
    {"interleaved, empty args",
     (char *const[]){"sh", "-c", "", "x y", "", NULL},
     "sh -c '' 'x y' ''",
     1,
     {{CDO__STDOUT, "a", 0},
      {CDO__STDERR, "b\n", 0},
      {CDO__STDOUT, "c", 0},
      {CDO__STDERR, "d", 0}}},
    {"binary bytes",
     (char *const[]){"\x01\xff\x7f", "tab\there", "\xc3\x28", NULL},
     "'\x01\xff\x7f' 'tab\there' '\xc3\x28'",
     7,
     {{CDO__STDOUT, "\0\0x\0", 4},
      {CDO__STDERR, "\0", 1},
      {CDO__STDOUT, "no newline\xff", 0}}},
    {"empty journal", (char *const[]){"true", NULL}, "true", 0, {{0}}},
    {"only stderr, status 255",
     (char *const[]){"false", NULL},
     "false",
     255,
     {{CDO__STDERR, "oops\n", 0}}},
};

static size_t chunk_len(const struct chunk *c)
{
  return c->len ? c->len : strlen(c->data);
}

static const struct cdo__key unbound; /* the key of entries built here */
static const unsigned char key_a[CDO__SIGN_KEY_LEN] = "signing key A",
                           key_b[CDO__SIGN_KEY_LEN] = "signing key B";

/*
 * Builds vector v's entry, signed with mac_key (NULL: unsigned); *out and
 * *err get what replay must write.
 */
static unsigned char *build_signed(const struct vector *v, size_t *size,
                                   struct cdo__buf *out, struct cdo__buf *err,
                                   const unsigned char *mac_key)
{
  struct unit_entry e;
  unsigned char *bytes;
  const struct chunk *c;

  unit_entry_begin(&e, v->argv);
  for (c = v->chunks; c->stream != 0; c++) {
    unit_entry_chunk(&e, c->stream, c->data, chunk_len(c));
    if (out != NULL)
      unit_ok(cdo__buf_add(c->stream == CDO__STDOUT ? out : err, c->data,
                           chunk_len(c)));
  }
  unit_entry_end(&e, v->exit_status, 1700000000123);
  if (mac_key != NULL) {
    struct cdo__key k = {{0}, {0}};

    unit_entry_bind(&e, &k, mac_key);
  }
  bytes = unit_entry_bytes(&e);
  *size = (size_t)unit_entry_size(&e);
  unit_entry_release(&e);
  return bytes;
}

static unsigned char *build(const struct vector *v, size_t *size,
                            struct cdo__buf *out, struct cdo__buf *err)
{
  return build_signed(v, size, out, err, NULL);
}

/*
 * Peeks, verifies and replays b; checks the metadata against want (NULL:
 * skip) and that replay wrote out and err.
 */
static void check_blob(struct cdo__blob *b, const struct cdo__meta *want,
                       char *const *argv_want, const struct cdo__buf *out,
                       const struct cdo__buf *err)
{
  struct unit_capture cap;
  struct cdo__meta m;
  uint64_t joff;
  char **argv = NULL;
  size_t i;
  int r;

  unit_ok(cdo__entry_peek(b, &m, NULL, &argv, &joff));
  assert_non_null(argv);
  for (i = 0; argv_want[i] != NULL; i++) {
    assert_non_null(argv[i]);
    assert_string_equal(argv[i], argv_want[i]);
  }
  assert_null(argv[i]);
  free(argv);
  if (want != NULL) {
    assert_int_equal(m.created_ms, want->created_ms);
    assert_int_equal(m.duration_ms, want->duration_ms);
    assert_int_equal(m.exit_status, want->exit_status);
    assert_int_equal(m.journal_len, want->journal_len);
  }
  assert_int_equal(joff + m.journal_len + CDO__TRAILER_LEN, b->size);
  unit_ok(cdo__entry_verify(b, &m, joff, NULL));
  unit_capture_begin(&cap);
  r = cdo__entry_replay(b, &m, joff);
  unit_capture_end(&cap);
  unit_ok(r);
  unit_assert_bytes(cap.out, cap.out_len, out->p, out->len);
  unit_assert_bytes(cap.err, cap.err_len, err->p, err->len);
  unit_capture_release(&cap);
}

/* argv quoted for a shell, and read back, boundaries and bytes intact. */
static void test_quote(void **state)
{
  const struct {
    char *const *argv;
    const char *quoted;
  } q[] = {
      {(char *const[]){"sh", "-c", "find / -name \"*.so\" | head -3", NULL},
       "sh -c 'find / -name \"*.so\" | head -3'"},
      {(char *const[]){"a", "b c", NULL}, "a 'b c'"},
      {(char *const[]){"a b", "c", NULL}, "'a b' c"},
      {(char *const[]){"it's", "", "x=1,y@2:3%/-_+.", NULL},
       "'it'\\''s' '' x=1,y@2:3%/-_+."},
      {(char *const[]){"~", "$HOME", "a\tb", "\\", NULL},
       "'~' '$HOME' 'a\tb' '\\'"},
      {(char *const[]){NULL}, ""},
  };
  size_t i, k;

  (void)state;
  for (i = 0; i < CDO__ARRAY_SIZE(vectors); i++) {
    struct cdo__buf b = {0};
    char **back;

    unit_ok(cdo__argv_quote(&b, vectors[i].argv));
    assert_string_equal((char *)b.p, vectors[i].command);
    back = cdo__argv_unquote((char *)b.p);
    for (k = 0; vectors[i].argv[k] != NULL; k++)
      assert_string_equal(back[k], vectors[i].argv[k]);
    assert_null(back[k]);
    free(back);
    cdo__buf_release(&b);
  }
  for (i = 0; i < CDO__ARRAY_SIZE(q); i++) {
    struct cdo__buf b = {0};
    char **back;

    unit_ok(cdo__argv_quote(&b, q[i].argv));
    assert_string_equal((char *)b.p, q[i].quoted);
    back = cdo__argv_unquote((char *)b.p);
    for (k = 0; q[i].argv[k] != NULL; k++)
      assert_string_equal(back[k], q[i].argv[k]);
    assert_null(back[k]);
    free(back);
    cdo__buf_release(&b);
  }
  /* A string quote never wrote (older entries): split at its blanks. */
  {
    char **back = cdo__argv_unquote("  echo  it's ");

    assert_string_equal(back[0], "echo");
    assert_string_equal(back[1], "it's");
    assert_null(back[2]);
    free(back);
  }
}

static void test_round_trip(void **state)
{
  size_t i;

  (void)state;
  for (i = 0; i < CDO__ARRAY_SIZE(vectors); i++) {
    const struct vector *v = &vectors[i];
    struct cdo__buf out = {0}, err = {0};
    struct cdo__meta want = {0};
    struct cdo__blob *b;
    unsigned char *bytes;
    const struct chunk *c;
    size_t size;

    print_message("# vector: %s\n", v->name);
    bytes = build(v, &size, &out, &err);
    want.created_ms = 1700000000123;
    want.duration_ms = 1234;
    want.exit_status = v->exit_status;
    for (c = v->chunks; c->stream != 0; c++)
      want.journal_len += CDO__CHUNK_HEAD + chunk_len(c);

    b = unit_blob_mem(bytes, size);
    check_blob(b, &want, v->argv, &out, &err);
    cdo__blob_free(b);
    b = unit_blob_cb(bytes, size);
    check_blob(b, &want, v->argv, &out, &err);
    cdo__blob_free(b);
    b = unit_blob_fd(bytes, size, 0);
    check_blob(b, &want, v->argv, &out, &err);
    cdo__blob_free(b);

    free(bytes);
    cdo__buf_release(&out);
    cdo__buf_release(&err);
  }
}

/* peek without argv, and a negative exit status survive too. */
static void test_peek_without_argv(void **state)
{
  char *const argv[] = {"x", NULL};
  struct unit_entry e;
  struct cdo__blob *b;
  struct cdo__meta m;
  uint64_t joff;
  unsigned char *bytes;

  (void)state;
  unit_entry_begin(&e, argv);
  unit_entry_end(&e, -1, 5);
  bytes = unit_entry_bytes(&e);
  b = unit_blob_mem(bytes, (size_t)unit_entry_size(&e));
  unit_ok(cdo__entry_peek(b, &m, NULL, NULL, &joff));
  assert_int_equal(m.exit_status, -1);
  assert_int_equal(m.created_ms, 5);
  assert_int_equal(joff, e.head.len);
  cdo__blob_free(b);
  free(bytes);
  unit_entry_release(&e);
}

/*
 * Does peek or verify (with mac_key, or none) reject the blob: corrupt, or
 * for a reader with a key, not validly signed?
 */
static int rejected_by(struct cdo__blob *b, const unsigned char *mac_key)
{
  struct cdo__meta m;
  uint64_t joff;
  char **argv = NULL;
  int r = cdo__entry_peek(b, &m, NULL, &argv, &joff);

  free(argv);
  if (r == 0)
    r = cdo__entry_verify(b, &m, joff, mac_key);
  return r == CDO_ECORRUPT ||
         (mac_key != NULL && (r == CDO_EBADSIG || r == CDO_EUNSIGNED));
}

static int rejected(struct cdo__blob *b)
{
  return rejected_by(b, NULL);
}

static void test_every_truncation(void **state)
{
  unsigned char *bytes;
  size_t size, n;

  (void)state;
  bytes = build(&vectors[1], &size, NULL, NULL);
  for (n = 0; n < size; n++) {
    struct cdo__blob *b = unit_blob_mem(bytes, n);

    if (!rejected(b))
      fail_msg("a truncation to %zu of %zu bytes was accepted", n, size);
    cdo__blob_free(b);
  }
  free(bytes);
}

/*
 * A signed entry read with its key: any flipped bit is rejected. (Without
 * a key, only the signature's own bytes may change unnoticed.)
 */
static void test_every_bit_flip(void **state)
{
  unsigned char *bytes;
  size_t size, bit;

  (void)state;
  bytes = build_signed(&vectors[1], &size, NULL, NULL, key_a);
  for (bit = 0; bit < size * 8; bit++) {
    struct cdo__blob *b;
    size_t byte = bit / 8, mac = size - CDO__TRAILER_LEN + 56;
    int in_mac = byte >= mac && byte < mac + 32;

    bytes[bit / 8] ^= (unsigned char)(1u << bit % 8);
    b = unit_blob_mem(bytes, size);
    if (!rejected_by(b, key_a) || in_mac == rejected(b))
      fail_msg("flipping bit %zu of byte %zu (of %zu) was accepted", bit % 8,
               bit / 8, size);
    cdo__blob_free(b);
    bytes[bit / 8] ^= (unsigned char)(1u << bit % 8);
  }
  free(bytes);
}

/* Bad framing with correct checksums is still rejected by verify. */
static void test_bad_framing(void **state)
{
  static const struct {
    const char *name;
    const char *bytes;
    size_t len;
  } journals[] = {
      {"stream 0", "\0\0\0\0\1x", 6},
      {"stream 3", "\3\0\0\0\1x", 6},
      {"zero-length chunk", "\1\0\0\0\0", 5},
      {"chunk header cut", "\1\0\0\0\1x\2\0\0", 9},
      {"chunk data cut", "\1\0\0\0\12short", 10},
      {"stray byte", "\1\0\0\0\1x\1", 7},
  };
  char *const argv[] = {"cmd", NULL};
  size_t i;

  (void)state;
  for (i = 0; i < CDO__ARRAY_SIZE(journals); i++) {
    struct unit_entry e;
    struct cdo__blob *b;
    unsigned char *bytes;

    unit_entry_begin(&e, argv);
    unit_entry_raw(&e, journals[i].bytes, journals[i].len);
    unit_entry_end(&e, 0, 1);
    bytes = unit_entry_bytes(&e);
    b = unit_blob_mem(bytes, (size_t)unit_entry_size(&e));
    if (!rejected(b))
      fail_msg("journal with %s was accepted", journals[i].name);
    cdo__blob_free(b);
    free(bytes);
    unit_entry_release(&e);
  }
}

/*
 * A journal over 64 KiB, so a file blob takes the mmap and sendfile paths,
 * with a blob offset that is not page-aligned.
 */
static void test_large_blobs_agree(void **state)
{
  char *const argv[] = {"big", "output", NULL};
  struct cdo__buf out = {0}, err = {0};
  unsigned char *data, *bytes;
  struct unit_entry e;
  struct cdo__blob *b;
  size_t size, i, sizes[] = {70000, 1, 65536, 131072, 3, 40000};

  (void)state;
  data = malloc(131072);
  assert_non_null(data);
  unit_entry_begin(&e, argv);
  for (i = 0; i < CDO__ARRAY_SIZE(sizes); i++) {
    int stream = i % 2 ? CDO__STDERR : CDO__STDOUT;

    unit_random(data, sizes[i], i);
    data[0] = 0; /* NULs are data like any other byte */
    unit_entry_chunk(&e, stream, data, sizes[i]);
    unit_ok(cdo__buf_add(stream == CDO__STDOUT ? &out : &err, data, sizes[i]));
  }
  unit_entry_end(&e, 3, 42);
  bytes = unit_entry_bytes(&e);
  size = (size_t)unit_entry_size(&e);
  assert_true(e.meta.journal_len >= 65536);

  b = unit_blob_mem(bytes, size);
  check_blob(b, &e.meta, argv, &out, &err);
  cdo__blob_free(b);
  b = unit_blob_cb(bytes, size);
  check_blob(b, &e.meta, argv, &out, &err);
  cdo__blob_free(b);
  b = unit_blob_fd(bytes, size, 0);
  check_blob(b, &e.meta, argv, &out, &err);
  cdo__blob_free(b);
  b = unit_blob_fd(bytes, size, 5000);
  check_blob(b, &e.meta, argv, &out, &err);
  cdo__blob_free(b);

  /* A flipped journal byte deep in the file is caught on every path. */
  bytes[size / 2] ^= 0x10;
  b = unit_blob_fd(bytes, size, 5000);
  assert_true(rejected(b));
  cdo__blob_free(b);
  b = unit_blob_cb(bytes, size);
  assert_true(rejected(b));
  cdo__blob_free(b);

  free(bytes);
  free(data);
  cdo__buf_release(&out);
  cdo__buf_release(&err);
  unit_entry_release(&e);
}

/* A stdout reader that went away stops stdout only; stderr gets it all. */
static void test_replay_closed_reader(void **state)
{
  char *const argv[] = {"x", NULL};
  unsigned char *data, *bytes;
  struct unit_entry e;
  size_t size, i, kind;

  (void)state;
  signal(SIGPIPE, SIG_IGN);
  data = malloc(100000);
  assert_non_null(data);
  unit_random(data, 100000, 9);
  unit_entry_begin(&e, argv);
  for (i = 0; i < 4; i++)
    unit_entry_chunk(&e, i % 2 ? CDO__STDERR : CDO__STDOUT, data, 25000);
  unit_entry_end(&e, 0, 1);
  bytes = unit_entry_bytes(&e);
  size = (size_t)unit_entry_size(&e);

  for (kind = 0; kind < 2; kind++) {
    struct cdo__blob *b =
        kind ? unit_blob_fd(bytes, size, 0) : unit_blob_mem(bytes, size);
    struct unit_capture cap;
    struct cdo__meta m;
    uint64_t joff;
    int p[2], r;

    unit_ok(cdo__entry_peek(b, &m, NULL, NULL, &joff));
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    unit_capture_begin(&cap);
    dup2(p[1], 1);
    r = cdo__entry_replay(b, &m, joff);
    unit_capture_end(&cap);
    close(p[1]);
    unit_ok(r);
    assert_int_equal(cap.err_len, 50000);
    assert_memory_equal(cap.err, data, 25000);
    assert_memory_equal(cap.err + 25000, data, 25000);
    unit_capture_release(&cap);
    cdo__blob_free(b);
  }
  signal(SIGPIPE, SIG_DFL);
  free(bytes);
  free(data);
  unit_entry_release(&e);
}

/* An argv over the header limit (8 MiB) is refused, not truncated. */
static void test_header_too_big(void **state)
{
  size_t n = (9u << 20);
  char *big = malloc(n + 1);
  struct cdo__buf head = {0};

  (void)state;
  assert_non_null(big);
  memset(big, 'a', n);
  big[n] = 0;
  assert_int_equal(
      cdo__entry_header(&head, &unbound, (char *const[]){"x", big, NULL}),
      CDO_ETOOBIG);
  cdo__buf_release(&head);
  free(big);
}

/* Reads outside a blob are CDO_ECORRUPT on every access path. */
static void test_blob_bounds(void **state)
{
  static const unsigned char bytes[100] = {1, 2, 3};
  struct cdo__blob *blobs[3];
  unsigned char buf[200];
  size_t i;

  (void)state;
  blobs[0] = unit_blob_mem(bytes, sizeof(bytes));
  blobs[1] = unit_blob_cb(bytes, sizeof(bytes));
  blobs[2] = unit_blob_fd(bytes, sizeof(bytes), 10);
  for (i = 0; i < 3; i++) {
    unit_ok(cdo__blob_read(blobs[i], buf, 100, 0));
    assert_memory_equal(buf, bytes, 100);
    unit_ok(cdo__blob_read(blobs[i], buf, 0, 100));
    assert_int_equal(cdo__blob_read(blobs[i], buf, 101, 0), CDO_ECORRUPT);
    assert_int_equal(cdo__blob_read(blobs[i], buf, 1, 100), CDO_ECORRUPT);
    assert_int_equal(cdo__blob_read(blobs[i], buf, 1, UINT64_MAX),
                     CDO_ECORRUPT);
    cdo__blob_free(blobs[i]);
  }
}

/* A source reads as one stream across head, spool and tail. */
static void test_src_read(void **state)
{
  char *const argv[] = {"printf", "abc", NULL};
  unsigned char *whole, buf[7];
  struct unit_entry e;
  uint64_t size, off;

  (void)state;
  unit_entry_begin(&e, argv);
  unit_entry_str(&e, CDO__STDOUT, "abc");
  unit_entry_str(&e, CDO__STDERR, "defgh");
  unit_entry_end(&e, 0, 1);
  size = unit_entry_size(&e);
  whole = unit_entry_bytes(&e);
  assert_memory_equal(whole, e.head.p, e.head.len);
  assert_memory_equal(whole + size - CDO__TRAILER_LEN, e.tail,
                      CDO__TRAILER_LEN);
  /* Odd-sized reads at every offset agree with the whole. */
  for (off = 0; off < size; off++) {
    ssize_t r = cdo__src_read(&e.src, off, buf, sizeof(buf));

    assert_true(r > 0 && (uint64_t)r <= size - off);
    assert_memory_equal(buf, whole + off, (size_t)r);
  }
  assert_int_equal(cdo__src_read(&e.src, size, buf, sizeof(buf)), 0);
  /* A spool that shrank under the reader is an error, not a short entry. */
  assert_int_equal(ftruncate(e.fd, 3), 0);
  assert_int_equal(cdo__src_read(&e.src, e.head.len + 3, buf, 1), CDO_ECORRUPT);
  free(whole);
  unit_entry_release(&e);
}

/* The bytes of a finished writer's entry, malloc'd; *n their count. */
static unsigned char *src_bytes(const struct cdo__src *src, size_t *n)
{
  unsigned char *p;
  size_t off = 0;

  *n = (size_t)cdo__src_size(src);
  p = malloc(*n);
  assert_non_null(p);
  while (off < *n) {
    ssize_t r = cdo__src_read(src, off, p + off, *n - off);

    assert_true(r > 0);
    off += (size_t)r;
  }
  return p;
}

/*
 * The runner's writer merges runs of one stream into one chunk, keeps a
 * small journal in memory after the header, and frames it as the reader
 * expects.
 */
static void test_writer_merges(void **state)
{
  char *const argv[] = {"sh", "-c", "x", NULL};
  const unsigned char want[] = "\1\0\0\0\4abcd\2\0\0\0\1e\1\0\0\0\1f";
  struct cdo__entry_writer w;
  struct cdo__meta m = {.created_ms = 100, .duration_ms = 7, .exit_status = 3},
                   got;
  struct cdo__src src;
  struct cdo__blob *b;
  unsigned char *bytes;
  uint64_t joff;
  size_t n;

  (void)state;
  unit_ok(cdo__entry_begin(&w, &unbound, argv, NULL, 0, NULL));
  unit_ok(cdo__entry_add(&w, CDO__STDOUT, "ab", 2));
  unit_ok(cdo__entry_add(&w, CDO__STDOUT, "cd", 2));
  unit_ok(cdo__entry_add(&w, CDO__STDERR, "e", 1));
  unit_ok(cdo__entry_add(&w, CDO__STDOUT, "f", 1));
  unit_ok(cdo__entry_finish(&w, &m, &src));
  assert_int_equal(src.fd, -1); /* small: no spool */
  assert_int_equal(w.meta.journal_len, sizeof(want) - 1);
  bytes = src_bytes(&src, &n);
  b = unit_blob_mem(bytes, n);
  unit_ok(cdo__entry_peek(b, &got, NULL, NULL, &joff));
  assert_memory_equal(bytes + joff, want, sizeof(want) - 1);
  assert_int_equal(got.created_ms, 100);
  assert_int_equal(got.duration_ms, 7);
  assert_int_equal(got.exit_status, 3);
  unit_ok(cdo__entry_verify(b, &got, joff, NULL));
  cdo__blob_free(b);
  free(bytes);
  cdo__entry_writer_release(&w);
  cdo__entry_writer_release(&w); /* twice is fine */
}

/*
 * A journal larger than one chunk moves to a spool; no chunk exceeds
 * CDO__CHUNK_MAX, and a replay gives back every byte in order.
 */
static void test_writer_spools(void **state)
{
  char *const argv[] = {"big", NULL};
  const size_t piece = 65536, pieces = 40; /* 2.5 MiB of stdout */
  struct cdo__buf out = {0}, err = {0};
  struct cdo__entry_writer w;
  struct cdo__meta m = {.created_ms = 1, .duration_ms = 1};
  struct cdo__src src;
  struct cdo__blob *b;
  unsigned char *data = malloc(piece), *bytes;
  size_t i, n, off;
  uint64_t joff;

  (void)state;
  assert_non_null(data);
  unit_ok(cdo__entry_begin(&w, &unbound, argv, NULL, 0, NULL));
  for (i = 0; i < pieces; i++) {
    unit_random(data, piece, i);
    unit_ok(cdo__entry_add(&w, CDO__STDOUT, data, piece));
    unit_ok(cdo__buf_add(&out, data, piece));
  }
  unit_ok(cdo__entry_add(&w, CDO__STDERR, "tail", 4));
  unit_ok(cdo__buf_add(&err, "tail", 4));
  unit_ok(cdo__entry_finish(&w, &m, &src));
  assert_true(src.fd >= 0);
  assert_int_equal(src.fd_len, w.meta.journal_len);
  bytes = src_bytes(&src, &n);
  b = unit_blob_mem(bytes, n);
  unit_ok(cdo__entry_peek(b, &m, NULL, NULL, &joff));
  for (off = joff; off < joff + m.journal_len;) {
    uint32_t len = cdo__get32(bytes + off + 1);

    assert_true(len > 0 && len <= CDO__CHUNK_MAX);
    off += CDO__CHUNK_HEAD + len;
  }
  assert_int_equal(off, joff + m.journal_len);
  check_blob(b, &m, argv, &out, &err);
  cdo__blob_free(b);
  free(bytes);
  cdo__entry_writer_release(&w);
  cdo__buf_release(&out);
  cdo__buf_release(&err);
  free(data);
}

/* Failures use the --fail-ttl when one is set, else the --ttl. */
static void test_entry_ttl(void **state)
{
  struct cdo_config c;

  (void)state;
  memset(&c, 0, sizeof(c));
  c.ttl_ms = 60000;
  c.fail_ttl_ms = -1;
  assert_int_equal(cdo__entry_ttl(&c, 0), 60000);
  assert_int_equal(cdo__entry_ttl(&c, 1), 60000);
  c.fail_ttl_ms = 0;
  assert_int_equal(cdo__entry_ttl(&c, 0), 60000);
  assert_int_equal(cdo__entry_ttl(&c, 2), 0);
}

/* The displayed command: arguments quoted, empty ones kept. */
static void test_argv_render(void **state)
{
  char *s;

  (void)state;
  s = cdo__argv_render((char *const[]){"a", "", "b c", NULL});
  assert_string_equal(s, "a '' 'b c'");
  free(s);
  s = cdo__argv_render((char *const[]){NULL});
  assert_string_equal(s, "");
  free(s);
}

/* peek and verify as a reader looking for key k, holding mac_key. */
static int read_as(const unsigned char *bytes, size_t size,
                   const struct cdo__key *k, const unsigned char *mac_key)
{
  struct cdo__blob *b = unit_blob_mem(bytes, size);
  struct cdo__meta m;
  uint64_t joff;
  int r = cdo__entry_peek(b, &m, k, NULL, &joff);

  if (r == 0)
    r = cdo__entry_verify(b, &m, joff, mac_key);
  cdo__blob_free(b);
  return r;
}

/* An entry read under another key than its own is corrupt. */
static void test_bound_to_key(void **state)
{
  char *const argv[] = {"echo", "AAA", NULL};
  struct cdo__key k1 = {{1}, {0}}, k2 = {{2}, {0}};
  struct unit_entry e;
  unsigned char *bytes;
  size_t size;

  (void)state;
  unit_entry_begin(&e, argv);
  unit_entry_str(&e, CDO__STDOUT, "AAA\n");
  unit_entry_end(&e, 0, 1);
  unit_entry_bind(&e, &k1, NULL);
  bytes = unit_entry_bytes(&e);
  size = (size_t)unit_entry_size(&e);
  unit_ok(read_as(bytes, size, &k1, NULL));
  unit_ok(read_as(bytes, size, NULL, NULL));
  assert_int_equal(read_as(bytes, size, &k2, NULL), CDO_ECORRUPT);
  k1.hash[31] ^= 1; /* one bit of the key */
  assert_int_equal(read_as(bytes, size, &k1, NULL), CDO_ECORRUPT);
  free(bytes);
  unit_entry_release(&e);
}

/* A reader with a key wants that key's signature; one without ignores it. */
static void test_signatures(void **state)
{
  unsigned char *signed_a, *plain;
  size_t n_signed, n_plain;
  struct cdo__buf out = {0}, err = {0};

  (void)state;
  signed_a = build_signed(&vectors[0], &n_signed, NULL, NULL, key_a);
  plain = build_signed(&vectors[0], &n_plain, &out, &err, NULL);
  assert_int_equal(n_signed, n_plain);
  unit_ok(read_as(signed_a, n_signed, NULL, key_a));
  unit_ok(read_as(signed_a, n_signed, NULL, NULL));
  assert_int_equal(read_as(signed_a, n_signed, NULL, key_b), CDO_EBADSIG);
  assert_int_equal(read_as(plain, n_plain, NULL, key_a), CDO_EUNSIGNED);
  unit_ok(read_as(plain, n_plain, NULL, NULL));
  /* The signature is no copy of the key. */
  assert_null(memmem(signed_a, n_signed, key_a, 13));
  free(signed_a);
  free(plain);
  cdo__buf_release(&out);
  cdo__buf_release(&err);
}

/* The writer signs what it writes when given a key. */
static void test_writer_signs(void **state)
{
  char *const argv[] = {"x", NULL};
  struct cdo__entry_writer w;
  struct cdo__meta m = {0};
  struct cdo__src src;
  unsigned char *bytes;
  size_t n, off;

  (void)state;
  unit_ok(cdo__entry_begin(&w, &unbound, argv, NULL, 0, key_a));
  unit_ok(cdo__entry_add(&w, CDO__STDOUT, "signed\n", 7));
  unit_ok(cdo__entry_finish(&w, &m, &src));
  n = (size_t)cdo__src_size(&src);
  bytes = malloc(n);
  assert_non_null(bytes);
  for (off = 0; off < n;) {
    ssize_t r = cdo__src_read(&src, off, bytes + off, n - off);

    assert_true(r > 0);
    off += (size_t)r;
  }
  unit_ok(read_as(bytes, n, &unbound, key_a));
  assert_int_equal(read_as(bytes, n, &unbound, key_b), CDO_EBADSIG);
  free(bytes);
  cdo__entry_writer_release(&w);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bound_to_key),
      cmocka_unit_test(test_signatures),
      cmocka_unit_test(test_writer_signs),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_quote),
      cmocka_unit_test(test_peek_without_argv),
      cmocka_unit_test(test_every_truncation),
      cmocka_unit_test(test_every_bit_flip),
      cmocka_unit_test(test_bad_framing),
      cmocka_unit_test(test_large_blobs_agree),
      cmocka_unit_test(test_replay_closed_reader),
      cmocka_unit_test(test_header_too_big),
      cmocka_unit_test(test_blob_bounds),
      cmocka_unit_test(test_src_read),
      cmocka_unit_test(test_writer_merges),
      cmocka_unit_test(test_writer_spools),
      cmocka_unit_test(test_entry_ttl),
      cmocka_unit_test(test_argv_render),
  };

  return cmocka_run_group_tests_name("entry", tests, NULL, NULL);
}
