"""Pickle streams walked opcode by opcode with the C unpickler's semantics; nothing is unpickled.

The walk keeps the unpickler's stack, mark stack and memo (one memo per stream) as plain values,
so ``STACK_GLOBAL`` sees exactly the strings the C unpickler would (memoized ones included) and
each import is judged by its final name (``_compat_pickle`` for protocols < 3, as ``find_class``
does). An import outside the allow-list (``_globals``), an opcode or operand the walk cannot
follow exactly, a stream that does not end in STOP, or bytes after the last stream that are not
another complete stream is a refusal: "only partly parsed" never passes.

joblib writes array bytes between opcodes (after BUILD of a ``NumpyArrayWrapper``); the walk
skips them by the wrapper's shape and dtype only in joblib mode, and the same bytes are also
walked as ``pickle.load`` would read them, where no disallowed import may be reached.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from provenance.scanning._globals import ALLOWED, JOBLIB_ARRAY, MAPPINGS

MAX_OPS = 50_000_000
_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_.]*\Z")
# numpy dtype strings joblib arrays may carry -> item size in bytes ("O": a nested pickle).
_DTYPE = re.compile(r"(?:[<>|=]?)(b1|[iu][1248]|f[248]|c8|c16|\?|O|O8)\Z")
_ITEMSIZE = {"b1": 1, "?": 1, "f2": 2, "f4": 4, "f8": 8, "c8": 8, "c16": 16}


class PickleRefusal(Exception):
    """The stream is refused; the message says at which byte and why."""


class _Called(PickleRefusal):
    """Sniffing: the stream calls a global."""


class _Truncated(PickleRefusal):
    """The data ends inside an opcode or before STOP; `need` is the length it would need."""

    def __init__(self, message: str, need: int | None = None) -> None:
        super().__init__(message)
        self.need = need


# Opcode byte -> (bytes of its length field, or of its fixed argument; is it a length?)
_ARG = {
    b"B": (4, True), b"T": (4, True), b"X": (4, True), b"\x8b": (4, True),
    b"C": (1, True), b"U": (1, True), b"\x8c": (1, True), b"\x8a": (1, True),
    b"\x8d": (8, True), b"\x8e": (8, True), b"\x96": (8, True), b"\x95": (8, True),
    b"J": (4, False), b"K": (1, False), b"M": (2, False), b"G": (8, False), b"h": (1, False),
    b"j": (4, False), b"q": (1, False), b"r": (4, False), b"\x80": (1, False),
    b"\x82": (1, False), b"\x83": (2, False), b"\x84": (4, False),
}  # fmt: skip


_NUMBER_LINE = re.compile(rb"[ \t]*[-+]?[0-9_.eEinfaINFA]*\Z")
_NAME_LINE = re.compile(rb"[A-Za-z0-9_.]*\Z")
NEVER = 1 << 62  # "needs more than any file has": the unpickler fails on this opcode too


def _needed(data: bytes, pos: int) -> int | None:
    """How many bytes the opcode at `pos` needs.

    NEVER when its partial argument already makes the unpickler fail, None when that cannot be
    known from the data at hand.
    """
    code = data[pos : pos + 1]
    rest = data[pos + 1 :]
    if code in (b"I", b"L", b"F", b"g", b"p"):  # a number on one line
        return None if _NUMBER_LINE.match(rest) else NEVER
    if code == b"S":  # a quoted string on one line
        return None if rest[:1] in (b"'", b'"') else NEVER
    if code in (b"c", b"i"):  # module and name lines
        return (
            None if _NAME_LINE.match(rest.split(b"\n", 1)[-1] if b"\n" in rest else rest) else NEVER
        )
    if code == b"P":  # a persistent id: pickle.load has no persistent_load
        return NEVER
    spec = _ARG.get(code)
    if spec is None:
        return None  # UNICODE: any line is a string
    size, is_length = spec
    field = data[pos + 1 : pos + 1 + size]
    if len(field) < size:
        return None
    return pos + 1 + size + (int.from_bytes(field, "little") if is_length else 0)


class _BadOpcode(PickleRefusal):
    """A byte that is no opcode: the C unpickler stops here too (invalid load key)."""


@dataclass(frozen=True)
class Global:
    """An imported global, by its final ``module.name``."""

    name: str


@dataclass(eq=False)
class Obj:
    """What calling an allowed global (REDUCE, NEWOBJ, INST, OBJ) returns."""

    callable: str
    args: Any = ()
    state: Any = None


@dataclass(frozen=True)
class PyStr:
    """A protocol-0/1/2 byte string: decoded by the loader's encoding, so never a name."""

    raw: bytes


