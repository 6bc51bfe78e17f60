"""What every orchestrator integration shares: run id, run links, recorded task, final verify.

Orchestrators hand a task its artifacts at paths of their choosing (``/tmp/root/RUN/task/out``);
a layout names them by project paths (``models/*``) that are the same for the producing and the
consuming task. So a task is recorded in a fresh workspace where each artifact is linked (hard
link, else copy) under its project path, and the artifact paths in the link are those names.

The links root is a directory every task reaches or ``s3://bucket/prefix`` (tasks on machines
that share no filesystem): each run's links are kept under ``ROOT/<run>/`` either way.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from provenance._fs import NAME_RE
from provenance.errors import PathEscapeError, UsageError, VerificationError
from provenance.hashing import check_relative, objects
from provenance.links import gather_object_links, list_links, run_name
from provenance.record import (
    RunId,
    StoredLink,
    add_link_sink,
    add_run_context,
    remove_link_sink,
    remove_run_context,
)
from provenance.record import step as record_step
from provenance.record.sinks import sink_for

T = TypeVar("T")
WORKSPACE_LINKS = ".provenance/links"


@dataclass(frozen=True)
class FixedRunId:
    """A `RunContext` answering the run id an orchestrator handed the task."""

    value: str
    source: str

    def run_id(self) -> RunId | None:
        """The orchestrator's run id."""
        return RunId(self.value, self.source)


def _run_name(run_id: str) -> str:
    return run_name(run_id)  # one rule for the sinks and `verify --links s3://…/RUN`


def run_dir(links_root: str, run_id: str) -> str:
    """Where one pipeline run's links are kept under `links_root` (one directory per run).

    `links_root` is a directory or ``s3://bucket/prefix``; the run's name is its id with
    every character but letters, digits, '.', '_' and '-' replaced by '_'.
    """
    name = _run_name(run_id)
    if objects.is_object_uri(links_root):
        root = links_root.rstrip("/")
        objects.parse_uri(f"{root}/{name}", what="links location")
        return f"{root}/{name}"
    return os.path.join(os.path.abspath(links_root), name)


@dataclass(frozen=True)
class RunLinksSink:
    """A `LinkSink` storing each link under its run's directory in a root that outlives tasks.

    The root is a directory every task can reach (a shared volume, a mounted bucket: an atomic
    copy) or ``s3://bucket/prefix`` (written once, never over another run's link); the link
    file is stored as signed, never rewritten.
    """

    root: str
    run_id: str

    def store(self, link: StoredLink) -> str | None:
        """Store `link.path` as ``ROOT/RUN/<name>.link``."""
        return sink_for(run_dir(self.root, self.run_id)).store(link)


def publish_links(root: str, run_id: str, links_dir: str) -> list[str]:
    """Store every link in `links_dir` (written by ``provenance run``) under run `run_id`."""
    sink = RunLinksSink(root, run_id)
    stored = []
    for path in list_links(links_dir):
        step = os.path.basename(path).split(".")[0]
        where = sink.store(StoredLink(step, path, {"pipeline_run_id": run_id}))
        stored.append(where or path)
    return stored


def _project_path(step: str, name: str) -> str:
    try:
        check_relative(name)
    except PathEscapeError as exc:
        raise UsageError(
            f"step '{step}': artifact name '{name}' is not a project path: {exc}"
        ) from None
    if name.startswith(".provenance"):
        raise UsageError(f"step '{step}': artifact name '{name}' is inside .provenance/")
    return name.strip("/")


def _place(source: str, dest: str) -> None:
    """Put `source` (a file or a directory tree) at `dest`: hard links where possible."""
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if os.path.isdir(source):
        shutil.copytree(source, dest, copy_function=link_or_copy, symlinks=False)
    elif os.path.isfile(source):
        link_or_copy(source, dest)
    else:
        raise UsageError(f"artifact {source} does not exist (not produced, or not mounted here)")


def _patterns(workspace: str, names: Mapping[str, str]) -> list[str]:
    return [n if os.path.isfile(os.path.join(workspace, n)) else f"{n}/**" for n in names]


@dataclass(frozen=True)
class TaskSpec:
    """One orchestrator task recorded as the in-toto step `name`."""

    name: str
    run_id: str
    run_source: str
    links: str  # root of the sink that outlives the task
    key: str
    materials: Mapping[str, str]  # project path -> local path the orchestrator gave
    products: Mapping[str, str]

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise UsageError(
                f"invalid step name '{self.name}': letters, digits, '_', '.', '-' (max 128)"
            )
        for names in (self.materials, self.products):
            for name in names:
                _project_path(self.name, name)
        run_dir(self.links, self.run_id)


@contextmanager
def _seams(spec: TaskSpec) -> Iterator[None]:
    context = FixedRunId(spec.run_id, spec.run_source)
    sink = RunLinksSink(spec.links, spec.run_id)
    add_run_context(context)
    add_link_sink(sink)
    try:
        yield
    finally:
        remove_link_sink(sink)
        remove_run_context(context)


