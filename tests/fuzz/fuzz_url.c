/* SPDX-License-Identifier: MIT */
/*
 * The cache-URL parser: cdo_url_check on any string (scheme, address,
 * ?options), and the same string through the config setting "cache", as a
 * command line or config file gives it. Nothing is opened.
 */
#include "../../lib/cachedo.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *s = fuzz_str(data, size), err[600];
  struct cdo_config c;

  if (s == NULL)
    return 0;
  if (cdo_url_check(s, err, sizeof(err)) < 0 && err[0] == 0)
    abort(); /* a refusal always says why */
  cdo_config_init(&c);
  cdo_config_set(&c, "cache", s, err, sizeof(err));
  cdo_config_release(&c);
  free(s);
  return 0;
}
