"""`@provenance.step`: record a Python function as an in-toto step."""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from provenance._fs import canonical_json
from provenance.record._recorder import StepSpec, prepare

F = TypeVar("F", bound=Callable[..., Any])


def _jsonable(value: Any) -> Any:
    """The value if JSON carries it exactly, else a type marker (not repr: it may hold secrets)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return f"<{type(value).__module__}.{type(value).__qualname__}>"
    return value


def _entry_point(func: Callable[..., Any], base: str) -> str:
    """`module:qualname`; for a function run as a script, the script path relative to base."""
    module = func.__module__
    if module == "__main__":
        source = inspect.getsourcefile(func)
        if source:
            rel = os.path.relpath(os.path.abspath(source), base)
            module = rel.replace(os.sep, "/") if not rel.startswith("..") else os.path.basename(rel)
    return f"{module}:{func.__qualname__}"


def step(
    name: str,
    *,
    materials: Sequence[str] = (),
    products: Sequence[str] = (),
    key: str | None = None,
    pub_key: str | None = None,
    links_dir: str | None = None,
    base_dir: str | None = None,
    excludes: Sequence[str] = (),
    quiet: bool = False,
) -> Callable[[F], F]:
    """Decorate a pipeline stage so each successful call writes a signed link.

    Materials are hashed before the call, products after it returns. If the function raises,
    the exception propagates unchanged and no link is written. There is no timeout.

    Example::

        @provenance.step("train", materials=["data/processed/**"], products=["models/**"],
                         key="keys/trainer")
        def train(epochs: int = 10) -> None: ...
    """
    spec = StepSpec(
        name,
        tuple(materials),
        tuple(products),
        key,
        pub_key,
        links_dir,
        base_dir,
        tuple(excludes),
        quiet,
    )

    def decorate(func: F) -> F:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            recording = prepare(spec)
            result = func(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            params = {k: _jsonable(v) for k, v in bound.arguments.items()}
            # JSON text, not a nested object: in-toto's canonical JSON cannot encode floats.
            params_json = canonical_json(params).decode()
            command = [_entry_point(func, recording.base), params_json]
            recording.finish(command, {"return-value": 0}, params_json)
            return result

        wrapper.__provenance_step__ = spec  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate
