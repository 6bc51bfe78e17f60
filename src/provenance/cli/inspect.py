"""`provenance inspect FILE`: what a provenance file is and who signed it."""

from __future__ import annotations

from typing import Any

import click

from provenance.cli._common import emit_json, json_option, say


def _fmt(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"count", "first"}:
        first = ", ".join(value["first"])
        more = " …" if value["count"] > len(value["first"]) else ""
        return f"{value['count']}" + (f" ({first}{more})" if first else "")
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) or "—"
    return "—" if value is None else str(value)


def render(desc: Any) -> None:
    """Print one described file: its kind, signature, identity and fields."""
    say(f"{desc.source}: {desc.kind}")
    bundle = desc.kind.startswith("Sigstore bundle")
    if desc.signature == "VALID" and bundle:
        say("  signature: VALID (against the pinned Sigstore root; identity not policy-checked)")
    elif desc.signature == "VALID":
        by = ", ".join(k[:16] for k in desc.verified_by)
        say(f"  signature: VALID (verified with key {by})")
    elif desc.signature == "NONE":
        say("  signature: none (see note)")
    elif desc.signature == "INVALID":
        say("  signature: INVALID" + (" (see note)" if bundle else " (by none of the keys given)"))
    elif bundle:
        say("  signature: NOT CHECKED")
    else:
        say("  signature: NOT CHECKED (give the signer's public key with --key)")
    if desc.signers:
        say(f"  signed by key id: {', '.join(k[:16] or '(none)' for k in desc.signers)}")
    for key, value in desc.identity.items():
        say(f"  certificate {key}: {value}")
    if desc.note:
        say(f"  note: {desc.note}")
    if desc.unverified and desc.signature != "NONE":  # a manifest's figures are counted here
        say("  unverified: the contents below are what the file claims, not checked facts")
    for key, value in desc.fields.items():
        if key == "datasets":
            _datasets(value)
            continue
        say(f"  {key.replace('_', ' ')}: {_fmt(value)}")


def _datasets(datasets: list[dict[str, Any]]) -> None:
    """One line per dataset the link records: what the step said it hashed."""
    from provenance.hashing import printable

    say(f"  datasets (recorded by the step): {len(datasets)}")
    for ds in datasets:
        members = "?" if ds["members"] is None else f"{ds['members']:,}"
        side = "material" if ds["side"] == "materials" else "product"
        say(
            f"    {side}: {printable(ds['source'] or '?')}: {members} members, {ds['size']}; "
            f"manifest {printable(ds['manifest'])} sha256:{ds['manifest_sha256']}"
        )
        read = ds.get("read")
        if read:
            done = "to the end" if read.get("completed") else "not to the end"
            say(
                f"      read while training: {read.get('shards_read', '?')} shards, "
                f"{read.get('bytes_read', '?')} bytes, {done}"
            )


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="PUB",
    help="Public key to check the signature with (repeatable).",
)
@json_option
def inspect(file: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Show what FILE is, who signed it, when, and what it records.

    FILE is recognised by its content: an in-toto link, a signed layout, an attestation (SLSA
    provenance, VSA, scan result) as a DSSE envelope, Sigstore bundle or .jsonl, a gate
    decision record (a registry tag value saved to a file), or a dataset manifest (members,
    size, sha256). A link's datasets are listed one line each. With --key the signature is
    checked; otherwise (and when it does not verify) the contents are shown as unverified.
    Sigstore bundles are checked against the pinned Sigstore root (chain, log, signature).

    Exit codes: 0 the file was read (and, with --key, its signature verified); 1 a signature
    did not verify with the keys given; 3 unreadable or unknown file.

    \b
    Example:
      provenance inspect .provenance/links/train.1a2b3c4d.link --key keys/trainer.pub
    """
    from provenance.report import inspect_file
    from provenance.signing import load_public_key

    trusted = {k.keyid: k for k in (load_public_key(p) for p in keys)}
    descriptions = inspect_file(file, trusted)
    if as_json:
        emit_json({"file": file, "documents": [d.to_dict() for d in descriptions]})
    else:
        for desc in descriptions:
            render(desc)
    if any(d.signature == "INVALID" for d in descriptions):
        raise click.exceptions.Exit(1)


COMMANDS = [inspect]
