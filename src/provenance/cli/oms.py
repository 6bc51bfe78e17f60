"""`provenance oms sign|verify`: OpenSSF Model Signing, through the model-signing library."""

from __future__ import annotations

import click

from provenance.cli._common import emit_json, json_option, say


@click.group()
def oms() -> None:
    """Sign and verify model directories in the OpenSSF Model Signing format.

    Signatures interoperate with the `model_signing` command (key mode, EC keys only).

    \b
    Example:
      provenance keygen modelsigner --type ecdsa --dir keys
      provenance oms sign models/ --key keys/modelsigner -o model.sig
      provenance oms verify models/ --signature model.sig --key keys/modelsigner.pub
    """


@oms.command(name="sign")
@click.argument("model_dir")
@click.option("--key", required=True, help="ECDSA private key (PEM, from keygen --type ecdsa).")
@click.option("-o", "--output", default="model.sig", show_default=True, help="Signature file.")
@json_option
def sign_cmd(model_dir: str, key: str, output: str, as_json: bool) -> None:
    """Sign every file of MODEL_DIR (an OMS signature: Sigstore bundle, key mode).

    \b
    Example:
      provenance oms sign models/ --key keys/modelsigner -o model.sig
    """
    from provenance.signing import oms as lib

    lib.sign(model_dir, key, output)
    if as_json:
        emit_json({"model": model_dir, "signature": output})
    else:
        say(f"wrote {output}: OMS signature of {model_dir}")


@oms.command(name="verify")
@click.argument("model_dir")
@click.option("--signature", required=True, help="OMS signature file (model.sig).")
@click.option("--key", required=True, help="ECDSA public key (PEM).")
@json_option
def verify_cmd(model_dir: str, signature: str, key: str, as_json: bool) -> None:
    """Check MODEL_DIR against an OMS signature: no file changed, missing or added.

    Exits 1 when the signature does not verify, 3 for an unreadable signature or key.

    \b
    Example:
      provenance oms verify models/ --signature model.sig --key keys/modelsigner.pub
    """
    from provenance.errors import VerificationError
    from provenance.signing import oms as lib

    try:
        verified = lib.verify(model_dir, signature, key)
    except VerificationError as exc:
        if as_json:
            emit_json({"ok": False, "model": model_dir, "signature": signature, "error": str(exc)})
            raise click.exceptions.Exit(1) from None
        raise
    if as_json:
        emit_json({"ok": True, "model": model_dir, "signature": signature, **verified.to_dict()})
    else:
        say(
            f"OMS signature verified: {model_dir} matches {signature} "
            f"({len(verified.files)} files, manifest sha256 {verified.manifest_sha256[:16]}…)"
        )


COMMANDS = [oms]
