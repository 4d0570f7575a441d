"""Command signatures: canonical bytes, verification, key ids and tampering."""

from __future__ import annotations

import base64

import pytest

from wire import Action, BadSignature, Command, CommandSigner, KeyRing, UnknownKey, decode, encode
from wire.ids import new_command_id, uuid7_ms
from wire.signing import generate_private_key_b64, public_key_b64


def _signer(key_id: str = "k1") -> CommandSigner:
    return CommandSigner.from_b64(key_id, generate_private_key_b64())


def _command(signer: CommandSigner, **overrides: object) -> Command:
    fields: dict[str, object] = {
        "command_id": new_command_id(),
        "meter_id": "MTR000001",
        "dcu_id": "DCU01",
        "action": Action.CONNECT,
        "version": 3,
        "reason": "dues cleared by payment pay_1",
        "issued_at_ms": 1_764_230_400_000,
        "expires_at_ms": 1_764_234_000_000,
    }
    fields.update(overrides)
    return signer.sign(**fields)  # type: ignore[arg-type]


def test_signed_command_verifies_after_a_wire_round_trip() -> None:
    signer = _signer()
    ring = KeyRing.from_b64({"k1": public_key_b64(signer.private_key)})
    command = decode(Command, encode(_command(signer)))
    ring.verify(command)


@pytest.mark.parametrize(
    "field,value",
    [
        ("action", Action.DISCONNECT),
        ("version", 4),
        ("meter_id", "MTR000002"),
        ("expires_at_ms", 9),
    ],
)
def test_any_changed_field_breaks_the_signature(field: str, value: object) -> None:
    signer = _signer()
    ring = KeyRing.from_b64({"k1": public_key_b64(signer.private_key)})
    tampered = _command(signer).model_copy(update={field: value})
    with pytest.raises(BadSignature):
        ring.verify(tampered)


def test_key_id_is_covered_by_the_signature() -> None:
    signer = _signer("k1")
    ring = KeyRing.from_b64(
        {"k1": public_key_b64(signer.private_key), "k2": public_key_b64(signer.private_key)}
    )
    relabelled = _command(signer).model_copy(update={"key_id": "k2"})
    with pytest.raises(BadSignature):
        ring.verify(relabelled)


def test_unknown_and_retired_keys_are_refused() -> None:
    old, new = _signer("k-old"), _signer("k-new")
    ring = KeyRing.from_b64({"k-new": public_key_b64(new.private_key)})
    ring.verify(_command(new))
    with pytest.raises(UnknownKey):
        ring.verify(_command(old))


def test_a_different_key_under_a_trusted_id_is_refused() -> None:
    genuine, forger = _signer("k1"), _signer("k1")
    ring = KeyRing.from_b64({"k1": public_key_b64(genuine.private_key)})
    with pytest.raises(BadSignature):
        ring.verify(_command(forger))


def test_garbage_signature_is_refused_not_crashing() -> None:
    signer = _signer()
    ring = KeyRing.from_b64({"k1": public_key_b64(signer.private_key)})
    for junk in ("!!!", base64.b64encode(b"short").decode()):
        with pytest.raises(BadSignature):
            ring.verify(_command(signer).model_copy(update={"signature": junk}))


def test_command_ids_are_time_ordered_uuid7() -> None:
    ids = [new_command_id() for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(value[14] == "7" for value in ids)
    assert abs(uuid7_ms(ids[0]) - uuid7_ms(ids[-1])) < 5_000
