/* SPDX-License-Identifier: MIT */
/*
 * cachedo: the command line. Parses options, loads the configuration
 * layers, and runs one mode: memoize a command (the default), or inspect
 * or maintain the cache. Uses only the public libcachedo API.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cachedo.h"

extern char **environ;

enum mode {
  M_RUN, M_FORGET, M_KEY, M_EXPLAIN, M_CLEAR, M_STATS, M_LIST, M_GC,
  M_HELP, M_VERSION
};

/* Every option: settings go to cdo_config_set(), the rest pick a mode. */
static const struct option {
  const char *name;
  char short_name;
  int has_arg;
  int mode; /* -1: a setting; -2: --json */
} options[] = {
    {"ttl", 't', 1, -1},          {"fail-ttl", 0, 1, -1},
    {"no-cache-failures", 0, 0, -1}, {"stale", 0, 1, -1},
    {"refresh", 0, 0, -1},        {"no-cache", 0, 0, -1},
    {"cache", 'c', 1, -1},        {"env", 0, 1, -1},
    {"ignore-env", 0, 1, -1},     {"no-env", 0, 0, -1},
    {"pure", 0, 0, -1},           {"no-cwd", 0, 0, -1},
    {"file", 0, 1, -1},           {"stdin", 0, 0, -1},
    {"scope", 0, 1, -1},          {"max-output", 0, 1, -1},
    {"lock-timeout", 0, 1, -1},   {"max-size", 0, 1, -1},
    {"verbose", 'v', 0, -1},      {"quiet", 'q', 0, -1},
    {"forget", 0, 0, M_FORGET},   {"key", 0, 0, M_KEY},
    {"explain", 0, 0, M_EXPLAIN}, {"clear", 0, 0, M_CLEAR},
    {"stats", 0, 0, M_STATS},     {"list", 0, 0, M_LIST},
    {"gc", 0, 0, M_GC},           {"json", 0, 0, -2},
    {"help", 'h', 0, M_HELP},     {"version", 'V', 0, M_VERSION},
};

static const char usage[] =
    "Usage: cachedo [OPTION]... [--] COMMAND [ARG]...\n"
    "       cachedo [OPTION]... --forget|--key|--explain [--] COMMAND...\n"
    "       cachedo [OPTION]... --clear | --stats | --list | --gc\n"
    "Run COMMAND, or replay its stored stdout, stderr and exit status when a\n"
    "fresh result is cached.\n"
    "\n"
    "Freshness:\n"
    "  -t, --ttl DURATION         keep results this long (default 60s)\n"
    "      --fail-ttl DURATION    TTL of non-zero exits (0: never store them)\n"
    "      --no-cache-failures    same as --fail-ttl 0\n"
    "      --stale DURATION       serve expired results this much longer\n"
    "                             while one background refresh runs\n"
    "      --refresh              ignore a stored result: run and store\n"
    "      --no-cache             run without reading or writing the cache\n"
    "Key (what decides that two runs are the same):\n"
    "      --env PATTERN          hash only variables matching PATTERN\n"
    "      --ignore-env PATTERN   leave matching variables out of the key\n"
    "      --no-env               hash no variable\n"
    "      --pure                 run with only the hashed variables\n"
    "      --no-cwd               leave the working directory out\n"
    "      --file PATH            hash PATH's contents too (repeatable)\n"
    "      --stdin                hash standard input (then feed it on)\n"
    "      --scope NAME           keep a separate namespace of entries\n"
    "Storage:\n"
    "  -c, --cache URL            sqlite:PATH (default), dir:PATH, mem:,\n"
    "                             redis://HOST[:PORT][/DB], unix:///PATH.sock,\n"
    "                             exec:PROGRAM\n"
    "      --max-output SIZE      store no output larger than SIZE (256M)\n"
    "      --max-size SIZE        keep the cache under SIZE\n"
    "      --lock-timeout DURATION  wait this long for an identical run (10m)\n"
    "Modes:\n"
    "      --forget               remove this command's entry\n"
    "      --key                  print the key\n"
    "      --explain              print what went into the key\n"
    "      --clear                remove every entry (with --scope: its own)\n"
    "      --stats                show entries and counters\n"
    "      --list                 list the entries\n"
    "      --gc                   remove expired entries now\n"
    "      --json                 --stats and --list as JSON\n"
    "  -v, --verbose              say hit or miss on stderr\n"
    "  -q, --quiet                no warnings\n"
    "  -h, --help                 show this help\n"
    "  -V, --version              show the version and backends\n"
    "\n"
    "DURATION: a number with a unit ms s m h d w (bare: seconds).\n"
    "SIZE: a number of bytes with an optional K M G T (1024-based).\n"
    "Settings also come from CACHEDO_TTL, CACHEDO_CACHE, CACHEDO_ENV, ... and\n"
    "from $XDG_CONFIG_HOME/cachedo/config (key = value lines).\n"
    "Exit status: the command's own; 125 when cachedo fails, 126 when COMMAND\n"
    "cannot run, 127 when it is not found.\n";

