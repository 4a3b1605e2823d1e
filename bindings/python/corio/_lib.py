"""libcorio.so through ctypes: the library, the C structures the binding
reads and fills, and the functions it calls.  No compiled glue: the only
native code is libcorio's.

The library is the file named by CORIO_LIBRARY when that is set, else
libcorio.so found on the system's library path.

ctypes releases the GIL around every call into the library (CDLL, not
PyDLL), so the loop thread's corio_rt_run runs without it; the callbacks
below (CFUNCTYPE) take it while they run.  The calls made with the GIL
held (PyDLL, gil=True) are short, or run on a thread that needs the GIL
for what they call back anyway (asyncio's corio_rt_step).
"""
import ctypes
import ctypes.util
import os

from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double,
                    c_int, c_long, c_size_t, c_void_p)


def _load():
    path = os.environ.get("CORIO_LIBRARY")
    if path:
        return ctypes.CDLL(path)
    tried = []
    for name in (ctypes.util.find_library("corio"), "libcorio.so.0",
                 "libcorio.so"):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            tried.append(str(e))
    raise OSError("corio: libcorio.so not found on the library path; set "
                  "CORIO_LIBRARY to its path (" + "; ".join(tried) + ")")


lib = _load()
# The same library, called with the GIL held: for the short calls the
# loop thread makes from inside its callbacks (and corio_rt_post), where
# releasing the GIL would only let another thread take it, and the loop
# thread then wait for it back while its I/O waits too.
lib_gil = ctypes.PyDLL(lib._name, handle=lib._handle)


class Header(Structure):
    _fields_ = [("name", c_char_p), ("value", c_char_p)]


class Retry(Structure):
    _fields_ = [("attempts", c_int), ("backoff", c_double),
                ("max_backoff", c_double), ("statuses", POINTER(c_int)),
                ("nstatuses", c_size_t), ("methods", POINTER(c_char_p)),
                ("nmethods", c_size_t)]


class Request(Structure):
    # corio_request, then room for fields a newer library may append:
    # corio_request_init writes all of its own fields.
    _fields_ = [("url", c_char_p), ("method", c_char_p),
                ("headers", POINTER(Header)), ("nheaders", c_size_t),
                ("body", c_void_p), ("body_len", c_size_t),
                ("timeout", c_double), ("connect_timeout", c_double),
                ("follow_redirects", c_int), ("max_redirects", c_int),
                ("max_body", c_size_t), ("verify_tls", c_int),
                ("http_version", c_int), ("proxy", c_char_p),
                ("body_alloc", c_void_p), ("body_alloc_ud", c_void_p),
                ("body_offset", c_size_t), ("retry", Retry),
                ("on_head", c_void_p), ("on_data", c_void_p),
                ("_room", c_char * 512)]


class Timing(Structure):
    _fields_ = [("dns", c_double), ("connect", c_double), ("tls", c_double),
                ("ttfb", c_double), ("total", c_double), ("queue", c_double),
                ("start", c_double)]


class Response(Structure):  # read only, in the completion callback
    _fields_ = [("status", c_long), ("headers", POINTER(Header)),
                ("nheaders", c_size_t), ("body", c_void_p),
                ("body_len", c_size_t), ("url", c_char_p),
                ("http_version", c_char_p), ("timing", Timing),
                ("error", c_char_p), ("attempts", c_int),
                ("bytes", c_size_t), ("header_data", c_void_p),
                ("header_data_len", c_size_t)]


class SessionOpts(Structure):
    _fields_ = [("max_connections", c_size_t), ("max_per_host", c_size_t),
                ("max_idle", c_size_t), ("rate", c_size_t)]


# void fn(corio_rt *rt, int status, void *data)
POST_FN = CFUNCTYPE(None, c_void_p, c_int, c_void_p)
# void cb(corio_fetch *f, int status, const corio_response *res, void *ud)
# (res as an address: _response.py reads it in one call)
FETCH_CB = CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_void_p)


def _fn(name, restype, *argtypes, gil=False):
    f = getattr(lib_gil if gil else lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


rt_new = _fn("corio_rt_new", c_void_p, c_void_p)
rt_free = _fn("corio_rt_free", c_int, c_void_p)
rt_run = _fn("corio_rt_run", c_int, c_void_p, c_int)
# corio_rt_run and corio_rt_free run the loop: never with the GIL
rt_stop = _fn("corio_rt_stop", None, c_void_p, gil=True)
rt_post = _fn("corio_rt_post", c_int, c_void_p, POST_FN, c_void_p, gil=True)
rt_keep_alive = _fn("corio_rt_keep_alive", None, c_void_p, c_int, gil=True)
request_init = _fn("corio_request_init", None, POINTER(Request), c_char_p,
                   gil=True)
fetch_start = _fn("corio_fetch_start", c_int, c_void_p, c_void_p,
                  POINTER(Request), FETCH_CB, c_void_p, POINTER(c_void_p),
                  gil=True)
fetch_cancel = _fn("corio_fetch_cancel", c_int, c_void_p, gil=True)
session_new = _fn("corio_session_new", c_void_p, c_void_p,
                  POINTER(SessionOpts), gil=True)
session_free = _fn("corio_session_free", c_int, c_void_p, gil=True)
# asyncio's runtimes (_Driver): stepped from the asyncio thread, GIL held
rt_backend_fd = _fn("corio_rt_backend_fd", c_int, c_void_p, gil=True)
rt_step = _fn("corio_rt_step", c_int, c_void_p, POINTER(c_int), gil=True)
rt_free_gil = _fn("corio_rt_free", c_int, c_void_p, gil=True)
strerror = _fn("corio_strerror", c_char_p, c_int)
err_name = _fn("corio_err_name", c_char_p, c_int)
version = _fn("corio_version_string", c_char_p)

UV_RUN_DEFAULT = 0

# corio.h's error codes, from the library itself
E = {}
for _code in range(-1, -64, -1):
    _name = err_name(_code).decode()
    if _name == "EUNKNOWN":
        break
    E[_name] = _code

HTTP_VERSIONS = {"1.0": 1, "1.1": 2, "2": 3, "2-only": 4}
