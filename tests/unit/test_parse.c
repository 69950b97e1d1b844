/* SPDX-License-Identifier: MIT */
/*
 * Value parsers and formatters (durations, sizes) and the settings layer:
 * cdo_config_set, config files, CACHEDO_* variables.
 */
#include "unit.h"

#include <inttypes.h>

extern char **environ;

/* ---- durations and sizes ------------------------------------------------- */

static const struct {
  const char *in;
  int64_t ms;
} good_durations[] = {
    {"0", 0},    /* accepted here; > 0 is the config's rule */
    {"1", 1000}, /* bare number: seconds */
    {"30", 30000},
    {"007", 7000},
    {"500ms", 500},
    {"0ms", 0},
    {"5s", 5000},
    {"5m", 300000},
    {"2h", 7200000},
    {"1d", 86400000},
    {"1w", 604800000},
    /* The limit is 100 years (of 365 days), so sums of times never overflow. */
    {"3153600000000ms", INT64_C(3153600000000)},
    {"3153600000s", INT64_C(3153600000000)},
    {"36500d", INT64_C(3153600000000)},
    {"5214w", INT64_C(3153427200000)},
    /* Compound, from the largest unit down. */
    {"1h30m", 5400000},
    {"1d2h3m4s5ms", 93784005},
    {"2m30s", 150000},
    {"1w1d", 691200000},
    /* Decimals, rounded to the millisecond. */
    {"1.5h", 5400000},
    {"0.5s", 500},
    {"1.5", 1500},
    {"2.25m", 135000},
    {"1.5ms", 2},
    {"0.123456789s", 123},
    {"1.5h15m", 6300000},
    /* Long unit names. */
    {"90min", 5400000},
    {"2hours", 7200000},
    {"1hour", 3600000},
    {"3sec", 3000},
    {"10secs", 10000},
    {"1second", 1000},
    {"5seconds", 5000},
    {"1minute", 60000},
    {"2mins", 120000},
    {"1day", 86400000},
    {"2days", 172800000},
    {"1week", 604800000},
    {"2weeks", 1209600000},
    {"2hr", 7200000},
    {"250msec", 250},
    {"1hour30min", 5400000},
    {"36499d23h59m59s999ms", INT64_C(3153599999999)},
};

static const char *const bad_durations[] = {
    "",
    "abc",
    "-5",
    "+5",
    "5x",
    "5 s",
    " 5",
    "5s ",
    "s",
    "5S", /* units are case-sensitive */
    "5M", /* M is not minutes (nor months) */
    "5H",
    "5Min",
    "5.s",
    ".5s",
    "5..5s",
    "1.5.5s",
    "5,5s",
    "0.1234567891s", /* at most 9 fraction digits */
    "30m1h",         /* a compound goes from the largest unit down */
    "1h1h",
    "1m1m",
    "1h30", /* no bare number after a unit */
    "1h 30m",
    "1h-30m",
    "5minutess",
    "5hourz",
    "5mn",
    "36500d1ms", /* the cap holds for compounds */
    "36499d24h1ms",
    "ms",
    "5ms5",
    "5sm",
    "3153600000001ms", /* just over 100 years */
    "36501d",
    "5215w",
    "9223372036854775807ms", /* INT64_MAX */
    "9223372036854775808ms", /* INT64_MAX + 1 */
    "9223372036854776s",     /* overflows in the multiplication */
    "15250284453w",
    "99999999999999999999", /* overflows the digits themselves */
};

static void test_duration_good(void **state)
{
  size_t i;

  (void)state;
  for (i = 0; i < CDO__ARRAY_SIZE(good_durations); i++) {
    int64_t ms = -1;
    int r = cdo_parse_duration(good_durations[i].in, &ms);

    if (r != 0 || ms != good_durations[i].ms)
      fail_msg("duration '%s': %d, %" PRId64 " ms", good_durations[i].in, r,
               ms);
  }
}

static void test_duration_bad(void **state)
{
  size_t i;

  (void)state;
  for (i = 0; i < CDO__ARRAY_SIZE(bad_durations); i++) {
    int64_t ms = 12345;
    int r = cdo_parse_duration(bad_durations[i], &ms);

    if (r != CDO_EBADVALUE || ms != 12345) /* *out untouched */
      fail_msg("duration '%s' accepted: %d, %" PRId64 " ms", bad_durations[i],
               r, ms);
  }
  assert_int_equal(cdo_parse_duration(NULL, NULL), CDO_EBADVALUE);
}

