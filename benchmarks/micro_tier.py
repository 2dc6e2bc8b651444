"""The fast tier (``Esper-Micro``): headroom on held-out instances, throughput and fidelity.

    python benchmarks/micro_tier.py headroom --train 20 --heldout 50 --seeds 2 --out benchmarks/results
    python benchmarks/micro_tier.py throughput --out benchmarks/results
    python benchmarks/micro_tier.py fidelity --tiny-instances 0 --out benchmarks/results
    python benchmarks/micro_tier.py rent-sweep --out benchmarks/results

``headroom`` runs the schedule library (WAIT; widening each slot, early and late; the pointwise
residual seeds; harmful schedules) and the heuristics on training instances (``TRAIN_SPLIT``) and
held-out ones (``HELDOUT_SPLIT``), every instance from ``--seeds`` reset seeds, one episode per
line in ``micro_headroom.episodes.jsonl`` (a killed run resumes). The report gives, on held-out
instances, benchmark score means with 95% bootstrap intervals over instances: every schedule and
heuristic, the **single best** schedule (chosen on the training instances) and the **virtual
best** (per held-out instance, the schedule best on one reset seed, scored on the other, both
ways), and the issue's bars.

``headroom --set FIELD=V1,V2,...`` runs it on a variant of the distribution (any drawn field of
:class:`esper_env.instances.Distribution`, e.g. ``--set widths=8,16,64 --set rent=0``): how the
distribution research of docs/FAST_TIER.md probes a candidate before registering it. Beside the
registered heuristics, the report fits the **best context rule** on the training instances: grow
``widen_4x`` in the first block at once where the rent, the learning rate and the first block's width
are below thresholds, or after 5 epochs where WAIT's validation accuracy then is below a threshold
(the rules a hand-written heuristic can read from the observation), scored on the held-out ones.
Where the optimizer varies (``optimizers``), it also fits the **optimizer rule**, which sees the
hidden optimizer: per (optimizer, learning rate) cell, the schedule or heuristic best on the
training instances; its margin over the best heuristic bounds what reading the optimizer from the
learning curve can win with a rule that simple. The **curve rule** is what an agent that only
observes can add to the best heuristic with the library's schedules: where the heuristic never
grew, a later growth (``from5:``/``from12:``) when WAIT's accuracy at that epoch is low.

``rent-sweep`` re-scores the schedules' recorded episodes under other rents (no episode is run: a
schedule's training does not depend on the rent, and its score is ``final val acc - rent x
log2(size ratio)``): for every triple of rents ``r1 < r2 < r3`` on a grid, in place of the
distribution's three, it gives WAIT, the single best, the virtual best and the best rule that reads
the rent alone (per rent level, the schedule best on the training instances; with
``--heuristics``, the schedule or recorded heuristic), and counts the
triples that meet the headroom bars. It answers whether another price of growth alone could give
this host family both a heuristic signal and headroom above it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from statistics import NormalDist
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from _common import MICRO_ID, RESULTS, add_results_argument, play_schedule, provenance, require_positive

from esper_agents.policies.rent_aware import MAX_RENT
from esper_agents.policies.schedules import Schedule, grow
from esper_env.configs import FIDELITIES
from esper_env.instances import (
    DISTRIBUTIONS,
    HELDOUT_SPLIT,
    TRAIN_SPLIT,
    Distribution,
    Instance,
    get_distribution,
)
from esper_env.lifecycle import AlphaSpeed, Op
from esper_env.spaces import FactoredAction

MAX_EPOCHS = 25


def library() -> list[Schedule]:
    """The scripted schedules of the headroom table (blueprints that apply to the MLP hosts)."""
    out = [Schedule("wait", "wait")]
    out += [grow(b, (s,)) for b in ("widen_4x", "widen_2x") for s in (0, 1, 2)]
    out += [grow("widen_4x"), grow("widen_2x")]
    out += [grow("widen_4x", (s,), start=e) for s in (0, 1, 2) for e in (5, 12)]
    out += [grow(b) for b in ("mlp", "conv_small", "lora", "norm", "channel_attention")]
    out += [Schedule("hold-then-prune:widen_4x", "hold-then-prune", "widen_4x")]
    out += [Schedule("prune-at-23:widen_4x@0", "hold-then-prune", "widen_4x", (0,), prune_at=23,
                     prune_speed=AlphaSpeed.INSTANT)]  # fmt: skip
    out += [Schedule("churn:widen_4x", "churn", "widen_4x", (0,))]
    return out


def curve_probes() -> list[Schedule]:
    """Growths the headroom run plays for the curve rule only (:func:`curve_rule`): after 2 epochs
    of curve, each block or all three; after 5, all three. The single and virtual best stay over
    :func:`library`, so the registry's figures do not move with them."""
    return [grow("widen_4x", s, start=2) for s in ((0,), (1,), (2,), (0, 1, 2))] + [grow("widen_4x", start=5)]


HEURISTICS = ("heuristic:capacity", "heuristic:rent-aware", "heuristic:lr-aware", "heuristic:curve-aware")

_ENVS: dict[tuple, gym.Env] = {}


def custom_distribution(base: str, sets: Sequence[str]) -> Distribution:
    """Distribution ``base`` with fields replaced by ``FIELD=V1,V2,...`` strings (``ValueError`` naming a bad one)."""
    dist = get_distribution(base)
    fields = {f.name for f in dataclass_fields(dist) if isinstance(getattr(dist, f.name), tuple)}
    changes: dict[str, tuple[Any, ...]] = {}
    for item in sets:
        name, _, values = item.partition("=")
        if name not in fields or not values:
            raise ValueError(f"--set takes FIELD=V1,V2,... with FIELD one of {sorted(fields)}; got {item!r}")
        kind = int if name in ("widths", "blobs") else str if name == "optimizer" else float
        try:
            changes[name] = tuple(kind(v) for v in values.split(","))
        except ValueError as err:
            raise ValueError(f"--set {item!r}: {name} takes {kind.__name__} values") from err
    if not changes:
        return dist
    label = ";".join(f"{k}={','.join(map(str, v))}" for k, v in changes.items())
    return replace(dist, name=f"{dist.name}[{label}]", **changes)


def _env(instances: str | Distribution, make: tuple[tuple[str, Any], ...] = ()) -> gym.Env:
    if (instances, make) not in _ENVS:
        torch.set_num_threads(1)
        kwargs = {"id": MICRO_ID, "max_epochs": MAX_EPOCHS, "device": "cpu", "num_threads": 1, **dict(make)}
        _ENVS[instances, make] = gym.make(instances=instances, **kwargs)
    return _ENVS[instances, make]


