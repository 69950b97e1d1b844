/* SPDX-License-Identifier: MIT */
/* Small shared helpers: formatting, byte buffers, clocks, value parsers. */
#include "cdo_int.h"

#include <ctype.h>
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

static int64_t clock_ms(clockid_t id)
{
  struct timespec ts;

  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

int cdo_parse_duration(const char *s, int64_t *out_ms)
{
  static const struct {
    const char *unit;
    uint64_t ms;
  } units[] = {{"", 1000},     {"ms", 1},       {"s", 1000},     {"m", 60000},
               {"h", 3600000}, {"d", 86400000}, {"w", 604800000}};
  const char *end;
  uint64_t v;
  size_t i;

  if (s == NULL || parse_digits(s, &v, &end) < 0)
    return CDO_EBADVALUE;
  for (i = 0; i < CDO__ARRAY_SIZE(units); i++) {
    if (strcmp(end, units[i].unit) == 0) {
      /* At most 100 years, so that sums of times never overflow. */
      if (v > (uint64_t)100 * 365 * 86400000 / units[i].ms)
        return CDO_EBADVALUE;
      *out_ms = (int64_t)(v * units[i].ms);
      return 0;
    }
  }
  return CDO_EBADVALUE;
}

int cdo_parse_size(const char *s, uint64_t *out)
{
  static const char scale[] = "KMGT";
  const char *end, *p;
  uint64_t v, mult = 1;

  if (s == NULL || parse_digits(s, &v, &end) < 0)
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
  if (v > UINT64_MAX / mult)
    return CDO_EBADVALUE;
  *out = v * mult;
  return 0;
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
  if (a == NULL)
    return;
  a += 3;
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
      [CDO__V_DURATION_POS] =
          "a duration > 0 like 30s, 500ms, 5m (units ms s m h d w)",
      [CDO__V_DURATION] =
          "a duration like 0, 30s, 500ms, 5m (units ms s m h d w)",
      [CDO__V_SIZE] = "a size like 1048576, 64K, 256M, 2G",
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
