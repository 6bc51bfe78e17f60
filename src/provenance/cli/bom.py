"""`provenance bom`: a CycloneDX ML-BOM of a verified training chain."""

from __future__ import annotations

import os

import click

from provenance import _config
from provenance.cli._common import emit_json, guard_output, json_option, report, say


@click.command()
@click.option("--layout", required=True, help="Signed layout (from `provenance layout sign`).")
@click.option(
    "--layout-key",
    "layout_keys",
    required=True,
    multiple=True,
    help="Owner public key; every one given must have signed the layout.",
)
@click.option("--links", "links_dir", help="Links directory [env: PROVENANCE_LINKS_DIR].")
@click.option("--base", default=".", show_default=True, help="Where the real files are.")
@click.option("-o", "--output", help="Write the BOM here (e.g. bom.cdx.json) [default: stdout].")
@json_option
def bom(
    layout: str,
    layout_keys: tuple[str, ...],
    links_dir: str | None,
    base: str,
    output: str | None,
    as_json: bool,
) -> None:
    """Verify the chain, then write its CycloneDX 1.6 ML-BOM (model, datasets, packages, steps).

    The BOM is built only from what verified: the declared model's files and hashes with a model
    card (training parameters, datasets, metrics), the datasets, the source commit, each step's
    Python packages and the steps as its formulation. A chain that does not verify gets no BOM
    (exit 1, nothing written).

    \b
    Example:
      provenance bom --layout root.layout --layout-key keys/owner.pub -o bom.cdx.json
    """
    from provenance.attest.bom import build_bom
    from provenance.signing import load_public_key
    from provenance.verification import verify

    links = _config.links_dir(links_dir)
    if output:  # before any work: never over an input or a key
        inputs: list[str | None] = [layout]
        if os.path.isdir(links):
            inputs += [os.path.join(links, n) for n in sorted(os.listdir(links))]
        guard_output(output, inputs, list(layout_keys))
    keys = [load_public_key(k) for k in layout_keys]
    result = verify(layout, keys, links, base)
    if not result.ok:
        report(result, as_json)  # the verdict and why; exits 1
    doc = build_bom(result)
    if output is None:
        emit_json(doc)
        return
    from provenance._fs import write_atomic

    write_atomic(output, (json_text(doc) + "\n").encode())
    summary = {
        "output": output,
        "serialNumber": doc["serialNumber"],
        "components": len(doc["components"]),
        "libraries": len(doc["formulation"][0]["components"]),
        "verification": result.to_dict(),
    }
    if as_json:
        emit_json(summary)
    else:
        say(
            f"BOM: CycloneDX {doc['specVersion']} ML-BOM of a verified chain -> {output} "
            f"({summary['components']} components, {summary['libraries']} Python packages, "
            f"{len(doc['formulation'][0]['workflows'][0]['tasks'])} steps)"
        )


def json_text(doc: object) -> str:
    """The document as indented JSON text with a final newline."""
    import json

    return json.dumps(doc, indent=2, sort_keys=True)


COMMANDS = [bom]
