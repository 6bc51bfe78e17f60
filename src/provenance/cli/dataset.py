"""`provenance dataset`: write a dataset manifest, or check a dataset's members against one."""

from __future__ import annotations

import click

from provenance.cli._common import emit_json, json_option, quiet_option, report, say

engine_option = click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="Hash here (local) or as Ray tasks on the cluster RAY_ADDRESS names, else a local "
    "one (ray; needs the ray extra). Default: PROVENANCE_ENGINE, [tool.provenance] engine, "
    "local.",
)


@click.group()
def dataset() -> None:
    """Dataset manifests: one artifact listing every member of a directory or s3:// prefix.

    \b
    Example:
      provenance dataset manifest s3://corpus/v3 -o v3.manifest --engine ray
      provenance dataset verify v3.manifest s3://corpus/v3
    """


@dataset.command("manifest")
@click.argument("src", metavar="SRC")
@click.option("-o", "--output", required=True, metavar="FILE", help="Write the manifest here.")
@engine_option
@quiet_option
@json_option
def manifest(src: str, output: str, engine: str | None, quiet: bool, as_json: bool) -> None:
    """Hash every member of SRC (a directory or s3://bucket/prefix) into a manifest FILE.

    The manifest is written only once every member was hashed (atomically: never a partial
    file); a member that cannot be read fails the command with its name (exit 3).

    \b
    Example:
      provenance dataset manifest data/raw -o raw.manifest
      RAY_ADDRESS=10.0.0.5:6379 provenance dataset manifest s3://corpus/v3 -o v3.mf --engine ray
    """
    from provenance.datasets import make_manifest

    info, stats = make_manifest(src, output, engine=engine, quiet=quiet)
    if as_json:
        emit_json({**info.to_dict(), "engine": stats.engine, "batches": stats.batches})
    else:
        say(f"wrote {output}: {info.members} members, {info.bytes} bytes, sha256 {info.sha256}")


@dataset.command("verify")
@click.argument("manifest_file", metavar="FILE")
@click.argument("src", metavar="SRC")
@engine_option
@quiet_option
@json_option
def verify(manifest_file: str, src: str, engine: str | None, quiet: bool, as_json: bool) -> None:
    """Re-hash every member of SRC and compare it with the manifest FILE.

    Exits 1 naming what is missing, extra or changed (counts, and the first 20 of each kind),
    3 when FILE is not a well-formed manifest.

    \b
    Example:
      provenance dataset verify raw.manifest data/raw
    """
    from provenance.datasets import verify_dataset

    report(verify_dataset(manifest_file, src, engine=engine, quiet=quiet), as_json)


COMMANDS = [dataset]
