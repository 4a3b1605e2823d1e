/*
** error.c: corio's error codes, their names and messages, and the mapping
** from libuv codes.
*/
#include "core.h"

const char *corio_err_name(int err) {
  switch (err) {
#define XX(name, value, msg)                                                   \
  case CORIO_##name:                                                           \
    return #name;
    CORIO_ERRNO_MAP(XX)
#undef XX
  default:
    return "EUNKNOWN";
  }
}

const char *corio_strerror(int err) {
  switch (err) {
#define XX(name, value, msg)                                                   \
  case CORIO_##name:                                                           \
    return msg;
    CORIO_ERRNO_MAP(XX)
#undef XX
  default:
    return "unknown error";
  }
}

int corio_translate_uv_error(int uverr) {
  switch (uverr) {
  case 0:
    return 0;
  case UV_ENOMEM:
  case UV_ENOBUFS:
    return CORIO_ENOMEM;
  case UV_EINVAL:
    return CORIO_EINVAL;
  case UV_ECANCELED:
    return CORIO_ECANCELED;
  case UV_ETIMEDOUT:
    return CORIO_ETIMEDOUT;
  case UV_EBUSY:
    return CORIO_EBUSY;
  case UV_EADDRINUSE:
    return CORIO_EADDRINUSE;
  case UV_EMFILE:
  case UV_ENFILE:
    return CORIO_EMFILE;
  case UV_ECONNREFUSED:
  case UV_ENETUNREACH:
  case UV_EHOSTUNREACH:
    return CORIO_ECONNECT;
  case UV_ECONNRESET:
  case UV_EPIPE:
  case UV_EOF:
    return CORIO_ERESET;
  case UV_EAI_NONAME:
  case UV_EAI_AGAIN:
  case UV_EAI_FAIL:
    return CORIO_EDNS;
  default:
    return CORIO_EIO;
  }
}

const char *corio_version_string(void) {
#define CORIO__STR2(x) #x
#define CORIO__STR(x)  CORIO__STR2(x)
  return CORIO__STR(CORIO_VERSION_MAJOR) "." CORIO__STR(
      CORIO_VERSION_MINOR) "." CORIO__STR(CORIO_VERSION_PATCH);
}
