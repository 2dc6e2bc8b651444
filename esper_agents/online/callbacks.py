"""What an online run logs beyond SB3's own return and length: :class:`EsperMetricsCallback`.

Per finished episode it records ``rollout/final_val_accuracy``, ``rollout/test_accuracy``,
``rollout/score`` (the benchmark score), ``rollout/seeds_fossilized`` and ``rollout/seeds_pruned``
(means over the episodes since the last dump, like SB3's ``ep_rew_mean``), and per step
``rollout/illegal_action_rate`` (the share of chosen actions the env ran as WAIT because they were
illegal). With ``episodes_csv`` it also appends one row per episode, the learning curve:
the env steps at its end, the env index and the fields of :data:`EPISODE_FIELDS`.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["EPISODE_FIELDS", "EsperMetricsCallback"]

#: The final-info keys of an episode that the callback logs and writes.
EPISODE_FIELDS: tuple[str, ...] = (
    "episode_return",
    "episode_length",
    "final_val_accuracy",
    "test_accuracy",
    "score",
    "seeds_created",
    "seeds_fossilized",
    "seeds_pruned",
)
CSV_COLUMNS: tuple[str, ...] = ("timesteps", "env", *EPISODE_FIELDS, "illegal_actions")


class EsperMetricsCallback(BaseCallback):
    """Log Esper's episode metrics to SB3's logger (TensorBoard included) and, optionally, a CSV."""

    def __init__(self, episodes_csv: str | os.PathLike | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.episodes_csv = None if episodes_csv is None else Path(episodes_csv)
        self._illegal: list[int] = []
        self._file: Any = None
        self._writer: Any = None

    def _on_training_start(self) -> None:
        self._illegal = [0] * self.training_env.num_envs
        if self.episodes_csv is not None:
            new = not self.episodes_csv.exists() or self.episodes_csv.stat().st_size == 0
            self.episodes_csv.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.episodes_csv, "a", newline="")  # noqa: SIM115 (closed at training end)
            self._writer = csv.writer(self._file)
            if new:
                self._writer.writerow(CSV_COLUMNS)

    def _on_step(self) -> bool:
        for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"])):
            illegal = info.get("action_valid") is False
            self._illegal[i] += int(illegal)
            self.logger.record_mean("rollout/illegal_action_rate", float(illegal))
            if done and "final_val_accuracy" in info:
                self._episode_end(i, info)
            if done:
                self._illegal[i] = 0
        return True

    def _episode_end(self, env: int, info: dict[str, Any]) -> None:
        for key in ("final_val_accuracy", "test_accuracy", "score", "seeds_fossilized", "seeds_pruned"):
            if info.get(key) is not None:
                self.logger.record_mean(f"rollout/{key}", float(info[key]))
        if self._writer is not None:
            row = [self.num_timesteps, env, *(info.get(k) for k in EPISODE_FIELDS), self._illegal[env]]
            self._writer.writerow(row)
            self._file.flush()

    def _on_training_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None