class _Set(list[Any]):
    pass


class _Opaque:
    """A storage from a persistent id, or a joblib array."""


@dataclass
class PickleScan:
    """What a walk found: every global imported (allowed ones), streams and joblib arrays."""

    globals: set[str] = field(default_factory=set)
    streams: int = 0
    joblib_arrays: int = 0


def _fail(pos: int, why: str) -> PickleRefusal:
    return PickleRefusal(f"at byte {pos}: {why}")


def _hashable(v: Any) -> bool:
    if isinstance(v, tuple):
        return all(_hashable(x) for x in v)
    return isinstance(v, (str, bytes, int, float, complex, type(None), PyStr, Global))


def _resolve(module: str, name: str, proto: int, pos: int) -> str:
    """The name find_class imports; ambiguous spellings (py2 names at protocol >= 3) refused."""
    py2 = (module, name) in _compat_pickle.NAME_MAPPING or module in _compat_pickle.IMPORT_MAPPING
    if proto < 3 and py2:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING[module]
    elif py2:
        raise _fail(pos, f"{module}.{name} is a Python 2 name at protocol {proto} (ambiguous)")
    full = f"{module}.{name}"
    if "." in name:  # protocol 4 resolves it attribute by attribute, not as listed
        raise _fail(pos, f"imports {full} through a dotted name")
    if full not in ALLOWED:
        raise _fail(pos, f"imports {full}, which is not on the allow-list")
    return full


def _line_names(data: bytes, pos: int) -> tuple[str, str]:
    """GLOBAL/INST operands exactly as the C unpickler reads them (two raw lines, UTF-8)."""
    end1 = data.find(b"\n", pos + 1)
    end2 = data.find(b"\n", end1 + 1) if end1 >= 0 else -1
    if end2 < 0:
        raise _fail(pos, "truncated GLOBAL")
    module, name = data[pos + 1 : end1], data[end1 + 1 : end2]
    if not _NAME.match(module) or not _NAME.match(name):
        raise _fail(pos, f"global {module!r}.{name!r} is not a plain dotted name")
    return module.decode(), name.decode()


