/* SPDX-License-Identifier: MIT */
/*
 * Key vectors through cdo_job_new: what changes the key and what must not,
 * how a missing or unrunnable command is reported, and that explain never
 * shows an environment value.
 */
#include "job.h"
#include "unit.h"

#define ARGV(...) ((char *const[]){__VA_ARGS__, NULL})
#define ENVP(...) ((char *const[]){__VA_ARGS__, NULL})
static char *const no_env[] = {NULL};

/* Each test gets a fresh default config and a private temp dir. */
struct fixture {
  struct cdo_config cfg;
  char *dir;
};

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof(*f));

  if (f == NULL)
    return -1;
  cdo_config_init(&f->cfg);
  f->dir = unit_tmpdir();
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  cdo_config_release(&f->cfg);
  unit_rmtree(f->dir);
  free(f);
  return 0;
}

/* The job for argv and envp under cfg; fails the test when it cannot. */
static struct cdo_job *job(const struct cdo_config *cfg, char *const argv[],
                           char *const envp[])
{
  struct cdo_job *j = NULL;
  char err[300] = "";
  int r = cdo_job_new(&j, cfg, argv, envp, NULL, NULL, err, sizeof(err));

  if (r != 0)
    fail_msg("cdo_job_new: %d: %s", r, err);
  return j;
}

/* The key of argv and envp under cfg, into out. */
static void key(const struct cdo_config *cfg, char *const argv[],
                char *const envp[], char out[65])
{
  struct cdo_job *j = job(cfg, argv, envp);

  memcpy(out, cdo_job_key(j), 65);
  cdo_job_free(j);
}

static int same_key(const struct cdo_config *cfg, char *const a[],
                    char *const ea[], char *const b[], char *const eb[])
{
  char ka[65], kb[65];

  key(cfg, a, ea, ka);
  key(cfg, b, eb, kb);
  return strcmp(ka, kb) == 0;
}

#define assert_same(cfg, a, ea, b, eb) assert_true(same_key(cfg, a, ea, b, eb))
#define assert_differ(cfg, a, ea, b, eb)                                       \
  assert_false(same_key(cfg, a, ea, b, eb))

static void test_key_format(void **state)
{
  struct fixture *f = *state;
  char k[65], again[65];
  size_t i;

  key(&f->cfg, ARGV("echo", "x"), no_env, k);
  assert_int_equal(strlen(k), 64);
  for (i = 0; i < 64; i++)
    assert_non_null(strchr("0123456789abcdef", k[i]));
  key(&f->cfg, ARGV("echo", "x"), no_env, again);
  assert_string_equal(k, again);
}

static void test_argument_boundaries(void **state)
{
  char *const *const argvs[] = {
      ARGV("echo", "a", "b c"),
      ARGV("echo", "a b", "c"),
      ARGV("echo", "a b c"),
      ARGV("echo", "a", "b", "c"),
      ARGV("echo", "ab", ""),
      ARGV("echo", "", "ab"),
      ARGV("echo", "ab"),
      ARGV("echo", "a", "b"),
      ARGV("echo"),
      ARGV("echo", ""),
      ARGV("echo", "", ""),
      ARGV("echo", "a\nb"),
  };
  struct fixture *f = *state;
  char keys[CDO__ARRAY_SIZE(argvs)][65];
  size_t i, k;

  for (i = 0; i < CDO__ARRAY_SIZE(argvs); i++) {
    key(&f->cfg, argvs[i], no_env, keys[i]);
    for (k = 0; k < i; k++)
      if (strcmp(keys[i], keys[k]) == 0)
        fail_msg("argv vectors %zu and %zu share a key", k, i);
  }
}

static void test_env_values(void **state)
{
  struct fixture *f = *state;
  char *const *a = ARGV("env");

  /* Unset and empty differ; so do different values. */
  assert_differ(&f->cfg, a, ENVP("FOO="), a, no_env);
  assert_differ(&f->cfg, a, ENVP("FOO=x"), a, ENVP("FOO="));
  assert_differ(&f->cfg, a, ENVP("FOO=x"), a, ENVP("FOO=y"));
  /* The name/value boundary and the variable boundaries count. */
  assert_differ(&f->cfg, a, ENVP("AB=C"), a, ENVP("A=BC"));
  assert_differ(&f->cfg, a, ENVP("A=1", "B=2"), a, ENVP("A=1B=2"));
  /* Order does not matter. */
  assert_same(&f->cfg, a, ENVP("A=1", "B=2", "C=3"), a,
              ENVP("C=3", "A=1", "B=2"));
  /* Entries without '=' are not variables. */
  assert_same(&f->cfg, a, ENVP("A=1", "junk"), a, ENVP("A=1"));
}

