"""Minimal safetensors writer and reader (F32 and I32 only), written from the format description so
fixtures need no extra package and come out byte-identical on every run.

File layout: u64 little-endian N, then N bytes of JSON header, then the raw data buffer.
Header: {"__metadata__": {str: str}, "<name>": {"dtype": "F32"|"I32", "shape": [...],
"data_offsets": [begin, end]}, ...}; offsets are relative to the start of the data buffer.
We write tensors sorted by name, packed back to back, and pad the header with spaces to a
multiple of 8 bytes (as the reference implementation does) so the data buffer stays aligned.
"""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.dtype("<f4"), "I32": np.dtype("<i4")}


def _as_array(t):
    """torch tensor or numpy array -> (dtype tag, little-endian numpy array)."""
    a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
    if a.dtype.kind == "f":
        return "F32", np.ascontiguousarray(a, dtype=_DTYPES["F32"])
    if a.dtype.kind in "iu":
        return "I32", np.ascontiguousarray(a, dtype=_DTYPES["I32"])
    raise ValueError(f"unsupported dtype {a.dtype}")


def save(path, tensors, metadata=None):
    """tensors: {name: tensor}; floats are stored as F32, integers as I32."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        tag, a = _as_array(tensors[name])
        if tag == "I32" and np.any(np.asarray(tensors[name]) != a):
            raise ValueError(f"{name}: integer values do not fit in int32")
        raw = a.tobytes()
        header[name] = {"dtype": tag, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * (-len(hjson) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load(path):
    """-> (metadata dict, {name: numpy array}). Raises ValueError on any malformed input."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header size")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header size {n} runs past the end of the file")
    header = json.loads(data[8:8 + n].decode())
    meta = header.pop("__metadata__", {})
    buf = memoryview(data)[8 + n:]
    out, spans = {}, []
    for name, info in header.items():
        dt = _DTYPES.get(info.get("dtype"))
        if dt is None:
            raise ValueError(f"{path}: {name}: unsupported dtype {info.get('dtype')!r}")
        begin, end = info["data_offsets"]
        count = int(np.prod(info["shape"], dtype=np.int64))
        if not 0 <= begin <= end <= len(buf) or end - begin != count * dt.itemsize:
            raise ValueError(f"{path}: {name}: data_offsets {begin},{end} do not match shape {info['shape']}")
        spans.append((begin, end))
        out[name] = np.frombuffer(buf[begin:end], dtype=dt).reshape(info["shape"])
    spans.sort()
    pos = 0
    for begin, end in spans:
        if begin != pos:
            raise ValueError(f"{path}: data buffer has a gap or overlap at byte {pos}")
        pos = end
    if pos != len(buf):
        raise ValueError(f"{path}: {len(buf) - pos} trailing bytes after the last tensor")
    return meta, out