static const struct {
  const char *in;
  uint64_t n;
} good_sizes[] = {
    {"0", 0},
    {"123", 123},
    {"5B", 5},
    {"1K", 1024},
    {"1k", 1024},
    {"64K", 65536},
    {"1KB", 1024},
    {"10MiB", 10485760},
    {"256M", 268435456},
    {"2G", 2147483648u},
    {"1T", 1099511627776u},
    {"16777215T", 18446742974197923840u},
    /* Decimals with a unit, rounded to the byte. */
    {"1.5G", 1610612736u},
    {"1.5M", 1572864},
    {"0.5K", 512},
    {"2.5KiB", 2560},
    {"1.0", 1},
    {"0.001K", 1},
    {"1.5T", 1649267441664u},
};

static const char *const bad_sizes[] = {
    "",
    "abc",
    "-5",
    "5x",
    "1.5", /* a fraction of a byte */
    "1.5B",
    "1.M",
    ".5M",
    "1.5.5M",
    "M",
    "1MM",
    "1 M",
    " 1M",
    "1M ",
    "1E",
    "1BB",
    "1iB",
    "16777216T",            /* 2^64 bytes */
    "18446744073709551616", /* 2^64 */
    "99999999999999999999",
};

static void test_size_good(void **state)
{
  size_t i;

  (void)state;
  for (i = 0; i < CDO__ARRAY_SIZE(good_sizes); i++) {
    uint64_t n = 1;
    int r = cdo_parse_size(good_sizes[i].in, &n);

    if (r != 0 || n != good_sizes[i].n)
      fail_msg("size '%s': %d, %" PRIu64, good_sizes[i].in, r, n);
  }
}

static void test_size_bad(void **state)
{
  size_t i;

  (void)state;
  for (i = 0; i < CDO__ARRAY_SIZE(bad_sizes); i++) {
    uint64_t n = 12345;
    int r = cdo_parse_size(bad_sizes[i], &n);

    if (r != CDO_EBADVALUE || n != 12345)
      fail_msg("size '%s' accepted: %d, %" PRIu64, bad_sizes[i], r, n);
  }
  assert_int_equal(cdo_parse_size(NULL, NULL), CDO_EBADVALUE);
}

static void test_format_duration(void **state)
{
  static const struct {
    int64_t ms;
    const char *out;
  } v[] = {
      {0, "0ms"},          {-5, "0ms"},         {999, "999ms"},
      {1000, "1s"},        {1999, "1s"},        {12000, "12s"},
      {60000, "1m"},       {184000, "3m 4s"},   {3599999, "59m 59s"},
      {3600000, "1h"},     {7500000, "2h 5m"},  {86400000, "1d"},
      {97200000, "1d 3h"}, {90061000, "1d 1h"}, {864000000, "10d"},
  };
  char buf[64];
  size_t i;

  (void)state;
  for (i = 0; i < CDO__ARRAY_SIZE(v); i++) {
    cdo_format_duration(v[i].ms, buf, sizeof(buf));
    if (strcmp(buf, v[i].out) != 0)
      fail_msg("%" PRId64 " ms: '%s', expected '%s'", v[i].ms, buf, v[i].out);
  }
  cdo_format_duration(184000, buf, 4); /* truncated, still terminated */
  assert_string_equal(buf, "3m ");
}

static void test_format_size(void **state)
{
  static const struct {
    uint64_t n;
    const char *out;
  } v[] = {
      {0, "0 B"},
      {512, "512 B"},
      {1023, "1023 B"},
      {1024, "1.0 KiB"},
      {1536, "1.5 KiB"},
      {10240, "10 KiB"},
      {(uint64_t)200 << 20, "200 MiB"},
      {(uint64_t)3 << 30, "3.0 GiB"},
      {(uint64_t)5 << 40, "5.0 TiB"},
      {(uint64_t)2048 << 40, "2048 TiB"},
  };
  char buf[64];
  size_t i;

  (void)state;
  for (i = 0; i < CDO__ARRAY_SIZE(v); i++) {
    cdo_format_size(v[i].n, buf, sizeof(buf));
    if (strcmp(buf, v[i].out) != 0)
      fail_msg("%" PRIu64 " bytes: '%s', expected '%s'", v[i].n, buf, v[i].out);
  }
}

