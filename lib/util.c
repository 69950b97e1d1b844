/* SPDX-License-Identifier: MIT */
/* Small shared helpers: formatting, byte buffers, clocks, value parsers. */
#include "cdo_int.h"

#include <ctype.h>
#include <strings.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <time.h>

void cdo__fmt(char *buf, size_t len, const char *fmt, ...)
{
  va_list ap;

  if (buf == NULL || len == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(buf, len, fmt, ap);
  va_end(ap);
}

int cdo__buf_add(struct cdo__buf *b, const void *data, size_t n)
{
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    unsigned char *p;

    while (cap < b->len + n + 1)
      cap *= 2;
    p = realloc(b->p, cap);
    if (p == NULL)
      return CDO__ERR(ENOMEM);
    b->p = p;
    b->cap = cap;
  }
  if (n)
    memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = 0;
  return 0;
}

int cdo__buf_u8(struct cdo__buf *b, unsigned v)
{
  unsigned char c = (unsigned char)v;

  return cdo__buf_add(b, &c, 1);
}

int cdo__buf_u32(struct cdo__buf *b, uint32_t v)
{
  unsigned char p[4];

  cdo__put32(p, v);
  return cdo__buf_add(b, p, 4);
}

int cdo__buf_u64(struct cdo__buf *b, uint64_t v)
{
  unsigned char p[8];

  cdo__put64(p, v);
  return cdo__buf_add(b, p, 8);
}

