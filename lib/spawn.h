/* SPDX-License-Identifier: MIT */
/*
 * The process engine (spawn.c): starts a child, feeds its stdin, reads its
 * stdout and stderr and reaps it, all on one libuv loop. The wrapped
 * command (run.c) and exec: helpers (store_exec.c) both run through it.
 */
#ifndef CDO_SPAWN_H
#define CDO_SPAWN_H

#include "cdo_int.h"

/* Where one of the child's fds 0, 1 and 2 comes from (or a fd of ours). */
#define CDO__PROC_OURS (-1) /* ours as it is; /dev/null when ours is closed */
#define CDO__PROC_PIPE (-2) /* a pipe: stdin from feed, output to on_output */
#define CDO__PROC_NULL (-3) /* /dev/null */

/* Flags. */
#define CDO__PROC_SETSID  1 /* in a session of its own */
#define CDO__PROC_SETPGRP 2 /* in a process group of its own */
/* Killed when cachedo dies (Linux); starts it with fork, not posix_spawn. */
#define CDO__PROC_DIE_WITH_US 4
/* A file without a #! line runs with /bin/sh, as execvp(3) does. */
#define CDO__PROC_SCRIPT 8

struct cdo__proc {
  /* asked */
  const char *path;
  char *const *argv;
  char *const *envp;
  int fd[3]; /* CDO__PROC_OURS, _PIPE, _NULL or a fd of ours */
  /*
   * For fd 1 or 2 given as a fd of ours: a fd of ours that carries what
   * the child writes there (a pty's master, fd[i] its slave), read like a
   * pipe into on_output; 0: none. The engine then owns both: it closes
   * fd[i] once the child started, read_from[i] when done.
   */
  int read_from[3];
  int flags;
  /*
   * Bytes the child wrote on fd 1 or 2 (a pipe): 0 reads on, > 0 closes
   * that pipe (the child's next write there fails with EPIPE), < 0 is an
   * error: the child is killed and p->error set to it.
   */
  int (*on_output)(struct cdo__proc *p, int fd, const char *buf, size_t n);
  /*
   * Up to n bytes at offset off of the child's input (fd 0 a pipe): how
   * many, 0 at its end, or < 0 (the child is killed, p->error set).
   */
  ssize_t (*feed)(struct cdo__proc *p, uint64_t off, void *buf, size_t n);
  /* Kills the child (its group, with SETSID or SETPGRP) when nothing
   * moved for idle_ms: no byte in or out, not exited. 0: never. */
  int64_t idle_ms;
  /* Called every tick_ms while the child runs; < 0 stops the ticks. */
  int (*tick)(struct cdo__proc *p);
  int64_t tick_ms;
  /* Called once the child started, with p->pid set. May be NULL. */
  void (*started)(struct cdo__proc *p);
  void *ud;
  /* told */
  pid_t pid;       /* while it runs */
  int exit_status; /* 0 when killed by a signal */
  int term_signal; /* the signal that killed it, or 0 */
  int status_lost; /* reaped behind our back: the status is unknown */
  int timed_out;   /* killed after idle_ms */
  int error;       /* of on_output or feed, when they failed */
  /*
   * fd 0 a pipe: the bytes of its input it read. Feeding stops when it
   * exits; what it left in the pipe then does not count.
   */
  uint64_t in_read;
};

/*
 * Runs p to the end of the child. 0 when the child ran (see the told
 * fields), or -errno when it could not be started (of exec(2) too; p->path
 * missing is -ENOENT).
 */
int cdo__proc_run(struct cdo__proc *p);

#endif /* CDO_SPAWN_H */
