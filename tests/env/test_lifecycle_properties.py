"""A hypothesis state machine drives random operations through a real engine.

Every operation the engine calls legal must succeed and every other one must raise and change
nothing; after every rule the lifecycle invariants hold. Epochs really train (on tiny data).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from esper_env.blueprints import BLUEPRINTS
from esper_env.data import load_dataset
from esper_env.engine import TrainingEngine
from esper_env.lifecycle import (
    ALPHA_TARGETS,
    LIVE_STAGES,
    SEED_STAGES,
    TRAINABLE_STAGES,
    TRANSITIONS,
    AlphaCurve,
    AlphaSpeed,
    BlendStyle,
    IllegalTransitionError,
    Op,
    Stage,
    Tempo,
)
from tests.conftest import NANO

DATA = load_dataset("synthcifar", NANO)
slots = st.integers(0, 2)


class LifecycleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = TrainingEngine("baseline", DATA, device="cpu", seed=0)
        self.ever_fossilized: set[int] = set()

    def stages(self) -> list[Stage]:
        return [s.stage for s in self.engine.slots]

    def attempt(self, op: Op, slot: int, **params: object) -> None:
        before = self.stages()
        states = [s.state.to_dict() for s in self.engine.slots]
        legal = self.engine.is_legal(op, slot)
        if op == Op.GERMINATE and params.get("blueprint") == "noop":
            legal = False
        try:
            self.engine.apply(op, slot, **params)
        except IllegalTransitionError:
            assert not legal, f"{op.name} on slot {slot} was legal but raised"
            assert [s.state.to_dict() for s in self.engine.slots] == states, "a refused op changed state"
            return
        assert legal, f"{op.name} on slot {slot} was illegal but succeeded"
        self.check_transitions(before)

    def check_transitions(self, before: list[Stage]) -> None:
        for old, new in zip(before, self.stages()):
            if old != new:
                assert new in TRANSITIONS[old], f"{old.name} -> {new.name}"

    @rule(
        slot=slots,
        blueprint=st.sampled_from(BLUEPRINTS),
        style=st.sampled_from(list(BlendStyle)),
        tempo=st.sampled_from(list(Tempo)),
        alpha_target=st.sampled_from(ALPHA_TARGETS),
    )
    def germinate(
        self, slot: int, blueprint: str, style: BlendStyle, tempo: Tempo, alpha_target: float
    ) -> None:
        self.attempt(
            Op.GERMINATE, slot, blueprint=blueprint, style=style, tempo=tempo, alpha_target=alpha_target
        )

    @rule(slot=slots)
    def advance(self, slot: int) -> None:
        self.attempt(Op.ADVANCE, slot)

    @rule(
        slot=slots,
        alpha_target=st.sampled_from(ALPHA_TARGETS),
        speed=st.sampled_from(list(AlphaSpeed)),
        curve=st.sampled_from(list(AlphaCurve)),
    )
    def set_alpha_target(self, slot: int, alpha_target: float, speed: AlphaSpeed, curve: AlphaCurve) -> None:
        self.attempt(Op.SET_ALPHA_TARGET, slot, alpha_target=alpha_target, speed=speed, curve=curve)

    @rule(slot=slots, speed=st.sampled_from(list(AlphaSpeed)), curve=st.sampled_from(list(AlphaCurve)))
    def prune(self, slot: int, speed: AlphaSpeed, curve: AlphaCurve) -> None:
        self.attempt(Op.PRUNE, slot, speed=speed, curve=curve)

    @rule(slot=slots)
    def fossilize(self, slot: int) -> None:
        self.attempt(Op.FOSSILIZE, slot)
        if self.engine.slots[slot].stage == Stage.FOSSILIZED:
            self.ever_fossilized.add(slot)

    @precondition(lambda self: self.engine.history.epoch < 40)
    @rule()
    def epoch(self) -> None:
        before = self.stages()
        result = self.engine.run_epoch()
        self.check_transitions(before)
        assert set(result.contributions) <= {s.index for s in self.engine.slots if s.in_forward}

    @invariant()
    def lifecycle_invariants(self) -> None:
        engine = self.engine
        live = fossils = 0
        for s in engine.slots:
            st_ = s.state
            assert (s.seed is not None) == (st_.stage in SEED_STAGES), st_.stage
            assert 0.0 <= st_.alpha <= 1.0
            if st_.stage in (Stage.DORMANT, Stage.GERMINATED, Stage.TRAINING, Stage.EMBARGOED):
                assert st_.alpha == 0.0, st_.stage
            if st_.stage == Stage.HOLDING:
                assert st_.alpha == st_.alpha_target
            if st_.stage == Stage.EMBARGOED:
                assert 1 <= st_.embargo_remaining <= engine.gates.embargo_epochs
            if s.seed is not None:
                trainable = st_.stage in TRAINABLE_STAGES
                assert all(p.requires_grad == trainable for p in s.seed.parameters()), st_.stage
            live += st_.stage in LIVE_STAGES
            fossils += st_.stage == Stage.FOSSILIZED
        for i in self.ever_fossilized:
            assert engine.slots[i].stage == Stage.FOSSILIZED, "a fossil left FOSSILIZED"
        c = engine.counters
        assert c.fossilized == fossils
        # Every seed ever created is live, fossilized or was pruned.
        pruning = sum(s.stage == Stage.PRUNED for s in engine.slots)
        assert c.created == live + fossils + c.pruned
        assert pruning <= c.pruned


TestLifecycleMachine = LifecycleMachine.TestCase
TestLifecycleMachine.settings = settings(
    max_examples=30, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
