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


MICRO = "Esper-Micro-v3"


def test_the_distribution_and_split_round_trip_and_reach_the_env() -> None:
    s = EnvSettings(env_id=MICRO, instances="bottlenecks", num_levels=10, start_level=100, max_epochs=2)
    assert EnvSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    kwargs = s.to_kwargs()
    assert (kwargs["instances"], kwargs["num_levels"], kwargs["start_level"]) == ("bottlenecks", 10, 100)
    env = s.replace(device="cpu").make().unwrapped
    assert env.distribution.name == "bottlenecks"
    assert (env.split.start_level, env.split.num_levels) == (100, 10)
    assert 100 <= env.reset(seed=0)[1]["instance"] < 110


def test_the_instance_fields_are_left_out_at_their_defaults() -> None:
    """None is the id's default: Esper-Micro's distribution, none for the image ids; records and
    kwargs written for the image ids are what they were before these fields existed."""
    plain, micro = EnvSettings(), EnvSettings(env_id=MICRO)
    for s in (plain, micro):
        assert not {"instances", "num_levels", "start_level"} & (set(s.to_dict()) | set(s.to_kwargs()))
        assert EnvSettings.from_dict(s.to_dict()) == s
    assert plain.resolved_instances is None and micro.resolved_instances == "bottlenecks"
    assert micro.replace(device="cpu").make().unwrapped.distribution.name == "bottlenecks"
    old = plain.to_dict()  # what a record from before the instance fields held
    assert EnvSettings.from_dict(old).num_levels == 0
    assert EnvSettings(env_id=MICRO, start_level=5).to_dict()["start_level"] == 5
    # A distribution on an image id is carried too (the same distribution at "tiny").
    synth = EnvSettings(instances="bottlenecks", num_levels=3)
    assert synth.resolved_instances == "bottlenecks" and synth.to_kwargs()["num_levels"] == 3


@pytest.mark.parametrize(
    ("changes", "named"),
    [({"instances": "nope"}, "'nope'.*'bottlenecks'"), ({"instances": 3}, "3"),
     ({"env_id": MICRO, "num_levels": -1}, "num_levels must be .* got -1"),
     ({"env_id": MICRO, "start_level": True}, "start_level must be .* got True"),
     ({"env_id": MICRO, "start_level": 1.5}, "start_level must be .* got 1.5"),
     ({"env_id": MICRO, "start_level": 2**31 - 2, "num_levels": 5}, "exceeds"),
     ({"num_levels": 5}, "num_levels=5 .*has none: set instances"),
     ({"start_level": 7}, "start_level=7 .*has none: set instances")],
)  # fmt: skip
def test_a_bad_distribution_or_split_is_refused_by_value(changes: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        EnvSettings(**changes)
    with pytest.raises(ValueError, match=named):
        EnvSettings.from_dict({**EnvSettings().to_dict(), **changes})


def test_reference_scores_are_the_registry_entry_of_the_settings() -> None:
    from esper_env.references import reference_scores

    micro = EnvSettings("Esper-Micro-v3", fidelity="micro", max_epochs=25)
    assert micro.reference_scores() == reference_scores(
        "Esper-Micro-v3", config="baseline", fidelity="micro", max_epochs=25
    )
    optimizers = micro.replace(instances="optimizers").reference_scores()
    assert optimizers.key.endswith("/optimizers") and optimizers.heuristic_policy == "curve-aware"
    with pytest.raises(LookupError, match="Esper-Micro-v3/baseline/micro/9"):
        micro.replace(max_epochs=9).reference_scores()
