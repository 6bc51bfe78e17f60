"""`provenance scan`: refuse model files that run code on load; optionally sign the verdict."""

from __future__ import annotations

import click

from provenance.cli._common import emit_json, json_option, say


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="FILE",
    help="Accept this pickle-capable file (repeatable); it must still import only allow-listed "
    "globals.",
)
@click.option(
    "--base",
    default=".",
    show_default=True,
    help="Files are recorded relative to it in the signed result (shown as given).",
)
@click.option("--key", help="Sign the result with this private key or signer URI.")
@click.option("--pub-key", help="Public key of a URI signer.")
@click.option("-o", "--output", help="Write the signed scan attestation (.intoto.jsonl) here.")
@json_option
def scan(
    paths: tuple[str, ...],
    allow: tuple[str, ...],
    base: str,
    key: str | None,
    pub_key: str | None,
    output: str | None,
    as_json: bool,
) -> None:
    """Scan model files and directories by an allow-list, without loading them.

    A file passes only if a strict parser proves it is a format that cannot run code on
    load (safetensors, ONNX, GGUF, .npy/.npz without objects, Keras without custom code,
    JSON, YAML, text) and its name sends it to no pickle loader. Pickle-capable files
    (.pkl, .pt, .bin, .joblib, compressed pickles, …) fail unless --allow names them, and
    then may import only allow-listed globals. Exits 1 naming each refused file, 3 if a
    path cannot be read. With --key and -o the verdict (PASSED or FAILED) is written as a
    signed in-toto test-result attestation (paths relative to --base).

    \b
    Example:
      provenance scan models/ --key keys/scanner -o scan.intoto.jsonl
    """
    from provenance.errors import UsageError
    from provenance.scanning import scan_paths

    if bool(key) != bool(output):
        raise UsageError("--key and -o/--output go together (sign and write the attestation)")
    report = scan_paths(paths, base=base, allow=allow)
    doc = report.to_dict()
    outside = [r.name for r in report.files if r.path.startswith("/")]
    if key and outside:
        raise UsageError(f"{outside[0]} is outside --base {base}: give a --base that holds it")
    if key and output:
        from provenance.attest.scan import build_scan_statement
        from provenance.attest.statement import write_jsonl
        from provenance.signing import load_signer

        write_jsonl(output, [build_scan_statement(report).sign(load_signer(key, pub_key))])
        doc["attestation"] = output
    if as_json:
        emit_json(doc)
    else:
        say(report.verdict())
        for failure in report.failures():
            say(f"- {failure}")
        if output:
            say(f"wrote {output}")
    if not report.ok:
        raise click.exceptions.Exit(1)


COMMANDS = [scan]
