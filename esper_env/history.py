"""What one training run records: the result of each epoch, the host's metric history (with the
plateau and divergence it decides), and the count of seeds created, fossilized and pruned.

Plain data, no torch: the engine appends to it and snapshots it as dicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["EpochResult", "SeedCounters", "TrainingHistory"]


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    #: slot index -> accuracy with the seed minus accuracy with its alpha forced to 0.
    contributions: dict[int, float]
    diverged: bool
    divergence_reason: str | None = None


@dataclass
class TrainingHistory:
    """Per-epoch metrics of the host; accuracies are fractions in [0, 1]."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_val_accuracy: float | None = None
    best_val_loss: float | None = None
    plateau_epochs: int = 0  # epochs since best_val_accuracy last improved
    chance_epochs: int = 0  # consecutive epochs at chance accuracy
    global_step: int = 0  # optimizer steps taken by the host

    @property
    def epoch(self) -> int:
        return len(self.val_accuracy)

    def record(self, train_loss: float, train_acc: float, val_loss: float, val_acc: float) -> None:
        """Append one epoch's metrics and update the bests and the plateau count."""
        self.train_loss.append(train_loss)
        self.train_accuracy.append(train_acc)
        self.val_loss.append(val_loss)
        self.val_accuracy.append(val_acc)
        if self.best_val_accuracy is None or val_acc > self.best_val_accuracy:
            self.best_val_accuracy = val_acc
            self.plateau_epochs = 0
        else:
            self.plateau_epochs += 1
        if not math.isnan(val_loss) and (self.best_val_loss is None or val_loss < self.best_val_loss):
            self.best_val_loss = val_loss

    def divergence(
        self, train_loss: float, val_loss: float, val_acc: float, num_classes: int, chance_patience: int
    ) -> str | None:
        """Why training counts as diverged after the epoch just recorded, or None.

        A collapse, not slow learning: the loss exploded, or validation accuracy fell back to
        chance for ``chance_patience`` epochs after having been clearly above it.
        """
        chance = 1.0 / num_classes
        self.chance_epochs = self.chance_epochs + 1 if val_acc <= 1.2 * chance else 0
        if not math.isfinite(val_loss):
            return "non-finite validation loss"
        if train_loss > 10 * math.log(num_classes):
            return f"training loss exploded to {train_loss:.3g}"
        collapsed = self.best_val_accuracy is not None and self.best_val_accuracy >= 2 * chance
        if collapsed and self.chance_epochs >= chance_patience:
            return f"accuracy back at chance for {self.chance_epochs} epochs"
        return None


@dataclass
class SeedCounters:
    created: int = 0
    fossilized: int = 0
    pruned: int = 0
