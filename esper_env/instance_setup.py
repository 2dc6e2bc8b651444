"""What a task instance changes in an env: its host, learning rate, data and rent.

:class:`esper_env.EsperEnv` with an instance distribution calls :func:`instance_setup` at every
reset (and on restoring a snapshot of another instance) and sets the attributes it returns.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from esper_env.clusters import make_clusters
from esper_env.configs import EnvironmentConfig, Fidelity
from esper_env.data import ImageSplits
from esper_env.hosts import instance_host
from esper_env.instances import Instance
from esper_env.rewards import RewardConfig

__all__ = ["instance_setup"]


def instance_setup(
    inst: Instance,
    preset: EnvironmentConfig,
    dataset: str,
    fidelity: Fidelity,
    data: ImageSplits | None,
    reward: RewardConfig | None,
) -> dict[str, Any]:
    """The env attributes instance ``inst`` sets: ``instance``; ``config``, the preset with the
    instance's host (an MLP on the clusters task, else a pooled CNN), learning rate (on the clusters
    task also its ``mlp_lr_scale``) and optimizer; ``data``
    (the clusters task is per instance, an image dataset stays ``data``); and ``reward_config``
    with the instance's rent when ``reward`` (a reward asked for by mode name) is given."""
    clusters = dataset == "clusters"
    config = dataclasses.replace(
        preset,
        architecture=instance_host(inst.widths, "mlp" if clusters else "cnn"),
        learning_rate=inst.learning_rate,
        batch_size=inst.batch_size or preset.batch_size,
        optimizer=inst.optimizer or preset.optimizer,
        lr_scale=inst.mlp_lr_scale if clusters else 1.0,
    )
    if clusters:
        data = make_clusters(fidelity, inst.index, inst.blobs, inst.spread, inst.label_noise)
    out: dict[str, Any] = {"instance": inst, "config": config, "data": data}
    if reward is not None:
        out["reward_config"] = dataclasses.replace(reward, rent_weight=inst.rent)
    return out
