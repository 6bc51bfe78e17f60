"""ONNX models walked as protobuf (onnx.proto3), field by field, without the onnx package.

A model passes when every operator domain (nodes, opset imports, functions, nested graphs of
If/Loop/Scan) is a standard one or a function defined in the model itself — a custom domain
needs a custom-op library registered with the runtime — and no tensor keeps its data in an
external file (a path the loader opens next to, or outside, the model directory).
"""

from __future__ import annotations

from provenance.scanning._model import Finding

STANDARD_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "ai.onnx.training", "com.microsoft"}
)
_MAX_DEPTH = 64
_MAX_IR_VERSION = 64


class OnnxError(Exception):
    """The file is not an ONNX model the scan can vouch for."""


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while pos < end and shift < 70:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    raise OnnxError(f"truncated or overlong varint at byte {pos}")


def _fields(buf: memoryview, pos: int, end: int):  # type: ignore[no-untyped-def]
    """Yield (field number, wire type, value or (start, end)) of one message."""
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise OnnxError(f"field number 0 at byte {pos}")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise OnnxError(f"truncated fixed field at byte {pos}")
            yield number, wire, (pos, pos + size)
            pos += size
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise OnnxError(f"field {number} runs past its message (byte {pos})")
            yield number, wire, (pos, pos + length)
            pos += length
        else:
            raise OnnxError(f"unsupported wire type {wire} at byte {pos}")


def _text(buf: memoryview, span: tuple[int, int]) -> str:
    try:
        return bytes(buf[span[0] : span[1]]).decode("utf-8")
    except UnicodeDecodeError:
        raise OnnxError("a string field is not UTF-8") from None


class _Walker:
    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.domains: set[str] = set()
        self.local: set[str] = set()  # domains of functions the model defines

    def span(self, wire: int, value: object, what: str) -> tuple[int, int]:
        if wire != 2 or not isinstance(value, tuple):
            raise OnnxError(f"{what} has the wrong wire type")
        return value

    def tensor(self, span: tuple[int, int]) -> None:
        for number, wire, value in _fields(self.buf, *span):
            if number == 14 and wire == 0 and value == 1:
                raise OnnxError("a tensor keeps its data in an external file")
            if number == 13:
                raise OnnxError("a tensor names an external data file")

    def attribute(self, span: tuple[int, int], depth: int) -> None:
        for number, wire, value in _fields(self.buf, *span):
            if number in (5, 10):  # t, tensors
                self.tensor(self.span(wire, value, "attribute tensor"))
            elif number in (6, 11):  # g, graphs
                self.graph(self.span(wire, value, "attribute graph"), depth + 1)

    def node(self, span: tuple[int, int], depth: int) -> None:
        for number, wire, value in _fields(self.buf, *span):
            if number == 7:
                self.domains.add(_text(self.buf, self.span(wire, value, "node domain")))
            elif number == 5:
                self.attribute(self.span(wire, value, "node attribute"), depth)

    def graph(self, span: tuple[int, int], depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise OnnxError(f"graphs nested deeper than {_MAX_DEPTH}")
        for number, wire, value in _fields(self.buf, *span):
            if number == 1:
                self.node(self.span(wire, value, "graph node"), depth)
            elif number == 5:
                self.tensor(self.span(wire, value, "graph initializer"))
            elif number == 15:  # sparse_initializer: values (1) and indices (2) are tensors
                for n, w, v in _fields(self.buf, *self.span(wire, value, "sparse initializer")):
                    if n in (1, 2):
                        self.tensor(self.span(w, v, "sparse tensor"))

    def opset(self, span: tuple[int, int]) -> None:
        for number, wire, value in _fields(self.buf, *span):
            if number == 1:
                self.domains.add(_text(self.buf, self.span(wire, value, "opset domain")))

    def function(self, span: tuple[int, int]) -> None:
        for number, wire, value in _fields(self.buf, *span):
            if number == 7:
                self.node(self.span(wire, value, "function node"), 1)
            elif number == 9:
                self.opset(self.span(wire, value, "function opset"))
            elif number == 10:
                self.local.add(_text(self.buf, self.span(wire, value, "function domain")))

    def model(self) -> None:
        ir_version, graphs = None, 0
        for number, wire, value in _fields(self.buf, 0, len(self.buf)):
            if number == 1 and wire == 0:
                ir_version = value
            elif number == 7:
                graphs += 1
                self.graph(self.span(wire, value, "graph"), 0)
            elif number == 8:
                self.opset(self.span(wire, value, "opset_import"))
            elif number == 25:
                self.function(self.span(wire, value, "function"))
            elif number == 20:  # training_info: algorithm / initialization graphs
                for n, w, v in _fields(self.buf, *self.span(wire, value, "training_info")):
                    if n in (1, 2):
                        self.graph(self.span(w, v, "training graph"), 1)
            elif number not in (2, 3, 4, 5, 6, 14, 26):
                raise OnnxError(f"unexpected ModelProto field {number}")
        if not isinstance(ir_version, int) or not 1 <= ir_version <= _MAX_IR_VERSION:
            raise OnnxError(f"ir_version missing or implausible ({ir_version})")
        if graphs != 1:
            raise OnnxError(f"{graphs} graphs (expected exactly one)")


def check_onnx(data: bytes | memoryview) -> list[Finding]:
    """An ONNX ModelProto with standard operator domains and no external data."""
    w = _Walker(memoryview(data))
    try:
        w.model()
    except OnnxError as exc:
        return [Finding("onnx", str(exc))]
    custom = sorted(w.domains - STANDARD_DOMAINS - w.local)
    if custom:
        return [
            Finding(
                "onnx",
                f"custom operator domain(s) {', '.join(repr(d) for d in custom)} need a custom-op "
                "library",
            )
        ]
    return []
