/* SPDX-License-Identifier: MIT */
/*
 * Linked only into the fully static binary (with -Wl,--wrap=dlopen), like
 * everything in lib/compat/. SQLite's extension loader and libuv's password
 * lookup reference dlopen() and getpwuid_r(), which a static glibc can only
 * serve with the shared libraries present at run time (the linker warns).
 * cachedo calls neither: these stand-ins fail cleanly.
 */
#include <errno.h>
#include <pwd.h>
#include <stddef.h>

void *__wrap_dlopen(const char *file, int mode);

void *__wrap_dlopen(const char *file, int mode)
{
  (void)file;
  (void)mode;
  return NULL;
}

int getpwuid_r(uid_t uid, struct passwd *pwd, char *buf, size_t len,
               struct passwd **result)
{
  (void)uid;
  (void)pwd;
  (void)buf;
  (void)len;
  *result = NULL;
  return ENOSYS;
}
