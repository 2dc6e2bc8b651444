"""The lifecycle tables and alpha schedules (pure Python, no training)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper_env.lifecycle import (
    TRANSITIONS,
    AlphaCurve,
    AlphaSchedule,
    BlendStyle,
    IllegalTransitionError,
    Stage,
    check_transition,
    curve_value,
    enum_value,
)


def test_fossilized_is_permanent_and_every_stage_reaches_dormant_or_fossil() -> None:
    assert TRANSITIONS[Stage.FOSSILIZED] == frozenset()
    # From every stage, DORMANT or FOSSILIZED is reachable: nothing gets stuck.
    for start in Stage:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert Stage.DORMANT in seen or Stage.FOSSILIZED in seen, start


def test_illegal_transition_error_names_both_stages_and_the_legal_ones() -> None:
    with pytest.raises(IllegalTransitionError, match="DORMANT -> HOLDING.*GERMINATED"):
        check_transition(Stage.DORMANT, Stage.HOLDING)


@pytest.mark.parametrize("curve", list(AlphaCurve))
def test_curves_are_monotone_and_exact_at_the_ends(curve: AlphaCurve) -> None:
    values = [curve_value(curve, i / 100) for i in range(101)]
    assert values[0] == 0.0 and values[-1] == 1.0
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values))


@given(
    start=st.floats(0, 1),
    target=st.sampled_from([0.0, 0.5, 0.7, 1.0]),
    duration=st.integers(1, 8),
    curve=st.sampled_from(list(AlphaCurve)),
)
def test_schedule_reaches_target_exactly_in_duration_epochs(
    start: float, target: float, duration: int, curve: AlphaCurve
) -> None:
    sched = AlphaSchedule(start, target, duration, curve)
    values = [sched.value]
    while not sched.done:
        sched.tick()
        values.append(sched.value)
    assert len(values) == duration
    assert values[-1] == target
    lo, hi = min(start, target), max(start, target)
    assert all(lo - 1e-9 <= v <= hi + 1e-9 for v in values)
    assert AlphaSchedule.from_dict(sched.to_dict()) == sched


def test_enum_value_accepts_names_and_ints_and_names_bad_values() -> None:
    assert enum_value(BlendStyle, "channel_gated") == BlendStyle.CHANNEL_GATED
    assert enum_value(BlendStyle, 1) == BlendStyle.MULTIPLICATIVE
    with pytest.raises(ValueError, match="'SWIRL'.*ADDITIVE"):
        enum_value(BlendStyle, "swirl")
    with pytest.raises(ValueError, match="9.*ADDITIVE"):
        enum_value(BlendStyle, 9)
