"""`provenance pipeline start`: open a new pipeline run id before the first step."""

from __future__ import annotations

import os

import click

from provenance import _config
from provenance.cli._common import emit_json, json_option, say, warn
from provenance.record import links_of_other_runs, start_run


@click.group()
def pipeline() -> None:
    """Pipeline runs: the id that ties the links of one run together.

    \b
    Example:
      provenance pipeline start
    """


@pipeline.command()
@click.option("--links", "links_dir", help="Links directory [env: PROVENANCE_LINKS_DIR].")
@json_option
def start(links_dir: str | None, as_json: bool) -> None:
    """Open a new pipeline run: the steps that follow record its id in their links.

    The id is written to LINKS/RUN_ID, where every step looks for it. In CI the run id comes
    from the environment instead (PROVENANCE_RUN_ID, the GitHub Actions run and attempt, or the
    parent MLflow run), and nothing is written.

    \b
    Example:
      provenance pipeline start --links .provenance/links
    """
    base = os.path.abspath(_config.setting("base_dir") or ".")
    links = os.path.join(base, _config.links_dir(links_dir, root=base))
    run = start_run(links)
    stale = links_of_other_runs(links, run.value)
    if as_json:
        emit_json({"run_id": run.value, "source": run.source, "links_of_other_runs": stale})
        return
    say(run.value)
    warn(f"opened pipeline run {run.value} (from {run.source})")
    if stale:
        warn(
            f"{len(stale)} link(s) of earlier runs remain in {links} and will not verify with "
            "this run until their steps run again"
        )


COMMANDS = [pipeline]
