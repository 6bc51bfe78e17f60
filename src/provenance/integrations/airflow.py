"""Airflow: TaskFlow ``@task`` functions and ``provenance run`` commands as in-toto steps.

The DAG run is the pipeline run (``airflow:DAG_ID/RUN_ID``, from the ``AIRFLOW_CTX_*``
variables Airflow sets in every task's process); each link is copied to ``LINKS/<run>/`` on
storage every task reaches; a last task calls `verify`::

    from provenance.integrations import airflow as prov

    @task
    @prov.step("train", key="/secrets/trainer", links=LINKS,
               materials={"data/processed": DATA + "/processed"},
               products={"models": DATA + "/models"})
    def train() -> None: ...

    evaluate = prov.bash_step("evaluate", "python steps/evaluate.py", cwd=PROJECT,
                              key="keys/evaluator", links=LINKS,
                              materials=["models/**", "data/processed/**"],
                              products=["metrics/**"])

Paths in `materials`/`products` may contain ``{run}``, the run id made safe for a path (for
data kept per DAG run).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from provenance import _config
from provenance.errors import UsageError
from provenance.hashing import objects
from provenance.integrations._core import (
    Promotion,
    TaskSpec,
    Verified,
    run_dir,
    run_task,
    verify_run,
)
from provenance.record import RunId, add_run_context

if importlib.util.find_spec("airflow") is None:
    raise ImportError(
        "provenance.integrations.airflow needs Apache Airflow: pip install 'ml-provenance[airflow]'"
    )

__all__ = [
    "AirflowRunContext",
    "Promotion",
    "Verified",
    "bash_step",
    "dag_run_id",
    "step",
    "verify",
]

F = TypeVar("F", bound=Callable[..., Any])
SOURCE = "Airflow DAG run"


def dag_run_id() -> str | None:
    """``airflow:DAG_ID/RUN_ID`` inside an Airflow task, else None."""
    dag = (_config.environment("AIRFLOW_CTX_DAG_ID") or "").strip()
    run = (_config.environment("AIRFLOW_CTX_DAG_RUN_ID") or "").strip()
    return f"airflow:{dag}/{run}" if dag and run else None


class AirflowRunContext:
    """The DAG run this task belongs to is the pipeline run (a `RunContext`)."""

    def run_id(self) -> RunId | None:
        """The DAG run id inside an Airflow task; None elsewhere."""
        found = dag_run_id()
        return None if found is None else RunId(found, SOURCE)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AirflowRunContext)

    def __hash__(self) -> int:
        return hash(AirflowRunContext)


add_run_context(AirflowRunContext())


def _current_run() -> str:
    found = dag_run_id()
    if found is None:
        raise UsageError(
            "no Airflow DAG run here (AIRFLOW_CTX_DAG_ID/AIRFLOW_CTX_DAG_RUN_ID unset): "
            "call this inside an Airflow task"
        )
    return found


def _for_run(paths: Mapping[str, str], run: str) -> dict[str, str]:
    safe = os.path.basename(run_dir(".", run))
    return {name: path.replace("{run}", safe) for name, path in paths.items()}


def step(
    name: str,
    *,
    key: str,
    links: str,
    materials: Mapping[str, str] = {},
    products: Mapping[str, str] = {},
) -> Callable[[F], F]:
    """Record each call of a TaskFlow function as the step `name` of its DAG run.

    Put it under ``@task``. Materials and products map the project paths the layout names to
    where this task reads and writes them.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = _current_run()
            spec = TaskSpec(
                name,
                run_id=run,
                run_source=SOURCE,
                links=links,
                key=key,
                materials=_for_run(materials, run),
                products=_for_run(products, run),
            )
            return run_task(spec, functools.partial(func, *args, **kwargs))

        return cast(F, wrapper)

    return decorate


def bash_step(
    name: str,
    command: str,
    *,
    key: str,
    links: str,
    cwd: str,
    materials: Sequence[str] = (),
    products: Sequence[str] = (),
    task_id: str | None = None,
    **operator_args: Any,
) -> Any:
    """A BashOperator running `command` under ``provenance run`` as the step `name`.

    The link is written in a private temporary directory, then stored under the DAG run's
    directory in `links` (a directory or ``s3://bucket/prefix``) by the same sink as the
    TaskFlow steps'; the run id reaches the command as ``PROVENANCE_RUN_ID`` (templated from
    the DAG run).
    """
    from airflow.providers.standard.operators.bash import BashOperator

    argv = ["provenance", "run", name, "--key", key]
    for pattern in materials:
        argv += ["-m", pattern]
    for pattern in products:
        argv += ["-p", pattern]
    root = links if objects.is_object_uri(links) else os.path.abspath(links)
    run_dir(root, "check")  # a malformed root fails when the DAG is parsed, not in the task
    publish = (
        f"{shlex.quote(sys.executable)} -c 'import os, sys; from provenance.integrations._core "
        'import publish_links; publish_links(sys.argv[1], os.environ["PROVENANCE_RUN_ID"], '
        f'sys.argv[2])\' {shlex.quote(root)} "$links_dir"'
    )
    provenance_run = " ".join(shlex.quote(a) for a in argv)
    return BashOperator(
        task_id=task_id or name,
        bash_command=(
            'links_dir="$(mktemp -d)" && trap \'rm -rf "$links_dir"\' EXIT && '
            f'{provenance_run} --links "$links_dir" -- {command} && {publish}'
        ),
        cwd=cwd,
        env={"PROVENANCE_RUN_ID": "airflow:{{ dag.dag_id }}/{{ run_id }}"},
        append_env=True,
        **operator_args,
    )


def verify(
    *,
    links: str,
    layout: str,
    layout_key: str,
    artifacts: Mapping[str, str],
    promotion: Promotion | None = None,
) -> Verified:
    """Gather this DAG run's links, verify them (raises VerificationError: the task fails)."""
    run = _current_run()
    return verify_run(
        layout=layout,
        layout_key=layout_key,
        links=links,
        run_id=run,
        artifacts=_for_run(artifacts, run),
        promotion=promotion,
    )
