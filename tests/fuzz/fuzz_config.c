/* SPDX-License-Identifier: MIT */
/*
 * The config-file parser: the bytes become a config file (in a memfd, read
 * through its /proc path) that cdo_config_load_file reads into a fresh
 * config; a refusal must say why.
 */
#include "../../lib/cachedo.h"
#include "fuzz.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct cdo_config c;
  char path[64], err[800];
  int fd = memfd_create("cachedo-config", MFD_CLOEXEC);

  if (fd < 0)
    return 0;
  if (write(fd, data, size) == (ssize_t)size) {
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    cdo_config_init(&c);
    err[0] = 0;
    if (cdo_config_load_file(&c, path, err, sizeof(err)) < 0 && err[0] == 0)
      abort();
    cdo_config_release(&c);
  }
  close(fd);
  return 0;
}
