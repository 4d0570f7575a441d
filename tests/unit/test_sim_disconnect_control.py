"""IC 70 Disconnect control: every method from every state in every control mode."""

from __future__ import annotations

import itertools

import pytest

from firmware_sim.disconnect_control import DisconnectControl, Method, Refusal
from firmware_sim.errors import ControlModeError
from wire.meterlink import ControlState

D = ControlState.DISCONNECTED
C = ControlState.CONNECTED
R = ControlState.READY_FOR_RECONNECTION

# Written out by hand from IEC 62056-6-2 (not derived from the implementation's table), so a
# wrong letter there makes one of these cases fail.
EXPECTED: dict[int, dict[tuple[Method, ControlState], ControlState]] = {
    0: {},
    1: {
        (Method.REMOTE_DISCONNECT, C): D,  # b
        (Method.REMOTE_DISCONNECT, R): D,  # c
        (Method.MANUAL_DISCONNECT, C): R,  # f
        (Method.LOCAL_DISCONNECT, C): R,  # g
        (Method.REMOTE_RECONNECT, D): R,  # d
        (Method.MANUAL_RECONNECT, R): C,  # e
    },
    2: {
        (Method.REMOTE_DISCONNECT, C): D,  # b
        (Method.REMOTE_DISCONNECT, R): D,  # c
        (Method.MANUAL_DISCONNECT, C): R,  # f
        (Method.LOCAL_DISCONNECT, C): R,  # g
        (Method.REMOTE_RECONNECT, D): C,  # a
        (Method.MANUAL_RECONNECT, R): C,  # e
    },
    3: {
        (Method.REMOTE_DISCONNECT, C): D,  # b
        (Method.REMOTE_DISCONNECT, R): D,  # c
        (Method.LOCAL_DISCONNECT, C): R,  # g
        (Method.REMOTE_RECONNECT, D): R,  # d
        (Method.MANUAL_RECONNECT, R): C,  # e
    },
    4: {
        (Method.REMOTE_DISCONNECT, C): D,  # b
        (Method.REMOTE_DISCONNECT, R): D,  # c
        (Method.LOCAL_DISCONNECT, C): R,  # g
        (Method.REMOTE_RECONNECT, D): C,  # a
        (Method.MANUAL_RECONNECT, R): C,  # e
    },
    5: {
        (Method.REMOTE_DISCONNECT, C): D,  # b
        (Method.REMOTE_DISCONNECT, R): D,  # c
        (Method.MANUAL_DISCONNECT, C): R,  # f
        (Method.LOCAL_DISCONNECT, C): R,  # g
        (Method.REMOTE_RECONNECT, D): R,  # d
        (Method.MANUAL_RECONNECT, R): C,  # e
        (Method.LOCAL_RECONNECT, R): C,  # h
    },
    6: {
        (Method.REMOTE_DISCONNECT, C): D,  # b
        (Method.REMOTE_DISCONNECT, R): D,  # c
        (Method.LOCAL_DISCONNECT, C): R,  # g
        (Method.REMOTE_RECONNECT, D): R,  # d
        (Method.MANUAL_RECONNECT, R): C,  # e
        (Method.LOCAL_RECONNECT, R): C,  # h
    },
}
# Mode 0 has no disconnector, so only the connected state exists there.
STATES_IN_MODE = {mode: ([C] if mode == 0 else [D, C, R]) for mode in EXPECTED}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_every_method_from_every_state_follows_the_mode_table(mode: int) -> None:
    expected = EXPECTED[mode]
    methods_of_mode = {method for method, _ in expected}
    for method, start in itertools.product(Method, STATES_IN_MODE[mode]):
        control = DisconnectControl(mode, start)
        outcome = control.invoke(method)
        case = f"mode {mode}, {method} from {start.name}"
        if (method, start) in expected:
            target = expected[(method, start)]
            assert outcome.applied, case
            assert outcome.refusal is None, case
            assert (outcome.before, outcome.after) == (start, target), case
            assert control.control_state is target, case
        else:
            assert not outcome.applied, case
            assert control.control_state is start, case
            assert outcome.after is start, case
            wanted = Refusal.NOT_FROM_STATE if method in methods_of_mode else Refusal.NOT_IN_MODE
            assert outcome.refusal is wanted, case
        assert control.output_state is (control.control_state is C), case


@pytest.mark.parametrize(
    ("mode", "after_remote_reconnect"),
    [(1, R), (2, C), (3, R), (4, C), (5, R), (6, R)],
)
def test_remote_reconnect_lands_where_the_design_says(
    mode: int, after_remote_reconnect: ControlState
) -> None:
    control = DisconnectControl(mode, C)
    assert control.remote_disconnect().transition is not None
    assert control.control_state is D
    outcome = control.remote_reconnect()
    assert outcome.transition is not None
    assert outcome.transition.letter == ("a" if after_remote_reconnect is C else "d")
    assert control.control_state is after_remote_reconnect


def test_consumer_button_completes_a_reconnection_in_mode_1() -> None:
    control = DisconnectControl(1, C)
    control.remote_disconnect()
    control.remote_reconnect()
    assert (control.control_state, control.output_state) == (R, False)
    outcome = control.manual_reconnect()
    assert outcome.transition is not None and outcome.transition.letter == "e"
    assert (control.control_state, control.output_state) == (C, True)


def test_mode_0_never_disconnects() -> None:
    control = DisconnectControl(0)
    for method in Method:
        outcome = control.invoke(method)
        assert outcome.refusal is Refusal.NOT_IN_MODE
    assert control.control_state is C
    assert control.output_state is True


def test_a_refusal_names_the_method_and_the_reason() -> None:
    control = DisconnectControl(3, C)
    text = control.manual_disconnect().describe()
    assert "manual_disconnect" in text
    assert Refusal.NOT_IN_MODE.value in text


@pytest.mark.parametrize(("mode", "state"), [(-1, C), (7, C), (0, D), (0, R)])
def test_impossible_configurations_are_refused(mode: int, state: ControlState) -> None:
    with pytest.raises(ControlModeError):
        DisconnectControl(mode, state)