/* ---- cdo_config_set ------------------------------------------------------ */

static int setup_config(void **state)
{
  struct cdo_config *c = malloc(sizeof(*c));

  if (c == NULL)
    return -1;
  cdo_config_init(c);
  *state = c;
  return 0;
}

static int teardown_config(void **state)
{
  cdo_config_release(*state);
  free(*state);
  return 0;
}

/* A bad value: CDO_EBADVALUE, and err names the value and what is expected. */
static const struct {
  const char *name, *value, *expect;
} bad_settings[] = {
    {"ttl", "0", "duration > 0"},
    {"ttl", "abc", "duration"},
    {"ttl", "-5", "duration"},
    {"ttl", "5x", "duration"},
    {"ttl", "", "duration"},
    {"fail-ttl", "soon", "duration"},
    {"stale", "1.5x", "duration"},
    {"stale", "30m1h", "duration"},
    {"lock-timeout", "-1", "duration"},
    {"max-output", "lots", "size"},
    {"max-output", "1.5", "size"},
    {"max-size", "-1", "size"},
    {"cache", "bogus:x", "unknown scheme"},
    {"cache", "sqlite:", "sqlite:PATH"},
    {"cache", "/just/a/path", "did you mean sqlite:/just/a/path?"},
    {"cache", "redis:/h", "did you mean redis://h?"},
    {"cache", "", "sqlite:"},
    {"scope", "", "non-empty"},
    {"env", "", "non-empty"},
    {"ignore-env", "", "non-empty"},
    {"file", "", "non-empty"},
    {"no-env", "maybe", "one of 1, 0, true"},
    {"pure", "2", "one of"},
    {"verbose", "yess", "one of"},
    {"no-cache-failures", "perhaps", "one of"},
    {"redis-timeout", "soon", "duration > 0"},
    {"redis-breaker", "1.5x", "duration"},
    {"exec-timeout", "0", "duration > 0"},
};

static void test_set_bad(void **state)
{
  struct cdo_config *c = *state;
  char err[400], quoted[100];
  size_t i;

  for (i = 0; i < CDO__ARRAY_SIZE(bad_settings); i++) {
    int r;

    err[0] = 0;
    r = cdo_config_set(c, bad_settings[i].name, bad_settings[i].value, err,
                       sizeof(err));
    cdo__fmt(quoted, sizeof(quoted), "'%s'", bad_settings[i].value);
    if (r != CDO_EBADVALUE || strstr(err, quoted) == NULL ||
        strstr(err, bad_settings[i].expect) == NULL ||
        strstr(err, "(null)") != NULL)
      fail_msg("%s %s: %d, '%s' (expected %s and '%s')", bad_settings[i].name,
               quoted, r, err, quoted, bad_settings[i].expect);
  }
  /* Nothing was changed by the bad values. */
  assert_int_equal(c->ttl_ms, 60000);
  assert_int_equal(c->fail_ttl_ms, -1);
  assert_int_equal(c->max_output, (uint64_t)256 << 20);
  assert_null(c->cache);
  assert_null(c->scope);
  assert_int_equal(c->env.n, 0);
  assert_int_equal(c->no_env, 0);
}

/* Every setting that takes a value says so when given none. */
static void test_set_missing_value_and_unknown(void **state)
{
  static const char *const valued[] = {
      "ttl",      "fail-ttl", "stale", "lock-timeout", "cache", "max-output",
      "max-size", "scope",    "env",   "ignore-env",   "file",
  };
  struct cdo_config *c = *state;
  char err[400];
  size_t i;

  for (i = 0; i < CDO__ARRAY_SIZE(valued); i++) {
    int r = cdo_config_set(c, valued[i], NULL, err, sizeof(err));

    if (r != CDO_EBADVALUE || strstr(err, "missing value: expected ") == NULL ||
        strstr(err, "(null)") != NULL)
      fail_msg("%s without a value: %d, '%s'", valued[i], r, err);
  }
  assert_int_equal(cdo_config_set(c, "no-such-thing", "1", err, sizeof(err)),
                   -ENOENT);
  assert_non_null(strstr(err, "'no-such-thing'"));
}