void cdo__buf_release(struct cdo__buf *b)
{
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static int64_t clock_us(clockid_t id)
{
  struct timespec ts;

  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t clock_ms(clockid_t id)
{
  return clock_us(id) / 1000;
}

int64_t cdo__mtime_ms(const struct stat *st)
{
  return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

int64_t cdo__mono_us(void)
{
  return clock_us(CLOCK_MONOTONIC);
}

int64_t cdo__backoff_us(int64_t waited_us, int64_t limit_us)
{
  int64_t d = waited_us / 8;

  if (waited_us >= limit_us)
    return -1;
  d = d < 100 ? 100 : d > 10000 ? 10000 : d;
  return d < limit_us - waited_us ? d : limit_us - waited_us;
}

int64_t cdo__now_ms(void)
{
  return clock_ms(CLOCK_REALTIME);
}

int64_t cdo__mono_ms(void)
{
  return clock_ms(CLOCK_MONOTONIC);
}

/* Reads the leading decimal digits of s into *v; the rest in *end. */
static int parse_digits(const char *s, uint64_t *v, const char **end)
{
  uint64_t n = 0;

  if (!isdigit((unsigned char)*s))
    return CDO_EBADVALUE;
  for (; isdigit((unsigned char)*s); s++) {
    if (n > (UINT64_MAX - 9) / 10)
      return CDO_EBADVALUE;
    n = n * 10 + (uint64_t)(*s - '0');
  }
  *v = n;
  *end = s;
  return 0;
}

/* A number with an optional fraction: "12", "1.5", "0.25" (not "1." or ".5").
 */
struct decimal {
  uint64_t whole;
  uint64_t frac;  /* the fraction's digits as an integer */
  uint64_t scale; /* 10 to the number of fraction digits */
};

static int parse_decimal(const char *s, struct decimal *d, const char **end)
{
  uint64_t digits;

  d->frac = 0;
  d->scale = 1;
  if (parse_digits(s, &d->whole, &s) < 0)
    return CDO_EBADVALUE;
  if (*s == '.') {
    const char *f = s + 1;

    /* Up to 9 digits: enough for a nanosecond of a week, and no overflow. */
    if (parse_digits(f, &d->frac, &s) < 0 || s - f > 9)
      return CDO_EBADVALUE;
    for (digits = (uint64_t)(s - f); digits > 0; digits--)
      d->scale *= 10;
  }
  *end = s;
  return 0;
}

/* d times unit, rounded to the nearest integer; -1 past max. */
static int scale_decimal(const struct decimal *d, uint64_t unit, uint64_t max,
                         uint64_t *out)
{
  uint64_t part;

  if (d->whole > max / unit)
    return CDO_EBADVALUE;
  /* frac < scale <= 1e9, so frac * unit fits when unit < 1.8e10. */
  if (unit < UINT64_C(18000000000))
    part = (d->frac * unit + d->scale / 2) / d->scale;
  else
    part = (uint64_t)((double)d->frac / (double)d->scale * (double)unit + 0.5);
  if (part > max - d->whole * unit)
    return CDO_EBADVALUE;
  *out = d->whole * unit + part;
  return 0;
}

/*
 * DURATION = NUMBER [UNIT] | (NUMBER UNIT)+, the units of a compound
 * strictly from the largest down ("1h30m", not "30m1h"); NUMBER may have a
 * fraction ("1.5h"); a bare number is seconds. Units are case-sensitive:
 * "m" is minutes, "ms" milliseconds.
 */
int cdo_parse_duration(const char *s, int64_t *out_ms)
{
  static const struct {
    const char *unit;
    uint64_t ms;
  } units[] = {
      {"ms", 1},           {"msec", 1},          {"msecs", 1},
      {"millisecond", 1},  {"milliseconds", 1},  {"s", 1000},
      {"sec", 1000},       {"secs", 1000},       {"second", 1000},
      {"seconds", 1000},   {"m", 60000},         {"min", 60000},
      {"mins", 60000},     {"minute", 60000},    {"minutes", 60000},
      {"h", 3600000},      {"hr", 3600000},      {"hrs", 3600000},
      {"hour", 3600000},   {"hours", 3600000},   {"d", 86400000},
      {"day", 86400000},   {"days", 86400000},   {"w", 604800000},
      {"week", 604800000}, {"weeks", 604800000},
  };
  /* At most 100 years, so that sums of times never overflow. */
  const uint64_t max = (uint64_t)100 * 365 * 86400000;
  uint64_t total = 0, last = UINT64_MAX;
  int terms = 0;

  if (s == NULL || *s == 0)
    return CDO_EBADVALUE;
  while (*s) {
    struct decimal d;
    const char *u;
    uint64_t unit = 0, v;
    size_t n, i;

    if (parse_decimal(s, &d, &u) < 0)
      return CDO_EBADVALUE;
    for (n = 0; isalpha((unsigned char)u[n]); n++)
      ;
    if (n == 0 && terms == 0 && u[0] == 0)
      unit = 1000; /* a bare number: seconds */
    for (i = 0; n > 0 && i < CDO__ARRAY_SIZE(units); i++)
      if (strlen(units[i].unit) == n && memcmp(units[i].unit, u, n) == 0)
        unit = units[i].ms;
    if (unit == 0 || unit >= last || scale_decimal(&d, unit, max, &v) < 0 ||
        v > max - total)
      return CDO_EBADVALUE;
    total += v;
    last = n > 0 ? unit : 0;
    terms++;
    s = u + n;
  }
  *out_ms = (int64_t)total;
  return 0;
}

/* SIZE = NUMBER [K|M|G|T [i]] [B], 1024-based; a fraction needs a unit. */
int cdo_parse_size(const char *s, uint64_t *out)
{
  static const char scale[] = "KMGT";
  const char *end, *p;
  struct decimal d;
  uint64_t mult = 1;

  if (s == NULL || parse_decimal(s, &d, &end) < 0)
    return CDO_EBADVALUE;
  if (*end != 0) {
    p = strchr(scale, toupper((unsigned char)*end));
    if (p == NULL && *end != 'B')
      return CDO_EBADVALUE;
    if (p != NULL) {
      for (int i = 0; i <= p - scale; i++)
        mult *= 1024;
      end++;
      if (*end == 'i')
        end++;
    }
    if (*end == 'B')
      end++;
    if (*end != 0)
      return CDO_EBADVALUE;
  }
  if (d.frac != 0 && mult == 1)
    return CDO_EBADVALUE; /* a fraction of a byte */
  return scale_decimal(&d, mult, UINT64_MAX, out);
}

void cdo_format_duration(int64_t ms, char *buf, size_t len)
{
  static const struct {
    const char *unit;
    int64_t ms;
  } u[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
  size_t i;

  if (ms < 1000) {
    cdo__fmt(buf, len, "%" PRId64 "ms", ms < 0 ? 0 : ms);
    return;
  }
  for (i = 0; i < CDO__ARRAY_SIZE(u) - 1; i++) {
    if (ms >= u[i].ms) {
      int64_t rest = ms % u[i].ms / u[i + 1].ms;

      if (rest)
        cdo__fmt(buf, len, "%" PRId64 "%s %" PRId64 "%s", ms / u[i].ms,
                 u[i].unit, rest, u[i + 1].unit);
      else
        cdo__fmt(buf, len, "%" PRId64 "%s", ms / u[i].ms, u[i].unit);
      return;
    }
  }
  cdo__fmt(buf, len, "%" PRId64 "s", ms / 1000);
}

void cdo_format_size(uint64_t n, char *buf, size_t len)
{
  static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)n;
  size_t i = 0;

  if (n < 1024) {
    cdo__fmt(buf, len, "%" PRIu64 " B", n);
    return;
  }
  while (v >= 1024 && i < CDO__ARRAY_SIZE(unit) - 1) {
    v /= 1024;
    i++;
  }
  cdo__fmt(buf, len, v < 10 ? "%.1f %s" : "%.0f %s", v, unit[i]);
}

/* Replaces the value of a "password=" option after the URL's '?'. */
static void mask_option(char *url)
{
  char *q = strchr(url, '?'), *p;

  for (p = q; p != NULL; p = strpbrk(p + 1, "&")) {
    if (strncmp(p + 1, "password=", 9) == 0) {
      char *v = p + 10;
      size_t n = strcspn(v, "& \t"), stars = n < 3 ? n : 3;

      memset(v, '*', stars);
      memmove(v + stars, v + n, strlen(v + n) + 1);
    }
  }
}

void cdo__url_mask(char *url)
{
  char *a = strstr(url, "://"), *at, *colon;
  size_t n, stars;

  mask_option(url);
  if (a != NULL)
    a += 3;
  else if (strncasecmp(url, "redis:", 6) == 0) /* "redis:u:pw@h", mistyped */
    a = url + 6 + strspn(url + 6, "/");
  else
    return;
  at = strrchr(a, '@'); /* a password may hold '/', ':' and '@' */
  if (at == NULL || (colon = memchr(a, ':', (size_t)(at - a))) == NULL)
    return;
  n = (size_t)(at - colon - 1);
  stars = n < 3 ? n : 3;
  memset(colon + 1, '*', stars);
  memmove(colon + 1 + stars, at, strlen(at) + 1);
}

static int hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

char *cdo__pct_decode(const char *p, size_t n)
{
  char *out = malloc(n + 1), *o = out;
  size_t i;

  if (out == NULL)
    return NULL;
  for (i = 0; i < n; i++) {
    int hi, lo;

    if (p[i] != '%') {
      *o++ = p[i];
      continue;
    }
    hi = i + 2 < n ? hexval(p[i + 1]) : -1;
    lo = i + 2 < n ? hexval(p[i + 2]) : -1;
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
      free(out);
      return NULL;
    }
    *o++ = (char)(hi << 4 | lo);
    i += 2;
  }
  *o = 0;
  return out;
}

const char *cdo__value_expected(enum cdo__vtype t)
{
  static const char *const expected[] = {
      [CDO__V_DURATION_POS] = "a duration > 0 like 30s, 500ms, 5m, 1h30m or "
                              "1.5h (units ms s m h d w; m: minutes)",
      [CDO__V_DURATION] = "a duration like 0, 30s, 500ms, 5m, 1h30m or 1.5h "
                          "(units ms s m h d w; m: minutes)",
      [CDO__V_SIZE] = "a size like 1048576, 64K, 256M, 1.5G",
      [CDO__V_STRING] = "a non-empty value",
      [CDO__V_NUMBER] = "a number from 0 to 1000000",
  };

  return t < CDO__V_COUNT ? expected[t] : "a value";
}

int cdo__value_parse(enum cdo__vtype t, const char *val, void *out)
{
  const char *end;
  uint64_t n;
  int64_t ms;

  switch (t) {
  case CDO__V_DURATION_POS:
  case CDO__V_DURATION:
    if (cdo_parse_duration(val, &ms) < 0 ||
        (t == CDO__V_DURATION_POS && ms == 0))
      return CDO_EBADVALUE;
    memcpy(out, &ms, sizeof(ms));
    return 0;
  case CDO__V_SIZE:
    if (cdo_parse_size(val, &n) < 0)
      return CDO_EBADVALUE;
    memcpy(out, &n, sizeof(n));
    return 0;
  case CDO__V_STRING:
    return val != NULL && *val != 0 ? 0 : CDO_EBADVALUE;
  case CDO__V_NUMBER:
    if (val == NULL || parse_digits(val, &n, &end) < 0 || *end != 0 ||
        n > 1000000)
      return CDO_EBADVALUE;
    ms = (int64_t)n;
    memcpy(out, &ms, sizeof(ms));
    return 0;
  default:
    return CDO_EBADVALUE;
  }
}

void cdo__vmsg(cdo_msg_fn fn, void *ud, int level, const char *fmt, va_list ap)
{
  char buf[600];

  if (fn == NULL)
    return;
  vsnprintf(buf, sizeof(buf), fmt, ap);
  fn(ud, level, buf);
}

size_t cdo_edit_distance(const char *a, size_t n, const char *b)
{
  size_t m = strlen(b), d[40][40], i, j;

  if (n >= 40 || m >= 40)
    return (size_t)-1;
  for (i = 0; i <= n; i++)
    d[i][0] = i;
  for (j = 0; j <= m; j++)
    d[0][j] = j;
  for (i = 1; i <= n; i++) {
    for (j = 1; j <= m; j++) {
      size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);

      if (d[i - 1][j] + 1 < best)
        best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best)
        best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  }
  return d[n][m];
}

void cdo_nearest(const char *word, size_t n, const char *const *names,
                 size_t count, const char *prefix, char *buf, size_t len)
{
  size_t i, best = n <= 4 ? 1 : 2, used = 0;

  if (len == 0)
    return;
  buf[0] = 0;
  for (i = 0; i < count; i++) {
    size_t d = cdo_edit_distance(word, n, names[i]);

    if (d < best)
      best = d;
  }
  for (i = 0; i < count && used < len; i++)
    if (cdo_edit_distance(word, n, names[i]) == best)
      used += (size_t)snprintf(buf + used, len - used, "%s%s%s",
                               used ? " or " : "", prefix, names[i]);
}

char *cdo__strjoin(const char *a, const char *sep, const char *b)
{
  size_t n = strlen(a) + strlen(sep) + strlen(b) + 1;
  char *s = malloc(n);

  if (s != NULL)
    cdo__fmt(s, n, "%s%s%s", a, sep, b);
  return s;
}
