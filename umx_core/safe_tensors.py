"""A safetensors file read with numpy as untrusted input: its header checked against the file before a tensor is read.

The format: an 8-byte little-endian header length, a JSON header `{name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {text: text}}`, then the data section, the offsets
counting from its start. The header's length is checked against the file and a cap before it is
read; every tensor's dtype, shape and offsets are checked, the tensors must tile the data section
exactly (no overlap, no hole, nothing after: what the safetensors library itself requires), and
only then is each tensor read, so no declared size can take memory the file does not hold.
"""

import json
import math
import os
import struct

import numpy as np

from umx_core.errors import UMXError

# safetensors' dtype names numpy reads as they are (BF16 and the 8-bit floats have no numpy type)
DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "I16": "<i2", "I32": "<i4", "I64": "<i8", "U8": "u1"}
MAX_HEADER = 16 << 20  # a model's header is tens of KiB; the safetensors library's own cap is 100 MB
MAX_DIMS = 32


def _unique(pairs):
    value = dict(pairs)
    if len(value) != len(pairs):  # JSON readers disagree on which of the two they keep
        raise ValueError("an object names a key twice")
    return value


def _span(path, name, entry, data_size, dtypes):
    """`(begin, end, dtype, shape)` of one header entry, each field checked against the data's size."""
    if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}):
        raise UMXError(f"{path}: tensor {name!r} is described by something else than dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in dtypes:
        raise UMXError(f"{path}: tensor {name!r} is {dtype!r}; only {', '.join(dtypes)} are read")
    counts = [isinstance(v, list) and all(type(n) is int and n >= 0 for n in v) for v in (shape, offsets)]
    if not all(counts) or len(shape) > MAX_DIMS or len(offsets) != 2:
        raise UMXError(f"{path}: tensor {name!r} has a malformed shape or data_offsets")
    begin, end = offsets
    if not begin <= end <= data_size:
        raise UMXError(f"{path}: tensor {name!r} spans bytes {begin} to {end} of a data section of {data_size}")
    dtype = np.dtype(DTYPES[dtype])
    needed = math.prod(shape) * dtype.itemsize
    if needed != end - begin:
        raise UMXError(f"{path}: tensor {name!r} of shape {shape} needs {needed} bytes, its offsets span {end - begin}")
    return begin, end, dtype, tuple(shape)


def _header(path, f, size):
    """The header's length and JSON object, its length checked before it is read."""
    head = f.read(8)
    if len(head) != 8:
        raise UMXError(f"{path}: not a safetensors file ({size} bytes, shorter than a header's length)")
    length = struct.unpack("<Q", head)[0]
    if length > min(size - 8, MAX_HEADER):
        raise UMXError(f"{path}: not a safetensors file (its header declares {length} bytes, the file has "
                       f"{size - 8} after it; at most {MAX_HEADER} are read)")
    try:
        header = json.loads(f.read(length).decode("utf-8"), object_pairs_hook=_unique)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise UMXError(f"{path}: its header is not readable JSON ({type(exc).__name__}: {exc})") from None
    metadata = header.pop("__metadata__", {}) if isinstance(header, dict) else None
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise UMXError(f"{path}: its header is not a JSON object of tensors and text metadata")
    return length, header, metadata


def read(path, dtypes=tuple(DTYPES)):
    """The tensors and metadata of a local safetensors file, every size checked before it is read.

    Args:
        path: the file.
        dtypes: the safetensors dtype names accepted (a subset of `DTYPES`); any other is refused.
    Returns:
        `({name: numpy array}, {key: text})`: the tensors in the header's order, and `__metadata__`.
    Raises:
        UMXError naming the file and what is wrong: unreadable, a header longer than the file or
        not JSON, a dtype not accepted, a shape whose bytes differ from its offsets, or tensors
        that overlap, leave a hole or reach past the data section.
    """
    path = str(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            length, header, metadata = _header(path, f, size)
            data_size = size - 8 - length
            spans = {name: _span(path, name, entry, data_size, dtypes) for name, entry in header.items()}
            covered = 0  # the tensors, in the order of their offsets, must tile the data section
            for name, (begin, end, _, _) in sorted(spans.items(), key=lambda item: item[1][:2]):
                if begin != covered:
                    raise UMXError(f"{path}: tensor {name!r} starts at byte {begin} of the data, the tensors "
                                   f"before it end at {covered} (overlapping tensors or a hole)")
                covered = end
            if covered != data_size:
                raise UMXError(f"{path}: its tensors cover {covered} bytes of a data section of {data_size}")
            tensors = {}
            for name, (begin, end, dtype, shape) in spans.items():
                f.seek(8 + length + begin)
                tensors[name] = np.frombuffer(f.read(end - begin), dtype).reshape(shape)
    except OSError as exc:
        raise UMXError(f"{path}: cannot read it ({exc})") from exc
    return tensors, metadata
