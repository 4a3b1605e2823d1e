"""Response bodies received straight into the `bytes` object that becomes
Response.body, without a copy.

Copying a body out of corio's buffer into a new `bytes` is what a
Python response costs most beyond the Lua binding's: about 7 us for
100 KiB (bench/NOTES.md, "Python bodies without a copy").  corio can
receive a body in a block of the caller's allocator instead, at an
offset of the caller's choosing, with a NUL after it
(corio_request.body_alloc).  A `bytes` object is exactly such a block:
its header, then its bytes, then a NUL.  So the allocator below makes
each block a new `bytes` object of the size corio asks for
(PyBytes_FromStringAndSize with no source leaves its bytes to be
written, as the C API allows until the object is shared), and the
completion callback finds the object by the body's address and makes it
the body.  Freeing a block, for corio, is only dropping this module's
reference (corio does, right after the callback): the object lives on as
long as Python holds it, so the callback need not take the block from
corio (corio_fetch_take_body), one foreign call less per response.  A
body received to its full announced length (a Content-Length) fills its
object exactly; any other (chunked, cut short) is sliced, which copies it
as before.

Nothing here reads CPython's private structures: where the bytes start
in the object is measured once, through the C API, and when that cannot
be done (no ctypes.pythonapi, as on PyPy) bodies are copied.

The allocator runs on the thread of the loop that receives the body,
with the GIL (ctypes takes it for a callback), so `_held` needs no lock
of its own.
"""
import ctypes


ALLOC_FN = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                            ctypes.c_size_t, ctypes.c_size_t)

# block address (the object's) -> the bytes object it is, while corio or
# a completion callback holds it.  The callback (_response.from_c) finds
# the body's object here; it stays here until corio frees the block,
# right after the callback, so meanwhile the address cannot be given to
# another object.
_held = {}


def _probe():
    """-> (PyBytes_FromStringAndSize, offset of the bytes in the object),
    or None: bodies are copied."""
    try:
        api = ctypes.pythonapi
        new = api.PyBytes_FromStringAndSize
        new.restype = ctypes.py_object
        new.argtypes = [ctypes.c_char_p, ctypes.c_ssize_t]
        data = api.PyBytes_AsString
        data.restype = ctypes.c_void_p
        data.argtypes = [ctypes.py_object]
    except (AttributeError, OSError):
        return None
    b = new(None, 8)
    off = data(b) - id(b)
    ctypes.memmove(id(b) + off, b"probe\0\1\2", 8)
    if not 0 < off <= 64 or b != b"probe\0\1\2" or \
            ctypes.string_at(id(b) + off + 8, 1) != b"\0":
        return None
    return new, off


_found = _probe()


def _alloc(ud, ptr, osize, nsize):
    held = _held
    if nsize == 0:
        held.pop(ptr, None)
        return None
    try:
        b = _new(None, nsize - OFFSET - 1)
    except MemoryError:
        return None  # corio fails the transfer with CORIO_ENOMEM
    block = id(b)
    if ptr:
        ctypes.memmove(block + OFFSET, ptr + OFFSET,
                       min(osize, nsize) - OFFSET)
        del held[ptr]
    held[block] = b
    return block


if _found is not None:
    _new, OFFSET = _found
    c_alloc = ALLOC_FN(_alloc)
    ALLOC = ctypes.cast(c_alloc, ctypes.c_void_p).value
else:
    _new, OFFSET, ALLOC = None, 0, None

