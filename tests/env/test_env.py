"""EsperEnv: Gymnasium conventions, masks, rewards, determinism, forks, errors, vector envs."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import esper_env
from esper_env import DatasetNotFoundError, EsperEnv, FactoredAction, Op, relabel
from esper_env.blueprints import BLUEPRINTS
from esper_env.lifecycle import Stage
from esper_env.rewards import DEFAULT_RENT_WEIGHT, REWARD_MODES, benchmark_score, log_size_ratio
from esper_env.spaces import WAIT_ACTION, observation_features
from esper_env.wrappers import (
    CLASSIC_FEATURES,
    ClassicActions,
    ClassicObservation,
    CompactActions,
    decode_joint,
    encode_joint,
    joint_size,
)
from tests.conftest import NANO

SYNTH = "Esper-SynthCIFAR-v2"


def make(max_epochs: int = 4, **kw) -> gym.Env:
    """The env at the tests' NANO fidelity: these properties do not depend on how well the host trains."""
    return gym.make(SYNTH, fidelity=NANO, max_epochs=max_epochs, device="cpu", **kw)


def germinate(slot: int = 0, blueprint: int = 5) -> np.ndarray:
    return FactoredAction(Op.GERMINATE, slot, blueprint=blueprint).to_array()


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
@pytest.mark.parametrize(
    "wrap",
    [lambda e: e, CompactActions, ClassicActions, ClassicObservation],
    ids=["EsperEnv", "CompactActions", "ClassicActions", "ClassicObservation"],
)
def test_gymnasium_and_sb3_env_checkers_pass(wrap) -> None:
    env = wrap(make(max_epochs=3).unwrapped)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(wrap(make(max_epochs=3)), warn=True)


def test_make_registers_ids_and_namespaced_id_works() -> None:
    for env_id in ("Esper-CIFAR10-v2", "Esper-CIFAR100-v2", SYNTH):
        assert env_id in gym.registry
    env = gym.make("esper_env:Esper-SynthCIFAR-v2", fidelity="test", max_epochs=2)
    assert isinstance(env.unwrapped, EsperEnv)
    assert env.spec.max_episode_steps is None  # truncation is the env's own, with a reason


def test_v0_ids_build_v0_beside_v1() -> None:
    # v0 and v1 are registered again with their versions (tests/env/test_versions.py); a later id is not.
    assert gym.make("Esper-SynthCIFAR-v0", fidelity="test", max_epochs=2).unwrapped.version == 0
    assert gym.make("Esper-SynthCIFAR-v1", fidelity="test", max_epochs=2).unwrapped.version == 1
    with pytest.raises(gym.error.Error, match="Esper-SynthCIFAR"):
        gym.make("Esper-SynthCIFAR-v3")


def test_spaces_schema_and_reset_observation() -> None:
    env = make()
    assert list(env.action_space.nvec) == [6, 3, 16, 4, 3, 3, 4, 5]  # the v1 and v2 space
    obs, info = env.reset(seed=0)
    base = env.unwrapped
    schema = base.observation_schema
    assert sum(s.stop - s.start for s in schema.values()) == obs.shape[0]
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    # Nothing measured yet: measured features are -1.
    for name in ("val_accuracy", "val_loss", "accuracy_delta", "best_val_accuracy", "accuracy_history_5"):
        assert np.all(obs[schema[name]] == -1.0), name
    assert obs[schema["slot0/stage"]][Stage.DORMANT] == 1.0
    assert obs[schema["slot2/contribution"]][0] == -1.0
    mask = info["action_mask"]
    assert mask.dtype == bool and mask.shape == (sum(env.action_space.nvec),)
    assert np.array_equal(mask, base.action_masks())
    assert [f.name for f in observation_features(3, context=True)] == list(schema)


