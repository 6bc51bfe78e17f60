"""`provenance layout lint|sign`."""

from __future__ import annotations

import click

from provenance import _config
from provenance.cli._common import emit_json, guard_output, json_option, say
from provenance.layout import lint as run_lint
from provenance.layout import load_yaml, sign_layout
from provenance.signing import load_signer


@click.group()
def layout() -> None:
    """Check and sign supply-chain layouts written in YAML.

    \b
    Example:
      provenance layout lint layouts/train.yaml
      provenance layout sign layouts/train.yaml --key keys/owner -o root.layout
    """


@layout.command()
@click.argument("file")
@json_option
def lint(file: str, as_json: bool) -> None:
    """Report fail-open rules, unreachable rules, expiry problems and unused keys.

    Exits 1 when there is an error-level finding.

    \b
    Example:
      provenance layout lint layouts/train.yaml
    """
    findings = run_lint(load_yaml(file))
    errors = [f for f in findings if f.severity == "error"]
    if as_json:
        emit_json({"file": file, "ok": not errors, "findings": [f.to_dict() for f in findings]})
    else:
        for f in findings:
            say(f.render(file))
        say(f"{file}: {len(errors)} error(s), {len(findings) - len(errors)} warning(s)")
    if errors:
        raise click.exceptions.Exit(1)


@layout.command()
@click.argument("file")
@click.option(
    "--key",
    required=True,
    default=_config.default("layout_key"),
    help="Owner private key or signer URI.",
)
@click.option("--pub-key", help="Public key of a URI signer.")
@click.option("-o", "--output", default="root.layout", show_default=True)
@click.option("--allow-unsafe", is_flag=True, help="Sign despite lint errors.")
@json_option
def sign(
    file: str, key: str, pub_key: str | None, output: str, allow_unsafe: bool, as_json: bool
) -> None:
    """Compile FILE to an in-toto layout and sign it (refused if lint finds errors).

    \b
    Example:
      provenance layout sign layouts/train.yaml --key keys/owner -o root.layout
    """
    guard_output(output, [file], [key, pub_key])
    signed = sign_layout(file, load_signer(key, pub_key), output, allow_unsafe=allow_unsafe)
    if as_json:
        emit_json(
            {
                "layout": signed.path,
                "keyid": signed.keyid,
                "findings": [f.to_dict() for f in signed.findings],
            }
        )
    else:
        for f in signed.findings:
            say(f.render(file))
        say(f"signed {file} -> {signed.path} (key {signed.keyid[:8]})")


COMMANDS = [layout]
