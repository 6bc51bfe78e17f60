"""Write docs/api.md from the public API's own docstrings (a test checks it is current).

.venv/bin/python tools/gen_api_docs.py

The public API is `provenance.__all__` and the `__all__` of every public subpackage (`cli` is
documented in docs/cli.md). Signatures are rendered from the source annotations as written, so the
output is the same on every supported Python version. No network, no third-party tool.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path
from typing import Any

import provenance

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
SKIP_PACKAGES = {"cli"}
HEADER = """# Python API reference

Generated from the docstrings by `tools/gen_api_docs.py`; do not edit by hand. The command line
is described in [cli.md](cli.md). Everything not listed here (modules and names starting with `_`)
is internal and may change without notice.
"""


def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    return value if isinstance(value, str) else inspect.formatannotation(value)


def _signature(obj: Any) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # e.g. an exception that keeps BaseException's __init__
        return ""
    parts: list[str] = []
    star_done = False
    for param in sig.parameters.values():
        if param.name == "self":
            continue
        if param.kind is param.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        prefix = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "")
        if param.kind is param.VAR_POSITIONAL:
            star_done = True
        text = prefix + param.name
        annotation = _annotation(param.annotation)
        if annotation:
            text += f": {annotation}"
        if param.default is not inspect.Parameter.empty:
            text += f" = {param.default!r}" if annotation else f"={param.default!r}"
        parts.append(text)
    ret = _annotation(sig.return_annotation)
    return f"({', '.join(parts)})" + (f" -> {ret}" if ret and not inspect.isclass(obj) else "")


def _doc(obj: Any) -> str:
    doc = obj.__doc__ if isinstance(obj.__doc__, str) else None
    if doc and dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
        doc = None  # the signature dataclasses put in place of a missing docstring
    return inspect.cleandoc(doc) if doc else "*(no docstring)*"


def _class_members(cls: type) -> list[str]:
    out: list[str] = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            out.append(f"- `{name}` (property): {_first_line(member)}")
        elif isinstance(member, (staticmethod, classmethod)):
            func = member.__func__
            out.append(f"- `{name}{_signature(func)}`: {_first_line(func)}")
        elif inspect.isfunction(member):
            out.append(f"- `{name}{_signature(member)}`: {_first_line(member)}")
    return out


def _first_line(obj: Any) -> str:
    doc = obj.__doc__ if isinstance(obj.__doc__, str) else ""
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ") if doc else ""


def _is_type_alias(obj: Any) -> bool:
    """`X = Callable[...]` and friends (3.10 also calls such an alias an instance of `type`)."""
    return type(obj).__module__ in ("typing", "types", "collections.abc") and type(obj) is not type


def _render_object(module: str, name: str, obj: Any) -> str:
    if _is_type_alias(obj):  # rendered alike on every Python version
        return f"### `{module}.{name}`\n\nA type alias."
    if inspect.isclass(obj):
        kind = "exception" if issubclass(obj, BaseException) else "class"
        head = f"### {kind} `{module}.{name}{_signature(obj)}`"
        body = [_doc(obj)]
        if dataclasses.is_dataclass(obj):
            fields = [f"`{f.name}`" for f in dataclasses.fields(obj)]
            body.append("Fields: " + ", ".join(fields) + ".")
        members = _class_members(obj)
        if members:
            body.append("\n".join(members))
        return "\n\n".join([head, *body])
    if callable(obj):
        return f"### `{module}.{name}{_signature(obj)}`\n\n{_doc(obj)}"
    if inspect.ismodule(obj):  # never its file path: the reference must not depend on the clone
        return f"### module `{obj.__name__}`\n\n{_doc(obj)}"
    return f"### `{module}.{name}`\n\n`{name} = {obj!r}`"


def public_modules() -> list[str]:
    """`provenance`, `provenance.errors` and the public subpackages, in that order."""
    names = [
        f"provenance.{info.name}"
        for info in pkgutil.iter_modules(provenance.__path__)
        if info.ispkg and not info.name.startswith("_") and info.name not in SKIP_PACKAGES
    ]
    return ["provenance", "provenance.errors", *sorted(names)]


def render() -> str:
    """The whole reference as Markdown."""
    parts = [HEADER]
    for module_name in public_modules():
        importlib.import_module(module_name)
        module = sys.modules[module_name]  # not the attribute: `provenance.verify` is shadowed
        exported = getattr(module, "__all__", None)
        if exported is None:
            exported = [
                n
                for n, v in vars(module).items()
                if not n.startswith("_") and getattr(v, "__module__", None) == module_name
            ]
        parts.append(f"\n## `{module_name}`\n\n{_doc(module)}\n")
        for name in exported:
            if name.startswith("__"):
                continue
            parts.append("\n" + _render_object(module_name, name, getattr(module, name)) + "\n")
    return "".join(parts)


if __name__ == "__main__":
    DOC.write_text(render())
    sys.stdout.write(f"wrote {DOC}\n")
