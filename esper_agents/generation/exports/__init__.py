"""Pack exports, one module per format: :mod:`~esper_agents.generation.exports.d3rlpy_buffer` (a d3rlpy
``ReplayBuffer``, saved as ``.h5``) and :mod:`~esper_agents.generation.exports.minari_dataset` (a
Minari dataset). A pack's rewards, as logged or relabeled, come from
:mod:`esper_agents.generation.relabel`.
"""

from __future__ import annotations

from esper_agents.generation.exports.d3rlpy_buffer import (
    D3RLPY_ACTION_SIZE_ATTR,
    d3rlpy_episode,
    episode_from_arrays,
    export_d3rlpy,
    load_d3rlpy,
    save_d3rlpy,
    to_d3rlpy,
)
from esper_agents.generation.exports.minari_dataset import (
    MINARI_PRESETS_KEY,
    episode_preset,
    minari_env_settings,
    minari_env_spec,
    minari_ref_scores,
    pack_presets,
    to_minari,
)

#: The formats ``esper export --format`` writes.
EXPORT_FORMATS: tuple[str, ...] = ("d3rlpy", "minari")

__all__ = [
    "D3RLPY_ACTION_SIZE_ATTR", "EXPORT_FORMATS", "MINARI_PRESETS_KEY", "d3rlpy_episode", "episode_from_arrays",
    "episode_preset", "export_d3rlpy", "load_d3rlpy", "minari_env_settings", "minari_env_spec",
    "minari_ref_scores", "pack_presets", "save_d3rlpy", "to_d3rlpy", "to_minari",
]  # fmt: skip
