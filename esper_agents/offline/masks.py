"""Masks inside the d3rlpy algorithms of this package: torch helpers on masked observations.

The mask rides in the observation, ``concat(features, mask)``
(:mod:`esper_agents.common.masks`). Every masked algorithm in this package reads it back off
(:func:`legal_mask`), the networks see only the features
(:class:`~esper_agents.offline.encoders.MaskedVectorEncoderFactory`), and the observation scaler
leaves the mask untouched (:class:`~esper_agents.offline.encoders.MaskedStandardObservationScaler`).

A row whose mask has no legal action (the all-zero observation d3rlpy puts after a terminal
step) counts as all-legal, so that maxima and log-sum-exps stay finite; such rows only ever
appear where the target is multiplied by ``1 - terminal``.
"""

from __future__ import annotations

import torch

__all__ = ["LOSS_FILL", "legal_mask", "masked_argmax", "masked_fill"]

#: Fill value for illegal entries inside losses (finite, so gradients and products stay finite).
LOSS_FILL = -1e9


def legal_mask(x: torch.Tensor, n_actions: int) -> torch.Tensor:
    """Boolean ``(batch, n_actions)`` legality from the last ``n_actions`` entries of ``x``.

    Rows with no legal action come back all-legal (see the module docstring).
    """
    legal = x[..., -n_actions:] > 0.5
    return legal | ~legal.any(dim=-1, keepdim=True)


def masked_fill(values: torch.Tensor, legal: torch.Tensor, fill: float = float("-inf")) -> torch.Tensor:
    """``values`` with illegal entries replaced by ``fill`` (the values themselves are ignored)."""
    return values.masked_fill(~legal, fill)


def masked_argmax(values: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """Index of the largest legal value in each row, whatever the illegal values are."""
    return masked_fill(values, legal).argmax(dim=-1)
