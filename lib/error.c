/* SPDX-License-Identifier: MIT */
/* cdo_strerror(): messages for cachedo's own codes and for -errno. */
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
