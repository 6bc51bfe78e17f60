"""GGUF files parsed in full, and chat templates held to a small Jinja2 grammar.

The header, every metadata value and the tensor infos are parsed.

llama.cpp front ends render ``tokenizer.chat_template`` with Jinja2; rendered outside a
sandbox, a template is code (CVE-2024-34359: ``{{ ().__class__.__base__.__subclasses__() }}``).
The grammar (docs/attestations.md#chat-templates): text, ``{{ }}`` output, ``if``/``for``/``set``,
names without a leading underscore, constant subscripts (``message['role']``, ``messages[0]``,
slices), literals, arithmetic, comparison and boolean operators, ``~``, the filters and tests in
``_FILTERS``/``_TESTS``, ``loop.<counter>`` and calls of ``raise_exception`` only. Attribute
access, method calls, computed subscripts, macros, imports and includes are refused. Jinja2's
own parser builds the tree (nothing is rendered); without Jinja2 a template cannot be checked
and the file is refused.
"""

from __future__ import annotations

import struct
from typing import IO, Any

from provenance.scanning._model import Finding

# ggml type -> (block size in elements, bytes per block); gguf-py's GGML_QUANT_SIZES.
GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 40), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
    39: (32, 17), 40: (64, 36), 41: (128, 18),
}  # fmt: skip
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B",
            10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
MAX_STRING = 64 * 1024 * 1024
MAX_ITEMS = 50_000_000
_FILTERS = frozenset(
    [
        "capitalize",
        "count",
        "default",
        "d",
        "first",
        "int",
        "float",
        "join",
        "last",
        "length",
        "list",
        "lower",
        "replace",
        "reverse",
        "string",
        "title",
        "tojson",
        "trim",
        "upper",
        "unique",
        "items",
        "abs",
        "round",
        "sort",
        "center",
        "indent",
        "wordcount",
    ]
)
_TESTS = frozenset(
    [
        "defined",
        "undefined",
        "none",
        "string",
        "number",
        "mapping",
        "iterable",
        "sequence",
        "true",
        "false",
        "boolean",
        "integer",
        "float",
        "divisibleby",
        "even",
        "odd",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "in",
        "equalto",
    ]
)
_LOOP_ATTRS = frozenset(["index", "index0", "revindex", "revindex0", "first", "last", "length"])
_CALLS = frozenset({"raise_exception"})
# Names a template may not rebind: the one callable and the loop object.
_RESERVED = _CALLS | {"loop"}
# String subscripts a chat template uses on its data (messages, tools, their JSON schema).
_KEYS = frozenset(
    [
        "role", "content", "name", "type", "text", "id", "tool_calls", "tool_call_id",
        "function", "arguments", "description", "parameters", "properties", "required",
        "tools", "messages", "reasoning_content", "thinking", "image", "image_url", "url",
        "video", "audio", "enum", "title", "default", "format_version", "system",
    ]
)  # fmt: skip
# Filters whose later positional arguments name an attribute to read: at most this many.
_FILTER_ARGS = {"join": 1, "sort": 2, "unique": 1}


class GgufError(Exception):
    """The file is not a GGUF file the scan can vouch for."""


