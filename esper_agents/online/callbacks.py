"""What an online run logs beyond SB3's own return and length: :class:`EsperMetricsCallback`.

Per finished episode it records ``rollout/final_val_accuracy``, ``rollout/test_accuracy``,
``rollout/score`` (the benchmark score), ``rollout/seeds_fossilized`` and ``rollout/seeds_pruned``
(means over the episodes since the last dump, like SB3's ``ep_rew_mean``), and per step
``rollout/illegal_action_rate`` (the share of chosen actions the env ran as WAIT because they were
illegal). With ``episodes_csv`` it also appends one row per episode, the learning curve:
the env steps at its end, the env index and the fields of :data:`EPISODE_FIELDS`.

:class:`RolloutCheckpoints` writes the checkpoints a run resumes from: at rollout boundaries,
after the PPO update (:mod:`esper_agents.online.checkpoints`).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from esper_agents.online.checkpoints import save_checkpoint

__all__ = ["EPISODE_FIELDS", "EsperMetricsCallback", "RolloutCheckpoints"]

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
    """Log Esper's episode metrics to SB3's logger (TensorBoard included) and, optionally, a CSV.

    ``state`` (from :meth:`state` at a checkpoint) continues a resumed run: the illegal choices
    counted so far in the episodes in flight, and the number of rows the CSV holds.
    """

    def __init__(
        self,
        episodes_csv: str | os.PathLike | None = None,
        verbose: int = 0,
        state: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(verbose)
        self.episodes_csv = None if episodes_csv is None else Path(episodes_csv)
        self._illegal: list[int] = [] if state is None else [int(n) for n in state["illegal"]]
        self.rows = 0 if state is None else int(state["rows"])
        self._file: Any = None
        self._writer: Any = None

    def state(self) -> dict[str, Any]:
        """What a resumed run needs to log the episodes in flight as this one would."""
        return {"illegal": list(self._illegal), "rows": self.rows}

    def _on_training_start(self) -> None:
        if len(self._illegal) != self.training_env.num_envs:
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
            self.rows += 1

    def _on_training_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None


class RolloutCheckpoints(BaseCallback):
    """Checkpoints at rollout boundaries, after the update: the first boundary at or past each
    multiple of ``every`` env steps (and the end of training, when it is one), as
    ``directory/model_<N>_steps.zip`` and its resume state; ``metrics`` gives the logger's state."""

    def __init__(self, directory: str | os.PathLike, every: int, metrics: EsperMetricsCallback) -> None:
        super().__init__(0)
        self.directory = Path(directory)
        self.every = every
        self.metrics = metrics
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _checkpoint(self) -> None:
        # on_rollout_start runs before any step of the rollout, on_training_end after the last update.
        if self.num_timesteps // self.every > self._last // self.every:
            path = self.directory / f"model_{self.num_timesteps}_steps.zip"
            save_checkpoint(self.model, path, self.metrics.state())
            self._last = self.num_timesteps

    def _on_rollout_start(self) -> None:
        self._checkpoint()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._checkpoint()
