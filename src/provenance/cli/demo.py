"""`provenance demo`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from provenance._demo import run_demo
from provenance._example import example_project
from provenance.cli._common import emit_json, json_option, say
from provenance.errors import UsageError

# What the example pipeline imports (scikit-learn also ships its raw data set).
EXAMPLE_MODULES = {"numpy": "numpy", "sklearn": "scikit-learn", "safetensors": "safetensors"}


def _missing_example_modules() -> list[str]:
    return [dist for mod, dist in EXAMPLE_MODULES.items() if importlib.util.find_spec(mod) is None]


@click.command()
@click.option(
    "--workdir", default="demo-workspace", show_default=True, type=click.Path(path_type=Path)
)
@click.option(
    "--project",
    type=click.Path(path_type=Path),
    help="Where steps/ and layouts/ of the pipeline are [default: the packaged example].",
)
@click.option("--fresh", is_flag=True, help="Replace an existing demo workspace.")
@click.option(
    "--stack",
    "stack_dir",
    type=click.Path(path_type=Path),
    help="Run against the stack of `provenance stack up --dir D`: each step a job in its own "
    "temporary directory, data through S3, links through the tracking server.",
)
@json_option
def demo(
    workdir: Path, project: Path | None, fresh: bool, stack_dir: Path | None, as_json: bool
) -> None:
    """Run the example pipeline end to end in a fresh workspace and show what was proven.

    The example pipeline ships with the package. Stages whose extra is not installed are
    skipped with a line naming it: the pipeline needs `ml-provenance[example]`, the registry
    gate `ml-provenance[mlflow]`.

    \b
    Example:
      provenance demo --workdir demo-workspace --fresh
      provenance stack up --dir .provenance-stack && provenance demo --stack .provenance-stack
    """
    if project is None:
        project = example_project()
        if project is None:
            raise UsageError("the packaged example pipeline is missing: pass --project")
    missing = _missing_example_modules()
    if missing:
        hint = "pip install 'ml-provenance[example]'"
        if as_json:
            skipped = {"stage": "example pipeline", "outcome": "skipped", "detail": hint}
            emit_json({"workdir": str(workdir), "stages": [skipped]})
        else:
            say(f"demo: skipped, the example pipeline needs {', '.join(missing)} ({hint})")
        return
    out = (lambda _t: None) if as_json else say
    if stack_dir is not None:
        from provenance._demo_stack import run_stack_demo

        report = run_stack_demo(stack_dir, workdir, project, fresh, out)
    else:
        report = run_demo(workdir, project, fresh, out)
    if as_json:
        doc = {
            "workdir": str(report.workdir),
            "stages": [
                dict(zip(("stage", "outcome", "detail"), r, strict=True)) for r in report.rows
            ],
        }
        emit_json({**doc, "jobs": report.jobs} if report.jobs else doc)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="ml-provenance demo", show_lines=False)
    for col in ("stage", "outcome", "detail"):
        table.add_column(col)
    for row in report.rows:
        table.add_row(*(escape(cell) for cell in row))  # `ml-provenance[bom]` is not markup
    Console().print(table)


COMMANDS = [demo]
