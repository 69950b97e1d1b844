/* SPDX-License-Identifier: MIT */
/*
 * The entry codec (entry.c), both ways: the writer that turns a run's
 * output into the bytes a backend stores, and the reader that checks and
 * replays them. The grammar is at the top of entry.c.
 */
#ifndef CDO_ENTRY_H
#define CDO_ENTRY_H

#include "cdo_int.h"

#include <sodium.h>

/* ---- the format's constants ---------------------------------------------- */

#define CDO__STDOUT      1 /* a chunk's stream byte; also the fd replayed to */
#define CDO__STDERR      2
#define CDO__CHUNK_HEAD  5 /* a chunk's stream:u8 and len:u32 */
#define CDO__TRAILER_LEN 92
/*
 * Output of one stream is merged into chunks of up to CDO__CHUNK_MAX data
 * bytes: large chunks make a large replay a few big sendfile() calls.
 */
#define CDO__CHUNK_MAX (1024 * 1024)

/* What the trailer of an entry says. */
struct cdo__meta {
  int64_t created_ms;
  int64_t duration_ms;
  uint64_t journal_len;
  uint64_t journal_sum;
  int exit_status;
  int64_t expires_ms; /* the writer's TTL (and stale window) ends */
};

/* ---- the bytes of an entry, on their way in and out of a backend ------- */

/*
 * The bytes of an entry to store: head (in memory: the header, and the
 * whole journal when it is small), then fd_len bytes of the spool file fd
 * from offset 0 (fd_len 0: no spool, fd may be -1), then the trailer (in
 * memory). Borrowed by the backends for the length of one put.
 */
struct cdo__src {
  const unsigned char *head;
  size_t head_len;
  int fd;
  uint64_t fd_len;
  const unsigned char *tail;
  size_t tail_len;
};
static inline uint64_t cdo__src_size(const struct cdo__src *s)
{
  return s->head_len + s->fd_len + s->tail_len;
}
/* Reads up to n bytes at off of the concatenation; bytes read or -errno. */
ssize_t cdo__src_read(const struct cdo__src *s, uint64_t off, void *buf,
                      size_t n);

/*
 * A stored entry as a backend hands it back from get. Exactly one access
 * path is set: mem (bytes in memory), fd (bytes at [off, off+size) of a file,
 * which allows mmap and sendfile), or read (a callback for anything else).
 * free releases everything; the blob owns what it points to.
 */
struct cdo__blob {
  uint64_t size;
  const unsigned char *mem;
  int fd;
  uint64_t off;
  int (*read)(struct cdo__blob *b, void *buf, size_t n, uint64_t off);
  /*
   * Optional, for reading without a copy: points *p at the bytes at off and
   * sets *n to how many follow there (1 <= *n <= want). The bytes stay valid
   * until the next call or free. 0, -errno or CDO_ECORRUPT.
   */
  int (*view)(struct cdo__blob *b, uint64_t off, size_t want,
              const unsigned char **p, size_t *n);
  void (*free)(struct cdo__blob *b);
  void *ctx; /* backend's own */
};
/* Exactly n bytes at off of b; 0, -errno or CDO_ECORRUPT. */
int cdo__blob_read(struct cdo__blob *b, void *buf, size_t n, uint64_t off);
void cdo__blob_free(struct cdo__blob *b);
/* A blob over a malloc'd buffer it takes ownership of; NULL on ENOMEM. */
struct cdo__blob *cdo__blob_from_mem(unsigned char *p, size_t n);
/* A blob over a whole file it takes ownership of (fd is closed by free). */
struct cdo__blob *cdo__blob_from_fd(int fd, uint64_t size);

/* ---- writing ------------------------------------------------------------- */

/*
 * An entry being written: begin, add output any number of times, finish.
 * The journal stays in memory up to one chunk, in a buffer that grows with
 * it (a quiet command touches none of it), and moves to an unlinked spool
 * file once it outgrows that, so memory stays bounded whatever the size.
 * After a failure (a negative return) the entry cannot be finished: release
 * it. All fields are the writer's; after finish, head and tail hold what
 * the src points at, and meta what the trailer says.
 */
struct cdo__entry_writer {
  struct cdo__buf head; /* the header; finish appends an in-memory journal */
  size_t head_len;      /* bytes of the header in head */
  int spool;            /* the spool once the journal outgrew memory, or -1 */
  const char *spool_dir;
  unsigned char *jbuf; /* complete chunks, then the chunk being merged */
  size_t jcap;
  size_t jdone; /* bytes of complete chunks in jbuf, not yet in the spool */
  size_t jlen;  /* data bytes of the chunk being merged */
  int jstream;
  int spool_always;
  const char *failed; /* after a failure: what failed, for a message */
  struct cdo__sum sum;
  const unsigned char *mac_key;    /* signing: the key (borrowed), else NULL */
  crypto_generichash_state *jhash; /* signing: BLAKE2b-256 of the journal */
  struct cdo__meta meta;
  unsigned char tail[CDO__TRAILER_LEN];
};

