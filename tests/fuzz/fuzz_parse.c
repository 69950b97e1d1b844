/* SPDX-License-Identifier: MIT */
/*
 * The duration and size parsers (cdo_parse_duration, cdo_parse_size) on any
 * string, and the formatters on whatever they accept: a value is either
 * refused or in range, and formats into a bounded buffer.
 */
#include "../../lib/cachedo.h"
#include "fuzz.h"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *s = fuzz_str(data, size), buf[64];
  int64_t ms;
  uint64_t n;

  if (s == NULL)
    return 0;
  if (cdo_parse_duration(s, &ms) == 0) {
    if (ms < 0)
      abort(); /* a duration is never negative */
    cdo_format_duration(ms, buf, sizeof(buf));
  }
  if (cdo_parse_size(s, &n) == 0)
    cdo_format_size(n, buf, sizeof(buf));
  free(s);
  return 0;
}