static void test_set_good(void **state)
{
  struct cdo_config *c = *state;
  char err[400];

#define SET(name, value)                                                       \
  unit_ok(cdo_config_set(c, name, value, err, sizeof(err)))
  SET("ttl", "30s");
  assert_int_equal(c->ttl_ms, 30000);
  SET("ttl", "1");
  assert_int_equal(c->ttl_ms, 1000);
  SET("fail-ttl", "0");
  assert_int_equal(c->fail_ttl_ms, 0);
  SET("fail-ttl", "500ms");
  assert_int_equal(c->fail_ttl_ms, 500);
  SET("stale", "5m");
  assert_int_equal(c->stale_ms, 300000);
  SET("lock-timeout", "0");
  assert_int_equal(c->lock_timeout_ms, 0);
  SET("max-output", "64K");
  assert_int_equal(c->max_output, 65536);
  SET("max-size", "2G");
  assert_int_equal(c->max_size, (uint64_t)2 << 30);
  SET("cache", "sqlite:/tmp/x.db");
  assert_string_equal(c->cache, "sqlite:/tmp/x.db");
  SET("scope", "project one");
  assert_string_equal(c->scope, "project one");
  SET("no-cache-failures", NULL);
  assert_int_equal(c->fail_ttl_ms, 0);

  /* Flags: no value means on; every spelling of on and off. */
  SET("no-env", NULL);
  assert_int_equal(c->no_env, 1);
  SET("no-env", "off");
  assert_int_equal(c->no_env, 0);
  SET("no-env", "TRUE");
  assert_int_equal(c->no_env, 1);
  SET("no-env", "no");
  assert_int_equal(c->no_env, 0);
  SET("pure", "yes");
  assert_int_equal(c->pure, 1);
  SET("no-cwd", "on");
  assert_int_equal(c->no_cwd, 1);
  SET("stdin", "1");
  assert_int_equal(c->use_stdin, 1);
  SET("refresh", NULL);
  assert_int_equal(c->refresh, 1);
  SET("no-cache", "false");
  assert_int_equal(c->no_cache, 0);
  SET("verbose", NULL);
  assert_int_equal(c->verbose, 1);
  SET("quiet", "0");
  assert_int_equal(c->quiet, 0);

  /* A list from the command line is one value per option, spaces kept. */
  SET("env", "LANG");
  SET("env", "LC_*");
  SET("file", "a file.txt");
  assert_int_equal(c->env.n, 2);
  assert_string_equal(c->env.v[0], "LANG");
  assert_string_equal(c->env.v[1], "LC_*");
  assert_null(c->env.v[2]);
  assert_int_equal(c->files.n, 1);
  assert_string_equal(c->files.v[0], "a file.txt");
#undef SET
}

/* A list set in a later layer replaces the earlier one; in one layer, adds. */
static void test_layers(void **state)
{
  struct cdo_config *c = *state;
  char err[400];

  unit_ok(cdo_config_set(c, "env", "A", err, sizeof(err)));
  unit_ok(cdo_config_set(c, "ignore-env", "X", err, sizeof(err)));
  cdo_config_layer(c);
  unit_ok(cdo_config_set(c, "env", "B", err, sizeof(err)));
  unit_ok(cdo_config_set(c, "env", "C", err, sizeof(err)));
  assert_int_equal(c->env.n, 2);
  assert_string_equal(c->env.v[0], "B");
  assert_string_equal(c->env.v[1], "C");
  /* A list not given in the new layer keeps its earlier value. */
  assert_int_equal(c->ignore_env.n, 1);
  assert_string_equal(c->ignore_env.v[0], "X");
  /* Scalars simply take the latest value. */
  unit_ok(cdo_config_set(c, "ttl", "1m", err, sizeof(err)));
  cdo_config_layer(c);
  unit_ok(cdo_config_set(c, "ttl", "2m", err, sizeof(err)));
  assert_int_equal(c->ttl_ms, 120000);
}

static void test_release_resets(void **state)
{
  struct cdo_config *c = *state;
  char err[400];

  unit_ok(cdo_config_set(c, "scope", "s", err, sizeof(err)));
  unit_ok(cdo_config_set(c, "env", "E", err, sizeof(err)));
  unit_ok(cdo_config_set(c, "ttl", "5s", err, sizeof(err)));
  cdo_config_release(c);
  assert_null(c->scope);
  assert_int_equal(c->env.n, 0);
  assert_int_equal(c->ttl_ms, 60000);
}

