"""`provenance report`: the verified supply chain as an HTML page or Markdown summary."""

from __future__ import annotations

import click

from provenance import _config
from provenance.cli._common import guard_output, warn


@click.command()
@click.option("--layout", required=True, help="Signed layout (from `provenance layout sign`).")
@click.option("--layout-key", "layout_keys", required=True, multiple=True, help="Owner public key.")
@click.option("--links", "links_dir", help="Links directory [env: PROVENANCE_LINKS_DIR].")
@click.option("--base", default=".", show_default=True, help="Where the real files are.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "markdown"]),
    default="html",
    show_default=True,
    help="html: one self-contained page; markdown: Mermaid + tables (GitHub job summary).",
)
@click.option("-o", "--output", help="Write here (default: stdout).")
@click.option("--provenance", "provenance_file", help="SLSA provenance to show the status of.")
@click.option("--vsa", "vsa_file", help="Verification summary attestation (VSA).")
@click.option("--scan", "scan_file", help="Model scan attestation.")
@click.option(
    "--attestation-key",
    "attestation_keys",
    multiple=True,
    metavar="PUB",
    help="Public key that signs the attestations (repeatable).",
)
def report(
    layout: str,
    layout_keys: tuple[str, ...],
    links_dir: str | None,
    base: str,
    fmt: str,
    output: str | None,
    provenance_file: str | None,
    vsa_file: str | None,
    scan_file: str | None,
    attestation_keys: tuple[str, ...],
) -> None:
    """Verify the chain and render it as a report (markdown or a self-contained HTML page).

    Steps and signers, the artifacts flowing between them, the verdict of every phase and rule,
    and the SLSA / VSA / scan status.

    The HTML page fetches nothing (inline CSS and SVG, a CSP that forbids the network). The
    report is written even when verification fails; the exit code is then 1, as for `verify`.

    \b
    Example:
      provenance report --layout root.layout --layout-key keys/owner.pub -o report.html
      provenance report --layout root.layout --layout-key keys/owner.pub \\
          --format markdown >> "$GITHUB_STEP_SUMMARY"
    """
    from provenance._fs import write_atomic
    from provenance.report import attestation_status, build_view, render_html, render_markdown
    from provenance.signing import load_public_key
    from provenance.verification import verify

    if output:
        files = [layout, provenance_file, vsa_file, scan_file]
        guard_output(output, files, [*layout_keys, *attestation_keys])
    keys = [load_public_key(k) for k in layout_keys]
    att_keys = [load_public_key(k) for k in attestation_keys]
    result = verify(layout, keys, _config.links_dir(links_dir), base)
    products = {
        p: d["sha256"]
        for lk in (result.links.values() if result.ok else [])
        for p, d in lk.link.products.items()
    }
    rows = [
        attestation_status(kind, path, att_keys, products)
        for kind, path in (
            ("SLSA provenance", provenance_file),
            ("VSA", vsa_file),
            ("scan", scan_file),
        )
    ]
    view = build_view(result, rows)
    text = render_html(view) if fmt == "html" else render_markdown(view)
    if output:
        write_atomic(output, text.encode())
        warn(f"{result.verdict}\nreport written to {output}")
    else:
        click.echo(text, nl=False)
    if not result.ok:
        raise click.exceptions.Exit(1)


COMMANDS = [report]
