"""Wire format of the enclave boundary: a JSON header plus raw little-endian buffers.

Why not pickle: everything arriving at the enclave comes from untrusted code (the
host, the accelerator). Unpickling attacker bytes runs attacker code, so the
boundary accepts only a parsed header (kind, names, dtypes, shapes) and raw
buffers whose sizes are checked against the header before use.

Field tensors (dtype ``f48``) travel in 6 bytes per element: every element is
below ``p < 2^48``; the decoder rejects any value ``≥ p``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pccguard.enclave_runtime.field import P

_DTYPES: dict[str, tuple[np.dtype[Any], int]] = {
    "f32": (np.dtype("<f4"), 4),
    "f64": (np.dtype("<f8"), 8),
    "i64": (np.dtype("<i8"), 8),
    "i32": (np.dtype("<i4"), 4),
    "f48": (np.dtype("<i8"), 6),
}
_TORCH_TO_CODE = {torch.float32: "f32", torch.float64: "f64", torch.int64: "i64", torch.int32: "i32"}
MAX_HEADER = 1 << 20
MAX_ELEMS = 1 << 31


class WireError(ValueError):
    """A message that does not match the wire format (truncated, oversized, bad dtype or value)."""


@dataclass
class Message:
    """One boundary message: ``kind``, small JSON metadata and named tensors."""

    kind: str
    meta: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    field_names: frozenset[str] = frozenset()

    def nbytes(self) -> int:
        """Bytes the tensors take on the wire (what the cost budget counts)."""
        total = 0
        for name, t in self.tensors.items():
            code = "f48" if name in self.field_names else _TORCH_TO_CODE[t.dtype]
            total += t.numel() * _DTYPES[code][1]
        return total


def encode(msg: Message) -> bytes:
    """Serialize ``msg``; tensors named in ``field_names`` are packed as 6-byte field elements."""
    specs = []
    bufs = []
    for name, t in msg.tensors.items():
        t = t.detach().to("cpu").contiguous()
        code = "f48" if name in msg.field_names else _TORCH_TO_CODE.get(t.dtype)
        if code is None:
            raise WireError(f"unsupported dtype {t.dtype} for {name}")
        arr = t.numpy()
        if code == "f48":
            raw = arr.astype("<i8", copy=False).reshape(-1).view(np.uint8).reshape(-1, 8)[:, :6]
            data = np.ascontiguousarray(raw).tobytes()
        else:
            data = arr.astype(_DTYPES[code][0], copy=False).tobytes()
        specs.append({"name": name, "dtype": code, "shape": list(t.shape)})
        bufs.append(data)
    header = json.dumps(
        {"kind": msg.kind, "meta": msg.meta, "tensors": specs}, separators=(",", ":")
    ).encode()
    return struct.pack("<I", len(header)) + header + b"".join(bufs)


def decode(blob: bytes) -> Message:
    """Parse and validate a message; raise ``WireError`` on anything malformed."""
    if len(blob) < 4:
        raise WireError("truncated message")
    (hlen,) = struct.unpack_from("<I", blob, 0)
    if hlen > MAX_HEADER or 4 + hlen > len(blob):
        raise WireError("bad header length")
    try:
        header = json.loads(blob[4 : 4 + hlen])
    except ValueError as exc:
        raise WireError("header is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
        raise WireError("header without kind")
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise WireError("meta must be an object")
    offset = 4 + hlen
    tensors: dict[str, torch.Tensor] = {}
    fields = set()
    for spec in header.get("tensors", []):
        name, code, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
        if not isinstance(name, str) or code not in _DTYPES or not isinstance(shape, list):
            raise WireError("bad tensor spec")
        if not all(isinstance(s, int) and s >= 0 for s in shape):
            raise WireError("bad tensor shape")
        count = int(np.prod(shape)) if shape else 1
        if count > MAX_ELEMS:
            raise WireError("tensor too large")
        dtype, width = _DTYPES[code]
        size = count * width
        if offset + size > len(blob):
            raise WireError("truncated tensor data")
        raw = np.frombuffer(blob, dtype=np.uint8, count=size, offset=offset)
        offset += size
        if code == "f48":
            padded = np.zeros((count, 8), dtype=np.uint8)
            padded[:, :6] = raw.reshape(count, 6)
            arr = padded.view("<i8").reshape(shape)
            if arr.size and int(arr.max()) >= P:
                raise WireError(f"{name}: value outside the field")
            fields.add(name)
        else:
            arr = raw.view(dtype).reshape(shape).copy()
        tensors[name] = torch.from_numpy(arr)
    if offset != len(blob):
        raise WireError("trailing bytes")
    return Message(header["kind"], meta, tensors, frozenset(fields))