/* A variable with a long name is hashed like any other. */
static void test_env_long_name(void **state)
{
  struct fixture *f = *state;
  char *const *a = ARGV("env");
  char one[400], two[400];

  memset(one, 'N', 300);
  cdo__fmt(one + 300, sizeof(one) - 300, "=1");
  memcpy(two, one, sizeof(two));
  two[301] = '2';
  assert_differ(&f->cfg, a, ENVP(one), a, ENVP(two));
}

/* The first of two same-named variables wins, as getenv() finds it. */
static void test_env_duplicates(void **state)
{
  struct fixture *f = *state;
  char *const *a = ARGV("env");

  assert_same(&f->cfg, a, ENVP("A=1", "B=0", "A=2"), a, ENVP("A=1", "B=0"));
  assert_differ(&f->cfg, a, ENVP("A=1", "A=2"), a, ENVP("A=2", "A=1"));
}

static void test_env_volatile_ignored(void **state)
{
  static const char *const volatiles[] = {
      "_=/usr/bin/env",     "SHLVL=3",        "PWD=/somewhere",
      "OLDPWD=/else",       "COLUMNS=132",    "LINES=50",
      "CACHEDO_FOO=1",      "CACHEDO_TTL=5s", "TMUX_PANE=%3",
      "SSH_TTY=/dev/pts/9",
  };
  struct fixture *f = *state;
  char *const *a = ARGV("env");
  char *envp[3] = {"HOME=/h", NULL, NULL};
  char base[65], k[65];
  size_t i;

  key(&f->cfg, a, envp, base);
  for (i = 0; i < CDO__ARRAY_SIZE(volatiles); i++) {
    envp[1] = (char *)volatiles[i];
    key(&f->cfg, a, envp, k);
    if (strcmp(base, k) != 0)
      fail_msg("volatile '%s' changed the key", volatiles[i]);
  }
  /* A variable merely starting like a volatile one is hashed. */
  envp[1] = "PWDX=1";
  key(&f->cfg, a, envp, k);
  assert_string_not_equal(base, k);
}

static void test_env_allowlist(void **state)
{
  struct fixture *f = *state;
  char *const *a = ARGV("env");
  char err[200];

  unit_ok(cdo_config_set(&f->cfg, "env", "LANG", err, sizeof(err)));
  unit_ok(cdo_config_set(&f->cfg, "env", "LC_*", err, sizeof(err)));
  unit_ok(cdo_config_set(&f->cfg, "env", "PWD", err, sizeof(err)));
  /* Variables outside the list do not count... */
  assert_same(&f->cfg, a, ENVP("LANG=C", "HOME=/a"), a,
              ENVP("LANG=C", "HOME=/b", "X=1"));
  /* ...the listed ones do, globs included, volatile or not. */
  assert_differ(&f->cfg, a, ENVP("LANG=C"), a, ENVP("LANG=fr_FR"));
  assert_differ(&f->cfg, a, ENVP("LANG=C"), a, ENVP("LANG=C", "LC_ALL=C"));
  assert_differ(&f->cfg, a, ENVP("PWD=/a"), a, ENVP("PWD=/b"));
}

static void test_env_ignore(void **state)
{
  struct fixture *f = *state;
  char *const *a = ARGV("env");
  char err[200];

  unit_ok(cdo_config_set(&f->cfg, "ignore-env", "HOME", err, sizeof(err)));
  unit_ok(cdo_config_set(&f->cfg, "ignore-env", "MY_*", err, sizeof(err)));
  assert_same(&f->cfg, a, ENVP("A=1", "HOME=/a", "MY_X=1"), a,
              ENVP("A=1", "HOME=/b", "MY_Y=2"));
  assert_differ(&f->cfg, a, ENVP("A=1"), a, ENVP("A=2"));

  /* An ignore pattern also narrows an allowlist. */
  unit_ok(cdo_config_set(&f->cfg, "env", "MY_*", err, sizeof(err)));
  assert_same(&f->cfg, a, ENVP("MY_A=1"), a, ENVP("MY_A=2"));
}

