"""Offline RL on an Esper pack: generate a small pack (or take one), train d3rlpy's DiscreteCQL, play an episode.

    python examples/d3rlpy_cql_pack.py --fidelity tiny --config impaired --steps 2000 --out runs/cql-example
    python examples/d3rlpy_cql_pack.py --pack runs/smoke --config baseline   # a pack from `esper generate`

``exports.to_d3rlpy`` turns a pack (logged episodes, ``datasets/PACK_FORMAT.md``) into a d3rlpy
``ReplayBuffer`` of ``CompactActions`` indices; ``append_mask=True`` ends each observation with the
legality mask, as ``MaskInObservation`` does in the env. Plain DiscreteCQL sees the mask as features
only (an illegal pick runs as WAIT); ``--masked`` trains Esper's ``MaskedDiscreteCQL``, which never
picks one. Generating the default pack ("tiny" fidelity) takes about three minutes.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

# esper_agents first: it hides the import banner of the old `gym` package that d3rlpy imports.
import esper_env  # noqa: F401  (registers the Esper-* ids)
from esper_agents.common.evaluation import make_eval_env
from esper_agents.generation import exports
from esper_agents.generation.orchestrator import generate
from esper_agents.generation.packs import open_pack
from esper_agents.generation.spec import parse_spec
from esper_agents.offline.algorithms import make_config

# isort: split
import d3rlpy
import structlog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", default=None, help="an existing pack (default: generate one)")
    parser.add_argument("--out", default=None, help="where to generate the pack (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=2000, help="CQL gradient steps")
    parser.add_argument("--fidelity", default="tiny", help="data per epoch of the generated pack")
    parser.add_argument("--max-epochs", type=int, default=25, help="epochs (env steps) per episode")
    parser.add_argument("--config", default="impaired", help="env preset (generation and evaluation)")
    parser.add_argument("--episodes-per-cell", type=int, default=2, help="episodes per policy")
    parser.add_argument("--masked", action="store_true", help="train Esper's MaskedDiscreteCQL")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pack = args.pack
    if pack is None:  # the spec `esper generate --spec FILE.toml` reads, as a dict
        spec = {
            "name": "cql-example",
            "env": {"id": "Esper-SynthCIFAR-v2", "fidelity": args.fidelity, "max_epochs": args.max_epochs},
            "matrix": {"policies": ["baseline", "aggressive", "random"], "configs": [args.config],
                       "epsilons": [0.2], "episodes_per_cell": args.episodes_per_cell,
                       "policy": {"random": {"epsilons": [1.0]}}},
        }  # fmt: skip
        pack = Path(args.out or tempfile.mkdtemp(prefix="esper-cql-")) / "pack"
        print(generate(parse_spec(spec), pack, workers=1, progress=False).summary())
    dataset = exports.to_d3rlpy(pack, append_mask=True)  # every transition, exact action count
    env_info = open_pack(pack).environment

    # d3rlpy logs through structlog (every config field, at info level): keep its warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    d3rlpy.seed(args.seed)
    if args.masked:  # Esper's CQL config, with a scaler that standardizes the features (not the mask)
        config = make_config("cql", env_info["n_actions"], args.steps)
    else:  # the same hyperparameters: alpha 5, a target network synced often enough for short runs
        sync = max(1, min(1000, args.steps // 10))
        config = d3rlpy.algos.DiscreteCQLConfig(
            alpha=5.0, learning_rate=3e-4, batch_size=128, target_update_interval=sync
        )
    cql = config.create(device="cpu:0")
    # d3rlpy runs n_steps // n_steps_per_epoch whole epochs: one epoch of all the steps is exact.
    cql.fit(dataset, n_steps=args.steps, n_steps_per_epoch=args.steps, show_progress=False,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory())  # fmt: skip

    # One greedy episode in the env the pack was logged in (masked observations, as in the data).
    env = make_eval_env(open_pack(pack).settings.replace(config=args.config))
    obs, info = env.reset(seed=1000)
    done, illegal, episode_return = False, 0, 0.0
    while not done:
        action = int(cql.predict(obs[None])[0])
        obs, reward, terminated, truncated, info = env.step(action)
        illegal += not info["action_valid"]
        episode_return += float(reward)
        done = terminated or truncated
    env.close()
    print(f"return: {episode_return:.3f}, illegal actions (ran as WAIT): {illegal}")
    print(f"final_val_accuracy={info['final_val_accuracy']:.4f} test_accuracy={info['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
