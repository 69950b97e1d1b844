/* SPDX-License-Identifier: MIT */
/* The job: one invocation's command, its resolved inputs and its key. */
#ifndef CDO_JOB_H
#define CDO_JOB_H

#include "cdo_int.h"

#include <sys/stat.h>

struct cdo__file_digest {
  const char *path; /* borrowed from the config */
  int absent;
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
  int stdin_fd; /* spooled stdin with --stdin, else -1 */
  unsigned char stdin_digest[32];
  struct cdo__key key;
  cdo_msg_fn msg;
  void *ud;
};

/* Sends one message line through the job's callback (printf-style). */
void cdo__job_msg(struct cdo_job *j, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* CDO_JOB_H */
