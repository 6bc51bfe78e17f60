"""Step parameters as canonical JSON text: faithful, deterministic, never silently dropped.

JSON values stay as they are. Values JSON cannot carry exactly are recorded with their type:
``{"$type": "<module.Class>", "$value": ...}`` for dataclasses, enums, paths, tuples, sets, numpy
scalars, pydantic models, dicts with non-string keys and non-finite floats. Anything else (arrays,
bytes, open files, clients) is recorded as ``"<unrecordable module.Class>"`` and named in the
returned list, never by ``repr`` (it may hold secrets).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import pathlib
import sys
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 32


def _type_name(value: Any) -> str:
    """`module.Qualname`, standard-library classes under their public module.

    Python 3.13 defines `pathlib.PosixPath` in `pathlib._local`: the public name keeps the text
    the same on every Python version.
    """
    cls = type(value)
    module = cls.__module__
    if module.split(".")[0] in sys.stdlib_module_names:
        public: list[str] = []
        for part in module.split("."):
            if part.startswith("_") and public:
                break
            public.append(part)
        module = ".".join(public)
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def canonical(value: Any) -> str:
    """Canonical JSON text: sorted keys, no whitespace, ASCII only, NaN refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


class _Recorder:
    def __init__(self) -> None:
        self.unrecordable: list[str] = []

    def typed(self, value: Any, inner: Any) -> dict[str, Any]:
        return {"$type": _type_name(value), "$value": inner}

    def refuse(self, value: Any, where: str) -> str:
        self.unrecordable.append(f"{where} ({_type_name(value)})")
        return f"<unrecordable {_type_name(value)}>"

    def record(self, value: Any, where: str, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            return self.refuse(value, where)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, enum.Enum):  # before int/str: IntEnum and StrEnum are both
            return self.typed(value, value.name)
        if isinstance(value, int) and type(value) is int:
            return value
        if isinstance(value, float) and type(value) is float:
            return value if math.isfinite(value) else self.typed(value, repr(value))
        if isinstance(value, str) and type(value) is str:
            return value
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(value, numpy.generic):
            item = value.item()
            if isinstance(item, (bool, int, float, str)):
                return self.typed(value, self.record(item, where, depth + 1))
            return self.refuse(value, where)
        if isinstance(value, (int, float, str)):  # other subclasses: the plain value, typed
            base = next(t for t in (int, float, str) if isinstance(value, t))
            return self.typed(value, self.record(base(value), where, depth + 1))
        if isinstance(value, pathlib.PurePath):
            return self.typed(value, value.as_posix())
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {
                f.name: self.record(getattr(value, f.name), f"{where}.{f.name}", depth + 1)
                for f in dataclasses.fields(value)
            }
            return self.typed(value, fields)
        pydantic = sys.modules.get("pydantic")
        if pydantic is not None and isinstance(value, pydantic.BaseModel):
            names = getattr(type(value), "model_fields", None)
            if not isinstance(names, Mapping):  # pydantic v1 models are not recorded
                return self.refuse(value, where)
            fields = {
                name: self.record(getattr(value, name), f"{where}.{name}", depth + 1)
                for name in sorted(names)
            }
            return self.typed(value, fields)
        if isinstance(value, Mapping):
            return self.mapping(value, where, depth)
        if isinstance(value, list):
            return [self.record(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, tuple):
            items = [self.record(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
            return self.typed(value, items)
        if isinstance(value, (set, frozenset)):
            items = [self.record(v, f"{where}{{}}", depth + 1) for v in value]
            return self.typed(value, sorted(items, key=canonical))
        return self.refuse(value, where)

    def mapping(self, value: Mapping[Any, Any], where: str, depth: int) -> Any:
        if all(isinstance(k, str) and type(k) is str for k in value) and type(value) is dict:
            return {k: self.record(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
        pairs = [
            [
                self.record(k, f"{where} key", depth + 1),
                self.record(v, f"{where}[{k!s}]", depth + 1),
            ]
            for k, v in value.items()
        ]
        return self.typed(value, sorted(pairs, key=canonical))


def record_parameters(arguments: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Canonical JSON text of the bound arguments, and the parameters that could not be recorded."""
    recorder = _Recorder()
    recorded = {name: recorder.record(value, name) for name, value in arguments.items()}
    return canonical(recorded), recorder.unrecordable