static void test_no_env(void **state)
{
  struct fixture *f = *state;
  char *const *a = ARGV("env");

  f->cfg.no_env = 1;
  assert_same(&f->cfg, a, ENVP("A=1", "HOME=/x"), a, ENVP("A=2"));
  assert_same(&f->cfg, a, ENVP("A="), a, no_env);
}

static void test_pure(void **state)
{
  struct fixture *f = *state;
  char *const *a = ARGV("env");
  char *const *e = ENVP("A=1");
  char plain[65], pure[65];

  key(&f->cfg, a, e, plain);
  f->cfg.pure = 1;
  key(&f->cfg, a, e, pure);
  assert_string_not_equal(plain, pure);
  /* Under --pure the environment still counts. */
  assert_differ(&f->cfg, a, e, a, ENVP("A=2"));
}

static void test_cwd(void **state)
{
  struct fixture *f = *state;
  char *a_dir = unit_path(f->dir, "a"), *b_dir = unit_path(f->dir, "b");
  char ka[65], kb[65], na[65], nb[65];
  int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  assert_true(here >= 0);
  assert_int_equal(mkdir(a_dir, 0700), 0);
  assert_int_equal(mkdir(b_dir, 0700), 0);
  assert_int_equal(chdir(a_dir), 0);
  key(&f->cfg, ARGV("pwd"), no_env, ka);
  f->cfg.no_cwd = 1;
  key(&f->cfg, ARGV("pwd"), no_env, na);
  assert_int_equal(chdir(b_dir), 0);
  key(&f->cfg, ARGV("pwd"), no_env, nb);
  f->cfg.no_cwd = 0;
  key(&f->cfg, ARGV("pwd"), no_env, kb);
  assert_int_equal(fchdir(here), 0);
  close(here);
  assert_string_not_equal(ka, kb);
  assert_string_equal(na, nb);
  assert_string_not_equal(na, ka);
  free(a_dir);
  free(b_dir);
}

static void test_scope(void **state)
{
  struct fixture *f = *state;
  char none[65], a[65], b[65], err[200];

  key(&f->cfg, ARGV("date"), no_env, none);
  unit_ok(cdo_config_set(&f->cfg, "scope", "a", err, sizeof(err)));
  key(&f->cfg, ARGV("date"), no_env, a);
  unit_ok(cdo_config_set(&f->cfg, "scope", "b", err, sizeof(err)));
  key(&f->cfg, ARGV("date"), no_env, b);
  assert_string_not_equal(none, a);
  assert_string_not_equal(none, b);
  assert_string_not_equal(a, b);
}

static void test_file(void **state)
{
  struct fixture *f = *state;
  char *path = unit_path(f->dir, "input");
  char none[65], absent[65], empty[65], one[65], two[65], again[65];
  char err[200];

  key(&f->cfg, ARGV("cat"), no_env, none);
  unit_ok(cdo_config_set(&f->cfg, "file", path, err, sizeof(err)));
  key(&f->cfg, ARGV("cat"), no_env, absent);
  unit_write_file(path, "", 0, 0600);
  key(&f->cfg, ARGV("cat"), no_env, empty);
  unit_write_file(path, "one", 3, 0600);
  key(&f->cfg, ARGV("cat"), no_env, one);
  unit_write_file(path, "two", 3, 0600);
  key(&f->cfg, ARGV("cat"), no_env, two);
  unit_write_file(path, "one", 3, 0600);
  key(&f->cfg, ARGV("cat"), no_env, again);
  assert_string_not_equal(none, absent);
  assert_string_not_equal(absent, empty);
  assert_string_not_equal(empty, one);
  assert_string_not_equal(one, two);
  assert_string_equal(one, again); /* contents count, not the mtime */
  free(path);
}

/*
 * A directory --file: the key follows its tree's names, types, sizes and
 * mtimes, not contents; a tree past the depth bound is an error naming it.
 */
