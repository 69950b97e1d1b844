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
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cachedo.h"

extern char **environ;

enum mode {
  M_RUN,
  M_FORGET,
  M_KEY,
  M_EXPLAIN,
  M_WARM,
  M_CLEAR,
  M_STATS,
  M_LIST,
  M_GC,
  M_ZERO_STATS,
  M_SHOW_CONFIG,
  M_HELP,
  M_VERSION
};

/* Every option: settings go to cdo_config_set(), the rest pick a mode. */
static const struct option {
  const char *name;
  char short_name;
  int has_arg;
  int mode; /* -1: a setting; -2: --json */
} options[] = {
    {"ttl", 't', 1, -1},
    {"fail-ttl", 0, 1, -1},
    {"no-cache-failures", 0, 0, -1},
    {"stale", 0, 1, -1},
    {"refresh", 0, 0, -1},
    {"no-cache", 0, 0, -1},
    {"cache", 'c', 1, -1},
    {"env", 0, 1, -1},
    {"ignore-env", 0, 1, -1},
    {"no-env", 0, 0, -1},
    {"pure", 0, 0, -1},
    {"tty", 0, 0, -1},
    {"no-cwd", 0, 0, -1},
    {"file", 0, 1, -1},
    {"stdin", 0, 0, -1},
    {"scope", 0, 1, -1},
    {"max-output", 0, 1, -1},
    {"lock-timeout", 0, 1, -1},
    {"sign-key-file", 0, 1, -1},
    {"read-only", 0, 0, -1},
    {"max-size", 0, 1, -1},
    {"verbose", 'v', 0, -1},
    {"quiet", 'q', 0, -1},
    {"forget", 0, 0, M_FORGET},
    {"key", 0, 0, M_KEY},
    {"explain", 0, 0, M_EXPLAIN},
    {"warm", 0, 0, M_WARM},
    {"clear", 0, 0, M_CLEAR},
    {"stats", 0, 0, M_STATS},
    {"list", 0, 0, M_LIST},
    {"gc", 0, 0, M_GC},
    {"zero-stats", 0, 0, M_ZERO_STATS},
    {"show-config", 0, 0, M_SHOW_CONFIG},
    {"json", 0, 0, -2},
    {"help", 'h', 0, M_HELP},
    {"version", 'V', 0, M_VERSION},
};

static const char usage[] =
    "Usage: cachedo [OPTION]... [--] COMMAND [ARG]...\n"
    "       cachedo [OPTION]... --forget|--key|--explain|--warm [--] "
    "COMMAND...\n"
    "       cachedo [OPTION]... --clear | --stats | --list | --gc | "
    "--zero-stats\n"
    "       cachedo [OPTION]... --show-config\n"
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
    "      --file PATH            hash PATH's contents too (repeatable); a\n"
    "                             directory: its tree's names, types, sizes\n"
    "                             and mtimes, not contents\n"
    "      --stdin                hash standard input (then feed it on)\n"
    "      --scope NAME           keep a separate namespace of entries\n"
    "      --tty                  run COMMAND on a pseudo-terminal, so it\n"
    "                             colours as on one (stdout and stderr become\n"
    "                             one stream; part of the key)\n"
    "Storage:\n"
    "  -c, --cache URL            where results are kept (see Cache URLs);\n"
    "                             again: a farther tier (near first)\n"
    "      --max-output SIZE      store no output larger than SIZE (256M)\n"
    "      --max-size SIZE        keep the cache under SIZE: --gc and the "
    "hourly\n"
    "                             cleanup evict least-recently-used entries\n"
    "      --lock-timeout DURATION  wait this long for an identical run (10m)\n"
    "      --sign-key-file PATH   sign entries with the secret in PATH (mode\n"
    "                             0600, 32+ bytes); serve only entries signed\n"
    "                             with it\n"
    "      --read-only            read and replay only: never write, remove\n"
    "                             or lock entries in the cache\n"
    "Modes:\n"
    "      --forget               remove this command's entry\n"
    "      --warm                 refresh this command's entry in the "
    "background\n"
    "                             and return at once\n"
    "      --key                  print the key\n"
    "      --explain              print what went into the key (with -v: and\n"
    "                             what differs from the nearest stored entry)\n"
    "      --clear                remove every entry (with --scope: its own)\n"
    "      --stats                show entries, hits, misses and time saved\n"
    "      --list                 list the entries (newest first on sqlite)\n"
    "      --gc                   remove expired entries now (and evict down\n"
    "                             to --max-size)\n"
    "      --zero-stats           reset the counters of --stats\n"
    "      --json                 --stats and --list as JSON\n"
    "      --show-config          print every setting, its value and where it\n"
    "                             came from (option, variable, file:line)\n"
    "  -v, --verbose              say hit or miss on stderr (and why a miss)\n"
    "  -q, --quiet                no warnings\n"
    "  -h, --help                 show this help\n"
    "  -V, --version              show the version and backends\n";

/* After the backends' URL forms, from their tables (print_help). */
static const char usage_tail[] =
    "Any URL also takes read-only=1: that tier is read, never written.\n"
    "\n"
    "DURATION: a number with a unit ms s m h d w, or msec sec min hour day\n"
    "  week (plural too), combined and with decimals: 90s, 1h30m, 1.5h, "
    "90min,\n"
    "  2hours. A bare number is seconds. Case matters: m is minutes, ms is\n"
    "  milliseconds, and M (or S, H) is refused.\n"
    "SIZE: a number of bytes with an optional K M G T (1024-based), decimals\n"
    "  too: 64K, 256M, 1.5G.\n"
    "Long options may be shortened to a prefix that names only one.\n"
    "Settings also come from CACHEDO_TTL, CACHEDO_CACHE, CACHEDO_ENV, ... and\n"
    "from $XDG_CONFIG_HOME/cachedo/config (key = value lines).\n"
    "Exit status: the command's own; 125 when cachedo fails, 126 when COMMAND\n"
    "cannot run, 127 when it is not found.\n";