def run_episode(
    name: str,
    instance: int,
    seed: int,
    instances: str | Distribution = "bottlenecks",
    make: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One episode of schedule or heuristic ``name`` on ``instance`` from reset seed ``seed``
    (``make``: ``gym.make`` keywords over the fast tier's, ``id`` included, e.g. the distribution at "tiny")."""
    env = _env(instances, tuple(sorted((make or {}).items())))
    schedule = {s.name: s for s in library() + curve_probes()}.get(name)
    if schedule is None:  # "heuristic:<policy id>"
        schedule = Schedule(name, "heuristic", name.partition(":")[2])
    t0 = time.perf_counter()
    info, curve, actions = play_schedule(env, schedule, seed, options={"instance": instance})
    return {
        "schedule": name, "instance": instance, "seed": seed, "score": info["score"],
        "final_val_accuracy": info["final_val_accuracy"],
        "size_ratio": (info["host_params"] + info["seed_params"]) / info["base_host_params"],
        "val_accuracy_curve": curve, "actions": actions, "seconds": time.perf_counter() - t0,
    }  # fmt: skip


def key(e: dict[str, Any]) -> tuple[str, int, int]:
    return e["schedule"], int(e["instance"]), int(e["seed"])


def headroom_instances(train: int, heldout: int, heldout_start: int = 0) -> tuple[list[int], list[int]]:
    """The first ``train`` training instances, and ``heldout`` held-out ones from the
    ``heldout_start``-th on (a later block is fresh for a distribution chosen on the first one)."""
    if heldout_start < 0 or heldout_start + heldout > HELDOUT_SPLIT.num_levels:
        raise ValueError(
            f"held-out instances {heldout_start} to {heldout_start + heldout - 1} are not all in the held-out "
            f"split's {HELDOUT_SPLIT.num_levels}"
        )
    start = HELDOUT_SPLIT.start_level + heldout_start
    return [TRAIN_SPLIT.start_level + i for i in range(train)], [start + i for i in range(heldout)]


def run_headroom(args: argparse.Namespace) -> dict[str, Any]:
    names = [s.name for s in library()] + list(HEURISTICS) + [s.name for s in curve_probes()]
    train, heldout = headroom_instances(args.train, args.heldout, args.heldout_start)
    tasks = [(n, k, s) for k in train + heldout for s in range(args.seeds) for n in names]
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "micro_headroom.episodes.jsonl"
    done = {key(e): e for e in map(json.loads, cache.read_text().splitlines())} if cache.exists() else {}
    todo = [t for t in tasks if t not in done]
    print(f"{len(todo)} episodes to run ({len(tasks) - len(todo)} cached)", flush=True)
    with cache.open("a") as log, ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_episode, *t, args.distribution) for t in todo]
        for i, f in enumerate(as_completed(futures)):
            e = f.result()
            done[key(e)] = e
            log.write(json.dumps(e) + "\n")
            if i % 200 == 0:
                log.flush()
                print(f"{i}/{len(todo)} episodes", flush=True)
    return report(done, names, train, heldout, args.seeds, args.distribution)


