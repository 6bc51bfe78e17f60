"""Keys, signer URIs, DSSE envelopes and atomic writes."""

from provenance._fs import write_atomic
from provenance.signing.keys import KeyPair, generate, key_material, load_public_key, load_signer

__all__ = ["KeyPair", "generate", "key_material", "load_public_key", "load_signer", "write_atomic"]