def test_out_of_space_actions_raise_with_the_action_in_the_message() -> None:
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"slot=7 \(valid 0..2\)"):
        env.step([1, 7, 1, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="expected 8 integers"):
        env.step([1, 2])
    with pytest.raises(ValueError, match="not in the action space Discrete"):
        CompactActions(make()).action(999)


def test_illegal_in_space_action_becomes_wait() -> None:
    env = make()
    env.reset(seed=0)
    obs, _, _, _, info = env.step(FactoredAction(Op.FOSSILIZE, 1).to_array())
    assert info["action_valid"] is False
    assert np.array_equal(info["executed_action"], WAIT_ACTION.to_array())
    assert obs[env.unwrapped.observation_schema["last_action_success"]][0] == 0.0
    obs, _, _, _, info = env.step(germinate())
    assert info["action_valid"] is True
    assert obs[env.unwrapped.observation_schema["last_action_success"]][0] == 1.0
    assert info["slot_stages"][0] == "GERMINATED"


def test_reset_seed_makes_episodes_reproducible() -> None:
    def episode(seed: int) -> list:
        env = make()
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in (germinate(), FactoredAction(Op.ADVANCE, 0).to_array(), WAIT_ACTION.to_array()):
            obs, r, *_ = env.step(a)
            out += [obs, r]
        return out

    a, b, c = episode(3), episode(3), episode(4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def run_random(env: gym.Env, steps: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    infos = []
    env.reset(seed=seed)
    for _ in range(steps):
        _, _, term, trunc, info = env.step(
            env.action_space.sample() if rng.random() < 0.5 else WAIT_ACTION.to_array()
        )
        infos.append(info)
        if term or trunc:
            break
    return infos


@pytest.mark.parametrize("mode", REWARD_MODES)
def test_relabel_reproduces_the_returned_reward(mode: str) -> None:
    env = make(max_epochs=5, reward=mode)
    env.reset(seed=1)
    env.action_space.seed(1)
    actions = [germinate(0), FactoredAction(Op.ADVANCE, 0).to_array()] + [
        env.action_space.sample() for _ in range(3)
    ]
    for a in actions:
        _, reward, term, trunc, info = env.step(a)
        assert reward == pytest.approx(relabel(info["reward_components"], mode), abs=1e-12)
        assert reward == pytest.approx(
            relabel(info["reward_components"], env.unwrapped.reward_config), abs=1e-12
        )
        if term or trunc:
            break
    assert trunc and info["reward_components"]["terminal"] == 1.0


def test_shaped_potential_term_telescopes() -> None:
    env = make(max_epochs=6)
    env.reset(seed=2)
    gamma = env.unwrapped.reward_config.gamma
    comps = []
    for a in [germinate(1), WAIT_ACTION.to_array(), FactoredAction(Op.ADVANCE, 1).to_array()] + [
        WAIT_ACTION.to_array()
    ] * 3:
        *_, info = env.step(a)
        comps.append(info["reward_components"])
    for prev, nxt in itertools.pairwise(comps):
        assert nxt["potential_prev"] == prev["potential_next"]
    shaping = sum(gamma**t * (gamma * c["potential_next"] - c["potential_prev"]) for t, c in enumerate(comps))
    expected = gamma ** len(comps) * comps[-1]["potential_next"] - comps[0]["potential_prev"]
    assert shaping == pytest.approx(expected, abs=1e-12)
    assert comps[0]["potential_prev"] == 0.0


def test_rent_is_on_the_log_size_and_every_mode_agrees_with_the_benchmark_score() -> None:
    env = make(max_epochs=6, reward="shaped")
    env.reset(seed=3)
    actions = [germinate(0, blueprint=BLUEPRINTS.index("widen_4x")), FactoredAction(Op.ADVANCE, 0).to_array()]
    actions += [WAIT_ACTION.to_array()] * 2 + [FactoredAction(Op.PRUNE, 0).to_array(), WAIT_ACTION.to_array()]
    comps = []
    for a in actions:
        *_, info = env.step(a)
        comps.append(info["reward_components"])
    base = env.unwrapped
    sizes = [c["log_size_ratio"] for c in comps]
    assert sizes[0] > 0 and sizes[-1] == 0.0  # a seed costs rent while it lives, nothing once pruned
    assert sum(c["log_size_ratio_delta"] for c in comps) == pytest.approx(sizes[-1], abs=1e-12)
    assert info["score"] == pytest.approx(
        benchmark_score(
            info["final_val_accuracy"], info["host_params"] + info["seed_params"], base._base_host_params
        )
    )
    assert relabel(comps[-1], "sparse") == pytest.approx(info["score"], abs=1e-12)
    # The accuracy and rent terms of "shaped" telescope to accuracy_weight * (score - chance).
    w = base.reward_config
    accuracy_terms = sum(
        relabel(c, "shaped")
        - w.shaping_weight * (w.gamma * c["potential_next"] - c["potential_prev"])
        - c["intervention_cost"]
        for c in comps
    )
    assert accuracy_terms == pytest.approx(w.accuracy_weight * (info["score"] - 0.1), abs=1e-9)
    assert log_size_ratio(2, 1) == 1.0 and benchmark_score(0.8, 200, 100) == pytest.approx(
        0.8 - DEFAULT_RENT_WEIGHT
    )
    with pytest.raises(ValueError, match="positive"):
        log_size_ratio(0, 10)


def test_last_step_info_carries_episode_summary() -> None:
    env = make(max_epochs=2)
    env.reset(seed=0)
    env.step(germinate())
    *_, trunc, info = env.step(WAIT_ACTION.to_array())
    assert trunc and info["termination_reason"] == "max_epochs"
    for key in ("final_val_accuracy", "best_val_accuracy", "test_accuracy", "host_params", "seed_params",
                "seeds_created", "seeds_fossilized", "seeds_pruned"):  # fmt: skip
        assert key in info, key
    assert info["seeds_created"] == 1 and info["seed_params"] > 0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(WAIT_ACTION.to_array())


def test_divergence_terminates_cleanly() -> None:
    env = make(max_epochs=5)
    env.reset(seed=0)
    env.unwrapped.engine.host_optimizer.param_groups[0]["lr"] = 1e6
    for _ in range(5):
        _, reward, term, trunc, info = env.step(WAIT_ACTION.to_array())
        assert np.isfinite(reward)
        if term or trunc:
            break
    assert term and info["termination_reason"] == "diverged"
    assert info["reward_components"]["potential_next"] == 0.0


def test_forks_replay_identically_and_diverge_on_different_actions() -> None:
    env = make(max_epochs=6).unwrapped
    env.reset(seed=5)
    env.step(germinate(0, blueprint=7))
    env.step(FactoredAction(Op.ADVANCE, 0).to_array())
    a, b, c = env.fork(), env.fork(), env.fork()
    same = [WAIT_ACTION.to_array(), germinate(2), WAIT_ACTION.to_array()]
    ta = [a.step(x)[:2] for x in same]
    tb = [b.step(x)[:2] for x in same]
    tc = [
        c.step(x)[:2]
        for x in [FactoredAction(Op.PRUNE, 0).to_array(), WAIT_ACTION.to_array(), WAIT_ACTION.to_array()]
    ]
    assert all(np.array_equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(ta, tb))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(ta, tc))
    # The original is untouched by its forks.
    assert env.engine.history.epoch == 2


def test_cifar_ids_without_data_raise_the_clear_error(tmp_path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        gym.make("Esper-CIFAR10-v2", data_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "download=True" in msg and "Esper-SynthCIFAR-v2" in msg


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"config": "warp-drive"}, "'warp-drive'.*'baseline'"),
        ({"fidelity": "ultra"}, "'ultra'.*'tiny'"),
        ({"reward": "dense"}, "'dense'.*'shaped'.*'sparse'.*'contribution'"),
        ({"render_mode": "movie"}, "'movie'.*ansi"),
        ({"max_epochs": 0}, "max_epochs"),
    ],
)
def test_bad_arguments_name_the_value_and_list_valid_ones(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        gym.make(SYNTH, **{"fidelity": "test", **kwargs})


def test_render_modes() -> None:
    env = make(max_epochs=3, render_mode="ansi")
    env.reset(seed=0)
    env.step(germinate())
    text = env.render()
    assert "GERMINATED" in text and "epoch 1/3" in text
    env = make(max_epochs=3, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(WAIT_ACTION.to_array())
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec(mode: str) -> None:
    envs = gym.make_vec(
        SYNTH, num_envs=2, vectorization_mode=mode, fidelity="test", max_epochs=2, device="cpu"
    )
    try:
        obs, infos = envs.reset(seed=[0, 1])
        assert obs.shape == (2, envs.single_observation_space.shape[0])
        assert infos["action_mask"].shape == (2, sum(envs.single_action_space.nvec))
        actions = np.stack([WAIT_ACTION.to_array(), germinate()])
        obs, rewards, term, trunc, infos = envs.step(actions)
        assert rewards.shape == (2,) and not term.any()
        assert list(infos["action_valid"]) == [True, True]
        obs, rewards, term, trunc, infos = envs.step(actions * 0)
        assert trunc.all()
    finally:
        envs.close()


def test_compact_mask_is_exact_and_classic_wrappers_have_their_shapes() -> None:
    env = CompactActions(make(max_epochs=4))
    _, info = env.reset(seed=0)
    mask = info["action_mask"]
    assert mask.shape == (env.action_space.n,) and mask[0]
    legal = [i for i in range(env.action_space.n) if mask[i]]
    assert all(env.actions[i].op in (Op.WAIT, Op.GERMINATE) for i in legal)
    classic = ClassicObservation(ClassicActions(make(max_epochs=4)))
    obs, info = classic.reset(seed=0)
    assert obs.shape == (27,) == (len(CLASSIC_FEATURES),)
    assert list(info["action_mask"]) == [True, True, False, False]
    obs, _, _, _, info = classic.step(ClassicActions.GERMINATE)
    assert info["action_valid"] and obs[CLASSIC_FEATURES.index("has_active_seed")] == 1.0
    _, _, _, _, info = classic.step(ClassicActions.CULL)
    assert (
        info["action_valid"] and info["slot_stages"][0] == "EMBARGOED"
    )  # alpha was 0: pruned within the epoch


def test_joint_encoding_round_trips_canonical_actions() -> None:
    space = make().action_space
    space.seed(0)
    seen = set()
    for _ in range(500):
        a = FactoredAction(*space.sample())
        i = encode_joint(a, 3)
        assert 0 <= i < joint_size(3)
        assert decode_joint(i, 3) == a.canonical()
        seen.add(i)
    assert len(seen) > 50
    with pytest.raises(ValueError, match="outside"):
        decode_joint(joint_size(3), 3)


def test_unwrapped_env_exposes_the_public_api() -> None:
    assert esper_env.EsperEnv.__doc__ and "## Action Space" in esper_env.EsperEnv.__doc__
    env = make().unwrapped
    env.reset(seed=0)
    snap = env.snapshot()
    env.step(germinate())
    env.restore(snap)
    assert env.engine.history.epoch == 0 and env.engine.slots[0].stage == Stage.DORMANT
