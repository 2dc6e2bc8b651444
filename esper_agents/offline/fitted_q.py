"""Fitted Q iteration over growth options: an agent that learns whether, where and when to graft.

The raw action space asks for five well-timed decisions per graft, and the d3rlpy learners on the
fast tier's packs end up near their behavior policies (docs/LEARNING.md). This agent learns at the
level the headroom is measured at instead (Ernst, Geurts and Wehenkel, "Tree-based batch mode
reinforcement learning", JMLR 2005; options: Sutton, Precup and Singh, 1999):

* **Decisions.** At each epoch of :attr:`OptionMenu.epochs` (default 0, 2 and 5), while nothing is
  grown, the agent chooses WAIT (until the next decision epoch; at the last one, never grow) or
  GROW one graft of the menu (``widen_4x`` in slot 0, 1 or 2, or in all three). A graft plays the
  scripted schedule ``from<E>:<blueprint>@<slots>`` (:func:`esper_agents.policies.schedules.grow`:
  germinate at once, advance as soon as legal, fossilize) to the end of the episode. The return is
  the episode's benchmark score (``info["score"]``), which the option MDP's last step pays.
* **Data** (:func:`collect`). For every training instance, one reset seed: the WAIT episode, whose
  flat observation at each decision epoch is recorded, and every option from every decision epoch,
  each played from the same reset. The env is deterministic given the seed, so every option's
  episode shares the WAIT episode's prefix: each state is followed by every option
  (counterfactual coverage 1), ``1 + len(epochs) * len(grafts)`` episodes per instance.
* **Fitting** (:func:`fit_q`), backwards over the decision epochs: ``Q_E(x, GROW g)`` is regressed
  on the score of ``from<E>:g``; ``Q_last(x, WAIT)`` on WAIT's score; ``Q_E(x, WAIT)`` on
  ``max_a Q_next(x_next, a)``, the next decision's value on the same episode. The regressor is
  extra-trees (scikit-learn's ``ExtraTreesRegressor``), FQI's original one; its features are the
  env's flat observation, nothing hand-made.
* **Acting** (:class:`FittedQAgent`): greedy in Q at each decision epoch; once it grows, the
  option's schedule reads the env's exact legality (as the scripted schedules do) to the end.

A saved agent (:func:`save_fitted_q`) is its config and its training arrays (``.npz``, loaded with
``allow_pickle=False``); loading refits the trees with the recorded seed, bit for bit, so no file
can run code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from esper_agents.common.pool import run_unordered
from esper_agents.policies.schedules import Schedule, grow
from esper_env.settings import EnvSettings
from esper_env.spaces import WAIT_ACTION

__all__ = [
    "FITTED_Q_AGENTS", "WAIT_OPTION", "FittedQ", "FittedQAgent", "FittedQConfig", "OptionMenu", "collect", "fit_q",
    "load_fitted_q", "option_records", "play_option", "save_fitted_q", "train_fitted_q",
]  # fmt: skip

#: The bench's agents of this family (``esper bench``): one, with the default config.
FITTED_Q_AGENTS: tuple[str, ...] = ("fitted-q",)

#: The option name of WAIT (at the last decision epoch: never grow).
WAIT_OPTION = "wait"


@dataclass(frozen=True)
class OptionMenu:
    """The decision epochs and the grafts the agent may choose between."""

    epochs: tuple[int, ...] = (0, 2, 5)
    blueprint: str = "widen_4x"
    grafts: tuple[tuple[int, ...], ...] = ((0,), (1,), (2,), (0, 1, 2))

    def __post_init__(self) -> None:
        if not self.epochs or list(self.epochs) != sorted(set(self.epochs)) or self.epochs[0] < 0:
            raise ValueError(f"decision epochs must be distinct, increasing and >= 0, got {self.epochs!r}")
        if not self.grafts or any(not g for g in self.grafts):
            raise ValueError(f"every graft needs at least one slot, got {self.grafts!r}")

    def options(self, epoch: int) -> list[Schedule]:
        """The GROW options at decision ``epoch`` (their schedules; names like ``from2:widen_4x@0``)."""
        return [grow(self.blueprint, tuple(g), epoch) for g in self.grafts]

    def schedules(self) -> list[Schedule]:
        """WAIT and every option at every decision epoch: the episodes :func:`collect` plays."""
        return [Schedule(WAIT_OPTION, "wait")] + [s for e in self.epochs for s in self.options(e)]

    @property
    def episodes_per_instance(self) -> int:
        return 1 + len(self.epochs) * len(self.grafts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": list(self.epochs),
            "blueprint": self.blueprint,
            "grafts": [list(g) for g in self.grafts],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptionMenu:
        return cls(tuple(data["epochs"]), str(data["blueprint"]), tuple(tuple(g) for g in data["grafts"]))


@dataclass(frozen=True)
class FittedQConfig:
    """The regressor's settings (scikit-learn ``ExtraTreesRegressor``)."""

    trees: int = 200
    min_samples_leaf: int = 5
    menu: OptionMenu = field(default_factory=OptionMenu)

    def to_dict(self) -> dict[str, Any]:
        return {"trees": self.trees, "min_samples_leaf": self.min_samples_leaf, "menu": self.menu.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FittedQConfig:
        return cls(int(data["trees"]), int(data["min_samples_leaf"]), OptionMenu.from_dict(data["menu"]))


# --- data ---------------------------------------------------------------------------------------

_ENVS: dict[str, Any] = {}


def _env(settings: dict[str, Any]) -> Any:
    key = json.dumps(settings, sort_keys=True)
    if key not in _ENVS:
        _ENVS[key] = EnvSettings.from_dict(settings).make()
    return _ENVS[key]


def play_option(
    settings: dict[str, Any], menu: dict[str, Any], name: str, instance: int, seed: int
) -> dict[str, Any]:
    """One episode of option schedule ``name`` (or WAIT, which records the flat observation at every
    decision epoch) on ``instance`` from reset ``seed``; a JSON-able record."""
    env = _env(settings)
    option_menu = OptionMenu.from_dict(menu)
    schedule = {s.name: s for s in option_menu.schedules()}[name]
    base = env.unwrapped
    obs, info = env.reset(seed=seed, options={"instance": instance})
    observed: dict[str, list[float]] = {}
    done = False
    while not done:
        epoch = int(info["epoch"])
        if name == WAIT_OPTION and epoch in option_menu.epochs:
            observed[str(epoch)] = np.asarray(obs, dtype=np.float32).tolist()
        obs, _, terminated, truncated, info = env.step(schedule.action(base, epoch).to_array())
        done = terminated or truncated
    return {
        "option": name, "instance": int(instance), "seed": int(seed), "score": float(info["score"]),
        "observations": observed,
    }  # fmt: skip


def collect(
    settings: EnvSettings,
    instances: Sequence[int],
    path: Path,
    *,
    menu: OptionMenu = OptionMenu(),
    seed: int = 0,
    workers: int = 1,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Play every option of ``menu`` on every instance (reset seed ``seed + j`` on the ``j``-th),
    appending each record to the JSONL ``path`` as it arrives; what ``path`` holds is not replayed,
    so a killed collection resumes. Returns every record of these tasks."""
    if menu.epochs[-1] >= settings.max_epochs:
        raise ValueError(
            f"decision epoch {menu.epochs[-1]} is not before the episode's end (max_epochs="
            f"{settings.max_epochs}): the menu's epochs must be < max_epochs"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[str, int, int], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[r["option"], int(r["instance"]), int(r["seed"])] = r
    sdict, mdict = settings.to_dict(), menu.to_dict()
    wanted = [(s.name, int(k), seed + j) for j, k in enumerate(instances) for s in menu.schedules()]
    todo = [t for t in wanted if t not in done]
    log(f"fitted-q data: {len(todo)} option episodes to play ({len(wanted) - len(todo)} recorded) in {path}")
    with path.open("a") as out:
        for i, record in enumerate(run_unordered(play_option, [(sdict, mdict, *t) for t in todo], workers)):
            done[record["option"], record["instance"], record["seed"]] = record
            out.write(json.dumps(record) + "\n")
            if i % 100 == 99:
                out.flush()
                log(f"fitted-q data: {i + 1}/{len(todo)} option episodes")
    return [done[t] for t in wanted]


def option_records(
    records: Iterable[dict[str, Any]], menu: OptionMenu
) -> tuple[dict[int, np.ndarray], dict[str, np.ndarray]]:
    """The training arrays: per decision epoch, the WAIT episodes' flat observations ``(n, features)``;
    per option name, its scores ``(n,)``, in the same episode order. An (instance, seed) missing any
    option is left out."""
    by_episode: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for r in records:
        by_episode.setdefault((int(r["instance"]), int(r["seed"])), {})[r["option"]] = r
    names = [s.name for s in menu.schedules()]
    complete = [k for k in sorted(by_episode) if all(n in by_episode[k] for n in names)]
    if not complete:
        raise ValueError("no (instance, seed) has every option's episode: collect the data first")
    features = {
        e: np.array([by_episode[k][WAIT_OPTION]["observations"][str(e)] for k in complete], dtype=np.float32)
        for e in menu.epochs
    }
    scores = {n: np.array([by_episode[k][n]["score"] for k in complete]) for n in names}
    return features, scores


# --- fitting ------------------------------------------------------------------------------------


class FittedQ:
    """``Q_E(x, option)`` for each decision epoch ``E`` (see the module docstring)."""

    def __init__(self, config: FittedQConfig, seed: int, models: dict[int, dict[str, Any]]) -> None:
        self.config, self.seed, self.models = config, seed, models

    @property
    def menu(self) -> OptionMenu:
        return self.config.menu

    def q_values(self, epoch: int, obs: np.ndarray) -> dict[str, float]:
        """Every option's value at decision ``epoch`` from flat observation ``obs``."""
        x = np.asarray(obs, dtype=np.float32).reshape(1, -1)
        return {name: float(m.predict(x)[0]) for name, m in self.models[epoch].items()}

    def choose(self, epoch: int, obs: np.ndarray) -> str:
        """The greedy option (WAIT on a tie with it)."""
        q = self.q_values(epoch, obs)
        best = max(q, key=lambda n: (q[n], n == WAIT_OPTION))
        return best


def fit_q(
    features: dict[int, np.ndarray], scores: dict[str, np.ndarray], config: FittedQConfig, seed: int
) -> FittedQ:
    """Fitted Q iteration, backwards over the decision epochs (see the module docstring)."""
    from sklearn.ensemble import ExtraTreesRegressor

    def regressor(x: np.ndarray, y: np.ndarray) -> Any:
        return ExtraTreesRegressor(
            config.trees, min_samples_leaf=config.min_samples_leaf, random_state=seed, n_jobs=1
        ).fit(x, y)

    menu = config.menu
    models: dict[int, dict[str, Any]] = {}
    later: int | None = None
    for epoch in reversed(menu.epochs):
        x = features[epoch]
        models[epoch] = {s.name: regressor(x, scores[s.name]) for s in menu.options(epoch)}
        if later is None:
            target = scores[WAIT_OPTION]
        else:
            nxt = features[later]
            target = np.max(np.stack([m.predict(nxt) for m in models[later].values()]), axis=0)
        models[epoch][WAIT_OPTION] = regressor(x, target)
        later = epoch
    return FittedQ(config, seed, models)


_ARRAYS = "training_arrays.npz"
_CONFIG = "fitted_q.json"


def save_fitted_q(
    out: Path, features: dict[int, np.ndarray], scores: dict[str, np.ndarray], config: FittedQConfig, seed: int,
    **summary: Any,
) -> None:  # fmt: skip
    """Write the agent to ``out``: its training arrays and its config (and ``summary`` beside them)."""
    out.mkdir(parents=True, exist_ok=True)
    arrays = {f"obs_{e}": v for e, v in features.items()} | {f"score_{n}": v for n, v in scores.items()}
    np.savez_compressed(out / _ARRAYS, **arrays)
    (out / _CONFIG).write_text(
        json.dumps({"config": config.to_dict(), "seed": seed, **summary}, indent=1) + "\n"
    )


def load_fitted_q(out: Path) -> FittedQ:
    """The agent saved in ``out``, refit from its arrays with its seed (``FileNotFoundError`` if none)."""
    meta = json.loads((out / _CONFIG).read_text())
    config = FittedQConfig.from_dict(meta["config"])
    with np.load(out / _ARRAYS, allow_pickle=False) as data:
        features = {e: data[f"obs_{e}"] for e in config.menu.epochs}
        scores = {s.name: data[f"score_{s.name}"] for s in config.menu.schedules()}
    return fit_q(features, scores, config, int(meta["seed"]))


def train_fitted_q(
    records: Iterable[dict[str, Any]], out: Path, *, config: FittedQConfig = FittedQConfig(), seed: int = 0,
    **summary: Any,
) -> FittedQ:  # fmt: skip
    """Fit on ``records`` (:func:`collect`'s) and save the agent in ``out`` (``summary`` beside it)."""
    t0 = time.perf_counter()
    features, scores = option_records(records, config.menu)
    model = fit_q(features, scores, config, seed)
    save_fitted_q(out, features, scores, config, seed, samples=len(next(iter(scores.values()))),
                  seconds=time.perf_counter() - t0, **summary)  # fmt: skip
    return model


# --- acting -------------------------------------------------------------------------------------


class FittedQAgent:
    """Greedy in a :class:`FittedQ` at the decision epochs; once grown, the option's schedule.

    Acts in the raw env (full :class:`~esper_env.spaces.FactoredAction` arrays); ``env`` is the env it
    acts in, whose exact legality the option's schedule reads.
    """

    def __init__(self, model: FittedQ, env: Any) -> None:
        self.model, self.base = model, env.unwrapped
        self.grown: Schedule | None = None
        self.choices: list[tuple[int, str]] = []

    def reset(self, seed: int | None) -> None:
        self.grown, self.choices = None, []

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        epoch = int(info["epoch"])
        if self.grown is None and epoch in self.model.menu.epochs:
            choice = self.model.choose(epoch, obs)
            self.choices.append((epoch, choice))
            if choice != WAIT_OPTION:
                self.grown = {s.name: s for s in self.model.menu.options(epoch)}[choice]
        if self.grown is None:
            return WAIT_ACTION.to_array()
        return self.grown.action(self.base, epoch).to_array()
