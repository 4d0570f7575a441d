"""DLMS/COSEM interface class 70 (Disconnect control, OBIS 0.0.96.3.10.255) as a state machine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from firmware_sim.errors import ControlModeError
from wire.meterlink import ControlState

LOGICAL_NAME = "0.0.96.3.10.255"

_DISCONNECTED = ControlState.DISCONNECTED
_CONNECTED = ControlState.CONNECTED
_READY = ControlState.READY_FOR_RECONNECTION


class Method(StrEnum):
    """The ways the control state can be asked to change: remote, by the consumer, by the meter."""

    REMOTE_DISCONNECT = "remote_disconnect"
    REMOTE_RECONNECT = "remote_reconnect"
    MANUAL_DISCONNECT = "manual_disconnect"
    MANUAL_RECONNECT = "manual_reconnect"
    LOCAL_DISCONNECT = "local_disconnect"
    LOCAL_RECONNECT = "local_reconnect"


@dataclass(frozen=True, slots=True)
class Transition:
    """One arrow of the IC 70 state diagram, named by its Blue Book letter."""

    letter: str
    method: Method
    from_state: ControlState
    to_state: ControlState


TRANSITIONS: dict[str, Transition] = {
    t.letter: t
    for t in (
        Transition("a", Method.REMOTE_RECONNECT, _DISCONNECTED, _CONNECTED),
        Transition("b", Method.REMOTE_DISCONNECT, _CONNECTED, _DISCONNECTED),
        Transition("c", Method.REMOTE_DISCONNECT, _READY, _DISCONNECTED),
        Transition("d", Method.REMOTE_RECONNECT, _DISCONNECTED, _READY),
        Transition("e", Method.MANUAL_RECONNECT, _READY, _CONNECTED),
        Transition("f", Method.MANUAL_DISCONNECT, _CONNECTED, _READY),
        Transition("g", Method.LOCAL_DISCONNECT, _CONNECTED, _READY),
        Transition("h", Method.LOCAL_RECONNECT, _READY, _CONNECTED),
    )
}

# IEC 62056-6-2, control_mode attribute: which transitions each mode allows.
MODE_TRANSITIONS: dict[int, str] = {
    0: "",
    1: "bcfgde",
    2: "bcfgae",
    3: "bcgde",
    4: "bcgae",
    5: "bcfgdeh",
    6: "bcgdeh",
}

CONTROL_MODES = range(7)


def _index_mode(letters: str) -> dict[tuple[Method, ControlState], Transition]:
    """Look-up of the transitions one mode allows, by method and current state."""
    # a and d share (remote_reconnect, disconnected); no mode allows both, so the key is unique.
    return {(t.method, t.from_state): t for t in (TRANSITIONS[letter] for letter in letters)}


_BY_MODE = {mode: _index_mode(letters) for mode, letters in MODE_TRANSITIONS.items()}
_METHODS_BY_MODE = {
    mode: frozenset(method for method, _ in index) for mode, index in _BY_MODE.items()
}


class Refusal(StrEnum):
    """Why a method left the control state unchanged."""

    NOT_IN_MODE = "not allowed in this control mode"
    NOT_FROM_STATE = "not applicable from the current control state"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one method invocation did; `refusal` says why when it did nothing."""

    method: Method
    control_mode: int
    before: ControlState
    after: ControlState
    transition: Transition | None = None
    refusal: Refusal | None = None

    @property
    def applied(self) -> bool:
        """Tell whether a transition was taken."""
        return self.transition is not None

    def describe(self) -> str:
        """A short text for logs and event details."""
        if self.transition is not None:
            return (
                f"{self.method} ({self.transition.letter}): {self.before.name} -> {self.after.name}"
            )
        return (
            f"{self.method} refused in mode {self.control_mode}, {self.before.name}: {self.refusal}"
        )


class DisconnectControl:
    """The IC 70 object of one meter: control_state, output_state and control_mode."""

    __slots__ = ("_control_mode", "_control_state")

    def __init__(
        self, control_mode: int = 2, control_state: ControlState = ControlState.CONNECTED
    ) -> None:
        if control_mode not in CONTROL_MODES:
            raise ControlModeError(control_mode, "must be 0..6")
        if control_mode == 0 and control_state is not ControlState.CONNECTED:
            raise ControlModeError(control_mode, "mode 0 has no disconnector: always connected")
        self._control_mode = control_mode
        self._control_state = control_state

    @property
    def control_mode(self) -> int:
        """IC 70 attribute 4: which transitions are allowed."""
        return self._control_mode

    @property
    def control_state(self) -> ControlState:
        """IC 70 attribute 3."""
        return self._control_state

    @property
    def output_state(self) -> bool:
        """IC 70 attribute 2: True when the load switch is closed and the consumer has supply."""
        # The simulated switch never sticks, so the output follows the control state.
        return self._control_state is ControlState.CONNECTED

    def remote_disconnect(self) -> Outcome:
        """IC 70 method 1, from the head-end."""
        return self.invoke(Method.REMOTE_DISCONNECT)

    def remote_reconnect(self) -> Outcome:
        """IC 70 method 2, from the head-end."""
        return self.invoke(Method.REMOTE_RECONNECT)

    def manual_disconnect(self) -> Outcome:
        """The consumer presses the push button while supplied."""
        return self.invoke(Method.MANUAL_DISCONNECT)

    def manual_reconnect(self) -> Outcome:
        """The consumer presses the push button while ready for reconnection."""
        return self.invoke(Method.MANUAL_RECONNECT)

    def local_disconnect(self) -> Outcome:
        """The meter itself opens the switch, e.g. a load-limit trip."""
        return self.invoke(Method.LOCAL_DISCONNECT)

    def local_reconnect(self) -> Outcome:
        """The meter itself closes the switch again, e.g. once a load-limit trip has cleared."""
        return self.invoke(Method.LOCAL_RECONNECT)

    def invoke(self, method: Method) -> Outcome:
        """Apply `method` if the mode and the current state allow it; otherwise change nothing."""
        before = self._control_state
        transition = _BY_MODE[self._control_mode].get((method, before))
        if transition is None:
            refusal = (
                Refusal.NOT_FROM_STATE
                if method in _METHODS_BY_MODE[self._control_mode]
                else Refusal.NOT_IN_MODE
            )
            return Outcome(method, self._control_mode, before, before, refusal=refusal)
        self._control_state = transition.to_state
        return Outcome(method, self._control_mode, before, transition.to_state, transition)
