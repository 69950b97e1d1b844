/* SPDX-License-Identifier: MIT */
/*
 * cpuid-count PROGRAM [ARG...]: runs PROGRAM under ptrace, one instruction
 * at a time, and prints how many cpuid instructions (0f a2) it executed,
 * then how many instructions in all. For t7004: a musl build of cachedo
 * starts without the cpuid probing of glibc's start-up, each cpuid a trap
 * to the hypervisor in a virtual machine. Exits 2 when it cannot trace.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  long steps = 0, cpuid = 0;
  int st;
  pid_t pid;

  if (argc < 2)
    return 2;
  pid = fork();
  if (pid == 0) {
    ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    execv(argv[1], argv + 1);
    _exit(127);
  }
  if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFSTOPPED(st))
    return 2;
  for (;;) {
    struct user_regs_struct r;
    long word;

    if (ptrace(PTRACE_GETREGS, pid, NULL, &r) < 0)
      return 2;
    errno = 0;
    word = ptrace(PTRACE_PEEKTEXT, pid, (void *)r.rip, NULL);
    if (errno == 0 && (word & 0xffff) == 0xa20f)
      cpuid++;
    steps++;
    if (ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) < 0 ||
        waitpid(pid, &st, 0) < 0)
      return 2;
    if (WIFEXITED(st) || WIFSIGNALED(st))
      break;
  }
  printf("%ld %ld\n", cpuid, steps);
  return 0;
}