static void test_file_tree(void **state)
{
  struct fixture *f = *state;
  char *top = unit_path(f->dir, "top"), *a = unit_path(top, "a");
  char *sub = unit_path(top, "sub"), path[4096];
  char k1[65], k2[65], k3[65], k4[65], err[300] = "";
  struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
  struct cdo_job *j = NULL;
  int i;

  assert_int_equal(mkdir(top, 0700), 0);
  unit_write_file(a, "one", 3, 0600);
  assert_int_equal(utimensat(AT_FDCWD, a, ts, 0), 0);
  unit_ok(cdo_config_set(&f->cfg, "file", top, err, sizeof(err)));
  key(&f->cfg, ARGV("cat"), no_env, k1);
  unit_write_file(a, "two", 3, 0600); /* same size, same mtime */
  assert_int_equal(utimensat(AT_FDCWD, a, ts, 0), 0);
  key(&f->cfg, ARGV("cat"), no_env, k2);
  assert_string_equal(k1, k2);
  ts[1].tv_sec++;
  assert_int_equal(utimensat(AT_FDCWD, a, ts, 0), 0);
  key(&f->cfg, ARGV("cat"), no_env, k3);
  assert_string_not_equal(k2, k3);
  assert_int_equal(mkdir(sub, 0700), 0);
  key(&f->cfg, ARGV("cat"), no_env, k4);
  assert_string_not_equal(k3, k4);

  cdo__fmt(path, sizeof(path), "%s", sub);
  for (i = 0; i < CDO__TREE_MAX_DEPTH; i++) {
    size_t n = strlen(path);

    cdo__fmt(path + n, sizeof(path) - n, "/d");
    assert_int_equal(mkdir(path, 0700), 0);
  }
  assert_int_equal(cdo_job_new(&j, &f->cfg, ARGV("cat"), no_env, NULL, NULL,
                               err, sizeof(err)),
                   CDO_EBADVALUE);
  assert_null(j);
  assert_non_null(strstr(err, top));
  assert_non_null(strstr(err, "levels"));
  free(top);
  free(a);
  free(sub);
}

/* The key of cat with --stdin, reading the given bytes from a pipe. */
static void stdin_key(const struct cdo_config *cfg, const char *input,
                      char out[65])
{
  int p[2], saved = dup(0);

  assert_true(saved >= 0);
  assert_int_equal(pipe(p), 0);
  unit_ok(cdo__write_all(p[1], input, strlen(input)));
  close(p[1]);
  assert_int_equal(dup2(p[0], 0), 0);
  close(p[0]);
  key(cfg, ARGV("cat"), no_env, out);
  dup2(saved, 0);
  close(saved);
}

static void test_stdin(void **state)
{
  struct fixture *f = *state;
  char none[65], empty[65], abc[65], abd[65], again[65];

  key(&f->cfg, ARGV("cat"), no_env, none);
  f->cfg.use_stdin = 1;
  stdin_key(&f->cfg, "", empty);
  stdin_key(&f->cfg, "abc", abc);
  stdin_key(&f->cfg, "abd", abd);
  stdin_key(&f->cfg, "abc", again);
  assert_string_not_equal(none, empty);
  assert_string_not_equal(empty, abc);
  assert_string_not_equal(abc, abd);
  assert_string_equal(abc, again);
}

/* A closed stdin reads as empty. */
static void test_stdin_closed(void **state)
{
  struct fixture *f = *state;
  char empty[65], closed[65];
  int saved = dup(0);

  f->cfg.use_stdin = 1;
  stdin_key(&f->cfg, "", empty);
  close(0);
  key(&f->cfg, ARGV("cat"), no_env, closed);
  dup2(saved, 0);
  close(saved);
  assert_string_equal(empty, closed);
}

/* Without --stdin, stdin is neither read nor part of the key. */
static void test_stdin_unused(void **state)
{
  struct fixture *f = *state;
  char abc[65], abd[65];

  stdin_key(&f->cfg, "abc", abc);
  stdin_key(&f->cfg, "abd", abd);
  assert_string_equal(abc, abd);
}

