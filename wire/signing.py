"""Canonical command bytes and Ed25519 signatures with key ids, so keys can be rotated."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wire.errors import BadSignature, UnknownKey
from wire.messages import Action, Command


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: every field but `signature`, sorted keys, no whitespace."""
    body = {key: value for key, value in fields.items() if key != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc


def private_key_from_b64(value: str) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from base64 of its 32 raw bytes."""
    raw = _b64decode(value, "signing key")
    if len(raw) != 32:
        raise ValueError("signing key must be 32 raw bytes (base64)")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_from_b64(value: str) -> Ed25519PublicKey:
    """Load an Ed25519 public key from base64 of its 32 raw bytes."""
    raw = _b64decode(value, "public key")
    if len(raw) != 32:
        raise ValueError("public key must be 32 raw bytes (base64)")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Base64 of the raw public key, the form gateways are configured with."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def generate_private_key_b64() -> str:
    """A fresh Ed25519 private key as base64 of its raw bytes."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class CommandSigner:
    """Signs commands with the cloud's current key."""

    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def from_b64(cls, key_id: str, private_key_b64: str) -> CommandSigner:
        """Build a signer from a key id and a base64 raw private key."""
        return cls(key_id, private_key_from_b64(private_key_b64))

    def sign(
        self,
        *,
        command_id: str,
        meter_id: str,
        dcu_id: str,
        action: Action,
        version: int,
        reason: str,
        issued_at_ms: int,
        expires_at_ms: int,
    ) -> Command:
        """Return the signed command for these fields."""
        fields: dict[str, Any] = {
            "command_id": command_id,
            "meter_id": meter_id,
            "dcu_id": dcu_id,
            "action": action.value,
            "version": version,
            "reason": reason,
            "issued_at_ms": issued_at_ms,
            "expires_at_ms": expires_at_ms,
            "key_id": self.key_id,
        }
        signature = self.private_key.sign(canonical_bytes(fields))
        fields["signature"] = base64.b64encode(signature).decode()
        return Command.model_validate(fields)

    def resign(self, command: Command) -> Command:
        """The same command signed with this key, e.g. when the cloud moved to a new key while
        the command waited in the outbox."""
        return self.sign(
            command_id=command.command_id,
            meter_id=command.meter_id,
            dcu_id=command.dcu_id,
            action=command.action,
            version=command.version,
            reason=command.reason,
            issued_at_ms=command.issued_at_ms,
            expires_at_ms=command.expires_at_ms,
        )


class KeyRing:
    """The set of cloud public keys a gateway trusts, by key id."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)

    @classmethod
    def from_b64(cls, keys_b64: Mapping[str, str]) -> KeyRing:
        """Build a key ring from {key_id: base64 raw public key}."""
        return cls({key_id: public_key_from_b64(value) for key_id, value in keys_b64.items()})

    @property
    def key_ids(self) -> frozenset[str]:
        """Ids of the trusted keys."""
        return frozenset(self._keys)

    def verify(self, command: Command) -> None:
        """Raise UnknownKey or BadSignature unless the command's signature verifies."""
        public = self._keys.get(command.key_id)
        if public is None:
            raise UnknownKey(command.command_id, f"untrusted key id {command.key_id!r}")
        try:
            signature = base64.b64decode(command.signature, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadSignature(command.command_id, "signature is not base64") from exc
        try:
            public.verify(signature, canonical_bytes(command.model_dump(mode="json")))
        except InvalidSignature as exc:
            raise BadSignature(command.command_id, "signature does not verify") from exc
