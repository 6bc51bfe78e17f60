"""`provenance keygen`."""

from __future__ import annotations

import click

from provenance.cli._common import emit_json, json_option, say
from provenance.signing.keys import KEY_TYPES, generate


@click.command()
@click.argument("name")
@click.option(
    "--dir", "directory", default="keys", show_default=True, help="Where to write the keys."
)
@click.option(
    "--type", "key_type", type=click.Choice(KEY_TYPES), default="ed25519", show_default=True
)
@click.option("--force", is_flag=True, help="Replace existing key files.")
@json_option
def keygen(name: str, directory: str, key_type: str, force: bool, as_json: bool) -> None:
    """Generate a signing key pair: DIR/NAME (PKCS#8 PEM, mode 0600) and DIR/NAME.pub.

    \b
    Example:
      provenance keygen trainer --dir keys
    """
    pair = generate(name, directory, key_type, force=force)
    if as_json:
        emit_json(
            {"private_key": pair.private_path, "public_key": pair.public_path, "keyid": pair.keyid}
        )
    else:
        say(f"wrote {pair.private_path} (0600) and {pair.public_path}")
        say(f"keyid {pair.keyid}")
