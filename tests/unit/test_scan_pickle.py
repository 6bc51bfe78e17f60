"""The pickle walk has the C unpickler's semantics: differential tests against `pickle` itself.

The reference is `pickle.Unpickler` (the C implementation) with `find_class` recording each
global it is asked for and returning an inert stub class, so the real unpickler runs every
stream to the end without executing anything. The walk must see exactly the globals the
unpickler imports, accept only streams the unpickler loads, and refuse every stream in which the
unpickler would import a global outside the allow-list.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance.scanning._globals import ALLOWED, TORCH
from provenance.scanning._pickle import PickleRefusal, judge_pickle, sniff_pickle, walk_pickles


class _Stub:
    """What the recording unpickler returns for every global: accepts any use, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub()

    def __setstate__(self, state: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


class Recording(pickle.Unpickler):
    def __init__(self, f: io.BytesIO) -> None:
        super().__init__(f)
        self.seen: list[str] = []

    def find_class(self, module: str, name: str) -> type:
        self.seen.append(f"{module}.{name}")
        return type("Stub", (_Stub,), {})

    def persistent_load(self, pid: Any) -> Any:
        return _Stub()


def c_unpickler(data: bytes) -> tuple[list[str], bool]:
    """Globals the C unpickler imports, loading stream after stream; and whether all loaded."""
    f = io.BytesIO(data)
    u = Recording(f)
    try:
        while f.tell() < len(data):
            u.load()
            u.memo.clear()  # each stream has its own memo, as for a fresh Unpickler
    except Exception:
        return u.seen, False
    return u.seen, True


def s4(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def test_allow_list_is_exactly_what_torch_weights_only_accepts() -> None:
    import torch._weights_only_unpickler as torch_unpickler

    assert set(torch_unpickler._get_allowed_globals()) == TORCH


TRICKY = {
    "stack_global_from_memo": b"\x80\x04" + s4("collections") + b"\x94" + s4("OrderedDict")
    + b"\x94" + b"00h\x00h\x01\x93)R.",
    "memo_slot_overwritten": b"\x80\x04" + s4("builtins") + b"q\x00" + s4("set") + b"q\x01" + b"00"
    + s4("collections") + b"q\x00" + s4("OrderedDict") + b"q\x01" + b"00h\x00h\x01\x93)R.",
    "memoize_after_sparse_put": b"\x80\x04" + s4("collections") + b"q\x05" + s4("OrderedDict")
    + b"\x94" + b"00h\x05h\x01\x93)R.",
    "pop_mark_decoy": b"\x80\x04" + s4("collections") + s4("Counter") + b"(" + s4("builtins")
    + s4("set") + b"1\x93)R.",
    "two_streams": pickle.dumps({"a": 1}, protocol=2) + b"\x80\x02c__builtin__\nset\n)R.",
    "protocol_0_text": b"ccollections\nOrderedDict\n(tR.",
    "protocol_1_binary": b"ccollections\nOrderedDict\nq\x00)R.",
    "dup_then_pop": b"\x80\x04" + s4("collections") + s4("OrderedDict") + b"20\x93" + b")R.",
    "long_binget": b"\x80\x04" + s4("torch") + b"r\x00\x01\x00\x00" + s4("Size") + b"\x94"
    + b"00j\x00\x01\x00\x00h\x01\x93)R.",
    "frame": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00" + s4("torch") + s4("Size")
    + b"\x93)R.",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_walk_sees_exactly_what_the_c_unpickler_imports(name: str) -> None:
    data = TRICKY[name]
    seen, loaded = c_unpickler(data)
    assert loaded, f"the reference unpickler must load {name}"
    scan = walk_pickles(data)
    mapped = {"__builtin__.set": "builtins.set"}
    assert scan.globals == {mapped.get(g, g) for g in seen}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (pickle.dumps({"a": 1}) + b"\xff\xff", "invalid opcode"),
        (pickle.dumps({"a": 1}) + b"junk", "not enough data"),
        (pickle.dumps({"a": 1}, protocol=2)[:-1], "exhausted before seeing STOP"),
        (
            b"\x80\x04" + s4("posix") + b"\x94" + s4("system") + b"\x94" + b"00h\x00h\x01\x93.",
            "imports posix.system",
        ),
        (b"\x80\x02c__builtin__\neval\n.", "imports builtins.eval"),
        (b"\x80\x04c__builtin__\nset\n.", "Python 2 name at protocol 4"),
        (b"\x80\x04h\x07.", "memo key 7 was never stored"),
        (b"\x80\x05\x97.", "opcode NEXT_BUFFER is not allowed"),
        (b"\x80\x02\x82\x01.", "opcode EXT1 is not allowed"),
        (b"\x80\x02]}b.", "BUILD on a list"),
        (b"\x80\x02ccollections\nOrder\xc3\xa9dDict\n.", "cannot be parsed"),
        # pickletools would read the escape as "OrderedDict"; the C unpickler reads it raw.
        (b"\x80\x02ccollections\nOrdered\\x44ict\n.", "not a plain dotted name"),
        (b"\x80\x02U\x05posixU\x06system\x93.", "STACK_GLOBAL operands are not str"),
        (b"", "empty"),
        # Protocol 4 resolves "_utils._rebuild_tensor_v2" attribute by attribute: not as listed.
        (b"\x80\x04" + s4("torch") + s4("_utils._rebuild_tensor_v2") + b"\x93.", "dotted name"),
    ],
)
def test_streams_the_walk_cannot_follow_exactly_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(PickleRefusal, match=why):
        walk_pickles(data)


# Random streams over a small alphabet of opcodes and names (dangerous ones included).
_NAMES = ["posix", "system", "collections", "OrderedDict", "builtins", "set", "torch", "Size"]
_TOKENS = (
    [s4(n) for n in _NAMES]
    + [f"c{m}\n{n}\n".encode() for m, n in (("posix", "system"), ("collections", "OrderedDict"))]
    + [b"\x94", b"q\x00", b"q\x01", b"h\x00", b"h\x01", b"(", b"0", b"1", b"2", b"\x85", b"\x86",
       b")", b"]", b"}", b"a", b"e", b"s", b"u", b"t", b"l", b"\x93", b"R", b"\x81", b"b",
       b"K\x01", b"N", b".", b"\x80\x04", b"V" + b"x\n", b"i" + b"posix\nsystem\n", b"o"]
)  # fmt: skip


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=24), st.booleans())
def test_random_streams_agree_with_the_c_unpickler(tokens: list[bytes], header: bool) -> None:
    data = (b"\x80\x04" if header else b"") + b"".join(tokens)
    seen, loaded = c_unpickler(data)
    try:
        scan = walk_pickles(data)
    except PickleRefusal:
        return  # refusing is always safe; what follows checks acceptance and every import
    finally:
        # An import outside the allow-list that the unpickler performs is never accepted.
        if any(g not in ALLOWED for g in seen):
            with pytest.raises(PickleRefusal):
                walk_pickles(data)
    assert loaded, "accepted a stream the C unpickler cannot load"
    assert scan.globals == set(seen)


