/* SPDX-License-Identifier: MIT */
/*
 * cdo_strerror(): messages for cachedo's own codes and for -errno; and the
 * kinds of cache failure --stats counts them by.
 */
#include "cdo_int.h"

const char *cdo_strerror(int code)
{
  switch (code) {
  case 0:
    return "success";
#define CDO__XX(name, val, msg)                                                \
  case CDO_##name:                                                             \
    return msg;
    CDO_ERRNO_MAP(CDO__XX)
#undef CDO__XX
  default:
    return code < 0 ? strerror(-code) : "unknown error";
  }
}

static const char *const errkind_names[] = {
#define CDO__XX(name, label) label,
    CDO_ERRKIND_MAP(CDO__XX)
#undef CDO__XX
};

const char *cdo_errkind_name(int kind)
{
  if (kind < 0 || kind >= CDO_ERRKIND_COUNT)
    return "other";
  return errkind_names[kind];
}

int cdo_errkind_of(int code)
{
  switch (code) {
  case CDO__ERR(ETIMEDOUT):
  case CDO__ERR(EAGAIN):
    return CDO_ERRKIND_TIMEOUT;
  case CDO_EFAILED:
  case CDO__ERR(ECONNREFUSED):
  case CDO__ERR(ECONNRESET):
  case CDO__ERR(EHOSTUNREACH):
  case CDO__ERR(ENETUNREACH):
  case CDO__ERR(ENOTCONN):
  case CDO__ERR(EPIPE):
    return CDO_ERRKIND_UNREACHABLE;
  case CDO_ECORRUPT:
    return CDO_ERRKIND_CORRUPT;
  case CDO_EUNSAFE:
  case CDO__ERR(EACCES):
  case CDO__ERR(EPERM):
  case CDO__ERR(EROFS):
    return CDO_ERRKIND_DENIED;
  case CDO__ERR(ENOSPC):
  case CDO__ERR(EDQUOT):
  case CDO__ERR(EFBIG):
    return CDO_ERRKIND_FULL;
  default:
    return CDO_ERRKIND_OTHER;
  }
}
