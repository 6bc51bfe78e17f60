"""Well-formedness of the data-only formats (safetensors, GGUF, ONNX, numpy, Keras).

Each check reads headers with explicit bounds and never materialises tensors: a file whose
header lies about its layout is reported, since a loader trusting it may read out of bounds.
"""

from __future__ import annotations

import ast
import json
import struct
from typing import IO, Any

from provenance._scanning._model import Finding

MAX_JSON_HEADER = 100 * 1024 * 1024  # safetensors refuses headers over 100 MB too
MAX_NPY_HEADER = 1024 * 1024

# dtype -> size in bits (safetensors 0.4-0.6 names).
_ST_DTYPES = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64,
    "I64": 64, "U64": 64, "F64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip


def _bad(check: str, message: str) -> list[Finding]:
    return [Finding(check, message)]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in JSON header")
    return dict(pairs)


def check_safetensors(f: IO[bytes], size: int) -> list[Finding]:
    """8-byte header length, a JSON header, and tensors that exactly tile the data section."""
    check = "safetensors-header"
    if size < 8:
        return _bad(check, "file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > MAX_JSON_HEADER or 8 + n > size:
        return _bad(check, f"header length {n} exceeds the file ({size} bytes) or 100 MB")
    raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return _bad(check, f"header is not valid JSON ({exc})")
    if not isinstance(header, dict):
        return _bad(check, "header is not a JSON object")
    data_len = size - 8 - n
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                return _bad(check, "__metadata__ must map strings to strings")
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            return _bad(check, f"tensor '{name}' needs exactly dtype, shape, data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        bits = _ST_DTYPES.get(dtype) if isinstance(dtype, str) else None
        if bits is None:
            return _bad(check, f"tensor '{name}' has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            return _bad(check, f"tensor '{name}' shape must be a list of non-negative integers")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len
        ):
            return _bad(
                check, f"tensor '{name}' data_offsets {offsets!r} outside the data ({data_len} B)"
            )
        count = 1
        for d in shape:
            count *= d
        if (count * bits + 7) // 8 != offsets[1] - offsets[0]:
            return _bad(
                check,
                f"tensor '{name}' {dtype}{shape} needs {(count * bits + 7) // 8} bytes, "
                f"offsets give {offsets[1] - offsets[0]}",
            )
        spans.append((offsets[0], offsets[1], name))
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            what = "overlaps another tensor" if begin < pos else f"leaves a gap at byte {pos}"
            return _bad(check, f"tensor '{name}' {what}")
        pos = end
    if pos != data_len:
        return _bad(check, f"{data_len - pos} trailing byte(s) not covered by any tensor")
    return []


_GGUF_VERSIONS = (1, 2, 3)


def check_gguf(f: IO[bytes], size: int) -> list[Finding]:
    """Magic, a known version, and tensor/metadata counts that could fit in the file."""
    check = "gguf-header"
    head = f.read(24)
    if len(head) < 16 or head[:4] != b"GGUF":
        return _bad(check, "missing GGUF magic or truncated header")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in _GGUF_VERSIONS:
        return _bad(check, f"unknown GGUF version {version}")
    if version == 1:
        tensors, kvs = struct.unpack("<II", head[8:16])
    else:
        if len(head) < 24:
            return _bad(check, "truncated GGUF header")
        tensors, kvs = struct.unpack("<QQ", head[8:24])
    # A tensor info is at least 8 (name len) + 4 (n_dims) + 8 (dim) + 4 (type) + 8 (offset);
    # a key/value at least 8 (key len) + 4 (type) + 1.
    if tensors * 32 > size or kvs * 13 > size:
        return _bad(
            check, f"counts do not fit in {size} bytes ({tensors} tensors, {kvs} metadata keys)"
        )
    return []


# ModelProto fields (onnx.proto3): number -> expected wire type.
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_MAX_IR_VERSION = 64


def _varint(f: IO[bytes]) -> int | None:
    result = shift = 0
    for _ in range(10):
        b = f.read(1)
        if not b:
            return None
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
    return None


def check_onnx(f: IO[bytes], size: int) -> list[Finding]:
    """Walk the top-level protobuf fields of a ModelProto: valid tags, lengths within the file,
    an ir_version and a graph. Nested messages are skipped by length, never decoded.
    """
    check = "onnx-structure"
    seen: set[int] = set()
    ir_version = None
    while f.tell() < size:
        tag = _varint(f)
        if tag is None:
            return _bad(check, f"truncated field tag at byte {f.tell()}")
        number, wire = tag >> 3, tag & 7
        expected = _ONNX_FIELDS.get(number)
        if expected is None or expected != wire:
            return _bad(check, f"unexpected ModelProto field {number} (wire type {wire})")
        if wire == 0:
            value = _varint(f)
            if value is None:
                return _bad(check, "truncated varint")
            if number == 1:
                ir_version = value
        else:
            length = _varint(f)
            if length is None or f.tell() + length > size:
                return _bad(check, f"field {number} length runs past the end of the file")
            f.seek(length, 1)
        seen.add(number)
    if ir_version is None or not 1 <= ir_version <= _MAX_IR_VERSION:
        return _bad(check, f"ir_version missing or implausible ({ir_version})")
    if 7 not in seen:
        return _bad(check, "no graph")
    return []


NPY_MAGIC = b"\x93NUMPY"


def _descr_has_object(descr: Any) -> bool:
    if isinstance(descr, str):
        return "O" in descr.lstrip("<>|=")[:1]
    if isinstance(descr, list):
        return any(
            isinstance(item, tuple) and len(item) >= 2 and _descr_has_object(item[1])
            for item in descr
        )
    return True  # unknown shape of descr: treat as unsafe


def npy_header(f: IO[bytes]) -> tuple[dict[str, Any] | None, str]:
    """The .npy header dict (parsed as a Python literal, never evaluated), or None and why."""
    magic = f.read(8)
    if len(magic) < 8 or magic[:6] != NPY_MAGIC:
        return None, "missing NUMPY magic"
    major = magic[6]
    if major == 1:
        raw_len = f.read(2)
        length = struct.unpack("<H", raw_len)[0] if len(raw_len) == 2 else -1
    elif major in (2, 3):
        raw_len = f.read(4)
        length = struct.unpack("<I", raw_len)[0] if len(raw_len) == 4 else -1
    else:
        return None, f"unknown .npy format version {major}"
    if not 0 < length <= MAX_NPY_HEADER:
        return None, "header length missing or too large"
    try:
        text = f.read(length).decode("utf-8" if major == 3 else "latin1")
        header = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, "header is not a Python literal"
    if not isinstance(header, dict) or {"descr", "fortran_order", "shape"} - header.keys():
        return None, "header lacks descr/fortran_order/shape"
    return header, ""


def npy_has_objects(header: dict[str, Any]) -> bool:
    """True when loading the array needs allow_pickle=True (an object dtype anywhere)."""
    return _descr_has_object(header.get("descr"))


def keras_lambdas(config: Any, limit: int = 10_000) -> list[str]:
    """Names of Lambda layers anywhere in a Keras model config (their code runs on load)."""
    found: list[str] = []
    stack = [config]
    while stack and limit > 0:
        limit -= 1
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                cfg = node.get("config")
                name = cfg.get("name") if isinstance(cfg, dict) else None
                found.append(str(name or "Lambda"))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


_H5_LAMBDA = (b'"class_name": "Lambda"', b'"class_name":"Lambda"')


def h5_mentions_lambda(f: IO[bytes], chunk: int = 8 * 1024 * 1024) -> bool:
    """A byte search of an HDF5 Keras file for a Lambda layer in its (plain-text) model_config."""
    tail = b""
    while True:
        block = f.read(chunk)
        if not block:
            return False
        window = tail + block
        if any(p in window for p in _H5_LAMBDA):
            return True
        tail = window[-32:]
