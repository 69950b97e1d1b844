/* SPDX-License-Identifier: MIT */
/* The job: one invocation's command, its resolved inputs and its key. */
#ifndef CDO_JOB_H
#define CDO_JOB_H

#include "entry.h"

#include <sys/stat.h>

struct cdo__file_digest {
  const char *path; /* borrowed from the config */
  int absent;
  int tree;       /* a directory: digest is of its tree's shape (tree.c) */
  size_t entries; /* with tree: how many entries were hashed */
  unsigned char digest[32];
};

struct cdo_job {
  const struct cdo_config *cfg; /* borrowed */
  char *const *argv;            /* borrowed */
  char *exe;                    /* path to execute; NULL when not found */
  char *exe_real;               /* its realpath, for the key */
  struct stat exe_st;
  int exe_status;    /* 0, or 126 / 127 when it cannot run */
  char *exe_err;     /* why, with exe_status */
  char *cwd;         /* NULL with --no-cwd */
  char *uncacheable; /* why this job cannot use the cache, or
                        NULL (e.g. an unreadable working dir) */
  char **env;        /* hashed "NAME=VALUE", sorted, NULL-ended */
  size_t *env_nl;    /* the length of each one's NAME */
  size_t n_env;
  struct cdo__file_digest *files;
  size_t n_files;
  int stdin_fd;              /* spooled stdin with --stdin, else -1 */
  const char *stdin_unkeyed; /* without --stdin: "a pipe", "a socket" or
                                "a regular file" when stdin is one (it
                                may matter but is not in the key) */
  unsigned char stdin_digest[32];
  struct cdo__key key;
  int64_t start_ms;                 /* wall clock when the invocation began */
  struct cdo__upkeep *upkeep;       /* a stored miss's, for cdo_job_upkeep */
  struct cdo__explain_rec *explain; /* made while the command ran */
  cdo_msg_fn msg;
  void *ud;
};

/*
 * One part of a key component (key.c): an argument, a variable, a file, or
 * the component whole.
 */
struct cdo__key_part {
  const char *name; /* a variable's name, a file's path; else NULL */
  size_t name_len;
  const void *v1, *v2; /* the value that decides, in one or two pieces */
  size_t n1, n2;       /* (v1 NULL: a flag, no value) */
  const char *shown;   /* what --explain shows, when walked to show */
  int hashed;          /* 0: shown by --explain only (left out of the key) */
};

/* A component of the key, as key.c's table describes it. */
struct cdo__key_comp {
  unsigned char type; /* its byte in the explain side files; 0: none there */
  const char *label;  /* its name in --explain and in miss notes */
  const char *how[3]; /* a difference in words: in both, only now, only then */
};

typedef void (*cdo__key_part_fn)(void *ud, const struct cdo__key_comp *c,
                                 const struct cdo__key_part *p);
/*
 * Hands every part of j's key to fn, component by component in the order
 * they are hashed; with show, also the parts --explain shows though they
 * are not hashed, each with its text in shown (valid during the call):
 * values there are keyed digests under salt (the cache's, CDO__SALT_LEN
 * bytes), or with salt NULL, and for secret-looking names, only "set".
 */
void cdo__key_walk(const struct cdo_job *j, int show, const unsigned char *salt,
                   cdo__key_part_fn fn, void *ud);
/* The component whose side-file type byte is type, or NULL. */
const struct cdo__key_comp *cdo__key_comp(unsigned char type);
/* SHA-256 of the argv component as the key encodes it: the command's id. */
void cdo__key_argv_digest(const struct cdo_job *j, unsigned char out[32]);

#define CDO__SALT_LEN 32

/*
 * cdo_job_explain() under salt (CDO__SALT_LEN bytes, the cache's; NULL:
 * values show only as "set").
 */
void cdo__job_explain(const struct cdo_job *j, const unsigned char *salt,
                      cdo_explain_fn fn, void *ud);
/* Does the variable name (n bytes) look like it holds a secret? */
int cdo__env_secret(const char *name, size_t n);

/*
 * One run of a job's command (run.c): the command's stdout and stderr go
 * to ours, and with record also into an entry.
 */
struct cdo__run {
  /* asked */
  int record;            /* pipe stdout and stderr through us, journaled */
  const char *spool_dir; /* for a large journal; NULL: $TMPDIR */
  int (*tick)(void *ud); /* every 10 s while it runs; < 0 stops it; may be
                            NULL (renews a lease lock) */
  void *tick_ud;
  /* once the command started, while it runs; may be NULL */
  void (*started)(void *ud);
  void *started_ud;
  /* told */
  int exit_status;
  int term_signal; /* the signal that killed the command, or 0 */
  int interrupted; /* a signal cachedo forwards arrived while it ran */
  int uncached;    /* recording could not be set up: it ran unrecorded */
  int recorded;    /* the journal is whole: src is the entry (w's meta) */
  struct cdo__entry_writer w;
  struct cdo__src src;
  char reason[160]; /* why it was not recorded */
  char error[300];  /* why it could not run */
};
/*
 * Runs j's command to its end, forwarding the signals of SPEC §5 to it
 * once. 0 when it ran; 126 or 127 (the exit status to report, with
 * run->error) when it could not be started. Release run in any case.
 */
int cdo__run(struct cdo_job *j, struct cdo__run *run);
void cdo__run_release(struct cdo__run *run);

/*
 * Finds what j's key is made of (the executable, the working directory,
 * the environment by the policy, files, stdin) and hashes the key (key.c).
 * 0, or a negative code with err filled when it is the user's to fix.
 */
int cdo__key_gather(struct cdo_job *j, char *const envp[], char *err,
                    size_t errlen);

/* Sends one message line through the job's callback (printf-style). */
static inline void cdo__job_msg(struct cdo_job *j, int level, const char *fmt,
                                ...) __attribute__((format(printf, 3, 4)));
static inline void cdo__job_msg(struct cdo_job *j, int level, const char *fmt,
                                ...)
{
  va_list ap;

  va_start(ap, fmt);
  cdo__vmsg(j->msg, j->ud, level, fmt, ap);
  va_end(ap);
}

#endif /* CDO_JOB_H */