class _Reader:
    def __init__(self, f: IO[bytes], size: int, version: int) -> None:
        self.f, self.size, self.v1 = f, size, version == 1

    def take(self, n: int) -> bytes:
        if n < 0 or self.f.tell() + n > self.size:
            raise GgufError(f"value of {n} bytes runs past the end at byte {self.f.tell()}")
        return self.f.read(n)

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self) -> int:
        return int(self.unpack("<I" if self.v1 else "<Q"))

    def string(self) -> str:
        n = self.count()
        if n > MAX_STRING:
            raise GgufError(f"string of {n} bytes")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise GgufError("a string is not UTF-8") from None

    def value(self, vtype: int, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == 8:
            return self.string()
        if vtype == 9 and depth == 0:
            itype, n = self.unpack("<I"), self.count()
            if n > MAX_ITEMS:
                raise GgufError(f"array of {n} items")
            if itype in _SCALARS:  # skip numbers in one step; only their size matters
                self.take(n * struct.calcsize(_SCALARS[itype]))
                return None
            return [self.value(itype, depth + 1) for _ in range(n)]
        raise GgufError(f"unknown metadata value type {vtype}")


def _template_problem(text: str) -> str | None:
    """Why a chat template falls outside the grammar, or None."""
    try:
        from jinja2 import Environment, nodes
        from jinja2.exceptions import TemplateSyntaxError
    except ImportError:
        return "cannot be checked: Jinja2 is not installed"
    try:
        tree = Environment().parse(text)  # noqa: S701 - parsed, never rendered
    except (TemplateSyntaxError, RecursionError) as exc:
        return f"is not a valid Jinja2 template ({exc})"
    allowed = (
        nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.If,
        nodes.For, nodes.Assign, nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not,
        nodes.Neg, nodes.Pos, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv,
        nodes.Mod, nodes.Concat, nodes.CondExpr, nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair,
        nodes.Filter, nodes.Test, nodes.Getitem, nodes.Getattr, nodes.Slice, nodes.Call,
        nodes.Keyword, nodes.Continue, nodes.Break,
    )  # fmt: skip
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        kind = type(node).__name__
        if not isinstance(node, allowed):
            return f"uses {kind} (outside the template grammar)"
        if isinstance(node, nodes.Name) and node.name.startswith("_"):
            return f"uses the name {node.name!r}"
        if isinstance(node, nodes.Const) and isinstance(node.value, str) and "__" in node.value:
            return f"has the string {node.value!r}"
        if isinstance(node, nodes.Getattr) and not (
            isinstance(node.node, nodes.Name) and node.node.name == "loop"
            and node.attr in _LOOP_ATTRS
        ):  # fmt: skip
            return f"uses attribute access .{node.attr}"
        if isinstance(node, nodes.Name) and node.ctx == "store" and node.name in _RESERVED:
            return f"assigns to {node.name!r}"
        if isinstance(node, nodes.Getitem):
            arg = node.arg
            # Jinja falls back to attribute access when a string key is missing
            # (`([1]|unique)['gi_frame']` is `.gi_frame`): only known chat-template keys.
            const = isinstance(arg, nodes.Const) and (
                type(arg.value) is int or (type(arg.value) is str and arg.value in _KEYS)
            )
            neg = isinstance(arg, nodes.Neg) and isinstance(arg.node, nodes.Const)
            if not (const or neg or isinstance(arg, nodes.Slice)):
                return "uses a subscript outside the chat-template keys (or a computed one)"
        if isinstance(node, nodes.Keyword) and node.key == "attribute":
            return "uses a filter's attribute= (attribute access)"
        if isinstance(node, nodes.Filter) and node.name not in _FILTERS:
            return f"uses the filter {node.name!r}"
        if isinstance(node, nodes.Filter) and len(node.args) > _FILTER_ARGS.get(node.name, 9):
            return f"passes the filter {node.name!r} an attribute argument"
        if isinstance(node, nodes.Test) and node.name not in _TESTS:
            return f"uses the test {node.name!r}"
        if isinstance(node, nodes.Call) and not (
            isinstance(node.node, nodes.Name) and node.node.name in _CALLS
            and node.dyn_args is None and node.dyn_kwargs is None
        ):  # fmt: skip
            return "calls something other than raise_exception"
        if isinstance(node, nodes.For) and node.recursive:
            return "uses a recursive loop"
        stack.extend(node.iter_child_nodes())
    return None


def check_template(text: str, what: str) -> list[Finding]:
    """A chat template held to the grammar."""
    problem = _template_problem(text)
    return [Finding("chat-template", f"{what} {problem}")] if problem else []


def check_gguf(f: IO[bytes], size: int) -> list[Finding]:
    """Every header field, metadata value and tensor info; chat templates by the grammar."""
    try:
        return _check(f, size)
    except GgufError as exc:
        return [Finding("gguf", str(exc))]
    except struct.error as exc:
        return [Finding("gguf", f"truncated ({exc})")]


def _check(f: IO[bytes], size: int) -> list[Finding]:
    head = f.read(8)
    if len(head) < 8 or head[:4] != b"GGUF":
        raise GgufError("missing GGUF magic")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (1, 2, 3):
        raise GgufError(f"unknown GGUF version {version}")
    r = _Reader(f, size, version)
    n_tensors, n_kv = r.count(), r.count()
    if n_tensors * 24 > size or n_kv * 12 > size:
        raise GgufError(f"counts do not fit in {size} bytes ({n_tensors} tensors, {n_kv} keys)")
    findings: list[Finding] = []
    keys: set[str] = set()
    alignment = 32
    for _ in range(n_kv):
        key = r.string()
        if key in keys:
            raise GgufError(f"duplicate metadata key {key!r}")
        keys.add(key)
        value = r.value(r.unpack("<I"))
        if key == "general.alignment":
            if not isinstance(value, int) or value <= 0 or value & (value - 1):
                raise GgufError(f"general.alignment {value!r} is not a power of two")
            alignment = value
        if "chat_template" in key:
            texts = value if isinstance(value, list) else [value]
            for text in texts:
                if isinstance(text, str):
                    findings += check_template(text, f"chat template {key!r}")
    spans = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.unpack("<I")
        if n_dims > 8:
            raise GgufError(f"tensor {name!r} has {n_dims} dimensions")
        dims = [r.count() for _ in range(n_dims)]
        ggml_type, offset = r.unpack("<I"), r.unpack("<Q")
        if ggml_type not in GGML_TYPES:
            raise GgufError(f"tensor {name!r} has unknown ggml type {ggml_type}")
        block, type_size = GGML_TYPES[ggml_type]
        count = 1
        for d in dims:
            count *= d
        if dims and dims[0] % block:
            raise GgufError(f"tensor {name!r} row of {dims[0]} is not whole blocks of {block}")
        if offset % alignment:
            raise GgufError(f"tensor {name!r} offset {offset} is not aligned to {alignment}")
        spans.append((offset, offset + count // block * type_size, name))
    data_start = -(-f.tell() // alignment) * alignment
    for _begin, end, name in spans:
        if data_start + end > size:
            raise GgufError(f"tensor {name!r} runs past the end of the file")
    last = 0
    for begin, end, name in sorted(spans):
        if begin < last:
            raise GgufError(f"tensor {name!r} overlaps another")
        last = end
    return findings
