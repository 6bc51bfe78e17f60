"""Strict parsers for the data-only formats: safetensors, numpy, JSON, YAML, text.

Each check reads headers with explicit bounds and never materialises tensors: a file whose
header lies about its layout is refused, since a loader trusting it may read out of bounds.
A check returns the problems it found (empty: the file is that format and nothing else).
"""

from __future__ import annotations

import importlib
import json
import struct
import tokenize
import warnings
from typing import IO, Any

from provenance.scanning._model import Finding

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


MAX_TEXT = 256 * 1024 * 1024
_YAML_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}"
    for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "merge")
)


def npy_info(f: IO[bytes]) -> tuple[Any, int, int] | str:
    """(dtype, element count, data offset) by numpy's own header reader, or why it is no .npy.

    numpy's reader accepts what ``numpy.load`` accepts, old header spellings included.
    """
    try:
        import numpy.lib.format as npformat
    except ImportError:
        return "cannot be inspected: numpy is not installed"
    reader = getattr(npformat, "_read_array_header", None)
    if reader is None:  # numpy 2 keeps it in the implementation module
        reader = importlib.import_module("numpy.lib._format_impl")._read_array_header
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns about Python 2 headers it still reads
            version = npformat.read_magic(f)
            shape, _fortran, dtype = reader(f, version, max_header_size=MAX_NPY_HEADER)
    except (ValueError, TypeError, SyntaxError, EOFError, OverflowError, MemoryError,
            RecursionError, KeyError, IndexError, tokenize.TokenError) as exc:  # fmt: skip
        return f"not a .npy file numpy reads ({exc})"
    count = 1
    for d in shape:
        count *= d
    return dtype, count, f.tell()


def _no_dups(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return _no_duplicates(pairs)


def parse_json(raw: bytes) -> Any:
    """Strict JSON (UTF-8, no duplicate keys); raises ValueError."""
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_dups)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def check_json(raw: bytes) -> list[Finding]:
    """A JSON document."""
    try:
        doc = parse_json(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return _bad("json", f"not valid JSON ({exc})")
    # Keys under which Hugging Face configs name code that `trust_remote_code=True` imports
    # (model and tokenizer classes, pipelines), wherever they nest (a sub-config too).
    stack, nodes = [doc], 0
    while stack:
        node = stack.pop()
        nodes += 1
        if nodes > 2_000_000:
            return _bad("json", "more than 2000000 JSON nodes: refused, not walked in part")
        if isinstance(node, dict):
            for key in _REMOTE_CODE_KEYS & node.keys():
                return _bad("json", f"{key} names model code that trust_remote_code=True would run")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return []


_REMOTE_CODE_KEYS = frozenset({"auto_map", "custom_pipelines"})


def check_text(raw: bytes) -> list[Finding]:
    """UTF-8 text without NUL or other control characters than tab, newline, CR, FF."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad("text", f"not UTF-8 text ({exc})")
    bad = next((c for c in text if ord(c) < 32 and c not in "\t\n\r\f"), None)
    if bad is not None:
        return _bad("text", f"control character {ord(bad):#04x} in a text file")
    return []


def check_yaml(raw: bytes) -> list[Finding]:
    """YAML whose every node has a core-schema tag: no ``!!python/...`` or custom tags."""
    import yaml

    try:
        docs = list(yaml.compose_all(raw.decode("utf-8"), Loader=yaml.SafeLoader))
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        return _bad("yaml", f"not valid YAML ({str(exc).splitlines()[0]})")
    seen: set[int] = set()
    stack: list[Any] = [d for d in docs if d is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # aliases are shared nodes: visit each once
            continue
        seen.add(id(node))
        if node.tag not in _YAML_TAGS:
            return _bad("yaml", f"tag {node.tag} (a loader other than safe_load would run it)")
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack += [k, v]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return []
