"""The wire package's exception tree: everything a peer can get wrong on the wire."""

from __future__ import annotations


class WireError(Exception):
    """Base of every error raised while building or reading wire messages."""


class TopicError(WireError):
    """A topic that is not part of the Switchyard topic tree."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"bad topic {topic!r}: {reason}")
        self.topic = topic
        self.reason = reason


class MalformedMessage(WireError):
    """A payload that is not valid JSON or does not match its model."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"malformed {model}: {reason}")
        self.model = model
        self.reason = reason


class SignatureError(WireError):
    """A command whose signature cannot be trusted."""

    def __init__(self, command_id: str, reason: str) -> None:
        super().__init__(f"command {command_id}: {reason}")
        self.command_id = command_id
        self.reason = reason


class UnknownKey(SignatureError):
    """A command signed with a key id this verifier does not trust."""


class BadSignature(SignatureError):
    """A command whose signature does not verify under the named key."""
