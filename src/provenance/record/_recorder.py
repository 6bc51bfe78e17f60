"""The recording protocol shared by the decorator and `provenance run`.

1. prepare: resolve settings, load the signer (a bad key fails before hours of training), verify
   the base models' OMS signatures (`_lineage`), hash materials;  2. the step runs;
3. finish: hash products, sign and write the link atomically into the links directory, then
   hand it to the other link sinks (`record.sinks`: the active MLflow run, ...).
A step that fails never reaches `finish`, so no link exists that could later verify.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from provenance import _config
from provenance._fs import NAME_RE, check_writable_dir, relative_inside, utc_now
from provenance._progress import hashing_progress
from provenance.datasets import ENGINES, Dataset, choose_engine, hash_patterns
from provenance.errors import UsageError
from provenance.hashing import (
    ArtifactSet,
    Background,
    Excludes,
    Progress,
    compile_patterns,
    objects,
)
from provenance.record import _datasets, _environment, _lineage, _objects
from provenance.record._lineage import BaseModel, BaseModelRecord
from provenance.record._ranks import Ranks

log = logging.getLogger("provenance")


@dataclass(frozen=True)
class StepSpec:
    """What one step records; validated when built."""

    name: str
    materials: Sequence[str] = ()
    products: Sequence[str] = ()
    key: str | None = None
    pub_key: str | None = None
    links_dir: str | None = None
    base_dir: str | None = None
    excludes: Sequence[str] = ()
    quiet: bool = False
    base_models: Sequence[BaseModel] = ()
    # Datasets recorded as one manifest artifact each (datasets/); see record/_datasets.py.
    dataset_materials: Sequence[Dataset] = ()
    dataset_products: Sequence[Dataset] = ()
    # Engine hashing the -m/-p matches ("local" or "ray"; default: the engine setting).
    engine: str | None = None

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise UsageError(
                f"invalid step name '{self.name}': letters, digits, '_', '.', '-' (max 128)"
            )
        for label, pats in (("materials", self.materials), ("products", self.products)):
            if isinstance(pats, str):
                raise UsageError(f"step '{self.name}': {label} must be a list of patterns")
            # Fail when the step is declared, not after hours of training.
            compile_patterns(objects.local_patterns(pats))
        if self.engine is not None and self.engine not in ENGINES:
            raise UsageError(f"step '{self.name}': unknown engine {self.engine!r} (local, ray)")
        if isinstance(self.base_models, BaseModel) or not all(
            isinstance(m, BaseModel) for m in self.base_models
        ):
            raise UsageError(
                f"step '{self.name}': base_models must be a list of "
                "BaseModel(path=..., signature=..., key=...)"
            )


@dataclass
class Recording:
    """A step in progress: its signer, resolved paths and hashed materials."""

    spec: StepSpec
    base: str
    links_dir: str
    signer: Any
    excludes: tuple[str, ...]
    run_id: str = ""
    material_patterns: Sequence[str] = ()
    materials: ArtifactSet = field(default_factory=ArtifactSet)
    base_models: Sequence[BaseModelRecord] = ()
    distributed: dict[str, object] | None = None
    started_on: str = field(default_factory=utc_now)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # s3:// size/ETag
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)  # manifests recorded
    reads_file: str | None = None  # where VerifiedShards report (datasets verified on read)
    packages: _PackagesLater | None = None
    engine: str = "local"  # hashes the -m/-p matches

    def finish(
        self, command: list[str], byproducts: dict[str, Any], parameters: str | None = None
    ) -> str:
        from provenance.links import link_payload
        from provenance.record.sinks import DirectorySink, publish

        if self.packages is not None:
            self.packages.settle()
        # git answers on a thread while the products are hashed (the rest of the environment is
        # read on this thread: the active MLflow run is per thread).
        git = Background(lambda _: _environment.git_state(self.base), name="provenance-git")
        products = _hash(
            self.base, self.spec.products, self.excludes, self.spec.quiet, "products", self.engine
        )
        self.objects["products"] = _objects.hash_into(
            self.spec.name, "products", self.spec.products, products
        )
        if self.spec.dataset_products:
            made, self.datasets["products"] = _datasets.record(
                self.base, self.spec.dataset_products, self.spec.quiet
            )
            products.add(made)
        if self.reads_file is not None:
            self.datasets["read"] = _datasets.collect_reads(self.reads_file)
        environment = _environment.capture(self.run_id, git.result())
        environment["started_on"], environment["finished_on"] = self.started_on, utc_now()
        environment["patterns"] = {
            "materials": list(self.material_patterns),
            "products": list(self.spec.products),
        }
        if self.base_models:
            environment["base_models"] = [m.to_dict() for m in self.base_models]
        if parameters is not None:
            environment["parameters"] = parameters
        if self.distributed is not None:
            environment["distributed"] = self.distributed
        if any(self.objects.values()):
            environment["objects"] = self.objects
        if self.datasets:
            environment["datasets"] = self.datasets
        if self.engine != "local":
            environment["engine"] = self.engine  # the -m/-p digests are the cluster's
        payload = link_payload(
            self.spec.name,
            command,
            self.materials,
            products,
            byproducts,
            environment,
        )
        link = DirectorySink(self.links_dir).write(
            payload, self.signer, self.spec.name, environment
        )
        path = link.path
        log.info(
            "step '%s': %d materials, %d products, signed by %s -> %s",
            self.spec.name,
            len(self.materials),
            len(products),
            self.signer.public_key.keyid[:8],
            path,
        )
        for where in publish(link):
            log.info("step '%s': link stored in %s", self.spec.name, where)
        return path


def discard(rec: Recording) -> None:
    """The step failed: forget what its loaders reported (no link will be written)."""
    if rec.reads_file is not None:
        _datasets.collect_reads(rec.reads_file)
        rec.reads_file = None


class _PackagesLater:
    """List the installed packages on a thread while hashing runs (`_environment.warm`).

    The link records the packages as they are when it is written; `settle` keeps the early list
    only if no directory on sys.path changed since (a step that pip-installs changes one).
    """

    def __init__(self) -> None:
        self._stamp = _site_stamp()
        self._thread = threading.Thread(target=_environment.warm, daemon=True)
        self._thread.start()

    def settle(self) -> None:
        self._thread.join()
        if _site_stamp() != self._stamp:
            _environment.installed_packages.cache_clear()
            _environment.packages_digest.cache_clear()


def _may_prompt(key: str) -> bool:
    """True when loading `key` may ask for a passphrase: no progress bar may draw meanwhile."""
    if (
        sys.stdin is None
        or not sys.stdin.isatty()
        or _config.environment("PROVENANCE_KEY_PASSPHRASE")
    ):
        return False
    try:
        with open(key, "rb") as f:
            return b"ENCRYPTED" in f.read(8192)
    except OSError:
        return False


def _site_stamp() -> list[tuple[str, int]]:
    stamp = []
    for entry in sys.path:
        try:
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    return stamp


def _hash(
    base: str,
    patterns: Sequence[str],
    excludes: tuple[str, ...],
    quiet: bool,
    what: str,
    engine: str = "local",
    progress: Progress | None = None,
) -> ArtifactSet:
    """Turn the local `patterns` into the (path, sha256) artifacts they select under `base`.

    `engine` "ray": the matches are hashed as Ray tasks (provenance.datasets), same digests.
    """
    patterns = objects.local_patterns(patterns)
    if not patterns:
        return ArtifactSet()
    with hashing_progress(what, quiet=quiet) as (on_total, advance):

        def report(n: int) -> None:
            if progress is not None:
                progress(n)  # the background job's cancellation point
            advance(n)

        # The materials' link JSON is rendered while they hash: the step runs before it is
        # needed. The products' is not: the payload is built right after them, around the
        # materials' buffer (a second rendered buffer would be copied into it).
        return hash_patterns(
            engine,
            base,
            patterns,
            excludes,
            progress=report,
            on_total=on_total,
            render_json=what == "materials",
        )


def base_dir(spec: StepSpec) -> str:
    """The absolute directory artifact paths are relative to."""
    return os.path.abspath(spec.base_dir or _config.setting("base_dir") or ".")


def prepare(spec: StepSpec, ranks: Ranks | None = None) -> Recording:
    base = base_dir(spec)
    key = spec.key or _config.setting("key", root=base)
    if not key:
        raise UsageError(
            f"step '{spec.name}': no signing key (pass key=/--key or set PROVENANCE_KEY)"
        )
    links_setting = _config.links_dir(spec.links_dir, root=base)
    links_dir = os.path.join(base, links_setting)
    # Before hours of work: a links directory that cannot be written would lose the link.
    check_writable_dir(links_dir, "links directory", links_setting)
    excludes = list(Excludes.DEFAULT) + list(spec.excludes)
    for own in (links_dir, key):
        rel = relative_inside(own, base) if os.path.exists(own) or own == links_dir else None
        if rel and rel != ".":
            excludes.append(rel + ("/" if own == links_dir else ""))
    engine = choose_engine(spec.engine)
    materials: Background[ArtifactSet] | None = None
    # Ray is started from the main thread only: the local engine hashes in the background.
    if not spec.base_models and not _may_prompt(key) and engine == "local":
        # The materials are hashed while the signer loads: loading it is mostly importing its
        # libraries, which hashing does not need. A key that fails to load cancels the hashing.
        pats = tuple(spec.materials)
        materials = Background(
            lambda progress: _hash(
                base, pats, tuple(excludes), spec.quiet, "materials", progress=progress
            )
        )
    packages = _PackagesLater()
    try:
        # Imported while the materials hash: the signer's libraries, the link writer, run ids.
        from provenance.links import link_filename
        from provenance.record import _run_id
        from provenance.signing import load_signer

        signer = load_signer(key, spec.pub_key or _config.setting("pub_key", root=base))
    except BaseException:
        if materials is not None:
            materials.cancel()
        raise
    rec = Recording(
        spec, base, links_dir, signer, tuple(excludes), packages=packages, engine=engine
    )
    rec.distributed = None if ranks is None else ranks.to_dict()
    if materials is not None:
        rec.material_patterns = spec.materials
        rec.materials = materials.result()
    else:
        # Before the step runs: a base model whose signature does not verify refuses the step.
        verified = _lineage.verify_base_models(spec.name, spec.base_models, base)
        rec.material_patterns = _lineage.material_patterns(spec.materials, verified)
        rec.materials = _hash(
            base, rec.material_patterns, rec.excludes, spec.quiet, "materials", engine
        )
        _lineage.check_materials(spec.name, verified, rec.materials)
        rec.base_models = [v.record for v in verified]
        for v in verified:
            log.info(
                "step '%s': base model %s verified (OMS signature %s, %d files)",
                spec.name,
                v.record.prefix,
                v.record.signature,
                v.record.files,
            )
    rec.objects["materials"] = _objects.hash_into(
        spec.name, "materials", rec.material_patterns, rec.materials
    )
    if spec.dataset_materials:
        read, rec.datasets["materials"] = _datasets.record(base, spec.dataset_materials, spec.quiet)
        rec.materials.add(read)
        if any(d.streamed for d in spec.dataset_materials):
            rec.reads_file = _datasets.start_reads()
    # Only once the materials are readable may the step open a run (RUN_ID): a step refused
    # for its inputs leaves nothing behind.
    run = _run_id.current_run(links_dir, spec.name, root=base)
    own = link_filename(spec.name, signer.public_key.keyid)
    _run_id.warn_about_other_runs(links_dir, run, spec.name, own)
    rec.run_id = run.value
    return rec