/* ---- config files -------------------------------------------------------- */

/* Writes text to a config file in a fresh temp dir and loads it into c. */
static int load_text(struct cdo_config *c, const char *text, char **dir,
                     char **path, char *err, size_t errlen)
{
  *dir = unit_tmpdir();
  *path = unit_path(*dir, "config");
  unit_write_file(*path, text, strlen(text), 0600);
  err[0] = 0;
  return cdo_config_load_file(c, *path, err, errlen);
}

static void test_file_good(void **state)
{
  struct cdo_config *c = *state;
  char err[400], *dir, *path;

  unit_ok(load_text(c,
                    "# a comment\n"
                    "\n"
                    "   \t\n"
                    "ttl = 90s\n"
                    "  # an indented comment\n"
                    "stale=10s\n"
                    "  scope   =   my scope  \n"
                    "env = LANG LC_*\tAWS_*\n"
                    "no-cwd = yes\n"
                    "fail-ttl = 2m # a comment after the value\n"
                    "ignore-env = A B\t# after a tab\n"
                    "cache = sqlite:/x/a#b.db\n" /* '#' inside a value */
                    "max-output = 1M",           /* no final newline */
                    &dir, &path, err, sizeof(err)));
  assert_int_equal(c->ttl_ms, 90000);
  assert_int_equal(c->stale_ms, 10000);
  assert_string_equal(c->scope, "my scope");
  assert_int_equal(c->env.n, 3); /* a file's list is whitespace-separated */
  assert_string_equal(c->env.v[0], "LANG");
  assert_string_equal(c->env.v[1], "LC_*");
  assert_string_equal(c->env.v[2], "AWS_*");
  assert_int_equal(c->no_cwd, 1);
  assert_int_equal(c->max_output, 1 << 20);
  assert_int_equal(c->fail_ttl_ms, 120000);
  assert_int_equal(c->ignore_env.n, 2);
  assert_string_equal(c->ignore_env.v[1], "B");
  assert_string_equal(c->cache, "sqlite:/x/a#b.db");
  free(path);
  unit_rmtree(dir);
}

static const struct {
  const char *text;
  const char *expect[3]; /* each must appear in err; FILE stands for path */
} bad_files[] = {
    {"ttl = 5s\n# fine\nthis line has no equals sign\n",
     {"FILE:3:", "'this line has no equals sign'", "key = value"}},
    {"\nno-such-key = 1\n", {"FILE:2:", "'no-such-key'", NULL}},
    {"= 5\n", {"FILE:1:", "unknown setting", NULL}},
    {"ttl = 5s\nttl = abc\n", {"FILE:2:", "'abc'", "duration"}},
    {"ttl = 0\n", {"FILE:1:", "'0'", "duration > 0"}},
    {"cache = nope:x\n", {"FILE:1:", "'nope:x'", "unknown scheme"}},
    {"env =\n", {"FILE:1:", "env", "non-empty"}},
    {"ttl = # nothing but a comment\n", {"FILE:1:", "''", "duration"}},
    {"tll = 5s\n",
     {"FILE:1:", "unknown setting 'tll' (did you mean ttl? ",
      "valid: ttl, fail-ttl, "}},
    {"bogus = 1\n", {"'bogus' (valid: ttl, ", ", verbose, quiet)", NULL}},
};

static void test_file_bad(void **state)
{
  struct cdo_config *c = *state;
  char err[400], *dir, *path, want[400];
  size_t i, k;

  for (i = 0; i < CDO__ARRAY_SIZE(bad_files); i++) {
    int r = load_text(c, bad_files[i].text, &dir, &path, err, sizeof(err));

    if (r != CDO_EBADVALUE)
      fail_msg("accepted (%d): %s", r, bad_files[i].text);
    for (k = 0; k < 3 && bad_files[i].expect[k] != NULL; k++) {
      const char *e = bad_files[i].expect[k];

      if (strncmp(e, "FILE", 4) == 0)
        cdo__fmt(want, sizeof(want), "%s%s", path, e + 4);
      else
        cdo__fmt(want, sizeof(want), "%s", e);
      if (strstr(err, want) == NULL)
        fail_msg("'%s' not in '%s'", want, err);
    }
    free(path);
    unit_rmtree(dir);
  }
}

static void test_file_missing(void **state)
{
  struct cdo_config *c = *state;
  char err[400] = "";
  char *dir = unit_tmpdir(), *path = unit_path(dir, "no-such-config");

  unit_ok(cdo_config_load_file(c, path, err, sizeof(err)));
  assert_int_equal(c->ttl_ms, 60000);
  free(path);
  unit_rmtree(dir);
}

/* path NULL reads $XDG_CONFIG_HOME/cachedo/config. */
static void test_file_default_location(void **state)
{
  struct cdo_config *c = *state;
  char err[400], *dir = unit_tmpdir(), *sub = unit_path(dir, "cachedo");
  char *path = unit_path(sub, "config");
  char *old = getenv("XDG_CONFIG_HOME");

  old = old ? strdup(old) : NULL;
  assert_int_equal(mkdir(sub, 0700), 0);
  unit_write_file(path, "ttl = 42s\n", 10, 0600);
  setenv("XDG_CONFIG_HOME", dir, 1);
  unit_ok(cdo_config_load_file(c, NULL, err, sizeof(err)));
  if (old)
    setenv("XDG_CONFIG_HOME", old, 1);
  else
    unsetenv("XDG_CONFIG_HOME");
  assert_int_equal(c->ttl_ms, 42000);
  free(old);
  free(path);
  free(sub);
  unit_rmtree(dir);
}

/* ---- CACHEDO_* variables ------------------------------------------------- */

static void test_env_ttl(void **state)
{
  struct cdo_config *c = *state;
  char err[400];

  setenv("CACHEDO_TTL", "90s", 1);
  unit_ok(cdo_config_load_env(c, environ, err, sizeof(err)));
  assert_int_equal(c->ttl_ms, 90000);

  setenv("CACHEDO_TTL", "abc", 1);
  assert_int_equal(cdo_config_load_env(c, environ, err, sizeof(err)),
                   CDO_EBADVALUE);
  assert_non_null(strstr(err, "CACHEDO_TTL"));
  assert_non_null(strstr(err, "'abc'"));
  assert_non_null(strstr(err, "duration"));
  assert_int_equal(c->ttl_ms, 90000);

  setenv("CACHEDO_TTL", "", 1); /* empty: as if unset */
  unit_ok(cdo_config_load_env(c, environ, err, sizeof(err)));
  assert_int_equal(c->ttl_ms, 90000);
  unsetenv("CACHEDO_TTL");
}

/* CACHEDO_ENV is a space-separated list, replacing a file's list. */
static void test_env_list_replaces_file(void **state)
{
  struct cdo_config *c = *state;
  char err[400], *dir, *path;

  unit_ok(load_text(c, "env = HOME USER\n", &dir, &path, err, sizeof(err)));
  cdo_config_layer(c);
  setenv("CACHEDO_ENV", "PATH LANG LC_*", 1);
  unit_ok(cdo_config_load_env(c, environ, err, sizeof(err)));
  unsetenv("CACHEDO_ENV");
  assert_int_equal(c->env.n, 3);
  assert_string_equal(c->env.v[0], "PATH");
  assert_string_equal(c->env.v[2], "LC_*");
  free(path);
  unit_rmtree(dir);
}

/* ---- cdo_config_show ------------------------------------------------------
 */

struct shown {
  char text[4000];
};

static void collect(void *ud, const char *name, const char *value,
                    const char *origin)
{
  struct shown *sh = ud;
  size_t n = strlen(sh->text);

  cdo__fmt(sh->text + n, sizeof(sh->text) - n, "%s=%s (%s)\n", name, value,
           origin);
}

/* Every setting once, its value as a file would say it, and its origin. */
static void test_show(void **state)
{
  struct cdo_config *c = *state;
  char err[400], *dir, *path, want[600];
  struct shown sh = {""};
  const char *p;
  int lines = 0;

  unit_ok(load_text(c, "# first\nttl = 1.5h\nmax-size = 1.5G # big\n", &dir,
                    &path, err, sizeof(err)));
  cdo_config_layer(c);
  setenv("CACHEDO_CACHE", "redis://u:secret@h/1", 1);
  unit_ok(cdo_config_load_env(c, environ, err, sizeof(err)));
  unsetenv("CACHEDO_CACHE");
  cdo_config_layer(c);
  unit_ok(cdo_config_set(c, "env", "PATH", err, sizeof(err)));
  unit_ok(cdo_config_set(c, "verbose", NULL, err, sizeof(err)));
  cdo_config_show(c, collect, &sh);

  cdo__fmt(want, sizeof(want), "ttl=1h30m (%s:2)\n", path);
  assert_non_null(strstr(sh.text, want));
  cdo__fmt(want, sizeof(want), "max-size=1536M (%s:3)\n", path);
  assert_non_null(strstr(sh.text, want));
  assert_non_null(strstr(sh.text, "cache=redis://u:***@h/1 (CACHEDO_CACHE)\n"));
  assert_null(strstr(sh.text, "secret"));
  assert_non_null(strstr(sh.text, "env=PATH (--env)\n"));
  assert_non_null(strstr(sh.text, "verbose=true (--verbose)\n"));
  assert_non_null(strstr(sh.text, "fail-ttl=1h30m (default: the ttl)\n"));
  assert_non_null(strstr(sh.text, "stale=0 (default)\n"));
  assert_non_null(strstr(sh.text, "lock-timeout=10m (default)\n"));
  assert_non_null(strstr(sh.text, "max-output=256M (default)\n"));
  assert_non_null(strstr(sh.text, "scope= (default)\n"));
  assert_non_null(strstr(sh.text, "quiet=false (default)\n"));
  assert_non_null(strstr(sh.text, "tty=false (default)\n"));
  /* One line per setting: each names a real setting, and only once. */
  for (p = sh.text; *p; p = strchr(p, '\n') + 1) {
    struct cdo_config scratch;
    char name[64], line[80];
    size_t n = strcspn(p, "=");

    assert_true(n < sizeof(name));
    cdo__fmt(name, sizeof(name), "%.*s", (int)n, p);
    cdo_config_init(&scratch);
    assert_int_not_equal(cdo_config_set(&scratch, name, "x", err, sizeof(err)),
                         -ENOENT);
    cdo_config_release(&scratch);
    cdo__fmt(line, sizeof(line), "\n%s=", name);
    assert_true(p == sh.text || strstr(sh.text, line) == p - 1);
    assert_null(strstr(p, line));
    lines++;
  }
  assert_true(lines >= 25);
  free(path);
  unit_rmtree(dir);
}

static void test_edit_distance(void **state)
{
  static const char *const names[] = {"ttl", "tty", "refresh", "json"};
  char buf[100];

  (void)state;
  assert_int_equal(cdo_edit_distance("tll", 3, "ttl"), 1);
  assert_int_equal(cdo_edit_distance("jsno", 4, "json"), 1); /* a swap */
  assert_int_equal(cdo_edit_distance("refrsh", 6, "refresh"), 1);
  assert_int_equal(cdo_edit_distance("abc", 3, "abc"), 0);
  assert_int_equal(cdo_edit_distance("", 0, "abc"), 3);
  assert_int_equal(cdo_edit_distance("ttlxyz", 3, "ttl"), 0); /* n bytes */
  cdo_nearest("tt", 2, names, 4, "--", buf, sizeof(buf));
  assert_string_equal(buf, "--ttl or --tty");
  cdo_nearest("refrsh", 6, names, 4, "", buf, sizeof(buf));
  assert_string_equal(buf, "refresh");
  cdo_nearest("bogus", 5, names, 4, "", buf, sizeof(buf));
  assert_string_equal(buf, "");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_duration_good),
      cmocka_unit_test(test_duration_bad),
      cmocka_unit_test(test_size_good),
      cmocka_unit_test(test_size_bad),
      cmocka_unit_test(test_format_duration),
      cmocka_unit_test(test_format_size),
      cmocka_unit_test(test_edit_distance),
#define T(f) cmocka_unit_test_setup_teardown(f, setup_config, teardown_config)
      T(test_set_bad),
      T(test_set_missing_value_and_unknown),
      T(test_set_good),
      T(test_layers),
      T(test_release_resets),
      T(test_file_good),
      T(test_file_bad),
      T(test_file_missing),
      T(test_file_default_location),
      T(test_env_ttl),
      T(test_env_list_replaces_file),
      T(test_show),
#undef T
  };

  /* The caller's own CACHEDO_* settings must not leak into the vectors. */
  unsetenv("CACHEDO_TTL");
  unsetenv("CACHEDO_ENV");
  unsetenv("CACHEDO_CACHE");
  return cmocka_run_group_tests_name("parse", tests, NULL, NULL);
}
