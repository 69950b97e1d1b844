/* SPDX-License-Identifier: MIT */
/*
 * floor COMMAND [ARG]...: runs COMMAND (looked up in PATH) with
 * posix_spawnp, waits for it and exits as it did. The least that any
 * wrapper which waits for its command adds, as a baseline for benchmarks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv)
{
  pid_t pid;
  int st, e;

  if (argc < 2) {
    fputs("usage: floor COMMAND [ARG]...\n", stderr);
    return 2;
  }
  e = posix_spawnp(&pid, argv[1], NULL, NULL, argv + 1, environ);
  if (e != 0) {
    fprintf(stderr, "floor: cannot run '%s': %s\n", argv[1], strerror(e));
    return e == ENOENT ? 127 : 126;
  }
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return 125;
  if (WIFSIGNALED(st)) {
    signal(WTERMSIG(st), SIG_DFL);
    raise(WTERMSIG(st));
    return 128 + WTERMSIG(st);
  }
  return WEXITSTATUS(st);
}
