/* SPDX-License-Identifier: MIT */
/*
 * The process engine (spawn.c): input fed through a pipe, output read back
 * in order, exit statuses and signals told, an idle child killed, a program
 * that cannot start reported, and a script without #! run by /bin/sh.
 */
#include "spawn.h"
#include "unit.h"

#include <fcntl.h>
#include <signal.h>

extern char **environ;

struct got {
  struct cdo__buf out, err;
  const char *input;
  int stop_after; /* > 0: on_output closes stdout after this many bytes */
};

static int collect(struct cdo__proc *p, int fd, const char *buf, size_t n)
{
  struct got *g = p->ud;

  unit_ok(cdo__buf_add(fd == 1 ? &g->out : &g->err, buf, n));
  return g->stop_after > 0 && g->out.len >= (size_t)g->stop_after;
}

static ssize_t feed(struct cdo__proc *p, uint64_t off, void *buf, size_t n)
{
  struct got *g = p->ud;
  size_t len = strlen(g->input);

  if (off >= len)
    return 0;
  if (n > len - off)
    n = len - (size_t)off;
  memcpy(buf, g->input + off, n);
  return (ssize_t)n;
}

/* Runs sh -c script with stdin fed from input and stdout/stderr piped. */
static int run_sh(const char *script, struct got *g, struct cdo__proc *p)
{
  static char *argv[] = {"/bin/sh", "-c", NULL, NULL};

  argv[2] = (char *)script;
  memset(p, 0, sizeof(*p));
  p->path = argv[0];
  p->argv = argv;
  p->envp = environ;
  p->fd[0] = g->input ? CDO__PROC_PIPE : CDO__PROC_NULL;
  p->fd[1] = p->fd[2] = CDO__PROC_PIPE;
  p->on_output = collect;
  p->feed = feed;
  p->ud = g;
  return cdo__proc_run(p);
}

static void release(struct got *g)
{
  cdo__buf_release(&g->out);
  cdo__buf_release(&g->err);
}

static void test_feed_and_read(void **state)
{
  struct got g = {.input = "hello\nworld\n"};
  struct cdo__proc p;

  (void)state;
  unit_ok(run_sh("cat; echo oops >&2; exit 3", &g, &p));
  assert_int_equal(p.exit_status, 3);
  assert_int_equal(p.term_signal, 0);
  assert_int_equal(p.timed_out, 0);
  assert_string_equal((char *)g.out.p, "hello\nworld\n");
  assert_string_equal((char *)g.err.p, "oops\n");
  release(&g);
}

/* A large input and output, both ways at once, without a deadlock. */
static void test_large_both_ways(void **state)
{
  struct got g = {0};
  struct cdo__proc p;
  char *big = malloc(3 << 20);

  (void)state;
  assert_non_null(big);
  memset(big, 'x', (3 << 20) - 1);
  big[(3 << 20) - 1] = 0;
  g.input = big;
  for (int i = 0; i < 100; i++)
    big[i * 1000] = 'a' + i % 26;
  unit_ok(run_sh("cat; cat /dev/null >&2", &g, &p));
  assert_int_equal(p.exit_status, 0);
  assert_int_equal(g.out.len, strlen(big));
  assert_memory_equal(g.out.p, big, g.out.len);
  release(&g);
  free(big);
}

static void test_killed_by_signal(void **state)
{
  struct got g = {0};
  struct cdo__proc p;

  (void)state;
  unit_ok(run_sh("kill -TERM $$", &g, &p));
  assert_int_equal(p.term_signal, SIGTERM);
  assert_int_equal(p.exit_status, 0);
  release(&g);
}

/* Nothing moves for idle_ms: the child and what it started are killed. */
static void test_idle_kills_group(void **state)
{
  struct got g = {0};
  struct cdo__proc p;
  static char *argv[] = {"/bin/sh", "-c", "sleep 30 & wait", NULL};

  (void)state;
  memset(&p, 0, sizeof(p));
  p.path = argv[0];
  p.argv = argv;
  p.envp = environ;
  p.fd[0] = CDO__PROC_NULL;
  p.fd[1] = CDO__PROC_PIPE;
  p.fd[2] = CDO__PROC_OURS;
  p.flags = CDO__PROC_SETPGRP;
  p.on_output = collect;
  p.idle_ms = 200;
  p.ud = &g;
  /* The sleep holds stdout open: only killing the group ends the run. */
  unit_ok(cdo__proc_run(&p));
  assert_int_equal(p.timed_out, 1);
  assert_int_equal(p.term_signal, SIGKILL);
  release(&g);
}