static int quiet, verbose;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
  char buf[1200];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  fprintf(stderr, "cachedo: %s\n", buf);
}

static void on_msg(void *ud, int level, const char *msg)
{
  (void)ud;
  if ((level == 0 && !quiet) || (level > 0 && verbose))
    say("%s", msg);
}

struct cli {
  enum mode mode;
  int json;
  char **command; /* the wrapped command, in argv */
  const char *set_name[64];
  const char *set_value[64];
  const char *set_spelling[64];
  int nset;
};

static const struct option *find_long(const char *name, size_t n)
{
  size_t i;

  for (i = 0; i < sizeof(options) / sizeof(options[0]); i++)
    if (strlen(options[i].name) == n && strncmp(options[i].name, name, n) == 0)
      return &options[i];
  return NULL;
}

static const struct option *find_short(char c)
{
  size_t i;

  for (i = 0; i < sizeof(options) / sizeof(options[0]); i++)
    if (options[i].short_name == c)
      return &options[i];
  return NULL;
}

static int take(struct cli *cli, const struct option *o, const char *value,
                const char *spelling)
{
  if (o->mode == -2) {
    cli->json = 1;
  } else if (o->mode >= 0) {
    if (cli->mode != M_RUN && cli->mode != (enum mode)o->mode &&
        o->mode != M_HELP && o->mode != M_VERSION) {
      say("%s cannot be combined with another mode (try 'cachedo --help')",
          spelling);
      return -1;
    }
    if (cli->mode != M_HELP && cli->mode != M_VERSION)
      cli->mode = (enum mode)o->mode;
  } else {
    if (cli->nset == 64) {
      say("too many options");
      return -1;
    }
    cli->set_name[cli->nset] = o->name;
    cli->set_value[cli->nset] = value;
    cli->set_spelling[cli->nset++] = spelling;
  }
  return 0;
}

/*
 * Parses options up to the first non-option (or "--"), so that the wrapped
 * command's own flags are never read as ours. Returns 0 or -1 (reported).
 */
static int parse_args(struct cli *cli, int argc, char **argv)
{
  static char spellings[64][4];
  int i, ns = 0;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];

    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-' || a[1] == 0)
      break;
    if (a[1] == '-') {
      size_t n = strcspn(a + 2, "=");
      const struct option *o = find_long(a + 2, n);
      const char *value = NULL;

      if (o == NULL) {
        say("unknown option '%.*s' (try 'cachedo --help')", (int)n + 2, a);
        return -1;
      }
      if (o->has_arg) {
        if (a[2 + n] == '=')
          value = a + 3 + n;
        else if (i + 1 < argc)
          value = argv[++i];
        else {
          say("option '--%s' needs a value (try 'cachedo --help')", o->name);
          return -1;
        }
      } else if (a[2 + n] == '=') {
        say("option '--%s' takes no value", o->name);
        return -1;
      }
      if (take(cli, o, value, a) < 0)
        return -1;
      continue;
    }
    for (a++; *a; a++) {
      const struct option *o = find_short(*a);
      const char *value = NULL;
      char *sp = spellings[ns < 63 ? ns++ : 63];

      if (o == NULL) {
        say("unknown option '-%c' (try 'cachedo --help')", *a);
        return -1;
      }
      sp[0] = '-', sp[1] = *a, sp[2] = 0;
      if (o->has_arg) {
        if (a[1])
          value = a + 1;
        else if (i + 1 < argc)
          value = argv[++i];
        else {
          say("option '-%c' needs a value (try 'cachedo --help')", *a);
          return -1;
        }
      }
      if (take(cli, o, value, sp) < 0)
        return -1;
      if (value)
        break;
    }
  }
  cli->command = argv + i;
  return 0;
}