static int quiet, verbose;

/* --help: the options, then every backend's URL form and URL options. */
static void print_help(void)
{
  struct cdo_backend_info b;
  size_t i;

  fputs(usage, stdout);
  fputs("\nCache URLs (options follow a '?', e.g. "
        "redis://HOST?timeout=2s&breaker=0;\n"
        "for exec: they come first, as in exec:?timeout=10s PROGRAM):\n",
        stdout);
  for (i = 0; cdo_backend_info(i, &b) == 0; i++) {
    const char *p = b.options;
    int col = 0;

    printf("  %-26s %s\n", b.usage, b.about);
    while (*p != 0) { /* "options: a, b, c", wrapped before column 80 */
      size_t n = strcspn(p, ",");

      if (col == 0 || col + (int)n + 2 > 79)
        col = printf("%s%29s%s", col ? ",\n" : "", "",
                     col ? "         " : "options: ") -
              (col ? 2 : 0);
      else
        col += printf(", ");
      col += printf("%.*s", (int)n, p);
      p += n + (p[n] == ',');
      p += *p == ' ';
    }
    if (col > 0)
      putchar('\n');
  }
  fputs(usage_tail, stdout);
}

/* Bytes of the UTF-8 sequence at p that is whole and not a C1 control. */
static size_t utf8_ok(const unsigned char *p)
{
  size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0, i;

  if (n == 0 || p[0] > 0xf4 || (p[0] == 0xc2 && p[1] < 0xa0))
    return 0;
  for (i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80)
      return 0;
  return n;
}

/*
 * Writes msg to stderr with what could break the line or drive the
 * terminal escaped: control bytes as \n, \t, \r or \xHH, and bytes that
 * are not whole UTF-8 (or are C1 controls) as \xHH. Messages echo values
 * the user gave, which may hold anything.
 */