class _Walk:
    def __init__(
        self, data: bytes, start: int, joblib: bool, scan: PickleScan, sniff: bool = False
    ) -> None:
        self.data, self.start, self.joblib, self.scan = data, start, joblib, scan
        self.sniff = sniff
        self.stack: list[Any] = []
        self.meta: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.proto = 0

    def pop(self, pos: int) -> Any:
        if not self.stack:
            raise _fail(pos, "stack underflow")
        return self.stack.pop()

    def pop_mark(self, pos: int) -> list[Any]:
        if not self.meta:
            raise _fail(pos, "MARK expected")
        items = self.stack
        self.stack = self.meta.pop()
        return items

    def top(self, pos: int) -> Any:
        if not self.stack:
            raise _fail(pos, "stack underflow")
        return self.stack[-1]

    def run(self, ops: int) -> tuple[int, int]:
        """Walk one stream from self.start; return (end offset, ops used)."""
        with warnings.catch_warnings():  # pickletools warns on escapes in hostile literals
            warnings.simplefilter("ignore")
            return self._run(ops)

    def _run(self, ops: int) -> tuple[int, int]:
        f = io.BytesIO(self.data)
        f.seek(self.start)
        gen = pickletools.genops(f)
        while True:
            pos = f.tell()
            try:
                op, arg, _ = next(gen)
            except StopIteration:
                raise _fail(pos, "stream ends without STOP") from None
            except ValueError as exc:
                if "unknown" in str(exc) and pos < len(self.data):
                    raise _BadOpcode(f"at byte {pos}: invalid opcode") from None
                if any(w in str(exc) for w in ("not enough data", "exhausted", "no newline")):
                    need = None if "exhausted" in str(exc) else _needed(self.data, pos)
                    raise _Truncated(f"at byte {pos}: cannot be parsed ({exc})", need) from None
                raise _fail(pos, f"cannot be parsed ({exc})") from None
            ops += 1
            if ops > MAX_OPS:
                raise _fail(pos, f"more than {MAX_OPS} opcodes")
            if self.step(op.name, arg, pos, f):
                return f.tell(), ops

    def step(self, name: str, arg: Any, pos: int, f: io.BytesIO) -> bool:
        s = self.stack
        if name == "STOP":
            self.pop(pos)
            return True
        if name == "PROTO":
            if not 0 <= arg <= 5:
                raise _fail(pos, f"unsupported protocol {arg}")
            self.proto = arg
        elif name == "FRAME":
            if arg > len(self.data) - f.tell():
                need = f.tell() + arg
                raise _Truncated(f"at byte {pos}: frame runs past the end of the data", need)
        elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"):
            s.append(arg)
        elif name in ("FLOAT", "BINFLOAT", "NONE", "NEWTRUE", "NEWFALSE"):
            s.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}.get(name, arg))
        elif name in ("STRING", "BINSTRING", "SHORT_BINSTRING"):
            s.append(PyStr(arg.encode("latin-1") if isinstance(arg, str) else arg))
        elif name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"):
            s.append(bytes(arg))
        elif name in ("UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"):
            s.append(arg)
        elif name == "EMPTY_LIST":
            s.append([])
        elif name == "EMPTY_TUPLE":
            s.append(())
        elif name == "EMPTY_DICT":
            s.append({})
        elif name == "EMPTY_SET":
            s.append(_Set())
        elif name == "MARK":
            self.meta.append(s)
            self.stack = []
        elif name == "POP":
            if s:
                s.pop()
            else:
                self.pop_mark(pos)
        elif name == "POP_MARK":
            self.pop_mark(pos)
        elif name == "DUP":
            s.append(self.top(pos))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(s) < n:
                raise _fail(pos, "stack underflow")
            s[-n:] = [tuple(s[-n:])]
        elif name in ("TUPLE", "LIST", "DICT", "FROZENSET"):
            items = self.pop_mark(pos)
            if name == "TUPLE":
                self.stack.append(tuple(items))
            elif name == "LIST":
                self.stack.append(items)
            elif name == "FROZENSET":
                self._check_keys(items, pos)
                self.stack.append(tuple(items))
            else:
                if len(items) % 2:
                    raise _fail(pos, "odd number of items for DICT")
                self._check_keys(items[::2], pos)
                self.stack.append(dict(zip(items[::2], items[1::2], strict=True)))
        elif name in ("APPEND", "APPENDS"):
            items = [self.pop(pos)] if name == "APPEND" else self.pop_mark(pos)
            target = self._target(pos, name)
            if not isinstance(target, list) or isinstance(target, _Set):
                raise _fail(pos, f"{name} to a {type(target).__name__}, not a list")
            target.extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            if name == "SETITEM":
                value = self.pop(pos)
                items = [self.pop(pos), value]
            else:
                items = self.pop_mark(pos)
                if len(items) % 2:
                    raise _fail(pos, "odd number of items for SETITEMS")
            target = self._target(pos, name)
            self._check_keys(items[::2], pos)
            if isinstance(target, dict):
                target.update(zip(items[::2], items[1::2], strict=True))
            elif not (isinstance(target, Obj) and target.callable in MAPPINGS):
                raise _fail(pos, f"{name} on a {type(target).__name__}, not a mapping")
        elif name == "ADDITEMS":
            items = self.pop_mark(pos)
            target = self._target(pos, name)
            if not isinstance(target, _Set):
                raise _fail(pos, "ADDITEMS to something that is not a set")
            self._check_keys(items, pos)
            target.extend(items)
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise _fail(pos, f"memo key {arg} was never stored")
            s.append(self.memo[arg])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
                raise _fail(pos, f"bad memo key {arg!r}")
            self.memo[arg] = self.top(pos)
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top(pos)
        elif name in ("GLOBAL", "INST"):
            module, gname = _line_names(self.data, pos)
            full = self._global(module, gname, pos)
            if name == "GLOBAL":
                s.append(Global(full))
            else:
                self._call(Global(full), tuple(self.pop_mark(pos)), pos)
        elif name == "STACK_GLOBAL":
            gname, module = self.pop(pos), self.pop(pos)
            if type(module) is not str or type(gname) is not str:
                raise _fail(pos, "STACK_GLOBAL operands are not str")
            if not _NAME.match(module.encode()) or not _NAME.match(gname.encode()):
                raise _fail(pos, f"global {module!r}.{gname!r} is not a plain dotted name")
            self.stack.append(Global(self._global(module, gname, pos)))
        elif name == "REDUCE":
            args = self.pop(pos)
            func = self.pop(pos)
            self._call(func, args, pos)
        elif name == "NEWOBJ":
            args = self.pop(pos)
            cls = self.pop(pos)
            self._call(cls, args, pos)
        elif name == "NEWOBJ_EX":
            kwargs, args, cls = self.pop(pos), self.pop(pos), self.pop(pos)
            if not isinstance(kwargs, dict):
                raise _fail(pos, "NEWOBJ_EX keyword arguments are not a dict")
            self._call(cls, args, pos)
        elif name == "OBJ":
            items = self.pop_mark(pos)
            if not items:
                raise _fail(pos, "OBJ without a class")
            self._call(items[0], tuple(items[1:]), pos)
        elif name == "BUILD":
            state = self.pop(pos)
            inst = self._target(pos, name)
            if not isinstance(inst, Obj):
                raise _fail(pos, f"BUILD on a {type(inst).__name__}")
            inst.state = state
            if self.joblib and inst.callable == JOBLIB_ARRAY:
                self.stack[-1] = _Opaque()
                self._skip_joblib_array(state, pos, f)
        elif name == "BINPERSID":
            pid = self.pop(pos)
            if not (
                isinstance(pid, tuple)
                and len(pid) == 5
                and pid[0] in ("storage", PyStr(b"storage"))
                and isinstance(pid[1], Global)
                and all(type(x) is str for x in pid[2:4])
                and type(pid[4]) is int
            ):
                raise _fail(pos, "persistent id is not a torch storage reference")
            s.append(_Opaque())
        else:  # PERSID (text), EXT1/2/4 (extension registry), NEXT_BUFFER, READONLY_BUFFER
            raise _fail(pos, f"opcode {name} is not allowed")
        return False

    def _global(self, module: str, name: str, pos: int) -> str:
        if self.sniff:  # importing alone runs nothing; calling does (see _call)
            self.scan.globals.add(f"{module}.{name}")
            return f"{module}.{name}"
        full = _resolve(module, name, self.proto, pos)
        self.scan.globals.add(full)
        return full

    def _target(self, pos: int, op: str) -> Any:
        """The object an opcode works on.

        On a class or function the unpickler calls its methods (``__setstate__``, ``append``,
        ``__setitem__``, ``add``): a call when sniffing.
        """
        target = self.top(pos)
        if self.sniff and isinstance(target, Global) and target.name not in ALLOWED:
            raise _Called(f"calls a method of {target.name} ({op})")
        return target

    def _check_keys(self, keys: list[Any], pos: int) -> None:
        for k in keys:
            if self.sniff and isinstance(k, Global) and k.name not in ALLOWED:
                raise _Called(f"hashes {k.name} (its metaclass may run code)")
            if not _hashable(k):
                raise _fail(pos, f"unhashable or opaque key of type {type(k).__name__}")

    def _call(self, func: Any, args: Any, pos: int) -> None:
        if not isinstance(func, Global):
            raise _fail(pos, f"calls a {type(func).__name__}, not an allowed global")
        if self.sniff and func.name not in ALLOWED:
            raise _Called(f"calls {func.name}")
        if not isinstance(args, tuple):
            raise _fail(pos, "call arguments are not a tuple")
        self.stack.append(Obj(func.name, args))

    def _skip_joblib_array(self, state: Any, pos: int, f: io.BytesIO) -> None:
        """Joblib's NumpyUnpickler reads the array's bytes right after BUILD."""
        if not isinstance(state, dict) or not isinstance(state.get("shape"), tuple):
            raise _fail(pos, "joblib array without a shape")
        dtype = state.get("dtype")
        if not (isinstance(dtype, Obj) and dtype.callable == "numpy.dtype" and dtype.args):
            raise _fail(pos, "joblib array without a plain numpy dtype")
        spec = dtype.args[0]
        m = _DTYPE.match(spec) if type(spec) is str else None
        if m is None:
            raise _fail(pos, f"joblib array dtype {spec!r} is not one the scan can size")
        count = 1
        for d in state["shape"]:
            if type(d) is not int or d < 0:
                raise _fail(pos, "joblib array shape is not non-negative integers")
            count *= d
        self.scan.joblib_arrays += 1
        at = f.tell()
        if m.group(1) in ("O", "O8"):  # a nested pickle stream with its own memo
            end, _ = _Walk(self.data, at, False, self.scan).run(0)
            f.seek(end)
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            if at >= len(self.data):
                raise _fail(at, "joblib array padding missing")
            at += 1 + self.data[at]
        code = m.group(1)
        size = _ITEMSIZE.get(code) or int(code[1:])
        end = at + count * size
        if end > len(self.data):
            raise _fail(at, "joblib array data runs past the end")
        f.seek(end)


