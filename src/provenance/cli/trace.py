"""`provenance trace PATH_OR_SHA256`: the lineage of one artifact, back to the raw inputs."""

from __future__ import annotations

from typing import Any

import click

from provenance import _config
from provenance.cli._common import emit_json, json_option, say


def dataset_text(dataset: Any) -> str:
    """One line for a dataset node: source, members, size, as the link records them."""
    from provenance.hashing import printable

    members = "?" if dataset.members is None else f"{dataset.members:,}"
    source = printable(dataset.source or "?")
    return f"dataset {source}: {members} members, {dataset.size} (recorded)"


def _label(node: Any) -> str:
    from rich.markup import escape

    path = escape(node.path)
    if node.dataset is not None:
        # One node for the whole dataset: its manifest is the artifact the link records.
        path = (
            f"[bold cyan]{escape(dataset_text(node.dataset))}[/bold cyan]  "
            f"[dim]manifest[/dim] {path}"
        )
    if node.step is None:
        return f"{path}  [dim]{node.sha256[:12]}[/dim]  [yellow](raw input)[/yellow]"
    note = f"  [dim]({escape(node.note)})[/dim]" if node.note else ""
    return (
        f"{path}  [dim]{node.sha256[:12]}[/dim]  ← [bold]{escape(node.step)}[/bold] "
        f"[dim]key {escape(str(node.keyid))[:8]}[/dim]{note}"
    )


def _add(tree: Any, node: Any) -> None:
    branch = tree.add(_label(node))
    for material in node.materials:
        _add(branch, material)


def render(lineage: Any) -> None:
    """Print a lineage as a tree."""
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(f"[bold]{escape(lineage.target)}[/bold]  ({escape(lineage.source)})")
    for root in lineage.roots:
        _add(tree, root)
    import sys

    width = None if sys.stdout.isatty() else 200  # pipes and logs: never crop a path
    console = Console(soft_wrap=True, highlight=False, width=width)
    console.print(tree)
    if lineage.on_disk:
        last = lineage.on_disk_step
        of = f" (of step '{last}', the last to record it)" if last else ""
        if lineage.on_disk == "deleted":
            say("file on disk: present, but a later step deleted it (the chain ends without it)")
        else:
            say(f"file on disk: {lineage.on_disk} the recorded digest{of}")
    say(f"raw inputs: {len(lineage.raw_inputs)}")
    for path, sha in lineage.raw_inputs:
        dataset = lineage.raw_datasets.get((path, sha))
        about = f"  ({dataset_text(dataset)})" if dataset is not None else ""
        say(f"  {path}  sha256:{sha}{about}")
    state = "verified" if lineage.verified else "unverified, signatures not checked"
    say(f"links read ({state}): {len(lineage.links)}")
    for lk in lineage.links:
        say(f"  {lk['file']}  step {lk['step']}, key {lk['keyid'][:16]}")
    for mv in lineage.models:
        say(
            f"model version: {mv['model']} v{mv['version']} @{mv['alias']} "
            f"({mv['result']} {mv['verified_at']}): {', '.join(mv['files'])}"
        )


@click.command()
@click.argument("target", metavar="PATH_OR_SHA256")
@click.option("--links", "links_dir", help="Links directory [env: PROVENANCE_LINKS_DIR].")
@click.option("--base", default=".", show_default=True, help="Where the real files are.")
@click.option("--layout", help="Signed layout: trace only through links it verifies.")
@click.option("--layout-key", "layout_keys", multiple=True, help="Owner public key (repeatable).")
@click.option("--tracking-uri", help="MLflow tracking URI: list model versions holding the file.")
@click.option("--model", help="Registered model name (with --tracking-uri).")
@click.option("--gate-key", help="Gate public key: only its signed decision records count.")
@json_option
def trace(
    target: str,
    links_dir: str | None,
    base: str,
    layout: str | None,
    layout_keys: tuple[str, ...],
    tracking_uri: str | None,
    model: str | None,
    gate_key: str | None,
    as_json: bool,
) -> None:
    """Show which step produced a file (by path or sha256), back to the raw inputs, as a tree.

    A dataset recorded as a manifest is one node (source, member count, size, manifest
    digest, as its link records them); trace it by its manifest path or digest, or by its
    source directory or s3:// prefix. For a path on disk it says whether the file matches the
    digest the chain ends with (a later step's, when one changed it), or that a later step
    deleted it.

    With --layout/--layout-key the chain is verified first and only accepted links are used;
    without, every link is read unverified and the tree says so. With --tracking-uri, --model
    and --gate-key, also lists the model versions whose gate decision holds a file with that
    digest. Exit codes: 0 traced; 1 no step produced it, or the chain does not verify.

    \b
    Example:
      provenance trace models/model.safetensors --layout root.layout --layout-key keys/owner.pub
    """
    from provenance.errors import UsageError
    from provenance.report import model_versions, on_disk, unverified_records, verified_chain
    from provenance.report import trace as run_trace
    from provenance.signing import load_public_key

    if bool(layout) != bool(layout_keys):
        raise UsageError("--layout and --layout-key go together")
    if tracking_uri and not (model and gate_key):
        raise UsageError("--tracking-uri needs --model and --gate-key")
    links = _config.links_dir(links_dir)
    final = None  # what the verified chain ends with (known only when verified)
    if layout:
        keys = [load_public_key(k) for k in layout_keys]
        records, final = verified_chain(layout, keys, links, base)
        lineage = run_trace(target, records, verified=True, source=f"verified with {layout}")
    else:
        records = unverified_records(links)
        lineage = run_trace(
            target,
            records,
            verified=False,
            source="UNVERIFIED: no layout given, signatures not checked",
        )
    on_disk(lineage, base, final)
    if tracking_uri and model and gate_key and lineage.roots:
        digests = {r.sha256 for r in lineage.roots}
        lineage.models = model_versions(tracking_uri, model, load_public_key(gate_key), digests)
    if as_json:
        emit_json(lineage.to_dict())
    elif lineage.roots:
        render(lineage)
    if not lineage.roots:
        if not as_json:
            say(f"no step in {links} produced '{target}' ({len(records)} link(s) read)")
        raise click.exceptions.Exit(1)


COMMANDS = [trace]
