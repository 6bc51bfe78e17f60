"""Named Sigstore trusted roots (`--trusted-root github|public-good`), shipped, never fetched.

- `public-good`: the production root pinned inside the installed sigstore-python.
- `github`: GitHub's own Sigstore instance (fulcio.githubapp.com, timestamp.githubapp.com),
  which signs attestations of private repositories; no transparency or CT logs. The file
  `roots/github.json` is a byte-for-byte copy of sigstore/sigstore-rust
  `crates/sigstore-trust-root/src/trusted_root_github.json` at commit
  `948c31788666372867657203618d84848443eb7d` (Apache-2.0); it equals the GitHub line of
  sigstore/sigstore-java's `github-private-no-tlog/trusted_root.jsonl` (the output of
  `gh attestation trusted-root`).

Refreshing the GitHub root (its CAs and TSAs rotate about twice a year; a bundle signed after
the newest window opened needs a root that lists it): on a trusted machine run
`gh attestation trusted-root --tuf-url https://tuf-repo.github.com --tuf-root root.json` with
cli/cli's `pkg/cmd/attestation/verification/embed/tuf-repo.github.com/root.json` as the TUF
root (gh verifies the TUF chain), keep the line whose certificate authority is
`fulcio.githubapp.com`, write it to `roots/github.json`, and run
`tests/unit/test_slsa_tsa_only.py`. Verification itself never fetches anything.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from provenance.errors import InputError, UsageError

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot

NAMES = ("github", "public-good")


def named_root(name: str) -> str:
    """The path of a shipped trusted root by name; UsageError for an unknown name."""
    if name == "github":
        path = resources.files("provenance.signing.sigstore") / "roots" / "github.json"
    elif name == "public-good":
        path = (
            resources.files("sigstore._store")
            / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
            / "trusted_root.json"
        )
    else:
        raise UsageError(f"--trusted-root: unknown name {name!r} (known: {', '.join(NAMES)})")
    if not path.is_file():
        raise InputError(None, f"the installed package ships no {name!r} trusted root")
    return str(path)


def load_root(path: str) -> TrustedRoot:
    """Load a trusted root file, GitHub's (no `tlogs`/`ctlogs` keys) included."""
    from provenance.signing.sigstore._material import load_root_json

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the trusted root ({exc.strerror})") from None
    return load_root_json(raw, path)
