"""`provenance run`."""

from __future__ import annotations

import click

from provenance.cli._common import emit_json, json_option, quiet_option, say


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("step")
@click.option(
    "-m",
    "--materials",
    "materials",
    multiple=True,
    metavar="PATTERN",
    help="Material pattern (repeatable).",
)
@click.option(
    "-p",
    "--products",
    "products",
    multiple=True,
    metavar="PATTERN",
    help="Product pattern (repeatable).",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="SRC",
    help="A dataset material (directory or s3:// prefix), recorded as one manifest artifact "
    "(repeatable).",
)
@click.option(
    "--dataset-read",
    "datasets_read",
    multiple=True,
    metavar="SRC",
    help="A dataset material COMMAND reads through the verifying loader (VerifiedShards): "
    "only its existing manifest is hashed before, the link records what was read "
    "(repeatable).",
)
@click.option(
    "--dataset-product",
    "dataset_products",
    multiple=True,
    metavar="SRC",
    help="A dataset the command creates, recorded as one manifest product (repeatable).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="Engine hashing the -m/-p files and the datasets' members (default: the engine "
    "setting, else local).",
)
@click.option("--key", help="Private key PEM or signer URI [env: PROVENANCE_KEY].")
@click.option("--pub-key", help="Public key of a URI signer.")
@click.option("--links", "links_dir", help="Links directory [env: PROVENANCE_LINKS_DIR].")
@click.option("--base", "base_dir", help="Project root the patterns are relative to [default: .].")
@click.option(
    "--exclude", "excludes", multiple=True, metavar="PATTERN", help="Extra exclude (repeatable)."
)
@click.option(
    "--base-model",
    "base_models",
    multiple=True,
    nargs=3,
    metavar="DIR SIGNATURE PUBKEY",
    help="A model the step fine-tunes, its OMS signature and the signer's public key "
    "(repeatable). Verified before COMMAND runs; DIR becomes a material.",
)
@quiet_option
@json_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    step: str,
    materials: tuple[str, ...],
    products: tuple[str, ...],
    datasets: tuple[str, ...],
    datasets_read: tuple[str, ...],
    dataset_products: tuple[str, ...],
    engine: str | None,
    key: str | None,
    pub_key: str | None,
    links_dir: str | None,
    base_dir: str | None,
    excludes: tuple[str, ...],
    base_models: tuple[tuple[str, str, str], ...],
    quiet: bool,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as pipeline step STEP and write its signed link.

    Materials are hashed before, products after the command. A non-zero exit writes no link and
    is passed through as this command's exit status. There is no timeout.

    A --base-model (fine-tuning) is checked against its OpenSSF Model Signing signature before
    COMMAND runs: a changed, missing or extra file or another key exits 1, an unreadable
    signature or key exits 3, and then COMMAND does not run and no link is written. Its files
    are added to the materials and the link names it (environment.base_models). Paths are
    relative to --base. A --dataset is recorded as one artifact, its manifest
    (.provenance/datasets/NAME.manifest), with its member count in environment.datasets.

    \b
    Examples:
      provenance run train -m 'data/processed/**' -m steps/train.py -p 'models/**' \\
          --key keys/trainer -- python steps/train.py --epochs 10
      provenance run finetune -m 'data/**' -p 'models/**' --key keys/trainer \\
          --base-model base/ base.sig keys/vendor.pub -- python steps/finetune.py
    """
    if engine != "ray":
        # A hashing worker the materials need starts while the recorder is imported below.
        from provenance.hashing import start_workers

        start_workers(base_dir or ".", materials)
    from provenance.datasets import Dataset
    from provenance.record import BaseModel, StepSpec, run_step

    spec = StepSpec(
        step,
        materials=materials,
        products=products,
        key=key,
        pub_key=pub_key,
        links_dir=links_dir,
        base_dir=base_dir,
        excludes=excludes,
        quiet=quiet,
        engine=engine,
        base_models=tuple(BaseModel(d, s, k) for d, s, k in base_models),
        dataset_materials=(
            *(Dataset(d, engine=engine) for d in datasets),
            *(Dataset(d, streamed=True) for d in datasets_read),
        ),
        dataset_products=tuple(Dataset(d, engine=engine) for d in dataset_products),
    )
    path = run_step(spec, command)
    if as_json:
        emit_json({"step": step, "link": path})
    elif path is None:
        say(f"step '{step}' ran; another rank of this distributed job records its link")
    else:
        say(f"step '{step}' recorded: {path}")


COMMANDS = [run]