def write_result(out: Path, stem: str, result: dict[str, Any], table: str) -> None:
    """``out/stem.json`` (the result, with its provenance) and ``out/stem.md`` (its table, also printed)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{stem}.md").write_text(table)
    print(table)


def bootstrap(values: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    idx = rng.integers(0, len(values), (n, len(values)))
    means = values[idx].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


#: The schedules a context rule chooses between (:func:`context_rule`).
RULE_NOW, RULE_LATER = "now:widen_4x@0", "from5:widen_4x@0"


def context_rules(fields: list[Any], acc5: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """The family of hand-writable rules: ``(name, choice)`` with ``choice[i, seed]`` True where the
    rule grows on instance ``i`` (``acc5[i, seed]``: WAIT's validation accuracy after 5 epochs)."""
    rent = np.array([f.rent for f in fields])[:, None]
    lr = np.array([f.learning_rate for f in fields])[:, None]
    w0 = np.array([f.widths[0] for f in fields])[:, None]
    for t in sorted({*rent.ravel(), np.inf}):
        for lv in sorted({*lr.ravel()}):
            for wv in sorted({*w0.ravel()}):
                yield (f"{RULE_NOW} where rent < {t:g}, lr <= {lv:g}, width0 <= {wv}",
                       np.broadcast_to((rent < t) & (lr <= lv) & (w0 <= wv), acc5.shape))  # fmt: skip
        for a in np.arange(0.3, 0.95, 0.1):
            yield (
                f"{RULE_LATER} where rent < {t:g}, WAIT's epoch-5 accuracy < {a:.1f}",
                (rent < t) & (acc5 < a),
            )


def context_rule(
    score: dict[str, dict[int, list[float]]],
    curves: dict[tuple[int, int], list[float]],
    dist: Distribution,
    train: list[int],
    heldout: list[int],
    seeds: int,
) -> tuple[str, np.ndarray]:
    """The rule of :func:`context_rules` best on ``train``, and its per-instance scores on ``heldout``."""

    def play(ks: list[int]) -> Iterator[tuple[str, np.ndarray]]:
        acc5 = np.array([[curves[k, s][4] for s in range(seeds)] for k in ks])
        for name, grows in context_rules([dist.draw(k) for k in ks], acc5):
            pick = RULE_NOW if name.startswith(RULE_NOW) else RULE_LATER
            yield name, np.array([[score[pick if grows[i, s] else "wait"][k][s] for s in range(seeds)]
                                  for i, k in enumerate(ks)]).mean(1)  # fmt: skip

    best = max(play(train), key=lambda r: r[1].mean())[0]
    return best, dict(play(heldout))[best]


#: What a cell rule keys on (:func:`cell_rule`), by the instance field it reads: the observed rent
#: (a hand-written rule where the rent varies, e.g. "widen every block where growth is free"), or
#: the hidden optimizer with the learning rate (what reading the optimizer is worth, for a rule as
#: simple as the context rules).
CELLS: dict[str, Callable[[Instance], str]] = {
    "rent": lambda f: f"rent={f.rent:g}",
    "optimizer": lambda f: f"{f.optimizer} lr={f.learning_rate:g}",
}


def cell_rule(
    score: dict[str, dict[int, list[float]]],
    dist: Distribution,
    key: str,
    names: list[str],
    train: list[int],
    heldout: list[int],
) -> tuple[dict[str, str], np.ndarray]:
    """Per cell of instances (``CELLS[key]``), the schedule or heuristic best on ``train``'s
    instances of the cell (``wait`` for a cell with none), and its per-instance scores on ``heldout``."""

    def cell(k: int) -> str:
        return CELLS[key](dist.draw(k))

    cells: dict[str, list[int]] = defaultdict(list)
    for k in train:
        cells[cell(k)].append(k)
    choice = {c: max(names, key=lambda n: float(np.mean([np.mean(score[n][k]) for k in ks])))
              for c, ks in sorted(cells.items())}  # fmt: skip
    return choice, np.array([np.mean(score[choice.get(cell(k), "wait")][k]) for k in heldout])


#: The later growths a curve rule may play (:func:`curve_rule`): the library's and the probes'.
LATER_GROWTHS = tuple(
    f"from{e}:widen_4x{where}"
    for e in (2, 5, 12)
    for where in ("@0", "@1", "@2", "")
    if (e, where) != (12, "")
)


def curve_rule(
    score: dict[str, dict[int, list[float]]],
    curves: dict[tuple[int, int], list[float]],
    waited: dict[tuple[int, int], bool],
    heuristic: str,
    dist: Distribution,
    train: list[int],
    heldout: list[int],
    seeds: int,
) -> tuple[str, np.ndarray]:
    """The rules an agent that reads the learning curve can play, with the heuristic's choice
    where the curve says nothing; fit on ``train``, and their per-instance scores on ``heldout``.
    Where WAIT's validation accuracy at epoch ``e`` is below a threshold (and the learning rate at
    most one), play a growth ``G`` from epoch ``e``; elsewhere either

    * the heuristic, where it never grew (``waited[k, seed]``: it took no action, so its episode
      is WAIT's and WAIT's curve is what it saw), or
    * the heuristic's choice delayed to epoch ``e`` everywhere (``from<e>:widen_4x@0`` where it
      grew, WAIT where not): the rule then waits to read the curve before any growth. That stands
      for the heuristic only where its one growth is widening the first block at once, as
      ``rent-aware`` and ``lr-aware`` do.
    """

    def play(ks: list[int]) -> Iterator[tuple[str, np.ndarray]]:
        lr = np.array([dist.draw(k).learning_rate for k in ks])[:, None]
        idle = np.array([[waited[k, s] for s in range(seeds)] for k in ks])
        base = np.array([score[heuristic][k] for k in ks])
        for later in (n for n in LATER_GROWTHS if n in score):
            epoch = int(later.removeprefix("from").partition(":")[0])
            acc = np.array([[curves[k, s][epoch - 1] for s in range(seeds)] for k in ks])
            grown = np.array([score[later][k] for k in ks])
            delayed = f"from{epoch}:widen_4x@0"
            otherwise = {"": (idle, base)}
            if delayed in score:
                late = np.array([score[delayed][k] for k in ks])
                otherwise[f", {heuristic}'s growth delayed to epoch {epoch} elsewhere"] = (
                    np.ones_like(idle), np.where(idle, np.array([score["wait"][k] for k in ks]), late))  # fmt: skip
            for tail, (free, rest) in otherwise.items():
                for lv in sorted(set(lr.ravel())):
                    for a in np.arange(0.1, 0.95, 0.05):
                        grows = free & (acc < a) & (lr <= lv)
                        yield (f"{later} where WAIT's epoch-{epoch} accuracy < {a:.2f} and lr <= {lv:g}"
                               + (f", else {heuristic} where it never grew" if not tail else tail),
                               np.where(grows, grown, rest).mean(1))  # fmt: skip

    best = max(play(train), key=lambda r: r[1].mean())[0]
    return best, dict(play(heldout))[best]


def cross_seed_best(table: np.ndarray) -> float:
    """The virtual best of one instance, chosen on some reset seeds and scored on others:
    ``table[schedule, seed]`` holds the scores; for each seed, the schedule best on the mean of the
    *other* seeds (the first on a tie) is scored on it, and those scores are averaged. With two
    seeds: choose on one, score on the other, both ways round."""
    table = np.asarray(table, dtype=float)
    n = table.shape[1]
    if n < 2:
        raise ValueError(f"a cross-seed virtual best needs >= 2 seeds per instance, got {n}")
    others = (table.sum(1, keepdims=True) - table) / (n - 1)
    return float(table[others.argmax(0), np.arange(n)].mean())


def report(
    done: dict[tuple[str, int, int], dict],
    names: list[str],
    train: list[int],
    heldout: list[int],
    seeds: int,
    dist: Distribution | None = None,
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    score = defaultdict(dict)  # name -> instance -> [score per seed]
    for (name, k, s), e in done.items():
        if name in names and s < seeds:
            score[name].setdefault(k, [0.0] * seeds)[s] = 100 * e["score"]

    def mean_over(name: str, ks: list[int]) -> np.ndarray:
        return np.array([np.mean(score[name][k]) for k in ks])

    probes = {s.name for s in curve_probes()}
    schedules = [n for n in names if not n.startswith("heuristic:") and n not in probes]
    single = max(schedules, key=lambda n: mean_over(n, train).mean())
    vb = np.array([cross_seed_best([score[n][k] for n in schedules]) for k in heldout])
    rows = {n: mean_over(n, heldout) for n in names if n not in probes}
    wait = rows["wait"]
    heur = max((n for n in names if n.startswith("heuristic:")), key=lambda n: rows[n].mean())
    out: dict[str, Any] = {
        "held_out_means": {n: float(v.mean()) for n, v in rows.items()},
        "held_out_ci": {n: bootstrap(v, rng) for n, v in rows.items()},
        "single_best": single,
        "single_best_train_mean": float(mean_over(single, train).mean()),
        "virtual_best": float(vb.mean()),
        "vb_minus_sb": float((vb - rows[single]).mean()),
        "vb_minus_sb_ci": bootstrap(vb - rows[single], rng),
        "best_heuristic": heur,
        "heuristic_minus_wait": float((rows[heur] - wait).mean()),
        "heuristic_minus_wait_ci": bootstrap(rows[heur] - wait, rng),
        "heuristic_minus_sb": float((rows[heur] - rows[single]).mean()),
        "per_instance_best": {str(k): max(schedules, key=lambda n: np.mean(score[n][k])) for k in heldout},
    }
    out["probe_held_out_means"] = {n: float(mean_over(n, heldout).mean()) for n in names if n in probes}
    curves = {(k, s): e["val_accuracy_curve"] for (n, k, s), e in done.items() if n == "wait" and s < seeds}
    if (
        dist is not None
        and {RULE_NOW, RULE_LATER} <= set(schedules)
        and len(curves) == len(score["wait"]) * seeds
    ):
        rule, ruled = context_rule(score, curves, dist, train, heldout, seeds)
        out |= {
            "context_rule": rule,
            "context_rule_mean": float(ruled.mean()),
            "context_rule_minus_wait": float((ruled - wait).mean()),
            "context_rule_minus_wait_ci": bootstrap(ruled - wait, rng),
            "context_rule_minus_sb": float((ruled - rows[single]).mean()),
        }
    if (
        dist is not None
        and any(n in score for n in LATER_GROWTHS)
        and len(curves) == len(score["wait"]) * seeds
    ):
        waited = {(k, s): not e["actions"] for (n, k, s), e in done.items() if n == heur and s < seeds}
        rule, ruled = curve_rule(score, curves, waited, heur, dist, train, heldout, seeds)
        out |= {
            "curve_rule": rule,
            "curve_rule_mean": float(ruled.mean()),
            "curve_rule_minus_heuristic": float((ruled - rows[heur]).mean()),
            "curve_rule_minus_heuristic_ci": bootstrap(ruled - rows[heur], rng),
        }
    for key in CELLS:  # a cell rule where its field varies: the rent (observed), the optimizer (hidden)
        if dist is None or len({getattr(dist.draw(k), key) for k in train + heldout}) < 2:
            continue
        choice, seen = cell_rule(score, dist, key, list(rows), train, heldout)
        out |= {
            f"{key}_rule": choice,
            f"{key}_rule_mean": float(seen.mean()),
            f"{key}_rule_minus_sb": float((seen - rows[single]).mean()),
            f"{key}_rule_minus_heuristic": float((seen - rows[heur]).mean()),
            f"{key}_rule_minus_heuristic_ci": bootstrap(seen - rows[heur], rng),
        }
    return out


# ---------------------------------------------------------------------------------------- throughput

#: The env the fast tier is timed and ranked against: ``impaired`` at "tiny".
BASELINE_ID = "Esper-SynthCIFAR-v2"
#: The grown episodes of the throughput table: widen_4x in slot 0 at once, advanced as soon as legal.
GROWN = "now:widen_4x@0"


def _fast_kwargs(max_epochs: int, instances: str = "bottlenecks") -> dict[str, Any]:
    return {"instances": instances, "start_level": HELDOUT_SPLIT.start_level,
            "num_levels": HELDOUT_SPLIT.num_levels, "max_epochs": max_epochs, "device": "cpu",
            "num_threads": 1}  # fmt: skip


def _baseline_kwargs(fidelity: str, max_epochs: int) -> dict[str, Any]:
    return {"config": "impaired", "fidelity": fidelity, "max_epochs": max_epochs, "device": "cpu",
            "num_threads": 1}  # fmt: skip


def _timed_steps(env: gym.Env, schedule: Schedule, seed: int) -> Iterator[tuple[float, bool]]:
    """Episodes of ``schedule`` back to back (reset seeds ``seed``, ``seed + 1``, ...), forever: the
    seconds of each step, the reset that opens an episode counted in its first step, and whether it
    ended the episode. Time spent by the consumer between steps is not counted."""
    base = env.unwrapped
    while True:
        t0 = time.perf_counter()
        _, info = env.reset(seed=seed)
        seed += 1
        done = False
        while not done:
            action = schedule.action(base, int(info["epoch"])).to_array()
            _, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            yield time.perf_counter() - t0, done
            t0 = time.perf_counter()


class _Clock:
    """Steps, whole episodes and seconds of one side and kind."""

    def __init__(self, steps: Iterator[tuple[float, bool]]) -> None:
        self.steps, self.n, self.episodes, self.seconds = steps, 0, 0, 0.0

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            dt, done = next(self.steps)
            self.n, self.episodes, self.seconds = self.n + 1, self.episodes + done, self.seconds + dt

    def summary(self) -> dict[str, Any]:
        return {"steps": self.n, "episodes": self.episodes, "seconds": self.seconds,
                "ms_per_step": 1000 * self.seconds / self.n, "steps_per_s": self.n / self.seconds}  # fmt: skip


def _single_env(args: argparse.Namespace) -> dict[str, Any]:
    """1 env: WAIT and grown episodes of both sides, in lockstep."""
    torch.set_num_threads(1)
    schedules = {"wait": Schedule("wait", "wait"), "grown": {s.name: s for s in library()}[GROWN]}
    clocks: dict[tuple[str, str], _Clock] = {}
    for kind, schedule in schedules.items():
        fast = gym.make(MICRO_ID, **_fast_kwargs(args.max_epochs, args.instances))
        tiny = gym.make(BASELINE_ID, **_baseline_kwargs(args.baseline_fidelity, args.max_epochs))
        clocks["baseline", kind] = _Clock(_timed_steps(tiny, schedule, 0))
        clocks["fast", kind] = _Clock(_timed_steps(fast, schedule, 0))
    for r in range(args.rounds):
        for kind in schedules:
            clocks["baseline", kind].tick()
        for kind in schedules:
            clocks["fast", kind].tick(args.fast_steps)
        if r % 10 == 9:
            print(f"1 env: round {r + 1}/{args.rounds}", flush=True)
    out = {}
    for kind in schedules:
        b, f = clocks["baseline", kind].summary(), clocks["fast", kind].summary()
        out[kind] = {"baseline": b, "fast": f, "ratio": b["ms_per_step"] / f["ms_per_step"]}
    return out


def _vector_member(env_id: str, **kwargs: Any) -> gym.Env:
    return gym.make(env_id, **kwargs)


def _vector_env(args: argparse.Namespace) -> dict[str, Any]:
    """N envs: ``AsyncVectorEnv`` of fast-tier envs against one of baseline envs, WAIT actions, lockstep.

    Gymnasium 1.0 resets a finished env on the next ``step`` call: such a call is timed but not counted
    as a step of that env (steps are transitions, as in the 1-env table)."""
    n = args.envs
    fast_make = partial(
        _vector_member, f"esper_env:{MICRO_ID}", **_fast_kwargs(args.max_epochs, args.instances)
    )
    tiny_make = partial(_vector_member, f"esper_env:{BASELINE_ID}",
                        **_baseline_kwargs(args.baseline_fidelity, args.max_epochs))  # fmt: skip
    sides = {"baseline": (tiny_make, 1), "fast": (fast_make, args.fast_steps)}
    envs = {side: gym.vector.AsyncVectorEnv([make] * n, context="spawn") for side, (make, _) in sides.items()}
    wait = np.stack([FactoredAction(Op.WAIT, 0).to_array()] * n)
    seconds = dict.fromkeys(sides, 0.0)
    steps = dict.fromkeys(sides, 0)
    reset = {side: np.zeros(n, dtype=bool) for side in sides}
    try:
        for side, env in envs.items():
            t0 = time.perf_counter()
            env.reset(seed=0)
            seconds[side] += time.perf_counter() - t0
        for r in range(args.vector_rounds):
            for side, (_, times) in sides.items():
                for _ in range(times):
                    t0 = time.perf_counter()
                    _, _, terminated, truncated, _ = envs[side].step(wait)
                    seconds[side] += time.perf_counter() - t0
                    steps[side] += int(n - reset[side].sum())
                    reset[side] = np.logical_or(terminated, truncated) & ~reset[side]
            if r % 10 == 9:
                print(f"{n} envs: round {r + 1}/{args.vector_rounds}", flush=True)
    finally:
        for env in envs.values():
            env.close()
    out: dict[str, Any] = {
        "envs": n,
        "actions": "WAIT only",
        "vectorization": "async (AsyncVectorEnv, spawn)",
    }
    for side in sides:
        out[side] = {
            "steps": steps[side],
            "seconds": seconds[side],
            "steps_per_s": steps[side] / seconds[side],
        }
    out["ratio"] = out["fast"]["steps_per_s"] / out["baseline"]["steps_per_s"]
    return out


def throughput_table(result: dict[str, Any]) -> str:
    """The markdown table of a throughput result."""
    base = f"`{BASELINE_ID}` impaired/{result['baseline_fidelity']}"
    lines = [
        (
            f"Env steps of `{MICRO_ID}` (held-out instances) against {base}, one process, one torch thread "
            f"per env, stepped in lockstep; episodes of {result['max_epochs']} epochs, resets included."
        ),
        "",
        "| envs | episodes | baseline ms/step | fast ms/step | baseline steps/s | fast steps/s | ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for kind, row in result["single"].items():
        b, f = row["baseline"], row["fast"]
        what = "WAIT" if kind == "wait" else f"grown (`{GROWN}`)"
        lines.append(f"| 1 | {what} | {b['ms_per_step']:.1f} | {f['ms_per_step']:.2f} | {b['steps_per_s']:.2f} "
                     f"| {f['steps_per_s']:.1f} | {row['ratio']:.1f}x |")  # fmt: skip
    v = result.get("vector")
    if v:
        b, f = v["baseline"], v["fast"]
        lines.append(f"| {v['envs']} async | WAIT | {1000 / b['steps_per_s']:.1f} | {1000 / f['steps_per_s']:.2f} "
                     f"| {b['steps_per_s']:.2f} | {f['steps_per_s']:.1f} | {v['ratio']:.1f}x |")  # fmt: skip
    lines += ["", (f"native (batched) vector env: {result['native']}. Must show 1 (>= 50x, WAIT and grown, 1 env): "
              f"{'met' if result['must_show_1'] else 'not met'}.")]  # fmt: skip
    return "\n".join(lines) + "\n"


def run_throughput(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> None:
    require_positive(parser, args, "max_epochs", "fast_steps", "envs")
    args.rounds = 2 * args.max_epochs if args.rounds is None else args.rounds
    args.vector_rounds = args.max_epochs if args.vector_rounds is None else args.vector_rounds
    require_positive(parser, args, "rounds")
    if args.vector_rounds < 0:
        parser.error(f"--vector-rounds must be >= 0 (0: no vector env), got {args.vector_rounds}")
    result: dict[str, Any] = {
        "provenance": provenance(__file__, argv, MICRO_ID, 1),
        "baseline_env_id": BASELINE_ID, "baseline_config": "impaired", "baseline_fidelity": args.baseline_fidelity,
        "fast_env_id": MICRO_ID, "fast_instances": "bottlenecks, held-out split", "max_epochs": args.max_epochs,
        "rounds": args.rounds, "fast_steps_per_round": args.fast_steps, "grown_schedule": GROWN,
        "native": "not built",
    }  # fmt: skip
    result["single"] = _single_env(args)
    if args.vector_rounds:
        result["vector"] = _vector_env(args)
    result["must_show_1"] = all(r["ratio"] >= 50 for r in result["single"].values())
    write_result(args.out, "micro_throughput", result, throughput_table(result))


def add_throughput_parser(sub: Any) -> None:
    t = sub.add_parser(
        "throughput", help="env steps/s of the fast tier against impaired at tiny, one process"
    )
    t.add_argument(
        "--max-epochs", type=int, default=MAX_EPOCHS, help="epoch budget of every episode, both sides"
    )
    t.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="lockstep rounds of the 1-env table (one baseline step per kind each; default 2 episodes)",
    )
    t.add_argument("--fast-steps", type=int, default=10, help="fast-tier steps per kind per round")
    t.add_argument(
        "--instances", default="bottlenecks", choices=DISTRIBUTIONS, help="the fast tier's distribution"
    )
    t.add_argument("--envs", type=int, default=2, help="envs of the async vector envs (default: the 2 cores)")
    t.add_argument(
        "--vector-rounds",
        type=int,
        default=None,
        help="lockstep rounds of the vector table (default 1 episode; 0: skip it)",
    )
    t.add_argument(
        "--baseline-fidelity",
        default="tiny",
        choices=FIDELITIES,
        help="testing only: the baseline's fidelity (the issue's figure is tiny)",
    )
    add_results_argument(t)
    t.set_defaults(run=run_throughput)


# ---------------------------------------------------------------------------------------- fidelity


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing the mean of the ranks they span."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float | None]:
    """Spearman's rho (the Pearson correlation of the average ranks) and its p-value (scipy's, if
    scipy is installed; else ``None``); ``nan`` and ``None`` if either side is constant."""
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(
            f"spearman needs two equally long sequences of >= 3 values, got {len(x)} and {len(y)}"
        )
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    if norm == 0:  # a constant side: no ranking to correlate
        return float("nan"), None
    rho = float((rx * ry).sum() / norm)
    try:
        from scipy.stats import spearmanr
    except ImportError:
        return rho, None
    return rho, float(spearmanr(x, y).pvalue)


def _unit(e: dict[str, Any]) -> Any:
    """What an episode's mean is taken over: its instance (a distribution), else its seed (one task)."""
    return e["instance"] if e.get("instance") is not None else ("seed", e["seed"])


def _unit_table(episodes: Iterable[dict[str, Any]], names: Sequence[str], field: str = "score") -> np.ndarray:
    """``[schedule, unit]``: the mean ``field`` (x100) over seeds of each schedule on each instance
    (or seed, on one fixed task); ``nan`` where a schedule did not play a unit."""
    per = defaultdict(list)
    for e in episodes:
        per[(e["schedule"], _unit(e))].append(100 * e[field])
    units = sorted({u for _, u in per}, key=repr)
    table = np.full((len(names), len(units)), np.nan)
    for i, n in enumerate(names):
        for j, u in enumerate(units):
            if (n, u) in per:
                table[i, j] = np.mean(per[(n, u)])
    return table


def _means(episodes: Iterable[dict[str, Any]], field: str = "score") -> dict[str, float]:
    """Per schedule: the mean over instances (or one fixed task) of the mean ``field`` (the
    benchmark score, or ``final_val_accuracy``) over seeds, x100."""
    episodes = list(episodes)
    names = sorted({e["schedule"] for e in episodes})
    return dict(zip(names, map(float, np.nanmean(_unit_table(episodes, names, field), axis=1)), strict=True))


def split_half_reliability(table: np.ndarray, rng: np.random.Generator, splits: int = 500) -> float | None:
    """How reproducible a ranking of schedules (``table[schedule, unit]``) is at its own size: the
    mean Spearman correlation between the schedules' means on two random halves of the units, made
    full-size by Spearman-Brown (``2r / (1 + r)``). A ranking correlates with another at most at
    the square root of the product of their reliabilities (Spearman's attenuation). Over the
    schedules played on every unit (``impaired`` at "tiny" played some on one seed only); ``None``
    with fewer than 4 units or 3 such schedules."""
    table = table[~np.isnan(table).any(axis=1)]
    n = table.shape[1]
    if n < 4 or len(table) < 3:
        return None
    rs = []
    for _ in range(splits):
        order = rng.permutation(n)
        r = spearman(table[:, order[: n // 2]].mean(axis=1), table[:, order[n // 2 :]].mean(axis=1))[0]
        if not np.isnan(r):
            rs.append(r)
    if not rs:
        return None
    r = float(np.mean(rs))
    return 2 * r / (1 + r) if r > -1 else None


def bootstrap_rho(
    fast: np.ndarray, tiny: np.ndarray, rng: np.random.Generator, n: int = 2000
) -> tuple[float, float] | None:
    """A 95% bias-corrected (BC) bootstrap interval of the Spearman correlation between the
    schedules' means of two tables (``[schedule, unit]``), resampling each side's units (instances,
    or seeds) with replacement. Resampling adds noise to both sides, which pulls a resampled rho
    below the measured one; the bias correction (Efron's BC) shifts the percentiles back by the
    share of resamples below it. ``None`` where no resample ranks both sides (a constant side)."""
    point = spearman(np.nanmean(fast, axis=1), np.nanmean(tiny, axis=1))[0]
    rhos: list[float] = []
    with warnings.catch_warnings():  # a schedule played on few units (seeds) can miss a resample
        warnings.simplefilter("ignore", RuntimeWarning)
        resamples = [
            (
                np.nanmean(fast[:, rng.integers(fast.shape[1], size=fast.shape[1])], axis=1),
                np.nanmean(tiny[:, rng.integers(tiny.shape[1], size=tiny.shape[1])], axis=1),
            )
            for _ in range(n)
        ]
    for a, b in resamples:
        if not (np.isnan(a).any() or np.isnan(b).any()):
            r = spearman(a, b)[0]
            if not np.isnan(r):
                rhos.append(r)
    if not rhos or np.isnan(point):
        return None
    found = np.asarray(rhos)
    normal = NormalDist()
    share = np.mean(found < point) + np.mean(found == point) / 2
    z0 = normal.inv_cdf(float(np.clip(share, 1 / len(found), 1 - 1 / len(found))))
    lo, hi = (100 * normal.cdf(2 * z0 + z) for z in (-1.96, 1.96))
    return float(np.percentile(found, lo)), float(np.percentile(found, hi))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _tiny_distribution(args: argparse.Namespace, names: list[str]) -> list[dict[str, Any]]:
    """The schedules ``names`` on ``--tiny-instances`` held-out instances of the distribution at tiny."""
    make = {"id": BASELINE_ID, "config": "impaired", "fidelity": args.tiny_fidelity,
            "start_level": HELDOUT_SPLIT.start_level, "num_levels": HELDOUT_SPLIT.num_levels,
            "max_epochs": args.max_epochs}  # fmt: skip
    stamp = {"fidelity": args.tiny_fidelity, "max_epochs": args.max_epochs}
    instances = [HELDOUT_SPLIT.start_level + i for i in range(args.tiny_instances)]
    tasks = [(n, k, s) for k in instances for s in range(args.seeds) for n in names]
    cache = args.out / "micro_fidelity_tiny.episodes.jsonl"
    done = {}
    for e in _read_jsonl(cache) if cache.exists() else []:
        if all(e.get(f) == v for f, v in stamp.items()):
            done[key(e)] = e
    todo = [t for t in tasks if t not in done]
    print(f"{len(todo)} tiny episodes to run ({len(tasks) - len(todo)} cached)", flush=True)
    if todo:
        with (
            cache.open("a") as log,
            ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool,
        ):
            futures = [pool.submit(run_episode, *t, args.instances, make) for t in todo]
            for i, f in enumerate(as_completed(futures)):
                e = {**f.result(), **stamp}
                done[key(e)] = e
                log.write(json.dumps(e) + "\n")
                log.flush()
                print(f"{i + 1}/{len(todo)} tiny episodes", flush=True)
    return [done[t] for t in tasks]


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _fmt2(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def fidelity_table(result: dict[str, Any]) -> str:
    """The markdown pairs table and the correlations of a fidelity result."""
    sides = [("tiny_impaired", "tiny impaired (recorded)"), ("tiny_distribution", "tiny, distribution")]
    sides = [(k, t) for k, t in sides if k in result]
    lines = [
        "Mean benchmark score (x100) per schedule: the fast tier on held-out instances against tiny.",
        "",
        "| schedule | fast tier | " + " | ".join(t for _, t in sides) + " |",
        "|---|---:|" + "---:|" * len(sides),
    ]
    for row in result["pairs"]:
        lines.append(f"| {row['schedule']} | {_fmt(row['fast'])} | "
                     + " | ".join(_fmt(row.get(k)) for k, _ in sides) + " |")  # fmt: skip
    lines.append("")
    for k, t in sides:
        c = result[k]
        p = "-" if c["p"] is None else f"{c['p']:.2g}"
        lines.append(f"- {t}: Spearman rho = {'-' if c['rho'] is None else format(c['rho'], '.3f')} (p = {p}) over {c['n']} schedules "
                     f"({c['source']}); Must show 4 (rho >= 0.8 over >= 10): {'met' if c['must_show_4'] else 'not met'}; "
                     f"of the final accuracies (no rent): {'-' if c['rho_accuracy'] is None else format(c['rho_accuracy'], '.3f')}")  # fmt: skip
        if c.get("rho_ci") is not None:
            lo, hi = c["rho_ci"]
            lines.append(f"  - scores' rho 95% interval (resampling {c['units'][0]} fast and {c['units'][1]} tiny instances "
                         f"or seeds): {lo:.2f} to {hi:.2f}; split-half reliability (Spearman-Brown) fast "
                         f"{_fmt2(c['reliability_fast'])}, tiny {_fmt2(c['reliability_tiny'])}: noise alone caps rho "
                         f"near {_fmt2(c['rho_ceiling'])}")  # fmt: skip
    return "\n".join(lines) + "\n"


def _correlate(
    fast: list[dict[str, Any]], tiny: list[dict[str, Any]], names: list[str], source: str
) -> dict[str, Any]:
    """Spearman of the schedules' mean scores (issue 22's bar 4), and of their mean final
    accuracies (what growth does to learning, without the rent), fast episodes against tiny ones;
    for the scores also a 95% bootstrap interval over instances (or seeds) and each side's
    split-half reliability, whose geometric mean bounds the correlation that noise allows."""
    out: dict[str, Any] = {"source": source}
    for field, suffix in (("score", ""), ("final_val_accuracy", "_accuracy")):
        f, t = _means(fast, field), _means(tiny, field)
        common = [n for n in names if n in f and n in t]
        rho, p = spearman([f[n] for n in common], [t[n] for n in common])
        out |= {f"rho{suffix}": None if np.isnan(rho) else rho, f"p{suffix}": p}  # JSON has no nan
        if not suffix:
            out |= {"n": len(common), "schedules": common,
                    "must_show_4": not np.isnan(rho) and rho >= 0.8 and len(common) >= 10}  # fmt: skip
            rng = np.random.default_rng(0)
            ft, tt = _unit_table(fast, common), _unit_table(tiny, common)
            rel_f, rel_t = split_half_reliability(ft, rng), split_half_reliability(tt, rng)
            ceiling = (
                None if rel_f is None or rel_t is None else float(np.sqrt(max(rel_f, 0) * max(rel_t, 0)))
            )
            out |= {"rho_ci": bootstrap_rho(ft, tt, rng), "units": [ft.shape[1], tt.shape[1]],
                    "reliability_fast": rel_f, "reliability_tiny": rel_t, "rho_ceiling": ceiling}  # fmt: skip
    return out


def run_fidelity(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> None:
    require_positive(parser, args, "seeds", "workers", "max_epochs")
    if args.tiny_instances < 0:
        parser.error(f"--tiny-instances must be >= 0 (0: no tiny run), got {args.tiny_instances}")
    fast_path = args.fast_episodes or args.out / "micro_headroom.episodes.jsonl"
    for path in (fast_path, args.recorded):
        if not path.exists():
            parser.error(f"no episodes file at {path}")
    names = [s.name for s in library()] + list(HEURISTICS)
    heldout = [e for e in _read_jsonl(fast_path) if int(e["instance"]) in HELDOUT_SPLIT]
    recorded_eps = [e for e in _read_jsonl(args.recorded) if e.get("config") == "impaired"]
    fast, recorded = _means(heldout), _means(recorded_eps)
    common = [n for n in names if n in fast and n in recorded]
    if len(common) < 3:
        parser.error(f"{len(common)} schedules common to {fast_path} and {args.recorded}: need >= 3")
    skip = [n for n in args.skip_at_tiny.split(",") if n]
    unknown = [n for n in skip if n not in common]
    if unknown:
        parser.error(f"--skip-at-tiny: {unknown} not among the compared schedules {common}")
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "provenance": provenance(__file__, argv, MICRO_ID, 1),
        "fast_episodes": str(fast_path), "fast_heldout_instances": len({e["instance"] for e in heldout}),
        "recorded": str(args.recorded),
    }  # fmt: skip
    result["tiny_impaired"] = _correlate(heldout, recorded_eps, names, f"{args.recorded.name}, impaired")
    tiny = {}
    if args.tiny_instances:
        episodes = _tiny_distribution(args, [n for n in common if n not in skip])
        tiny = _means(episodes)
        source = (f"{args.instances} at {args.tiny_fidelity}, {args.max_epochs} epochs, {args.tiny_instances} held-out "
                  f"instances x {args.seeds} seeds")  # fmt: skip
        result["tiny_distribution"] = _correlate(heldout, episodes, names, source)
        ks = {e["instance"] for e in episodes}
        matched = [e for e in heldout if e["instance"] in ks]
        if len([n for n in tiny if n in _means(matched)]) >= 3:  # the fast tier on the very same instances
            result["tiny_distribution_same_instances"] = _correlate(matched, episodes, names, source)
    result["pairs"] = [{"schedule": n, "fast": fast[n], "tiny_impaired": recorded[n], "tiny_distribution": tiny.get(n)}
                       for n in common]  # fmt: skip
    write_result(args.out, "micro_fidelity", result, fidelity_table(result))


def add_fidelity_parser(sub: Any) -> None:
    f = sub.add_parser(
        "fidelity", help="Spearman correlation of the schedule ranking, fast tier against tiny"
    )
    f.add_argument("--fast-episodes", type=Path, default=None,
                   help="the fast side's headroom episodes (default: DIR/micro_headroom.episodes.jsonl)")  # fmt: skip
    f.add_argument("--recorded", type=Path, default=RESULTS / "growth_headroom.episodes.jsonl",
                   help="recorded impaired/tiny episodes (the growth-headroom table's)")  # fmt: skip
    f.add_argument("--tiny-instances", type=int, default=3, help="held-out instances run at tiny (0: none)")
    f.add_argument(
        "--instances", default="bottlenecks", choices=DISTRIBUTIONS, help="the distribution run at tiny"
    )
    f.add_argument("--seeds", type=int, default=1, help="reset seeds per tiny instance")
    f.add_argument("--skip-at-tiny", default="", metavar="NAME,...",
                   help="schedules not played at tiny (the costliest: widening every block takes ~20 minutes "
                   "an episode there); the distribution's correlation leaves them out")  # fmt: skip
    f.add_argument("--workers", type=int, default=2)
    f.add_argument("--max-epochs", type=int, default=MAX_EPOCHS, help="epoch budget of the tiny episodes")
    f.add_argument("--tiny-fidelity", default="tiny", choices=FIDELITIES,
                   help="testing only: the fidelity of the distribution's tiny side")  # fmt: skip
    add_results_argument(f, resumes=True)
    f.set_defaults(run=run_fidelity)


# ---------------------------------------------------------------------------------------- rent sweep


def rent_sweep(
    episodes: list[dict[str, Any]], dist: Distribution, grid: np.ndarray, heuristics: bool = False
) -> dict[str, Any]:
    """The headroom figures of every rent triple of ``grid`` in place of ``dist``'s three rents
    (see the module docstring). ``heuristics``: the rent rule may also pick a recorded heuristic
    (their actions are those of the recorded rents, so every rent of the grid must stay below the
    rent at which they stop growing, ``MAX_RENT``)."""
    rent = dist.rent
    if len(rent) != 3:
        raise SystemExit(f"rent-sweep replaces a distribution's three rents; {dist.name!r} has {len(rent)}")
    if heuristics and grid.max() >= MAX_RENT:
        raise SystemExit(
            f"--heuristics needs every rent below {MAX_RENT} (the heuristics' own rent threshold)"
        )
    probes = {s.name for s in curve_probes()}
    schedules = sorted(
        {e["schedule"] for e in episodes if not e["schedule"].startswith("heuristic:")} - probes
    )
    names = schedules + (sorted({e["schedule"] for e in episodes if e["schedule"].startswith("heuristic:")})
                         if heuristics else [])  # fmt: skip
    ks = sorted({int(e["instance"]) for e in episodes})
    seeds = sorted({int(e["seed"]) for e in episodes})
    if len(seeds) < 2:
        raise SystemExit(
            "rent-sweep needs episodes of at least 2 reset seeds per instance (the virtual best)"
        )
    acc = np.full((len(names), len(ks), len(seeds)), np.nan)
    size = np.full_like(acc, np.nan)
    at = (
        {n: i for i, n in enumerate(names)},
        {k: i for i, k in enumerate(ks)},
        {s: i for i, s in enumerate(seeds)},
    )
    for e in episodes:
        if e["schedule"] in at[0]:
            ix = at[0][e["schedule"]], at[1][int(e["instance"])], at[2][int(e["seed"])]
            acc[ix], size[ix] = e["final_val_accuracy"], np.log2(e["size_ratio"])
    if np.isnan(acc).any():
        raise SystemExit("rent-sweep needs every schedule on every instance and seed")
    level = np.array([rent.index(dist.draw(k).rent) for k in ks])
    train = np.array([k in TRAIN_SPLIT for k in ks])
    held = np.array([k in HELDOUT_SPLIT for k in ks])
    wait = at[0]["wait"]
    rows = []
    for triple in (t for t in _triples(grid)):
        score = 100 * (acc - np.array(triple)[level][None, :, None] * size)  # schedule x instance x seed
        mean = score.mean(2)
        single = int(np.argmax(mean[: len(schedules), train].mean(1)))
        vb = float(np.mean([cross_seed_best(score[: len(schedules), j]) for j in np.where(held)[0]]))
        rule = np.zeros(len(ks))
        for lvl in range(len(rent)):
            here = level == lvl
            pick = int(np.argmax(mean[:, train & here].mean(1))) if (train & here).any() else wait
            rule[here] = mean[pick, here]
        w, sb, h = float(mean[wait, held].mean()), float(mean[single, held].mean()), float(rule[held].mean())
        gap = vb - sb
        rows.append({"rents": list(triple), "wait": w, "single_best": names[single], "single_best_score": sb,
                     "virtual_best": vb, "rent_rule": h, "rule_minus_wait": h - w, "vb_minus_sb": gap,
                     "bar2": h - w >= 3, "bar3": gap >= 4 and h <= sb + gap / 2})  # fmt: skip
    return {
        "rows": rows, "triples": len(rows),
        "bar2": sum(r["bar2"] for r in rows), "bar3": sum(r["bar3"] for r in rows),
        "both": sum(r["bar2"] and r["bar3"] for r in rows),
    }  # fmt: skip


def _triples(grid: np.ndarray) -> Iterator[tuple[float, float, float]]:
    values = [float(v) for v in grid]
    for i, a in enumerate(values):
        for j in range(i + 1, len(values)):
            for c in values[j + 1 :]:
                yield a, values[j], c


def run_rent_sweep(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> None:
    path = args.episodes or args.out / "micro_headroom.episodes.jsonl"
    if not path.exists():
        parser.error(f"no episodes at {path}: run the headroom command first")
    grid = np.round(np.arange(0.0, args.max_rent + 1e-9, args.step), 4)
    result = rent_sweep(_read_jsonl(path), get_distribution(args.instances), grid, args.heuristics)
    best = sorted(result["rows"], key=lambda r: (r["bar2"] + r["bar3"], r["vb_minus_sb"]), reverse=True)[:8]
    lines = [
        (
            f"{result['triples']} rent triples (grid 0-{args.max_rent} step {args.step}, points per doubling / 100): "
            f"bar 2 met by {result['bar2']}, bar 3 by {result['bar3']}, both by {result['both']}"
        ),
        "",
        "| rents | WAIT | single best | virtual best | rent rule | rule - WAIT | VB - SB | bar 2 | bar 3 |",
        "|---|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for r in best:
        lines.append(
            f"| {', '.join(f'{v:g}' for v in r['rents'])} | {r['wait']:.1f} | {r['single_best']} "
            f"{r['single_best_score']:.1f} | {r['virtual_best']:.1f} | {r['rent_rule']:.1f} "
            f"| {r['rule_minus_wait']:+.1f} | {r['vb_minus_sb']:+.1f} | {r['bar2']} | {r['bar3']} |"
        )
    result = {"provenance": provenance(__file__, argv, MICRO_ID, 1), "episodes": str(path), **result}
    write_result(args.out, "micro_rent_sweep", result, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("headroom", help="schedules and heuristics on training and held-out instances")
    h.add_argument("--train", type=int, default=40, help="training instances (single best chosen there)")
    h.add_argument("--heldout", type=int, default=60, help="held-out instances (scored)")
    h.add_argument("--heldout-start", type=int, default=0,
                   help="skip this many held-out instances: a fresh block to confirm a choice made on the first")  # fmt: skip
    h.add_argument(
        "--seeds", type=int, default=2, help="reset seeds per instance (>= 2 for the virtual best)"
    )
    h.add_argument("--workers", type=int, default=2)
    h.add_argument("--instances", default="bottlenecks", choices=DISTRIBUTIONS, help="instance distribution")
    h.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="replace a drawn field of the distribution (repeatable), e.g. --set widths=8,16,64",
    )
    add_results_argument(h, resumes=True)
    add_throughput_parser(sub)
    add_fidelity_parser(sub)
    r = sub.add_parser(
        "rent-sweep", help="the headroom figures under other rents, from the recorded episodes"
    )
    r.add_argument("--episodes", type=Path, default=None, help="default: OUT/micro_headroom.episodes.jsonl")
    r.add_argument("--max-rent", type=float, default=0.2, help="the grid's largest rent (score fraction)")
    r.add_argument("--step", type=float, default=0.01, help="the grid's step")
    r.add_argument(
        "--instances", default="bottlenecks", choices=DISTRIBUTIONS, help="the episodes' distribution"
    )
    r.add_argument(
        "--heuristics",
        action="store_true",
        help=f"the rent rule may pick a recorded heuristic too (every rent below {MAX_RENT})",
    )
    r.set_defaults(run=run_rent_sweep)
    add_results_argument(r)
    args = parser.parse_args(argv)
    if args.command in ("throughput", "fidelity", "rent-sweep"):
        return args.run(parser, args, argv)
    require_positive(parser, args, "train", "heldout", "seeds", "workers")
    if args.command == "headroom":
        try:
            args.distribution = custom_distribution(args.instances, args.set)
            headroom_instances(args.train, args.heldout, args.heldout_start)
        except ValueError as err:
            parser.error(str(err))
        result = run_headroom(args)
        result = {"provenance": provenance(__file__, argv, MICRO_ID, 1), "distribution": args.distribution.name,
                  **result}  # fmt: skip
        (args.out / "micro_headroom.json").write_text(json.dumps(result, indent=1) + "\n")
        json.dump({k: v for k, v in result.items() if k != "per_instance_best"}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
