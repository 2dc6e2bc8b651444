"""EnvSettings: the one validated record of an env's arguments."""

from __future__ import annotations

import json

import pytest

from esper_env import ENV_IDS, EnvSettings


def test_round_trips_through_json() -> None:
    s = EnvSettings(config="impaired", fidelity="test", max_epochs=4, reward="contribution",
                    synth_seed=3, early_stop_patience=2, num_threads=None)  # fmt: skip
    assert EnvSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_builds_the_env_it_describes() -> None:
    s = EnvSettings(config="impaired", fidelity="test", max_epochs=3, reward="sparse", synth_seed=2)
    env = s.make().unwrapped
    assert (env.config.config_id, env.fidelity.name, env.max_epochs) == ("impaired", "test", 3)
    assert (env.reward_config.mode, env.synth_seed, env.num_slots) == ("sparse", 2, 3)


def test_the_ids_default_fidelity_is_not_repeated() -> None:
    s = EnvSettings()
    assert "fidelity" not in s.to_kwargs()
    assert s.resolved_fidelity == ENV_IDS[s.env_id]["fidelity"]


def test_cifar_kwargs_carry_no_synth_seed() -> None:
    cifar = next(i for i, kw in ENV_IDS.items() if kw["dataset"] == "cifar10")
    assert "synth_seed" not in EnvSettings(env_id=cifar).to_kwargs()
    assert EnvSettings(env_id=cifar).dataset == "cifar10"


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [("env_id", "Esper-Nope-v1", "Esper-Nope-v1"), ("config", "huge", "huge"), ("fidelity", "xl", "xl"),
     ("reward", "dense", "dense"), ("device", "tpu", "tpu"), ("max_epochs", 0, "max_epochs"),
     ("num_slots", True, "num_slots"), ("synth_seed", -1, "synth_seed"), ("num_threads", 1.5, "num_threads"),
     ("early_stop_patience", 0, "early_stop_patience")],
)  # fmt: skip
def test_a_bad_value_is_refused_by_name(field: str, value: object, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        EnvSettings(**{field: value})


def test_unknown_keys_and_runtime_clashes_are_refused() -> None:
    with pytest.raises(ValueError, match="colour"):
        EnvSettings.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="not_a_dict|JSON object"):
        EnvSettings.from_dict(["not_a_dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reward"):
        EnvSettings(fidelity="test").make(reward="sparse")
    assert EnvSettings(fidelity="test").replace(reward="sparse").reward == "sparse"
