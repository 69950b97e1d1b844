/* SPDX-License-Identifier: MIT */
/*
 * What the fuzz targets share: turning the fuzzer's bytes into C strings
 * and argument vectors. Each target is one LLVMFuzzerTestOneInput over the
 * real lib/ (or cmd/) functions; `make fuzz` builds and runs them.
 */
#ifndef CDO_FUZZ_H
#define CDO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as a NUL-terminated string (cut at its first NUL), malloc'd. */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
  char *s = malloc(size + 1);

  if (s != NULL) {
    memcpy(s, data, size);
    s[size] = 0;
  }
  return s;
}

/*
 * data split at NUL bytes into up to max - 1 strings after argv0, in *argv
 * (NULL-terminated), all in one malloc'd block that *block owns. Returns
 * argc.
 */
static inline int fuzz_argv(const uint8_t *data, size_t size, const char *argv0,
                            char **argv, int max, char **block)
{
  char *p = malloc(size + 1);
  int argc = 0;
  size_t i, start = 0;

  *block = p;
  argv[argc++] = (char *)argv0;
  if (p == NULL) {
    argv[argc] = NULL;
    return argc;
  }
  memcpy(p, data, size);
  p[size] = 0;
  for (i = 0; i <= size && argc < max - 1; i++)
    if (i == size || p[i] == 0) {
      p[i] = 0;
      argv[argc++] = p + start;
      start = i + 1;
    }
  argv[argc] = NULL;
  return argc;
}

#endif /* CDO_FUZZ_H */