/* The spooled copy of stdin holds exactly what was read, from offset 0. */
static void test_stdin_spooled(void **state)
{
  struct fixture *f = *state;
  struct cdo_job *j;
  unsigned char *got;
  size_t n;
  int p[2], saved = dup(0);

  f->cfg.use_stdin = 1;
  assert_int_equal(pipe(p), 0);
  unit_ok(cdo__write_all(p[1], "line 1\n\0line 2", 14));
  close(p[1]);
  assert_int_equal(dup2(p[0], 0), 0);
  close(p[0]);
  j = job(&f->cfg, ARGV("cat"), no_env);
  dup2(saved, 0);
  close(saved);
  got = unit_read_fd(j->stdin_fd, &n);
  unit_assert_bytes(got, n, "line 1\n\0line 2", 14);
  assert_int_equal(lseek(j->stdin_fd, 0, SEEK_CUR), 0);
  free(got);
  cdo_job_free(j);
}

/* The executable's identity: its size and mtime count. */
static void test_exe_identity(void **state)
{
  struct fixture *f = *state;
  char *path = unit_path(f->dir, "tool"), k1[65], k2[65], k3[65];
  struct timespec t1[2] = {{1000000000, 0}, {1000000000, 0}};
  struct timespec t2[2] = {{1000000000, 0}, {1000000000, 5}};

  unit_write_file(path, "#!/bin/sh\necho 1\n", 17, 0755);
  assert_int_equal(utimensat(AT_FDCWD, path, t1, 0), 0);
  key(&f->cfg, ARGV(path), no_env, k1);
  assert_int_equal(utimensat(AT_FDCWD, path, t2, 0), 0);
  key(&f->cfg, ARGV(path), no_env, k2);
  unit_write_file(path, "#!/bin/sh\necho 22\n", 18, 0755);
  assert_int_equal(utimensat(AT_FDCWD, path, t1, 0), 0);
  key(&f->cfg, ARGV(path), no_env, k3);
  assert_string_not_equal(k1, k2);
  assert_string_not_equal(k1, k3);
  free(path);
}

/* Sets PATH to value (NULL: unset); returns the old one, malloc'd or NULL. */
static char *swap_path(const char *value)
{
  const char *old = getenv("PATH");
  char *copy = old ? strdup(old) : NULL;

  if (value)
    setenv("PATH", value, 1);
  else
    unsetenv("PATH");
  return copy;
}

static void test_exe_not_found(void **state)
{
  struct fixture *f = *state;
  struct cdo_job *j;
  char *missing = unit_path(f->dir, "missing");

  j = job(&f->cfg, ARGV("cachedo-test-no-such-command"), no_env);
  assert_int_equal(j->exe_status, 127);
  assert_non_null(j->exe_err);
  assert_non_null(strstr(j->exe_err, "'cachedo-test-no-such-command'"));
  assert_non_null(strstr(j->exe_err, "not found"));
  cdo_job_free(j);

  j = job(&f->cfg, ARGV(missing), no_env);
  assert_int_equal(j->exe_status, 127);
  assert_non_null(strstr(j->exe_err, missing));
  cdo_job_free(j);
  free(missing);
}

static void test_exe_not_executable(void **state)
{
  struct fixture *f = *state;
  char *path = unit_path(f->dir, "plain"), *old;
  struct cdo_job *j;

  unit_write_file(path, "#!/bin/sh\n", 10, 0644);
  j = job(&f->cfg, ARGV(path), no_env);
  assert_int_equal(j->exe_status, 126);
  assert_non_null(strstr(j->exe_err, path));
  cdo_job_free(j);

  /* A directory cannot run either. */
  j = job(&f->cfg, ARGV(f->dir), no_env);
  assert_int_equal(j->exe_status, 126);
  assert_non_null(strstr(j->exe_err, f->dir));
  cdo_job_free(j);

  /* Found through PATH, but not executable. */
  old = swap_path(f->dir);
  j = job(&f->cfg, ARGV("plain"), no_env);
  free(swap_path(old));
  free(old);
  assert_int_equal(j->exe_status, 126);
  assert_non_null(strstr(j->exe_err, "'plain'"));
  cdo_job_free(j);
  free(path);
}