static void put_escaped(const char *msg)
{
  const unsigned char *p = (const unsigned char *)msg;

  while (*p) {
    size_t n = *p >= 0x80 ? utf8_ok(p) : (*p >= 0x20 && *p != 0x7f);

    if (n > 0) {
      fwrite(p, 1, n, stderr);
      p += n;
      continue;
    }
    if (*p == '\n' || *p == '\t' || *p == '\r')
      fprintf(stderr, "\\%c", *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r');
    else
      fprintf(stderr, "\\x%02x", *p);
    p++;
  }
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
  char buf[1200];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  fputs("cachedo: ", stderr);
  put_escaped(buf);
  fputc('\n', stderr);
}

static void on_msg(void *ud, int level, const char *msg)
{
  (void)ud;
  if (level >= 2) {
    /* One status line on a terminal, rewritten in place, then erased. */
    if (!quiet && isatty(2)) {
      fputs(level == 2 ? "\rcachedo: " : "\r\033[K", stderr);
      put_escaped(msg);
      if (level == 2)
        fputs("\033[K", stderr);
    }
    return;
  }
  if ((level == 0 && !quiet) || (level == 1 && verbose))
    say("%s", msg);
}

struct cli {
  enum mode mode;
  int json;
  char **command; /* the wrapped command, in argv */
  struct cli_set {
    const char *name;  /* the setting, also its long option's name */
    const char *value; /* NULL for a flag */
    char short_name;   /* a short option as given, or 0 (a long one) */
  } * sets;            /* nset of them, room for cap */
  int nset, cap;
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

/* " (did you mean --X?)" for the long options near the n bytes of name. */
static void suggest(const char *name, size_t n, char *buf, size_t len)
{
  const char *names[NOPTIONS];
  char near[160];
  size_t i;

  for (i = 0; i < NOPTIONS; i++)
    names[i] = options[i].name;
  cdo_nearest(name, n, names, NOPTIONS, "--", near, sizeof(near));
  if (near[0])
    snprintf(buf, len, " (did you mean %s?)", near);
  else
    buf[0] = 0;
}

/*
 * The long option named by the n bytes of name: an exact match, else the
 * one option it is a prefix of (as getopt_long). NULL: none, or several
 * (*ambiguous set).
 */
static const struct option *find_long(const char *name, size_t n,
                                      int *ambiguous)
{
  const struct option *found = NULL;
  size_t i;

  *ambiguous = 0;
  for (i = 0; i < NOPTIONS; i++) {
    if (strncmp(options[i].name, name, n) != 0)
      continue;
    if (options[i].name[n] == 0)
      return &options[i];
    if (found != NULL)
      *ambiguous = 1;
    found = &options[i];
  }
  return *ambiguous ? NULL : found;
}

/* " (did you mean --X?)" for a unique prefix or a near name, else "". */
static void long_hint(const char *name, size_t n, char *buf, size_t len)
{
  int ambiguous;
  const struct option *o = find_long(name, n, &ambiguous);

  if (o != NULL && n > 1)
    snprintf(buf, len, " (did you mean --%s?)", o->name);
  else
    suggest(name, n, buf, len);
}

static const struct option *find_short(char c)
{
  size_t i;

  for (i = 0; i < NOPTIONS; i++)
    if (options[i].short_name == c)
      return &options[i];
  return NULL;
}

/* Reports an unknown or ambiguous --NAME (n bytes of name). */
static void bad_long(const char *name, size_t n, int ambiguous)
{
  char hint[200];
  size_t i, used = 0;

  if (!ambiguous) {
    suggest(name, n, hint, sizeof(hint));
    say("unknown option '--%.*s'%s", (int)n, name,
        hint[0] ? hint : " (try 'cachedo --help')");
    return;
  }
  for (i = 0; i < NOPTIONS && used < sizeof(hint); i++)
    if (strncmp(options[i].name, name, n) == 0)
      used += (size_t)snprintf(hint + used, sizeof(hint) - used, "%s--%s",
                               used ? ", " : "", options[i].name);
  say("option '--%.*s' is ambiguous: %s", (int)n, name, hint);
}

/* short_name 0: the long option o; else the short option short_name. */
static int take(struct cli *cli, const struct option *o, const char *value,
                char short_name)
{
  if (o->mode == -2) {
    cli->json = 1;
  } else if (o->mode >= 0) {
    if (cli->mode != M_RUN && cli->mode != (enum mode)o->mode &&
        o->mode != M_HELP && o->mode != M_VERSION && cli->mode != M_HELP &&
        cli->mode != M_VERSION) {
      if (short_name)
        say("-%c cannot be combined with another mode (try 'cachedo --help')",
            short_name);
      else
        say("--%s cannot be combined with another mode (try 'cachedo "
            "--help')",
            o->name);
      return -1;
    }
    if (cli->mode != M_HELP && cli->mode != M_VERSION)
      cli->mode = (enum mode)o->mode;
  } else {
    struct cli_set *st;

    if (cli->nset == cli->cap) { /* -vq: an argument can hold several */
      int cap = cli->cap ? 2 * cli->cap : 16;
      struct cli_set *sets = realloc(cli->sets, (size_t)cap * sizeof(*sets));

      if (sets == NULL) {
        say("out of memory");
        return -1;
      }
      cli->sets = sets;
      cli->cap = cap;
    }
    st = &cli->sets[cli->nset++];
    st->name = o->name;
    st->value = value;
    st->short_name = short_name;
  }
  return 0;
}

/* argv[*i] is "--NAME[=VALUE]": takes it (and its value). 0 or -1. */
static int parse_long(struct cli *cli, int argc, char **argv, int *i)
{
  const char *a = argv[*i] + 2, *value = NULL;
  size_t n = strcspn(a, "=");
  int ambiguous;
  const struct option *o = find_long(a, n, &ambiguous);

  if (o == NULL) {
    bad_long(a, n, ambiguous);
    return -1;
  }
  if (o->has_arg) {
    if (a[n] == '=')
      value = a + n + 1;
    else if (*i + 1 < argc)
      value = argv[++*i];
    else {
      say("option '--%s' needs a value (try 'cachedo --help')", o->name);
      return -1;
    }
  } else if (a[n] == '=') {
    say("option '--%s' takes no value", o->name);
    return -1;
  }
  return take(cli, o, value, 0);
}

/*
 * argv[*i] is "-abc": short options, bundled, the last may take a value.
 * A long option's name typed with one dash ("-ttl") is refused with a
 * hint rather than read as "-t tl". 0 or -1.
 */
static int parse_short(struct cli *cli, int argc, char **argv, int *i)
{
  const char *a = argv[*i] + 1;
  size_t n = strcspn(a, "=");
  int ambiguous;
  const struct option *o;

  if (n > 1 && (o = find_long(a, n, &ambiguous)) != NULL &&
      strlen(o->name) == n) {
    say("'-%.*s' is a long option typed with one dash: write '--%s'%s%c%s",
        (int)n, a, o->name, o->short_name ? " (or -" : "",
        o->short_name ? o->short_name : ')', o->has_arg ? " VALUE)" : ")");
    return -1;
  }
  for (; *a; a++) {
    const char *value = NULL;

    o = find_short(*a);
    if (o == NULL) {
      char hint[200];

      long_hint(argv[*i] + 1, n, hint, sizeof(hint));
      if (hint[0])
        say("unknown option '-%c' in '%.*s'%s", *a, (int)n + 1, argv[*i], hint);
      else
        say("unknown option '-%c' (try 'cachedo --help')", *a);
      return -1;
    }
    if (o->has_arg) {
      if (a[1])
        value = a + 1;
      else if (*i + 1 < argc)
        value = argv[++*i];
      else {
        say("option '-%c' needs a value (try 'cachedo --help')", *a);
        return -1;
      }
    }
    if (take(cli, o, value, *a) < 0)
      return -1;
    if (value)
      break;
  }
  return 0;
}

/*
 * Parses options up to the first non-option (or "--"), so that the wrapped
 * command's own flags are never read as ours. Returns 0 or -1 (reported).
 */
static int parse_args(struct cli *cli, int argc, char **argv)
{
  int i;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];

    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-' || a[1] == 0)
      break;
    if ((a[1] == '-' ? parse_long : parse_short)(cli, argc, argv, &i) < 0)
      return -1;
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
    const struct cli_set *st = &cli->sets[i];

    if (cdo_config_set(cfg, st->name, st->value, err, sizeof(err)) < 0) {
      if (st->short_name)
        say("invalid -%c %s", st->short_name, err);
      else
        say("invalid --%s %s", st->name, err);
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

/* --explain -v: the nearest stored entry, and what differs from it. */
static void print_nearest(void *ud, const char *component, const char *detail)
{
  (void)ud;
  if (strcmp(component, "stored") == 0)
    printf("%-8s %s\n", component, detail);
  else if (strcmp(component, "nearest") == 0)
    printf("%-8s %s\n", component,
           strcmp(detail, "none") == 0
               ? "none: no entry of this command was stored before"
               : detail);
  else
    printf("%-8s %s: %s\n", "differs", component, detail);
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

/* Colour on a terminal only, and never with NO_COLOR set or TERM=dumb. */
static int use_colour(void)
{
  const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");

  if (nc != NULL && *nc != 0)
    return 0;
  if (term != NULL && strcmp(term, "dumb") == 0)
    return 0;
  return isatty(1);
}

/* The width to fit output to: $COLUMNS, else the terminal's; 0: no limit. */
static int terminal_width(void)
{
  const char *c = getenv("COLUMNS");
  struct winsize ws;

  if (c != NULL && *c != 0) {
    char *end;
    long n = strtol(c, &end, 10);

    if (*end == 0 && n > 0 && n < 100000)
      return (int)n;
  }
  if (isatty(1) && ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  return 0;
}

static int64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * --list prints each entry as the store hands it over, so the first row
 * comes at once and memory does not grow with the cache: the columns have
 * fixed widths, wide enough for the usual cells.
 */
#define W_AGE   6
#define W_STATE 10
#define W_EXIT  4
#define W_SIZE  7
#define W_SCOPE 5

struct list_state {
  int json, colour, width;
  int64_t now;
  const struct cdo_config *cfg; /* the TTLs a run would judge by */
  size_t n;
};

/*
 * An entry as a run with these settings would judge it now: "fresh" before
 * the TTL, "stale" within the stale window after it, else "expired";
 * never past the writer's expiry, when the entry goes. *fresh_until and
 * *stale_until get the ends of the first two (wall clock ms).
 */
static const char *entry_state(const struct list_state *ls,
                               const struct cdo_entry_info *e,
                               int64_t *fresh_until, int64_t *stale_until)
{
  const struct cdo_config *c = ls->cfg;
  int64_t ttl =
      e->exit_status != 0 && c->fail_ttl_ms >= 0 ? c->fail_ttl_ms : c->ttl_ms;

  *fresh_until = e->created_ms + ttl;
  *stale_until = *fresh_until + c->stale_ms;
  if (*fresh_until > e->expires_ms)
    *fresh_until = e->expires_ms;
  if (*stale_until > e->expires_ms)
    *stale_until = e->expires_ms;
  if (ls->now < *fresh_until)
    return "fresh";
  return ls->now < *stale_until ? "stale" : "expired";
}

static int max_int(int a, int b)
{
  return a > b ? a : b;
}

/*
 * Prints a command in at most width bytes (0: no limit), control
 * characters as '?', cut on a character boundary and marked with "...".
 */
static void print_command(const char *cmd, int width)
{
  size_t n = strlen(cmd), i;

  if (width > 0 && n > (size_t)width) {
    n = width > 3 ? (size_t)width - 3 : 0;
    while (n > 0 && ((unsigned char)cmd[n] & 0xc0) == 0x80)
      n--; /* not inside a UTF-8 sequence */
  }
  for (i = 0; i < n; i++)
    putchar((unsigned char)cmd[i] < 0x20 || cmd[i] == 0x7f ? '?' : cmd[i]);
  if (n < strlen(cmd))
    fputs("...", stdout);
  putchar('\n');
}

/* A cell of at least width bytes, control characters as '?'. */
static void print_cell(const char *cell, int width)
{
  int n = 0;

  for (; *cell; cell++, n++)
    putchar((unsigned char)*cell < 0x20 || *cell == 0x7f ? '?' : *cell);
  printf("%*s  ", width > n ? width - n : 0, "");
}

static void print_header(const struct list_state *ls)
{
  printf("%s%-12s  %*s  %-*s  %*s  %*s  %-*s  %s%s\n",
         ls->colour ? "\033[1m" : "", "KEY", W_AGE, "AGE", W_STATE, "STATE",
         W_EXIT, "EXIT", W_SIZE, "SIZE", W_SCOPE, "SCOPE", "COMMAND",
         ls->colour ? "\033[0m" : "");
}

static void print_json(struct list_state *ls, const struct cdo_entry_info *e)
{
  int64_t fresh_until, stale_until;
  const char *state = entry_state(ls, e, &fresh_until, &stale_until);
  size_t i;

  printf("%s{\"key\":\"%s\",\"command\":", ls->n ? ",\n " : "", e->key);
  json_str(e->command);
  printf(",\"argv\":[");
  for (i = 0; e->argv[i] != NULL; i++) {
    printf("%s", i ? "," : "");
    json_str(e->argv[i]);
  }
  printf("],\"scope\":");
  if (e->scope != NULL)
    json_str(e->scope);
  else
    printf("null");
  printf(",\"created_ms\":%" PRId64 ",\"expires_ms\":%" PRId64
         ",\"age_ms\":%" PRId64 ",\"state\":\"%s\",\"fresh\":%s"
         ",\"fresh_until_ms\":%" PRId64 ",\"stale_until_ms\":%" PRId64
         ",\"duration_ms\":%" PRId64 ",\"exit_status\":%d,\"size\":%" PRIu64
         "}",
         e->created_ms, e->expires_ms, ls->now - e->created_ms, state,
         *state == 'f' ? "true" : "false", fresh_until, stale_until,
         e->duration_ms, e->exit_status, e->size);
}

static int print_entry(void *ud, const struct cdo_entry_info *e)
{
  struct list_state *ls = ud;
  const char *dim = ls->colour ? "\033[2m" : "",
             *red = ls->colour ? "\033[31m" : "",
             *off = ls->colour ? "\033[0m" : "";
  char age[32], state[48], left[32], size[32];
  int64_t fresh_until, stale_until;
  const char *st = entry_state(ls, e, &fresh_until, &stale_until);
  int expired = *st == 'e', failed = e->exit_status != 0;
  int fixed = 12 + 2 + W_AGE + 2 + W_STATE + 2 + W_EXIT + 2 + W_SIZE + 2 +
              max_int(W_SCOPE, e->scope ? (int)strlen(e->scope) : 0) + 2;

  if (ls->json) {
    print_json(ls, e);
    ls->n++;
    return 0;
  }
  if (ls->n++ == 0)
    print_header(ls);
  cdo_format_duration(ls->now - e->created_ms, age, sizeof(age));
  if (expired) {
    snprintf(state, sizeof(state), "%s", st);
  } else {
    cdo_format_duration((*st == 'f' ? fresh_until : stale_until) - ls->now,
                        left, sizeof(left));
    snprintf(state, sizeof(state), "%s %s", st, left);
  }
  cdo_format_size(e->size, size, sizeof(size));
  printf("%-12.12s  %*s  %s%-*s%s  %s%*d%s  %*s  ", e->key, W_AGE, age,
         expired ? dim : "", W_STATE, state, expired ? off : "",
         failed ? red : "", W_EXIT, e->exit_status, failed ? off : "", W_SIZE,
         size);
  print_cell(e->scope ? e->scope : "-", W_SCOPE);
  print_command(e->command, ls->width > 0 ? max_int(ls->width - fixed, 10) : 0);
  return 0;
}

static int do_list(const struct cli *cli, const struct cdo_config *cfg,
                   struct cdo_store *s)
{
  struct list_state ls = {cli->json, 0, 0, now_ms(), cfg, 0};
  int r;

  if (!cli->json) {
    ls.colour = use_colour();
    ls.width = terminal_width();
  }
  if (cli->json)
    printf("[");
  r = cdo_store_list(s, print_entry, &ls);
  if (cli->json)
    printf("]\n");
  else if (r == 0 && ls.n == 0)
    say("no entries");
  return r;
}

/* Hits and stale answers out of every answer; -1 when there was none. */
static double hit_rate(const struct cdo_stats *st)
{
  uint64_t answered = st->hits + st->stale, all = answered + st->misses;

  return all ? (double)answered / (double)all : -1;
}

/* A wait for people: "2.7s" under a minute, else "3m 4s". */
static void format_wait(int64_t ms, char *buf, size_t len)
{
  if (ms < 60000)
    snprintf(buf, len, "%.1fs", (double)ms / 1000);
  else
    cdo_format_duration(ms, buf, len);
}

static void stats_json(const struct cdo_stats *st, struct cdo_store *s,
                       const struct cdo_config *cfg)
{
  double rate = hit_rate(st);
  int k;

  printf("{\"cache\":");
  json_str(cdo_store_url(s));
  printf(",\"scope\":");
  if (cfg->scope != NULL)
    json_str(cfg->scope);
  else
    printf("null");
  if (st->listed)
    printf(",\"entries\":%" PRIu64 ",\"bytes\":%" PRIu64, st->entries,
           st->bytes);
  else
    printf(",\"entries\":null,\"bytes\":null");
  if (cfg->max_size)
    printf(",\"max_size\":%" PRIu64, cfg->max_size);
  else
    printf(",\"max_size\":null");
  printf(",\"hits\":%" PRIu64 ",\"stale\":%" PRIu64 ",\"misses\":%" PRIu64
         ",\"uncached\":%" PRIu64,
         st->hits, st->stale, st->misses, st->uncached);
  if (rate >= 0)
    printf(",\"hit_rate\":%.4f", rate);
  else
    printf(",\"hit_rate\":null");
  printf(",\"waits\":%" PRIu64 ",\"waited_ms\":%" PRId64, st->waits,
         st->waited_ms);
  printf(",\"saved_ms\":%" PRId64 ",\"errors\":%" PRIu64
         ",\"errors_by_kind\":{",
         st->saved_ms, st->errors);
  for (k = 0; k < CDO_ERRKIND_COUNT; k++)
    printf("%s\"%s\":%" PRIu64, k ? "," : "", cdo_errkind_name(k),
           st->error_kinds[k]);
  printf("}");
  if (st->since_ms > 0)
    printf(",\"since_ms\":%" PRId64 "}\n", st->since_ms);
  else
    printf(",\"since_ms\":null}\n");
}

static void stats_table(const struct cdo_stats *st, struct cdo_store *s,
                        const struct cdo_config *cfg)
{
  const char *bold = use_colour() ? "\033[1m" : "",
             *off = use_colour() ? "\033[0m" : "";
  double rate = hit_rate(st);
  char buf[64];
  int k, n = 0;

  printf("%scache%s       %s\n", bold, off, cdo_store_url(s));
  if (cfg->scope != NULL)
    printf("%sscope%s       %s (its entries and size; the counters below are "
           "the whole cache's)\n",
           bold, off, cfg->scope);
  if (st->listed) {
    cdo_format_size(st->bytes, buf, sizeof(buf));
    printf("%sentries%s     %" PRIu64 "\n", bold, off, st->entries);
    printf("%ssize%s        %s", bold, off, buf);
  } else {
    printf("%sentries%s     -\n%ssize%s        -", bold, off, bold, off);
  }
  if (cfg->max_size) {
    cdo_format_size(cfg->max_size, buf, sizeof(buf));
    printf(" (max %s)", buf);
  }
  printf("\n%shits%s        %" PRIu64 "\n", bold, off, st->hits);
  printf("%sstale%s       %" PRIu64 "\n", bold, off, st->stale);
  printf("%smisses%s      %" PRIu64 "\n", bold, off, st->misses);
  if (rate >= 0)
    printf("%shit rate%s    %.1f%%\n", bold, off, rate * 100);
  else
    printf("%shit rate%s    -\n", bold, off);
  cdo_format_duration(st->saved_ms, buf, sizeof(buf));
  printf("%stime saved%s  %s\n", bold, off, st->saved_ms ? buf : "0s");
  format_wait(st->waited_ms, buf, sizeof(buf));
  printf("%swaited%s      %" PRIu64 " for another run, total %s\n", bold, off,
         st->waits, buf);
  printf("%suncached%s    %" PRIu64 "\n", bold, off, st->uncached);
  printf("%serrors%s      %" PRIu64, bold, off, st->errors);
  for (k = 0; k < CDO_ERRKIND_COUNT; k++)
    if (st->error_kinds[k])
      printf("%s%s %" PRIu64, n++ ? ", " : " (", cdo_errkind_name(k),
             st->error_kinds[k]);
  printf("%s\n", n ? ")" : "");
  if (st->since_ms > 0) {
    cdo_format_duration(now_ms() - st->since_ms, buf, sizeof(buf));
    printf("%ssince%s       %s ago\n", bold, off, buf);
  }
}

/* --show-config: "name = value", then where it came from, aligned. */
static void show_setting(void *ud, const char *name, const char *value,
                         const char *origin)
{
  int *width = ud, n = (int)(strlen(name) + 3 + strlen(value));

  if (*width < 0)
    printf("%s = %s%*s  (%s)\n", name, value, max_int(-*width - n, 0), "",
           origin);
  else if (n > *width && n <= 50)
    *width = n;
}

static void show_config(const struct cdo_config *cfg)
{
  int width = 0;

  cdo_config_show(cfg, show_setting, &width); /* measure */
  width = -width;
  cdo_config_show(cfg, show_setting, &width);
}

/* "1 entry", "412 entries". */
static const char *entries_word(uint64_t n)
{
  return n == 1 ? "entry" : "entries";
}

/* --clear -v: what went. */
static void report_cleared(const struct cdo_stats *cleared)
{
  char size[32];

  if (!cleared->listed) {
    say("cleared the cache (this backend cannot count its entries)");
    return;
  }
  cdo_format_size(cleared->bytes, size, sizeof(size));
  say("cleared %" PRIu64 " %s (%s)", cleared->entries,
      entries_word(cleared->entries), size);
}

/* --gc: expired entries out, then evict down to --max-size; one line. */
static int do_gc(struct cdo_store *s, const struct cdo_config *cfg)
{
  uint64_t removed = 0, evicted = 0, freed = 0;
  char fb[32], mb[32];
  int r;

  r = cdo_store_gc(s, &removed);
  if (r == 0)
    r = cdo_store_evict(s, cfg->max_size ? cfg->max_size : UINT64_MAX, &evicted,
                        &freed);
  if (r < 0 || quiet)
    return r;
  printf("removed %" PRIu64 " expired %s", removed, entries_word(removed));
  if (cfg->max_size) {
    cdo_format_size(freed, fb, sizeof(fb));
    cdo_format_size(cfg->max_size, mb, sizeof(mb));
    printf("; evicted %" PRIu64 " least recently used %s (%s) to stay under "
           "%s\n",
           evicted, entries_word(evicted), fb, mb);
  } else {
    printf("; evicted none (no --max-size)\n");
  }
  return 0;
}

/* One admin mode on one cache (one tier). */
static int admin_one(const struct cli *cli, const struct cdo_config *cfg,
                     struct cdo_store *s)
{
  int r;

  if (cli->mode == M_CLEAR) {
    struct cdo_stats cleared;

    r = cdo_store_clear(s, verbose ? &cleared : NULL);
    if (r == 0 && verbose)
      report_cleared(&cleared);
  } else if (cli->mode == M_ZERO_STATS) {
    r = cdo_store_zero_stats(s);
  } else if (cli->mode == M_GC) {
    r = do_gc(s, cfg);
  } else if (cli->mode == M_STATS) {
    struct cdo_stats st;

    r = cdo_store_summary(s, &st);
    if (r == 0 && cli->json)
      stats_json(&st, s, cfg);
    else if (r == 0)
      stats_table(&st, s, cfg);
  } else {
    r = do_list(cli, cfg, s);
  }
  return r;
}

/*
 * --clear, --stats, --list, --gc, --zero-stats: on every tier of the cache
 * in turn (a read-only one is left alone by the modes that write); several
 * tiers print one section each, and as JSON one array of them.
 */
static int admin(const struct cli *cli, const struct cdo_config *cfg)
{
  struct cdo_store *s, *t;
  char err[800];
  int r, i, failed = 0, done = 0, tiers;

  r = cdo_store_open(&s, cfg, err, sizeof(err));
  if (r < 0) {
    say("%s", err);
    return 1;
  }
  cdo_store_set_msg(s, on_msg, NULL);
  tiers = cdo_store_tier(s, 1) != NULL;
  if (tiers && cli->json && (cli->mode == M_STATS || cli->mode == M_LIST))
    printf("[");
  for (i = 0; (t = cdo_store_tier(s, i)) != NULL; i++) {
    if (tiers && !cli->json && (cli->mode == M_STATS || cli->mode == M_LIST))
      printf("%s# tier %d: %s\n", i ? "\n" : "", i + 1, cdo_store_url(t));
    else if (tiers && cli->json &&
             (cli->mode == M_STATS || cli->mode == M_LIST))
      printf("%s", i ? ",\n" : "");
    if (tiers && cli->json && cli->mode == M_LIST) {
      printf("{\"cache\":");
      json_str(cdo_store_url(t));
      printf(",\"entries\":");
    }
    r = admin_one(cli, cfg, t);
    if (tiers && cli->json && cli->mode == M_LIST)
      printf("}");
    if (r == CDO_EREADONLY && tiers)
      continue; /* a read-only tier is left as it is */
    done++;
    if (r < 0)
      say("%s", cdo_store_errmsg(t)[0] ? cdo_store_errmsg(t) : cdo_strerror(r));
    failed |= r != 0;
  }
  if (tiers && cli->json && (cli->mode == M_STATS || cli->mode == M_LIST))
    printf("]\n");
  for (t = s; t != NULL; t = cdo_store_tier(t, 1))
    if (cdo_store_skipped(t) != NULL && !quiet)
      say("warning: %s; skipped", cdo_store_skipped(t));
  if (done == 0 && !failed) {
    say("every tier of the cache is read-only");
    failed = 1;
  }
  cdo_store_close(s);
  return failed ? 1 : 0;
}

/*
 * --warm: checks that the cache opens (closing it again: an open database
 * must not cross fork()), then leaves the refresh to a detached child.
 * 0, 1 when there is no cache to warm, or the command's 126/127.
 */
static int warm(struct cdo_job *job, const struct cdo_config *cfg)
{
  struct cdo_store *s;
  char err[800];
  int r;

  if (cfg->no_cache) {
    say("--warm has no cache to fill (the cache is disabled)");
    return 1;
  }
  if (cdo_store_open(&s, cfg, err, sizeof(err)) < 0) {
    say("%s", err);
    return 1;
  }
  cdo_store_close(s);
  r = cdo_job_warm(job, err, sizeof(err));
  if (r != 0)
    say("%s", err);
  return r;
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
  char age[32], status[24] = "", pid[32] = "";

  switch (res->outcome) {
  case CDO_HIT:
  case CDO_STALE:
    if (res->waited_ms > 0) { /* replayed the run it waited for */
      format_wait(res->waited_ms, age, sizeof(age));
      if (res->wait_pid > 0)
        snprintf(pid, sizeof(pid), " for pid %ld", res->wait_pid);
      if (res->exit_status != 0)
        snprintf(status, sizeof(status), " (exit %d)", res->exit_status);
      say("hit after waiting %s%s%s", age, pid, status);
      break;
    }
    /* What was replayed: its age, a failure's status, and what follows. */
    cdo_format_duration(res->age_ms, age, sizeof(age));
    if (res->exit_status != 0)
      snprintf(status, sizeof(status), ", exit %d", res->exit_status);
    say("%s (age %s%s%s%s%s)", res->outcome == CDO_HIT ? "hit" : "stale", age,
        status, res->tier[0] ? ", from " : "", res->tier,
        res->outcome == CDO_HIT ? "" : ", refreshing in the background");
    break;
  case CDO_MISS_STORED:
    if (res->miss_why[0])
      say("miss, stored (%s)", res->miss_why);
    else
      say("miss, stored");
    break;
  case CDO_MISS_NOT_STORED:
    if (res->miss_why[0])
      say("miss, not stored: %s (%s)", res->reason, res->miss_why);
    else
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
#ifdef __SANITIZE_ADDRESS__
  exit(res->exit_status); /* runs the leak check */
#else
  /*
   * Everything is released and only stdio may hold output: the libraries'
   * exit handlers would fault in their code just to tear down.
   */
  fflush(NULL);
  _exit(res->exit_status);
#endif
}

/*
 * Opens /dev/null on any of fds 0, 1 and 2 that are closed, so that none of
 * cachedo's own files (a database, a spool, an event loop) can land there
 * and receive the command's output.
 */
static void sanitize_stdfds(void)
{
  int fd;

  for (fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);

      if (n >= 0 && n != fd) { /* a lower fd was free: cannot happen */
        dup2(n, fd);
        close(n);
      }
    }
  }
}

/* The name of a mode that changes the cache, for the read-only refusal. */
static const char *changing_mode_name(enum mode mode)
{
  switch (mode) {
  case M_CLEAR:
    return "--clear";
  case M_GC:
    return "--gc";
  case M_FORGET:
    return "--forget";
  case M_WARM:
    return "--warm";
  case M_ZERO_STATS:
    return "--zero-stats";
  default:
    return NULL;
  }
}

/* The modes without a command: --clear, --stats, ..., --show-config. */
static int run_admin_mode(const struct cli *cli, const struct cdo_config *cfg)
{
  if (cli->command[0] != NULL) {
    say("unexpected argument '%s' (--clear, --stats, --list, --gc, "
        "--zero-stats and --show-config take no command)",
        cli->command[0]);
    return 125;
  }
  if (cli->mode == M_SHOW_CONFIG) {
    show_config(cfg);
    return 0;
  }
  return admin(cli, cfg);
}

/* --key and --explain: what went into the key; *s is opened for digests. */
static int run_key_mode(const struct cli *cli, const struct cdo_config *cfg,
                        struct cdo_job *job, struct cdo_store **s)
{
  char err[800];

  if (cli->mode == M_KEY) {
    printf("%s\n", cdo_job_key(job));
    return 0;
  }
  if (!cfg->no_cache && cdo_store_open(s, cfg, err, sizeof(err)) < 0)
    *s = NULL; /* then no digests */
  cdo_job_explain(job, *s, print_explain, NULL);
  if (verbose && *s != NULL)
    cdo_job_explain_miss(job, *s, print_nearest, NULL);
  return 0;
}

/* --forget: 0 whether or not there was an entry, 1 when the store failed. */
static int run_forget(struct cdo_job *job, struct cdo_store *s)
{
  int r = s ? cdo_job_forget(job, s) : 0;

  if (r < 0)
    say("%s", cdo_store_errmsg(s));
  else if (verbose)
    say(r > 0 ? "forgot 1 entry" : "no entry to forget");
  return r < 0 ? 1 : 0;
}

/*
 * Runs the command through the cache (s NULL: uncached, because open_err
 * said why), releases everything, and exits as the command did.
 */
static void run_and_exit(struct cdo_job *job, struct cdo_store *s,
                         const char *open_err, struct cdo_config *cfg,
                         struct cli *cli)
{
  struct cdo_result res;

  cdo_job_run(job, s, &res);
  if (open_err != NULL && res.outcome == CDO_UNCACHED && res.error[0] == 0)
    snprintf(res.reason, sizeof(res.reason), "%.199s",
             open_err); /* not "disabled" */
  cdo_store_close(s);
  cdo_job_upkeep(job);
  if (res.outcome == CDO_STALE)
    cdo_job_refresh(job);
  cdo_job_free(job);
  cdo_config_release(cfg);
  free(cli->sets);
  if (res.error[0])
    say("%s", res.error);
  if (verbose)
    verbose_line(&res);
  exit_like(&res);
}

/*
 * The modes that act on the command's job: --key and --explain, --warm,
 * --forget, and a run, which exits as its command did. The exit status of
 * the others; *s is the store they opened, if any, for the caller to close.
 */
static int job_mode(struct cli *cli, struct cdo_config *cfg,
                    struct cdo_job *job, struct cdo_store **s)
{
  char err[800];

  if (cli->mode == M_KEY || cli->mode == M_EXPLAIN)
    return run_key_mode(cli, cfg, job, s);
  if (cli->mode == M_WARM)
    return warm(job, cfg);
  if ((!cfg->no_cache || cli->mode == M_FORGET) &&
      cdo_store_open(s, cfg, err, sizeof(err)) < 0) {
    if (cli->mode == M_FORGET) {
      say("%s", err);
      return 1;
    }
    if (!quiet)
      say("warning: %s; running uncached", err);
    *s = NULL;
  }
  if (*s != NULL)
    cdo_store_set_msg(*s, on_msg, NULL);
  if (cli->mode == M_FORGET)
    return run_forget(job, *s);
  run_and_exit(job, *s, *s == NULL && !cfg->no_cache ? err : NULL, cfg, cli);
  return 125; /* not reached: run_and_exit exits */
}

int main(int argc, char **argv)
{
  struct cli cli = {0};
  struct cdo_config cfg;
  struct cdo_job *job = NULL;
  struct cdo_store *s = NULL;
  char err[800];
  int r;

  sanitize_stdfds();
  signal(SIGPIPE, on_sigpipe);
  cdo_config_init(&cfg);
  r = 125;
  if (parse_args(&cli, argc, argv) < 0)
    goto out;
  if (cli.mode == M_HELP || cli.mode == M_VERSION) {
    if (cli.mode == M_HELP)
      print_help();
    else
      printf("cachedo %s\nbackends: %s\n", CDO_VERSION, cdo_backends());
    r = 0;
    goto out;
  }
  if (load_config(&cfg, &cli) < 0)
    goto out;
  quiet = cfg.quiet;
  verbose = cfg.verbose;
  if (cfg.read_only && changing_mode_name(cli.mode) != NULL) {
    say("%s cannot change a read-only cache (drop --read-only, or "
        "CACHEDO_READ_ONLY)",
        changing_mode_name(cli.mode));
    goto out;
  }
  cfg.deliberate = cli.mode >= M_CLEAR || cli.mode == M_FORGET;
  cfg.keyless = cfg.no_cache && cli.mode == M_RUN; /* a run needs no key */
  if (cli.mode >= M_CLEAR) {
    r = run_admin_mode(&cli, &cfg);
    goto out;
  }
  if (cli.command[0] == NULL) {
    say("no command given (try 'cachedo --help')");
    goto out;
  }
  if (cdo_job_new(&job, &cfg, cli.command, environ, on_msg, NULL, err,
                  sizeof(err)) < 0) {
    say("%s", err);
    goto out;
  }
  r = job_mode(&cli, &cfg, job, &s);
out:
  cdo_store_close(s);
  cdo_job_free(job);
  cdo_config_release(&cfg);
  free(cli.sets);
  return r;
}