/* on_output > 0 closes that pipe: the child's next write fails. */
static void test_stop_reading(void **state)
{
  struct got g = {.stop_after = 1};
  struct cdo__proc p;

  (void)state;
  unit_ok(run_sh("echo a; sleep 0.2; echo b || exit 7; exit 0", &g, &p));
  assert_true(p.exit_status == 7 || p.term_signal == SIGPIPE);
  assert_string_equal((char *)g.out.p, "a\n");
  release(&g);
}

static void test_cannot_start(void **state)
{
  struct got g = {0};
  struct cdo__proc p;
  static char *argv[] = {"/nonexistent/prog", NULL};
  int flags[] = {0, CDO__PROC_DIE_WITH_US};

  (void)state;
  for (size_t i = 0; i < CDO__ARRAY_SIZE(flags); i++) {
    memset(&p, 0, sizeof(p));
    p.path = argv[0];
    p.argv = argv;
    p.envp = environ;
    p.fd[0] = p.fd[1] = p.fd[2] = CDO__PROC_NULL;
    p.flags = flags[i];
    p.ud = &g;
    assert_int_equal(cdo__proc_run(&p), CDO__ERR(ENOENT));
  }
}

/* A script without #! runs with /bin/sh when asked, as execvp does. */
static void test_script_without_shebang(void **state)
{
  char *dir = unit_tmpdir(), *path = unit_path(dir, "script");
  char *argv[] = {path, "arg1", NULL};
  struct got g = {0};
  struct cdo__proc p;

  (void)state;
  unit_write_file(path, "echo \"ran $1\"\n", 14, 0700);
  memset(&p, 0, sizeof(p));
  p.path = path;
  p.argv = argv;
  p.envp = environ;
  p.fd[0] = CDO__PROC_NULL;
  p.fd[1] = p.fd[2] = CDO__PROC_PIPE;
  p.flags = CDO__PROC_SCRIPT;
  p.on_output = collect;
  p.ud = &g;
  unit_ok(cdo__proc_run(&p));
  assert_int_equal(p.exit_status, 0);
  assert_string_equal((char *)g.out.p, "ran arg1\n");
  release(&g);
  free(path);
  unit_rmtree(dir);
}

/*
 * Output read from a fd of ours the child does not write to itself: a
 * pty's master, the slave being the child's stdout and stderr at once.
 */
static void test_read_from_pty(void **state)
{
  static char *argv[] = {"/bin/sh", "-c",
                         "test -t 1 && echo tty; echo err >&2; exit 4", NULL};
  struct got g = {0};
  struct cdo__proc p;
  int master, slave;

  (void)state;
  master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  assert_true(master >= 0);
  assert_int_equal(grantpt(master), 0);
  assert_int_equal(unlockpt(master), 0);
  slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  assert_true(slave >= 0);
  memset(&p, 0, sizeof(p));
  p.path = argv[0];
  p.argv = argv;
  p.envp = environ;
  p.fd[0] = CDO__PROC_NULL;
  p.fd[1] = p.fd[2] = slave;
  p.read_from[1] = master;
  p.on_output = collect;
  p.ud = &g;
  unit_ok(cdo__proc_run(&p));
  assert_int_equal(p.exit_status, 4);
  assert_non_null(g.out.p);
  assert_non_null(strstr((char *)g.out.p, "tty"));
  assert_non_null(strstr((char *)g.out.p, "err"));
  assert_null(g.err.p);
  /* Both are closed: the engine owned them. */
  assert_int_equal(fcntl(slave, F_GETFD), -1);
  assert_int_equal(fcntl(master, F_GETFD), -1);
  release(&g);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_feed_and_read),
      cmocka_unit_test(test_large_both_ways),
      cmocka_unit_test(test_killed_by_signal),
      cmocka_unit_test(test_idle_kills_group),
      cmocka_unit_test(test_stop_reading),
      cmocka_unit_test(test_cannot_start),
      cmocka_unit_test(test_script_without_shebang),
      cmocka_unit_test(test_read_from_pty),
  };

  /* cachedo's own SIGPIPE handling (cmd/main.c): a handler, not the
   * default, so that a write to a closed pipe fails with EPIPE. */
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests_name("spawn", tests, NULL, NULL);
}
