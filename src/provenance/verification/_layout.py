"""Phase 1-2: the layout's signatures (checked before its payload is parsed) and its expiry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from provenance._fs import load_json_bounded, parse_utc, read_bounded
from provenance.errors import LayoutError
from provenance.signing import dsse
from provenance.verification.result import Failure

if TYPE_CHECKING:
    from securesystemslib.signer import Key


def load_signed_layout(
    path: str, layout_keys: Sequence[Key]
) -> tuple[Any | None, bytes, list[Failure]]:
    """Return (in-toto Layout, the exact signed bytes, failures); every key must have signed.

    The bytes are read once: what is verified here is what the digest and consumers use.
    """
    from in_toto.models.layout import Layout

    data = read_bounded(path, dsse.MAX_ENVELOPE_BYTES, "signed layout", LayoutError)
    envelope = dsse.parse(data, path, "signed layout")
    if envelope.payload_type != dsse.IN_TOTO_PAYLOAD_TYPE:
        raise LayoutError(path, f"payload type '{envelope.payload_type}' is not an in-toto layout")
    keys = {k.keyid: k for k in layout_keys}
    good = set(envelope.verified_keyids(keys))
    failures = []
    for keyid in keys:
        if keyid not in good:
            signers = ", ".join(k[:8] for k in envelope.keyids) or "nobody"
            failures.append(
                Failure(
                    "layout-signature",
                    f"layout {path} has no valid signature by key {keyid[:8]} "
                    f"(signed by: {signers}); it was signed by another key or edited after signing",
                )
            )
    if failures:
        return None, data, failures
    try:
        doc = load_json_bounded(envelope.payload, path, what="layout payload", error=LayoutError)
        if not isinstance(doc, dict) or doc.get("_type") != "layout":
            raise LayoutError(path, "signed payload is not an in-toto layout")
        return Layout.read(doc), data, []
    except LayoutError:
        raise
    except Exception as exc:  # noqa: BLE001 - in-toto raises several types for bad layouts
        raise LayoutError(path, f"invalid layout payload: {exc}") from None


def check_expiry(layout: Any, path: str, now: dt.datetime | None = None) -> list[Failure]:
    now = now or dt.datetime.now(dt.timezone.utc)
    expires = parse_utc(layout.expires, path, LayoutError)
    if expires <= now:
        return [
            Failure(
                "layout-expiry",
                f"layout {path} expired on {layout.expires}",
                expected=f"expires after {now:%Y-%m-%dT%H:%M:%SZ}",
                actual=layout.expires,
            )
        ]
    return []