/* PATH is searched in order: the first executable match wins. */
static void test_exe_path_order(void **state)
{
  struct fixture *f = *state;
  char *a = unit_path(f->dir, "a"), *b = unit_path(f->dir, "b");
  char *a_tool = unit_path(a, "tool"), *b_tool = unit_path(b, "tool");
  char search[9000], *old;
  struct cdo_job *j;

  assert_int_equal(mkdir(a, 0700), 0);
  assert_int_equal(mkdir(b, 0700), 0);
  unit_write_file(a_tool, "#!/bin/sh\n", 10, 0644); /* skipped: not +x */
  unit_write_file(b_tool, "#!/bin/sh\n", 10, 0755);
  cdo__fmt(search, sizeof(search), "%s:%s", a, b);
  old = swap_path(search);
  j = job(&f->cfg, ARGV("tool"), no_env);
  free(swap_path(old));
  free(old);
  assert_int_equal(j->exe_status, 0);
  assert_string_equal(j->exe, b_tool);
  cdo_job_free(j);
  free(a_tool);
  free(b_tool);
  free(a);
  free(b);
}

/* Collects every line cdo_job_explain produces. */
static void collect(void *ud, const char *component, const char *detail)
{
  struct cdo__buf *b = ud;

  unit_ok(cdo__buf_add(b, component, strlen(component)));
  unit_ok(cdo__buf_add(b, ": ", 2));
  unit_ok(cdo__buf_add(b, detail, strlen(detail)));
  unit_ok(cdo__buf_add(b, "\n", 1));
}

static void test_explain_hides_values(void **state)
{
  struct fixture *f = *state;
  struct cdo__buf out = {0};
  struct cdo_job *j;
  char line[100];

  j = job(&f->cfg, ARGV("printenv", "MY_TOKEN"),
          ENVP("MY_TOKEN=hunter2-s3cr3t", "OTHER=also-secret-value"));
  cdo_job_explain(j, NULL, collect, &out);
  assert_non_null(out.p);
  assert_non_null(strstr((char *)out.p, "MY_TOKEN"));
  assert_non_null(strstr((char *)out.p, "OTHER"));
  assert_null(strstr((char *)out.p, "hunter2"));
  assert_null(strstr((char *)out.p, "s3cr3t"));
  assert_null(strstr((char *)out.p, "also-secret-value"));
  cdo__fmt(line, sizeof(line), "key: %s\n", cdo_job_key(j));
  assert_non_null(strstr((char *)out.p, line));
  cdo__buf_release(&out);
  cdo_job_free(j);
}

/* Counts the hashed parts per component label, in walk order. */
struct walked {
  char labels[400];
  size_t parts;
};

static void count_part(void *ud, const struct cdo__key_comp *c,
                       const struct cdo__key_part *p)
{
  struct walked *w = ud;
  size_t n = strlen(w->labels);

  assert_true(p->hashed);
  assert_null(p->shown); /* only when walked to show */
  w->parts++;
  if (n == 0 ||
      strcmp(strrchr(w->labels, ' ') ? strrchr(w->labels, ' ') + 1 : w->labels,
             c->label) != 0)
    cdo__fmt(w->labels + n, sizeof(w->labels) - n, "%s%s", n ? " " : "",
             c->label);
}

/*
 * One table of components drives the key, --explain and the side data:
 * the walk yields every hashed component in the key's order, and
 * --explain names each of them.
 */
static void test_components_walk(void **state)
{
  struct fixture *f = *state;
  struct cdo__buf out = {0};
  struct walked w = {{0}, 0};
  struct cdo_job *j;
  char err[300];

  unit_ok(cdo_config_set(&f->cfg, "scope", "sc", err, sizeof(err)));
  unit_ok(cdo_config_set(&f->cfg, "file", "/nonexistent/f", err, sizeof(err)));
  unit_ok(cdo_config_set(&f->cfg, "pure", "1", err, sizeof(err)));
  j = job(&f->cfg, ARGV("true", "x"), ENVP("A=1", "B=2"));
  cdo__key_walk(j, 0, NULL, count_part, &w);
  assert_string_equal(w.labels, "argv exe cwd env pure file scope");
  assert_int_equal(w.parts, 2 + 1 + 1 + 2 + 1 + 1 + 1);
  cdo_job_explain(j, NULL, collect, &out);
  assert_non_null(strstr((char *)out.p, "\nfile: /nonexistent/f absent\n"));
  assert_non_null(strstr((char *)out.p, "\nscope: sc\n"));
  assert_non_null(strstr((char *)out.p, "\nargv: [1] 'x'\n"));
  assert_non_null(strstr((char *)out.p, "\npure: "));
  assert_string_equal(cdo__key_comp('e')->label, "env");
  assert_null(cdo__key_comp(0));
  cdo__buf_release(&out);
  cdo_job_free(j);
}