def test_joblib_inline_arrays_are_refused_even_when_allowed(tmp_path) -> None:
    """joblib interleaves raw array bytes with opcodes and frames them its own way: a red-team
    pass hid payloads there three ways (FRAME buffering, a duplicated 'dtype' key spelled as
    bytes and as str, array bytes pickle.load reads as opcodes). What a walk cannot decide is
    refused."""
    import joblib
    import numpy as np

    joblib.dump({"w": np.arange(12.0).reshape(3, 4), "i": np.arange(5)}, tmp_path / "m.joblib")
    with pytest.raises(PickleRefusal):
        judge_pickle((tmp_path / "m.joblib").read_bytes())


def test_array_bytes_read_as_opcodes_by_pickle_load_may_not_call_anything() -> None:
    """A joblib file whose "array data" is, for pickle.load, a live payload: refused."""
    header = (
        b"\x80\x04cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(" + s4("shape") + b"K\x01\x85"
        + s4("dtype") + b"cnumpy\ndtype\n" + s4("u1") + b"\x85R" + s4("order") + s4("C") + b"ub"
    )  # fmt: skip
    payload = b"cposix\nsystem\n" + s4("true") + b"\x85R."
    data = header + payload[:1] + payload[1:]
    with pytest.raises(PickleRefusal):
        judge_pickle(data)


def test_text_and_json_are_not_pickles_but_a_protocol_0_payload_is() -> None:
    assert sniff_pickle(b'{"a": 1}') is None
    assert sniff_pickle(b"cats\ndogs\nhello\n") is None  # imports only, never calls
    assert "calls posix.system" in (sniff_pickle(b"cposix\nsystem\n(Vtrue\ntR.") or "")
    assert sniff_pickle(struct.pack("<Q", 2) + b"{}") is None
    # BUILD on an imported class calls its __setstate__ (or setattr): a call too.
    assert "calls a method of evil.Klass (BUILD)" in (sniff_pickle(b"cevil\nKlass\n}b.") or "")


_OPCODE_BYTES = sorted({ord(op.code) for op in __import__("pickletools").opcodes})


@pytest.mark.parametrize("low", _OPCODE_BYTES)
def test_large_safetensors_is_not_taken_for_a_pickle_whatever_its_header_length(
    low: int, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first byte of a safetensors file is its header length's low byte, which may be any
    opcode; only a prefix is walked (64 KiB here, 16 MiB in use), and an opcode whose length
    runs past the whole file, or whose partial line already fails, ends the walk as it ends the
    unpickler."""
    import json as _json

    import provenance.scanning as scanning

    monkeypatch.setattr(scanning, "MAX_SNIFF", 64 * 1024)
    data = 1024 * 1024
    header = _json.dumps({"w": {"dtype": "U8", "shape": [data], "data_offsets": [0, data]}})
    raw = header.encode()
    raw += b" " * ((len(raw) // 256 + 1) * 256 + low - len(raw))
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.write((b"\x3f\x80\x00\x00\x0a" * (data // 5 + 1))[:data])  # float-ish, newlines
    report = scanning.scan_paths([str(path)], base=str(tmp_path))
    assert report.ok, report.failures()