/* With spool_always the journal goes to the spool from its first chunk. */
#define CDO__ENTRY_SPOOL 1

/*
 * Starts an entry of argv, to be stored under key k, whose spool, when it
 * needs one, goes in spool_dir (NULL: $TMPDIR); flags 0 or
 * CDO__ENTRY_SPOOL. With mac_key (CDO__SIGN_KEY_LEN bytes, borrowed until
 * finish; NULL: unsigned) the entry is signed. 0, CDO_ETOOBIG (argv does
 * not fit a header) or -ENOMEM; release the writer in any case.
 */
int cdo__entry_begin(struct cdo__entry_writer *w, const struct cdo__key *k,
                     char *const argv[], const char *spool_dir, int flags,
                     const unsigned char *mac_key);
/*
 * Appends n bytes of output of stream (CDO__STDOUT or CDO__STDERR), merged
 * into the chunk being written while the stream stays the same. 0, or
 * -errno with w->failed saying what failed.
 */
int cdo__entry_add(struct cdo__entry_writer *w, int stream, const void *p,
                   size_t n);
/* Ends the chunk being merged: the next output starts a new chunk. */
int cdo__entry_cut(struct cdo__entry_writer *w);
/*
 * Appends bytes to the journal as they are, framing included (for copying
 * a journal, and for tests that build damaged ones). 0 or -errno.
 */
int cdo__entry_add_raw(struct cdo__entry_writer *w, const void *p, size_t n);
/*
 * Completes the entry with the run's figures (created_ms, duration_ms,
 * exit_status, expires_ms; journal_len and journal_sum are the writer's own)
 * and points *src at its bytes, which the writer owns until release. 0 or
 * -errno.
 */
int cdo__entry_finish(struct cdo__entry_writer *w, const struct cdo__meta *m,
                      struct cdo__src *src);
/* Frees what the writer holds (closes its spool); NULL and twice are fine. */
void cdo__entry_writer_release(struct cdo__entry_writer *w);

/* Encodes the header of an entry stored under k for argv into *b. */
int cdo__entry_header(struct cdo__buf *b, const struct cdo__key *k,
                      char *const argv[]);
/*
 * Encodes the trailer for the header bytes and m into out. With mac_key
 * (CDO__SIGN_KEY_LEN bytes; NULL: unsigned) the entry is signed, which
 * needs journal_hash, the unkeyed BLAKE2b-256 of the journal's bytes.
 */
void cdo__entry_trailer(unsigned char out[CDO__TRAILER_LEN],
                        const unsigned char *head, size_t head_len,
                        const struct cdo__meta *m, const unsigned char *mac_key,
                        const unsigned char journal_hash[32]);

/* ---- reading ------------------------------------------------------------- */

/*
 * Checks everything but the journal: magic, version, lengths, header
 * checksum and, when k is non-NULL, that the entry was stored under k. Fills
 * *m and, when argv is non-NULL, *argv with the command's arguments: a
 * NULL-ended array in one malloc'd block (one free() releases it and its
 * strings). 0 or CDO_ECORRUPT.
 */
int cdo__entry_peek(struct cdo__blob *b, struct cdo__meta *m,
                    const struct cdo__key *k, char ***argv,
                    uint64_t *journal_off);
/*
 * Verifies the journal's checksum and chunk framing (0 or CDO_ECORRUPT)
 * and, with mac_key, the entry's signature: CDO_EUNSIGNED when it has
 * none, CDO_EBADSIG when it does not match.
 */
int cdo__entry_verify(struct cdo__blob *b, const struct cdo__meta *m,
                      uint64_t journal_off, const unsigned char *mac_key);
/*
 * Writes the verified journal to fds 1 and 2 in order. A reader that went
 * away (EPIPE) stops output to that fd only.
 */
int cdo__entry_replay(struct cdo__blob *b, const struct cdo__meta *m,
                      uint64_t journal_off);

/* ---- what an entry means ------------------------------------------------- */

/*
 * How long a result with exit_status stays fresh under config c: the
 * --fail-ttl for failures when set, else the --ttl. Writers and readers
 * both ask here.
 */
int64_t cdo__entry_ttl(const struct cdo_config *c, int exit_status);
/*
 * Appends argv as a shell would read it back: words joined by blanks, a
 * word with any byte outside [A-Za-z0-9_@%+=:,./-] (or empty) in single
 * quotes, a quote inside as '\''. b holds a string after success.
 */
int cdo__argv_quote(struct cdo__buf *b, char *const argv[]);
/*
 * The command of argv as --list and -v show it (cdo__argv_quote),
 * malloc'd; NULL on ENOMEM.
 */
char *cdo__argv_render(char *const argv[]);
/*
 * The inverse of cdo__argv_quote: s split into words, in one malloc'd
 * NULL-ended block (see cdo__entry_peek); a string with an unbalanced quote
 * is split at its blanks. NULL on ENOMEM.
 */
char **cdo__argv_unquote(const char *s);

#endif /* CDO_ENTRY_H */
