"""Kubeflow Pipelines: a component's artifacts as the materials and products of one step.

Inside a ``@dsl.component`` body (KFP ships the body, not its decorators, to the task's
process, so the recording is called there)::

    @dsl.component
    def train(processed: Input[Dataset], model: Output[Model], run_id: str, links: str):
        from provenance.integrations import kfp as prov

        def work() -> None:
            ...  # read processed.path, write model.path: KFP's conventions, unchanged

        prov.record("train", work, run_id=run_id, links=links, key="/secrets/trainer",
                    inputs={"data/processed": processed}, outputs={"models": model})

    # in the pipeline: train(..., run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, links=LINKS_ROOT)

Each artifact is recorded under the project path given for it (the same name in the producing
and the consuming component, as the layout names it), its local ``.path`` hashed and its
``.uri`` kept in the link's parameters. The KFP run (``PIPELINE_JOB_ID_PLACEHOLDER``, which KFP
fills in for each task) is the pipeline run id; each link is stored under ``LINKS/<run>/``,
where ``LINKS`` is a directory every component mounts or ``s3://bucket/prefix`` (components
on machines that share no filesystem; credentials from the usual AWS_* variables). A last
component calls `verify` (and, given a `Promotion`, promotes the model through the MLflow
gate).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from provenance.integrations._core import (
    Promotion,
    TaskSpec,
    Verified,
    run_task,
    verify_run,
)

if importlib.util.find_spec("kfp") is None:
    raise ImportError(
        "provenance.integrations.kfp needs Kubeflow Pipelines: pip install 'ml-provenance[kfp]'"
    )

__all__ = ["KfpArtifact", "Promotion", "Verified", "kfp_run_id", "record", "verify"]

T = TypeVar("T")
SOURCE = "Kubeflow Pipelines run"


class KfpArtifact(Protocol):
    """What the integration reads of a KFP ``Input[...]``/``Output[...]`` artifact."""

    @property
    def path(self) -> str:
        """The local path KFP mounted or downloaded the artifact at."""
        ...

    @property
    def uri(self) -> str:
        """Where KFP stores the artifact (pipeline root)."""
        ...


def kfp_run_id(job_id: str) -> str:
    """The pipeline run id for a KFP job id (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``)."""
    return f"kfp:{job_id.strip()}"


def record(
    name: str,
    func: Callable[[], T],
    *,
    run_id: str,
    links: str,
    key: str,
    inputs: Mapping[str, KfpArtifact] = {},
    outputs: Mapping[str, KfpArtifact] = {},
) -> T:
    """Run `func` (the component's work) as the in-toto step `name`, and return its result.

    Args:
        name: The step (the component's name in the layout).
        func: Reads the inputs' and writes the outputs' ``.path``.
        run_id: The KFP job id (pass ``dsl.PIPELINE_JOB_ID_PLACEHOLDER`` to the component).
        links: Where the run's links are kept (outlives the component): a directory or
            ``s3://bucket/prefix``; this run's are under ``<run>/`` in it.
        key: The functionary's signing key (a mounted secret).
        inputs: Project path -> ``Input[...]`` artifact: the step's materials.
        outputs: Project path -> ``Output[...]`` artifact: the step's products.
    """
    spec = TaskSpec(
        name,
        run_id=kfp_run_id(run_id),
        run_source=SOURCE,
        links=links,
        key=key,
        materials={p: a.path for p, a in inputs.items()},
        products={p: a.path for p, a in outputs.items()},
    )
    uris = {p: a.uri for p, a in (*inputs.items(), *outputs.items())}

    def work(artifacts: Mapping[str, str] = uris) -> T:  # recorded as the step's parameters
        return func()

    work.__module__, work.__qualname__ = func.__module__, func.__qualname__
    return run_task(spec, work)


def verify(
    *,
    run_id: str,
    links: str,
    layout: str,
    layout_key: str,
    artifacts: Mapping[str, KfpArtifact],
    promotion: Promotion | None = None,
) -> Verified:
    """Gather the run's links and verify them; raise VerificationError (the task fails) if not.

    `artifacts` are the run's delivered artifacts (project path -> ``Input[...]``), checked
    against the recorded products. With `promotion`, the model is then promoted.
    """
    return verify_run(
        layout=layout,
        layout_key=layout_key,
        links=links,
        run_id=kfp_run_id(run_id),
        artifacts={p: a.path for p, a in artifacts.items()},
        promotion=promotion,
    )
