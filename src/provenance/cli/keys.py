"""`provenance keygen`."""

from __future__ import annotations

import sys

import click

from provenance import _config
from provenance.cli._common import emit_json, json_option, say
from provenance.errors import UsageError
from provenance.signing.keys import KEY_TYPES, PASSPHRASE_ENV, generate


def _new_passphrase() -> str:
    """From PROVENANCE_KEY_PASSPHRASE, else asked twice in a terminal; never from a pipe."""
    env = _config.environment(PASSPHRASE_ENV)
    if env:
        return env
    if not sys.stdin.isatty():
        raise UsageError(f"--encrypt needs a passphrase: set {PASSPHRASE_ENV} or run in a terminal")
    value: str = click.prompt(
        "passphrase for the private key", hide_input=True, confirmation_prompt=True, err=True
    )
    return value


@click.command()
@click.argument("name")
@click.option(
    "--dir", "directory", default="keys", show_default=True, help="Where to write the keys."
)
@click.option(
    "--type", "key_type", type=click.Choice(KEY_TYPES), default="ed25519", show_default=True
)
@click.option(
    "--encrypt",
    is_flag=True,
    help=f"Encrypt the private key with a passphrase (prompted, or from {PASSPHRASE_ENV}).",
)
@click.option("--force", is_flag=True, help="Replace existing key files.")
@json_option
def keygen(
    name: str, directory: str, key_type: str, encrypt: bool, force: bool, as_json: bool
) -> None:
    """Generate a signing key pair: DIR/NAME (PKCS#8 PEM, mode 0600) and DIR/NAME.pub.

    DIR gets a .gitignore that keeps everything but public keys out of git (an existing
    .gitignore is left alone). Every command that takes a private key accepts an encrypted
    one: it reads the passphrase from PROVENANCE_KEY_PASSPHRASE, or asks in a terminal.
    `--type ecdsa` writes NIST P-256 keys, the kind model-signing's key mode takes.

    \b
    Example:
      provenance keygen trainer --dir keys
      provenance keygen owner --dir keys --type ecdsa --encrypt
    """
    passphrase = _new_passphrase() if encrypt else None
    pair = generate(name, directory, key_type, force=force, passphrase=passphrase)
    if as_json:
        emit_json(
            {
                "private_key": pair.private_path,
                "public_key": pair.public_path,
                "keyid": pair.keyid,
                "encrypted": pair.encrypted,
                "gitignore": pair.gitignore,
            }
        )
    else:
        state = "0600, encrypted" if pair.encrypted else "0600"
        say(f"wrote {pair.private_path} ({state}) and {pair.public_path}")
        if pair.gitignore:
            say(f"wrote {pair.gitignore}: private keys in {directory} stay out of git")
        say(f"keyid {pair.keyid}")


COMMANDS = [keygen]