def walk_pickles(data: bytes, *, joblib: bool = False) -> PickleScan:
    """Walk every pickle stream concatenated in `data`; raise PickleRefusal on anything else.

    Without joblib semantics the walk is what ``pickle.load`` (called repeatedly) executes.
    """
    scan = PickleScan()
    pos = ops = 0
    if not data:
        raise _fail(0, "empty: not a pickle stream")
    while pos < len(data):
        pos, ops = _Walk(data, pos, joblib, scan).run(ops)
        scan.streams += 1
    return scan


def judge_pickle(data: bytes) -> PickleScan:
    """An allowed pickle file: complete under pickle's semantics, every stream of it.

    joblib files with inline arrays interleave raw array bytes with pickle opcodes, which
    joblib's pure-Python unpickler reads with its own framing and key rules: a walk cannot
    prove what it would run (a red-team pass hid payloads in the "array bytes" three ways),
    so they are refused even when allowed, as everything a walk cannot fully decide is.
    """
    return walk_pickles(data)


def sniff_pickle(data: bytes, *, size: int | None = None) -> str | None:
    """Why `data` (a file no loader should unpickle) would run code as a pickle, or None.

    The walk reads as ``pickle.load`` would from byte 0: a stream that calls a global outside
    the allow-list before it breaks, or a complete stream that imports anything, makes the file
    a live pickle. When `data` is the start of a file of `size` bytes, a walk still going at
    its end cannot rule a pickle out and is reported too — unless the opcode it stopped in
    needs more bytes than the whole file has (the unpickler stops there as well).
    """
    scan = PickleScan()
    try:
        _Walk(data, 0, False, scan, sniff=True).run(0)
    except _Called as exc:
        return f"is also a pickle stream that {exc}"
    except _Truncated as exc:
        if size is not None and size > len(data) and (exc.need is None or exc.need <= size):
            return f"reads as a pickle stream past its first {len(data)} bytes"
        return None
    except PickleRefusal:
        return None
    if scan.globals:
        return f"is also a complete pickle stream importing {', '.join(sorted(scan.globals))}"
    return None