/* Defaults < config file < CACHEDO_* < command line. */
static int load_config(struct cdo_config *cfg, const struct cli *cli)
{
  char err[600];
  int i;

  cdo_config_layer(cfg);
  if (cdo_config_load_file(cfg, NULL, err, sizeof(err)) < 0) {
    say("%s", err);
    return -1;
  }
  cdo_config_layer(cfg);
  if (cdo_config_load_env(cfg, environ, err, sizeof(err)) < 0) {
    say("%s", err);
    return -1;
  }
  cdo_config_layer(cfg);
  for (i = 0; i < cli->nset; i++) {
    if (cdo_config_set(cfg, cli->set_name[i], cli->set_value[i], err,
                       sizeof(err)) < 0) {
      const char *sp = cli->set_spelling[i];
      size_t n = strcspn(sp, "=");

      say("invalid %.*s %s", (int)n, sp, err);
      return -1;
    }
  }
  return 0;
}

static void print_explain(void *ud, const char *component, const char *detail)
{
  (void)ud;
  printf("%-8s %s\n", component, detail);
}

/* Prints s as a JSON string. */
static void json_str(const char *s)
{
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;

    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

struct list_state {
  int json, rows;
  int64_t now;
};

static int print_entry(void *ud, const struct cdo_entry_info *e)
{
  struct list_state *ls = ud;
  char age[32], fresh[32], size[32];

  if (ls->json) {
    printf("%s{\"key\":\"%s\",\"command\":", ls->rows ? ",\n " : "", e->key);
    json_str(e->command);
    printf(",\"created_ms\":%" PRId64 ",\"expires_ms\":%" PRId64
           ",\"duration_ms\":%" PRId64 ",\"exit_status\":%d,\"size\":%" PRIu64
           "}",
           e->created_ms, e->expires_ms, e->duration_ms, e->exit_status,
           e->size);
  } else {
    if (ls->rows == 0)
      printf("%-12s  %8s  %9s  %4s  %9s  %s\n", "KEY", "AGE", "FRESH FOR",
             "EXIT", "SIZE", "COMMAND");
    cdo_format_duration(ls->now - e->created_ms, age, sizeof(age));
    if (e->expires_ms > ls->now)
      cdo_format_duration(e->expires_ms - ls->now, fresh, sizeof(fresh));
    else
      snprintf(fresh, sizeof(fresh), "expired");
    cdo_format_size(e->size, size, sizeof(size));
    printf("%.12s  %8s  %9s  %4d  %9s  %s\n", e->key, age, fresh,
           e->exit_status, size, e->command);
  }
  ls->rows++;
  return 0;
}

/* --clear, --stats, --list, --gc: 0 success, 1 failure. */
static int admin(const struct cli *cli, const struct cdo_config *cfg)
{
  struct cdo_store *s;
  char err[800];
  int r;

  r = cdo_store_open(&s, cfg, err, sizeof(err));
  if (r < 0) {
    say("%s", err);
    return 1;
  }
  if (cli->mode == M_CLEAR) {
    r = cdo_store_clear(s);
  } else if (cli->mode == M_GC) {
    uint64_t removed;

    r = cdo_store_gc(s, &removed);
    if (r == 0 && !quiet)
      printf("removed %" PRIu64 " expired entries\n", removed);
  } else if (cli->mode == M_STATS) {
    struct cdo_stats st;
    char size[32];

    r = cdo_store_stats(s, &st);
    cdo_format_size(st.bytes, size, sizeof(size));
    if (r == 0 && cli->json)
      printf("{\"entries\":%" PRIu64 ",\"bytes\":%" PRIu64 "}\n", st.entries,
             st.bytes);
    else if (r == 0)
      printf("cache    %s\nentries  %" PRIu64 "\nsize     %s\n",
             cdo_store_url(s), st.entries, size);
  } else {
    struct list_state ls = {cli->json, 0, 0};
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ls.now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (cli->json)
      printf("[");
    r = cdo_store_list(s, print_entry, &ls);
    if (cli->json)
      printf("]\n");
  }
  if (r < 0)
    say("%s", cdo_store_errmsg(s)[0] ? cdo_store_errmsg(s) : cdo_strerror(r));
  cdo_store_close(s);
  return r < 0 ? 1 : 0;
}

/*
 * A handler, not SIG_IGN: writes to a closed pipe then fail with EPIPE, and
 * the command, whose handlers exec resets, still gets the default SIGPIPE.
 */
static void on_sigpipe(int sig)
{
  (void)sig;
}

static void verbose_line(const struct cdo_result *res)
{
  char age[32];

  switch (res->outcome) {
  case CDO_HIT:
  case CDO_STALE:
    cdo_format_duration(res->age_ms, age, sizeof(age));
    say("%s (age %s)", res->outcome == CDO_HIT ? "hit" : "stale, refreshing",
        age);
    break;
  case CDO_MISS_STORED:
    say("miss, stored");
    break;
  case CDO_MISS_NOT_STORED:
    say("miss, not stored: %s", res->reason);
    break;
  case CDO_UNCACHED:
    say("uncached: %s", res->reason[0] ? res->reason : "command cannot run");
    break;
  }
}

/* Exits as the command did: with its status, or by its signal. */
static void exit_like(const struct cdo_result *res)
{
  if (res->term_signal > 0) {
    sigset_t set;

    fflush(NULL);
    signal(res->term_signal, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, res->term_signal);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(res->term_signal);
    exit(128 + res->term_signal);
  }
  exit(res->exit_status);
}

int main(int argc, char **argv)
{
  struct cli cli = {0};
  struct cdo_config cfg;
  struct cdo_job *job = NULL;
  struct cdo_store *s = NULL;
  struct cdo_result res;
  char err[800];
  int r;

  signal(SIGPIPE, on_sigpipe);
  cdo_config_init(&cfg);
  if (parse_args(&cli, argc, argv) < 0)
    return 125;
  if (cli.mode == M_HELP) {
    fputs(usage, stdout);
    return 0;
  }
  if (cli.mode == M_VERSION) {
    printf("cachedo %s\nbackends: %s\n", CDO_VERSION, cdo_backends());
    return 0;
  }
  if (load_config(&cfg, &cli) < 0)
    return 125;
  quiet = cfg.quiet;
  verbose = cfg.verbose;
  if (cli.mode >= M_CLEAR) {
    if (cli.command[0] != NULL) {
      say("unexpected argument '%s' (--clear, --stats, --list and --gc take "
          "no command)", cli.command[0]);
      return 125;
    }
    r = admin(&cli, &cfg);
    cdo_config_release(&cfg);
    return r;
  }
  if (cli.command[0] == NULL) {
    say("no command given (try 'cachedo --help')");
    return 125;
  }
  r = cdo_job_new(&job, &cfg, cli.command, environ, on_msg, NULL, err,
                  sizeof(err));
  if (r < 0) {
    say("%s", err);
    return 125;
  }
  if (cli.mode == M_KEY || cli.mode == M_EXPLAIN) {
    if (cli.mode == M_KEY)
      printf("%s\n", cdo_job_key(job));
    else
      cdo_job_explain(job, print_explain, NULL);
    cdo_job_free(job);
    return 0;
  }
  if (!cfg.no_cache && cdo_store_open(&s, &cfg, err, sizeof(err)) < 0) {
    if (cli.mode == M_FORGET) {
      say("%s", err);
      return 1;
    }
    if (!quiet)
      say("warning: %s; running uncached", err);
  }
  if (cli.mode == M_FORGET) {
    r = s ? cdo_job_forget(job, s) : 0;
    if (r < 0)
      say("%s", cdo_store_errmsg(s));
    cdo_store_close(s);
    cdo_job_free(job);
    return r < 0 ? 1 : 0;
  }
  cdo_job_run(job, s, &res);
  cdo_store_close(s);
  cdo_job_free(job);
  if (res.error[0])
    say("%s", res.error);
  if (verbose)
    verbose_line(&res);
  exit_like(&res);
  return 125;
}
