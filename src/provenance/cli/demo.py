"""`provenance demo`."""

from __future__ import annotations

from pathlib import Path

import click

from provenance._demo import run_demo
from provenance.cli._common import emit_json, json_option, say


@click.command()
@click.option(
    "--workdir", default="demo-workspace", show_default=True, type=click.Path(path_type=Path)
)
@click.option(
    "--project",
    default=".",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where steps/ and layouts/ of the example pipeline are.",
)
@click.option("--fresh", is_flag=True, help="Replace an existing demo workspace.")
@json_option
def demo(workdir: Path, project: Path, fresh: bool, as_json: bool) -> None:
    """Run the example pipeline end to end in a fresh workspace and show what was proven.

    \b
    Example:
      provenance demo --workdir demo-workspace --fresh
    """
    report = run_demo(workdir, project, fresh, (lambda _t: None) if as_json else say)
    if as_json:
        emit_json(
            {
                "workdir": str(report.workdir),
                "stages": [
                    dict(zip(("stage", "outcome", "detail"), r, strict=True)) for r in report.rows
                ],
            }
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ml-provenance demo", show_lines=False)
    for col in ("stage", "outcome", "detail"):
        table.add_column(col)
    for row in report.rows:
        table.add_row(*row)
    Console().print(table)


COMMANDS = [demo]