def run_task(spec: TaskSpec, func: Callable[[], T]) -> T:
    """Run `func` as the recorded step `spec.name`; its link goes to the run's directory.

    Materials are placed in a fresh workspace under their project paths and hashed before
    `func` runs; `func` writes the products at the orchestrator's paths, which are placed and
    hashed after it returns. A failing `func` writes no link anywhere.
    """
    workspace = tempfile.mkdtemp(prefix=f"provenance-{spec.name}-")
    try:
        for name, local in spec.materials.items():
            _place(local, os.path.join(workspace, _project_path(spec.name, name)))

        def body() -> T:
            result = func()
            for name, local in spec.products.items():
                _place(local, os.path.join(workspace, _project_path(spec.name, name)))
            return result

        functools.update_wrapper(body, func)
        # Products are only known by name before they exist: a directory unless a file.
        products = [n if os.path.splitext(n)[1] else f"{n}/**" for n in spec.products]
        recorded = record_step(
            spec.name,
            materials=_patterns(workspace, spec.materials),
            products=products,
            key=spec.key,
            base_dir=workspace,
            links_dir=WORKSPACE_LINKS,
        )(body)
        with _seams(spec):
            return recorded()
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


@dataclass(frozen=True)
class Verified:
    """A pipeline run that verified, and the promotion of its model when one was asked for."""

    verification: Any  # VerificationResult
    promotion: Any = None  # gate PromotionResult

    def verdicts(self) -> list[str]:
        """The one-line verdicts, verification first."""
        lines = [str(self.verification.verdict)]
        if self.promotion is not None:
            lines.append(str(self.promotion.verdict))
        return lines


def verify_run(
    *,
    layout: str,
    layout_key: str,
    links: str,
    run_id: str,
    artifacts: Mapping[str, str],
    promotion: Promotion | None = None,
) -> Verified:
    """Gather run `run_id`'s links from `links`, verify them against the signed layout.

    `artifacts` (project path -> local path) are the files the run delivered, placed in a fresh
    workspace for the files phase. Every link must carry `run_id` (a complete set of links
    from another run is refused too, not only a stray one). On success `promote(workspace,
    links_dir)` runs inside the workspace and its result is returned; otherwise raises
    VerificationError naming each failure (step, artifact). With `promotion`, the verified model
    is then registered and promoted (the gate verifies again, from the registry's files).
    """
    import provenance

    layout, layout_key = os.path.abspath(layout), os.path.abspath(layout_key)
    links_dir = run_dir(links, run_id)
    if not objects.is_object_uri(links_dir) and not os.path.isdir(links_dir):
        raise UsageError(f"no links for pipeline run {run_id} in {links}")
    workspace = tempfile.mkdtemp(prefix="provenance-verify-")
    gathered = tempfile.mkdtemp(prefix="provenance-links-")  # private (0700)
    try:
        if objects.is_object_uri(links_dir):
            links_dir = gather_object_links(
                links_dir, os.path.join(gathered, "links"), layout_steps(layout, layout_key)
            )
        for name, local in artifacts.items():
            _place(local, os.path.join(workspace, _project_path("verify", name)))
        result = provenance.verify(layout, [layout_key], links_dir, workspace)
        failures = [
            " ".join([f"[{f.phase}] {f.message}", *(f"({d})" for d in f.details)])
            for f in result.failures
        ]
        if result.ok and result.run_id != run_id:
            failures.append(
                f"[run-id] the links belong to pipeline run {result.run_id}, not to this run"
            )
        if failures:
            raise VerificationError(
                f"pipeline run {run_id} failed verification against {layout}: "
                + "; ".join(failures)
            )
        if promotion is None:
            return Verified(result)
        cwd = os.getcwd()
        os.chdir(workspace)
        try:
            return Verified(result, promotion(layout, layout_key, links_dir))
        finally:
            os.chdir(cwd)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
        shutil.rmtree(gathered, ignore_errors=True)


def layout_steps(layout: str, layout_key: str) -> set[str]:
    """The step names of the signed layout, read only after its signature verified.

    Gathering links from a store downloads only objects named for these steps. The layout is
    verified with no links (the links phase fails; nothing later runs); a bad signature or an
    expired layout raises VerificationError before anything is downloaded.
    """
    import provenance

    with tempfile.TemporaryDirectory(prefix="provenance-layout-") as empty:
        result = provenance.verify(layout, [layout_key], empty, empty, check_files_on_disk=False)
    if result.layout_obj is None or any(
        f.phase in ("layout-signature", "layout-expiry") for f in result.failures
    ):
        raise VerificationError(
            f"layout {layout}: " + "; ".join(f.message for f in result.failures)
        )
    return {s.name for s in result.layout_obj.steps}


@dataclass(frozen=True)
class Promotion:
    """Register the verified model in MLflow and promote it through the gate."""

    model_name: str
    tracking_uri: str
    gate_key: str  # the gate's private key: signs the decision and the VSA
    model_dir: str = "models"  # project path of the model files (the layout's model)
    evidence: tuple[str, ...] = ("metrics/metrics.json",)
    alias: str = "champion"

    def __call__(self, layout: str, layout_key: str, links_dir: str) -> Any:
        """Register the files at `model_dir` (in the current directory) and promote them."""
        from provenance.gate import promote, register
        from provenance.signing import load_signer

        made = register(
            self.model_name,
            self.model_dir,
            links_dir=links_dir,
            evidence=list(self.evidence),
            tracking_uri=self.tracking_uri,
        )
        result = promote(
            self.model_name,
            made.version,
            self.alias,
            layout=layout,
            layout_keys=[layout_key],
            gate_signer=load_signer(self.gate_key),
            tracking_uri=self.tracking_uri,
        )
        if not result.promoted:
            raise VerificationError(f"model {self.model_name}: {result.verdict}")
        return result
