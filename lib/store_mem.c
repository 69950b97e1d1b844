/* SPDX-License-Identifier: MIT */
/*
 * The mem: backend: a dir: cache on tmpfs ($XDG_RUNTIME_DIR/cachedo when
 * that is a directory, else /dev/shm/cachedo-UID), gone after a reboot.
 * It only says where; the dir: backend does the rest.
 */
#include "store_int.h"

#include <sys/stat.h>
#include <unistd.h>

static int mem_check(const char *rest, char *err, size_t errlen)
{
  if (*rest != 0) {
    cdo__fmt(err, errlen, "unexpected '%s' after 'mem:' (expected mem: alone)",
             rest);
    return CDO_EBADURL;
  }
  return 0;
}

static int mem_locate(const char *rest, char *url, size_t len)
{
  const char *run = getenv("XDG_RUNTIME_DIR");
  struct stat st;

  (void)rest;
  if (run != NULL && run[0] == '/' && stat(run, &st) == 0 &&
      S_ISDIR(st.st_mode))
    cdo__fmt(url, len, "dir:%s/cachedo", run);
  else
    cdo__fmt(url, len, "dir:/dev/shm/cachedo-%u", (unsigned)geteuid());
  return 0;
}

const struct cdo__store_ops cdo__store_mem = {
    .scheme = "mem:",
    .name = "mem",
    .usage = "mem:",
    .about = "a dir: cache on tmpfs",
    .check = mem_check,
    .locate = mem_locate,
};
