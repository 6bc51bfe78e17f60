"""`@provenance.step`: record a Python function as an in-toto step."""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from provenance.datasets import Dataset
from provenance.record import _datasets, _ranks, _recorder
from provenance.record._lineage import BaseModel
from provenance.record._params import record_parameters
from provenance.record._recorder import StepSpec, prepare

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("provenance.record")


class _FallbackHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Shows our lines on stderr only while the program has configured no logging of its own."""

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers:
            super().emit(record)


def _show_our_lines() -> None:
    """A training script rarely configures logging: still show one line per recorded step."""
    ours = logging.getLogger("provenance")
    if logging.getLogger().handlers or any(isinstance(h, _FallbackHandler) for h in ours.handlers):
        return
    handler = _FallbackHandler()
    handler.setFormatter(logging.Formatter("provenance: %(message)s"))
    ours.addHandler(handler)
    if ours.level == logging.NOTSET:
        ours.setLevel(logging.INFO)


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
    materials: Sequence[str | Dataset] = (),
    products: Sequence[str | Dataset] = (),
    key: str | None = None,
    pub_key: str | None = None,
    links_dir: str | None = None,
    base_dir: str | None = None,
    excludes: Sequence[str] = (),
    quiet: bool = False,
    base_models: Sequence[BaseModel] = (),
    record_rank: int | None = None,
    engine: str | None = None,
) -> Callable[[F], F]:
    """Decorate a pipeline stage so each successful call writes a signed link.

    Materials are hashed before the call, products after it returns. If the function raises,
    the exception propagates unchanged and no link is written. There is no timeout.

    A `Dataset("s3://bucket/prefix")` (or a directory) among the materials or products is
    recorded as one manifest artifact listing its members (provenance.datasets).
    `engine="ray"` (default: the `engine` setting, else local) hashes the pattern matches as
    Ray tasks; a Dataset's own `engine` chooses for its members.

    `base_models` are models the step fine-tunes: each one's OMS signature is verified before
    the call (a failure raises VerificationError and the function does not run), its directory
    is added to the materials, and the link names it in `environment.base_models`.

    In a distributed job (``RANK``/``WORLD_SIZE`` from torchrun or accelerate, Open MPI, MPICH,
    Slurm) every process runs the function but only `record_rank` (default 0, or
    ``PROVENANCE_RECORD_RANK``) records the link; products must be complete when that rank's
    call returns (end the step with a barrier when other ranks write them).

    Example::

        @provenance.step("train", materials=["data/processed/**"], products=["models/**"],
                         key="keys/trainer")
        def train(epochs: int = 10) -> None: ...

        @provenance.step("finetune", materials=["data/**"], products=["models/**"],
                         base_models=[provenance.BaseModel(path="base", signature="base.sig",
                                                           key="keys/vendor.pub")])
        def finetune() -> None: ...
    """
    material_patterns, material_sets = _datasets.split(name, materials, "materials")
    product_patterns, product_sets = _datasets.split(name, products, "products")
    spec = StepSpec(
        name,
        materials=material_patterns,
        products=product_patterns,
        dataset_materials=material_sets,
        dataset_products=product_sets,
        key=key,
        pub_key=pub_key,
        links_dir=links_dir,
        base_dir=base_dir,
        excludes=tuple(excludes),
        quiet=quiet,
        engine=engine,
        # A lone BaseModel (not in a list) reaches StepSpec as is, which says how to write it.
        base_models=base_models if isinstance(base_models, BaseModel) else tuple(base_models),
    )

    if record_rank is not None:
        _ranks.check_record_rank(name, record_rank)

    def decorate(func: F) -> F:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _show_our_lines()
            ranks = _ranks.current(spec.name, record_rank, root=_recorder.base_dir(spec))
            if ranks is not None and not ranks.records:
                log.debug("%s", _ranks.skip_message(spec.name, ranks))
                return func(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            # The arguments as given, before the function can change them. JSON text, not a
            # nested object: in-toto's canonical JSON cannot encode floats.
            params_json, unrecordable = record_parameters(bound.arguments)
            if unrecordable:
                log.warning(
                    "step '%s': parameters recorded by type only (no faithful JSON form): %s",
                    spec.name,
                    ", ".join(unrecordable),
                )
            recording = prepare(spec, ranks)
            try:
                result = func(*args, **kwargs)
            except BaseException:
                _recorder.discard(recording)
                raise
            command = [_entry_point(func, recording.base), params_json]
            recording.finish(command, {"return-value": 0}, params_json)
            return result

        wrapper.__provenance_step__ = spec  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate
