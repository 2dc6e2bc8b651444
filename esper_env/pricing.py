"""What a network's size counts: the rent and the size features of the observation.

A :class:`Pricing` counts the host's parameters and each seed's. By default it counts the network
as it is. From env v3 on, the fast tier's MLP hosts are priced as the CNN host of the same widths
carrying the same seeds in the same slots (:data:`esper_env.versions.PRICES`): the MLP stands in
for that CNN (the distributions at "tiny" play it), and on it the pointwise residual seeds cost a
third to a half of what they cost an MLP relative to its size, since every CNN layer is a 3x3
convolution. So a growth costs on the fast tier what it costs at "tiny", and the schedules rank
alike (docs/fast_tier/probe_price.md).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from esper_env.blueprints import blueprint_param_count
from esper_env.hosts import HOST_SPECS, HostNetwork, build_host, count_parameters, instance_host
from esper_env.slots import Slot
from esper_env.versions import Dynamics

__all__ = ["Pricing", "version_engine_kwargs"]


def version_engine_kwargs(architecture: str, d: Dynamics) -> dict[str, Any]:
    """What env version ``d`` passes the engine on host ``architecture``: on an MLP host the seeds'
    norm groups and the host it is priced as; nothing on an image host (the engine's defaults)."""
    spec = HOST_SPECS.get(architecture)
    if spec is None or spec.kind != "mlp":
        return {}
    price_as = instance_host(spec.channels, "cnn") if d.mlp_price == "cnn" else None
    return {"norm_groups": d.mlp_norm_groups, "price_as": price_as}


@functools.lru_cache(maxsize=64)
def _meta_host(name: str, num_classes: int) -> HostNetwork:
    """Host ``name`` on the meta device (shapes only, never run), built once per process: every
    reset of an instance prices on the same one (building it takes tens of milliseconds)."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        return build_host(name, num_classes)


class Pricing:
    """Parameter counts of ``host`` and its seeds, as priced on host ``price_as`` (``None``: itself).

    ``price_as`` is built on the meta device (never run) and must have the host's slot widths.
    """

    def __init__(self, host: HostNetwork, price_as: str | None = None) -> None:
        self.host = host
        self.priced_as: HostNetwork | None = None
        if price_as is not None:
            self.priced_as = _meta_host(price_as, host.num_classes)
            if self.priced_as.slot_channels != host.slot_channels:
                raise ValueError(
                    f"price_as={price_as!r} has slot widths {self.priced_as.slot_channels}, the host "
                    f"{host.name} {host.slot_channels}: a price host needs the same"
                )
        #: The host whose parameters the base size counts (and whose segments the observation's
        #: per-slot parameter shares read).
        self.priced_host = self.host if self.priced_as is None else self.priced_as
        #: Parameters of the host before any growth, as priced.
        self.base = count_parameters(self.priced_host)

    def seed(self, slot: Slot) -> int:
        """Parameters of ``slot``'s seed (0 if none): on the price host its blueprint counts as built
        for that host's slot, its gate as it is."""
        seed = slot.seed
        if seed is None:
            return 0
        own = count_parameters(seed)
        if self.priced_as is None:
            return own
        geometry = self.priced_as.slot_geometry(slot.index) if seed.widens else None
        return (
            own - count_parameters(seed.body) + blueprint_param_count(seed.blueprint, slot.channels, geometry)
        )