/* The explain line of variable name in out ("NAME ..."), malloc'd. */
static char *env_line(const struct cdo__buf *out, const char *name)
{
  char pat[100];
  const char *p, *e;

  cdo__fmt(pat, sizeof(pat), "env: %s ", name);
  p = strstr((const char *)out->p, pat);
  assert_non_null(p);
  e = strchr(p, '\n');
  return strndup(p, (size_t)(e - p));
}

/*
 * Digests are keyed by the cache's salt: the same under one salt, different
 * under another; secret-looking names show only "set"; no salt, no digest.
 */
static void test_explain_salted(void **state)
{
  static const unsigned char salt_a[CDO__SALT_LEN] = "salt of cache A",
                             salt_b[CDO__SALT_LEN] = "salt of cache B";
  static const char *const secret[] = {
      "GITHUB_TOKEN",   "MY_SECRET_X", "DB_PASSWORD", "PASSWD",
      "AWS_ACCESS_KEY", "CREDENTIALS", "auth_header", "npm_authToken"};
  struct fixture *f = *state;
  struct cdo__buf a1 = {0}, a2 = {0}, b = {0}, none = {0};
  struct cdo_job *j;
  char *la1, *la2, *lb, *ln;
  size_t i;

  j = job(&f->cfg, ARGV("true"),
          ENVP("PLAIN=hunter2", "GITHUB_TOKEN=hunter2", "KEYRING=x"));
  cdo__job_explain(j, salt_a, collect, &a1);
  cdo__job_explain(j, salt_a, collect, &a2);
  cdo__job_explain(j, salt_b, collect, &b);
  cdo__job_explain(j, NULL, collect, &none);
  unit_ok(cdo__buf_add(&a1, "", 1)); /* NUL-terminated for strstr */
  unit_ok(cdo__buf_add(&a2, "", 1));
  unit_ok(cdo__buf_add(&b, "", 1));
  unit_ok(cdo__buf_add(&none, "", 1));
  la1 = env_line(&a1, "PLAIN");
  la2 = env_line(&a2, "PLAIN");
  lb = env_line(&b, "PLAIN");
  ln = env_line(&none, "PLAIN");
  assert_string_equal(la1, la2);
  assert_non_null(strstr(la1, "salted:"));
  assert_string_not_equal(la1, lb);
  assert_string_equal(ln, "env: PLAIN set");
  free(la1);
  free(lb);
  la1 = env_line(&a1, "GITHUB_TOKEN");
  assert_string_equal(la1, "env: GITHUB_TOKEN set");
  free(la1);
  la1 = env_line(&a1, "KEYRING"); /* *_KEY is a suffix: KEYRING is not */
  assert_non_null(strstr(la1, "salted:"));
  free(la1);
  free(la2);
  free(ln);
  for (i = 0; i < CDO__ARRAY_SIZE(secret); i++)
    assert_true(cdo__env_secret(secret[i], strlen(secret[i])));
  assert_false(cdo__env_secret("PATH", 4));
  assert_false(cdo__env_secret("KEYBOARD", 8));
  cdo__buf_release(&a1);
  cdo__buf_release(&a2);
  cdo__buf_release(&b);
  cdo__buf_release(&none);
  cdo_job_free(j);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_key_format),
      T(test_argument_boundaries),
      T(test_env_values),
      T(test_env_long_name),
      T(test_env_duplicates),
      T(test_env_volatile_ignored),
      T(test_env_allowlist),
      T(test_env_ignore),
      T(test_no_env),
      T(test_pure),
      T(test_cwd),
      T(test_scope),
      T(test_components_walk),
      T(test_file),
      T(test_file_tree),
      T(test_stdin),
      T(test_stdin_closed),
      T(test_stdin_unused),
      T(test_stdin_spooled),
      T(test_exe_identity),
      T(test_exe_not_found),
      T(test_exe_not_executable),
      T(test_exe_path_order),
      T(test_explain_hides_values),
      T(test_explain_salted),
  };
#undef T

  return cmocka_run_group_tests_name("key", tests, NULL, NULL);
}
