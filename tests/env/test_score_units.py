"""One unit for public scores, and reward settings that cannot make NaN or inf rewards (issue 24,
item 5): ``normalized_score`` takes a fraction and refuses points; ``RewardConfig`` refuses
non-finite and out-of-range fields."""

from __future__ import annotations

import math

import pytest

import esper_env
from esper_env.rewards import RewardConfig

ENV_ID = "Esper-SynthCIFAR-v2"


@pytest.mark.parametrize(("score", "hint"), [(75.0, "pass 0.75"), (-5.0, "pass -0.05"), (1e9, "fraction in")])
def test_normalized_score_refuses_a_score_outside_its_fraction_unit(score: float, hint: str) -> None:
    with pytest.raises(ValueError, match=rf"fraction in \[-1, 1\].*{score!r}") as err:
        esper_env.normalized_score(score, ENV_ID)
    assert hint in str(err.value)
    ref = esper_env.reference_scores(ENV_ID)
    with pytest.raises(ValueError, match="fraction"):
        ref.normalize(score)


def test_normalized_score_of_a_fraction_is_the_readme_example() -> None:
    value = esper_env.normalized_score(0.75, ENV_ID, config="impaired", fidelity="tiny")
    assert math.isfinite(value) and 0.0 < value < 2.0
    assert "fraction" in esper_env.normalized_score.__doc__


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gamma", math.nan), ("gamma", 1.5), ("gamma", -0.1), ("gamma", "0.9"), ("accuracy_weight", math.inf),
        ("shaping_weight", -math.inf), ("rent_weight", math.nan), ("rent_weight", -1.0), ("patience", 2.5),
        ("intervention_costs", {"GERMINATE": math.nan}), ("intervention_costs", {"JUMP": 0.0}),
    ],
)  # fmt: skip
def test_reward_config_refuses_non_finite_and_out_of_range_fields(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field if field != "intervention_costs" else "intervention_costs"):
        RewardConfig(**{field: value})


def test_the_default_reward_configs_are_accepted() -> None:
    for mode in esper_env.REWARD_MODES:
        RewardConfig(mode=mode)
    RewardConfig(gamma=1.0, rent_weight=0.0, accuracy_weight=0.0)
