"""The training engine: a host network plus its slots, trained one epoch at a time.

One call of :meth:`TrainingEngine.run_epoch` trains the host and its live seeds for one epoch,
validates with a fused counterfactual pass, and advances alpha schedules and lifecycle timers.
There is no RL here: the environment (``esper_env.env``) turns this into an MDP.

Gradient isolation in TRAINING: the seed is not in the host's forward pass, so the host's output
and gradients are bit for bit those without the seed. The seed learns from the task through a
second pass that starts from the *detached* host features at its slot, runs the rest of the
network, and takes gradients with respect to the seed's parameters only
(``torch.autograd.grad``), with BatchNorm running statistics saved and restored around it.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esper_env import lifecycle
from esper_env.blueprints import BLUEPRINTS, NOOP_BLUEPRINT, blueprint_index
from esper_env.configs import EnvironmentConfig, get_config
from esper_env.data import ImageSplits, iterate_batches
from esper_env.history import EpochResult, SeedCounters, TrainingHistory
from esper_env.hosts import HOST_SPECS, HostNetwork, build_host, supported_blueprints
from esper_env.lifecycle import (
    ALPHA_TARGETS,
    MEASURED_STAGES,
    SEED_STAGES,
    TRAINABLE_STAGES,
    AlphaCurve,
    AlphaSpeed,
    BlendStyle,
    Gates,
    IllegalTransitionError,
    Op,
    Stage,
    Tempo,
    enum_value,
    illegal_reason,
)
from esper_env.pricing import Pricing
from esper_env.runtime import resolve_device
from esper_env.slots import Seed, Slot, SlotState

SNAPSHOT_VERSION = 1


def build_optimizer(
    config: EnvironmentConfig, params: Sequence[nn.Parameter], *, lr_multiplier: float = 1.0
) -> torch.optim.Optimizer:
    lr = config.learning_rate * config.lr_scale * lr_multiplier
    if config.optimizer == "SGD":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "Adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; valid optimizers are: 'SGD', 'Adam'")


#: The gates of the original design (frozen, so one instance is shared safely).
DEFAULT_GATES = Gates()


class TrainingEngine:
    """A host network, its slots and optimizers, and the data it trains on.

    Args:
        config: an environment preset name or :class:`EnvironmentConfig`.
        data: the image splits (see :func:`esper_env.data.load_dataset`).
        num_slots: how many of the host's slot points are enabled (the first ``num_slots``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        seed: seeds host initialisation, the data order and augmentation, and seed initialisation.
        gates: lifecycle gates.
        val_batch_size: batch size of validation and test passes (no effect on results).
        chance_patience: epochs at chance accuracy before the run counts as diverged.
    """

    def __init__(
        self,
        config: str | EnvironmentConfig,
        data: ImageSplits,
        *,
        num_slots: int = 3,
        device: str | torch.device = "auto",
        seed: int = 0,
        gates: Gates = DEFAULT_GATES,
        val_batch_size: int = 512,
        chance_patience: int = 5,
        norm_groups: int = 8,
        price_as: str | None = None,
    ) -> None:
        self.config = get_config(config)
        self.device = resolve_device(device)
        self.data = data.to(self.device)
        self.seed = int(seed)
        self.gates = gates
        self.val_batch_size = val_batch_size
        self.chance_patience = chance_patience
        # channels_last is 1.4-1.8x faster for these CNNs on CPU (benchmarks/engine_throughput.py)
        # and is the fast layout for cuDNN too; an MLP host's 1x1 maps run as matrix products.
        mlp = (
            HOST_SPECS.get(self.config.architecture) is not None
            and HOST_SPECS[self.config.architecture].kind == "mlp"
        )
        self.memory_format = torch.contiguous_format if mlp else torch.channels_last
        #: The blueprints GERMINATE accepts on this host (``None``: every one).
        self.supported_blueprints = supported_blueprints(self.config.architecture)
        self.host: HostNetwork = build_host(self.config.architecture, data.num_classes, seed=self.seed).to(
            self.device, memory_format=self.memory_format
        )
        if not 1 <= num_slots <= len(self.host.slot_names):
            raise ValueError(
                f"num_slots={num_slots!r} is out of range for {self.config.architecture}, which has "
                f"{len(self.host.slot_names)} slot points: {', '.join(self.host.slot_names)}"
            )
        self.slots = [Slot(i, self.host.slot_names[i], self.host.slot_channels[i]) for i in range(num_slots)]
        #: The cap on the groups of a seed's GroupNorm (:func:`esper_env.blueprints.build_blueprint`).
        self.norm_groups = int(norm_groups)
        #: What the network's size counts (the rent, the observation's size features).
        self.pricing = Pricing(self.host, price_as)
        self.host_optimizer = build_optimizer(self.config, list(self.host.parameters()))
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)
        self.history = TrainingHistory()
        self.counters = SeedCounters()
        self._bn_buffers = [
            b
            for m in self.host.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for b in m.buffers()
        ]

    # ------------------------------------------------------------------ lifecycle operations

    def slot(self, slot: int) -> Slot:
        if not _is_index(slot, len(self.slots)):
            raise ValueError(f"unknown slot {slot!r}; valid slots are 0..{len(self.slots) - 1}")
        return self.slots[int(slot)]

    def illegal_reason(self, op: Op | int, slot: int) -> str | None:
        """Why ``op`` on ``slot`` is illegal now, or None if it is legal (gates included).

        The rule is :func:`esper_env.lifecycle.illegal_reason`; this applies it to the slot's state."""
        return illegal_reason(Op(int(op)), self.slot(slot).state, self.gates, slot=int(slot))

    def _seed_optimizer(self, seed: Seed) -> torch.optim.Optimizer:
        return build_optimizer(
            self.config, list(seed.parameters()), lr_multiplier=self.config.seed_lr_multiplier
        )

    def is_legal(self, op: Op | int, slot: int) -> bool:
        return self.illegal_reason(op, slot) is None

    def _require(self, op: Op, slot: int) -> Slot:
        s = self.slot(slot)
        reason = self.illegal_reason(op, slot)
        if reason is not None:
            legal = [o.name for o in Op if o != Op.WAIT and self.is_legal(o, slot)]
            raise IllegalTransitionError(
                f"{op.name} on slot {slot} is illegal: {reason}; legal on slot {slot} now: {', '.join(legal) or 'none'}"
            )
        return s

    def germinate(
        self,
        slot: int,
        blueprint: str | int,
        style: BlendStyle | int | str = BlendStyle.ADDITIVE,
        tempo: Tempo | int | str = Tempo.STANDARD,
        alpha_target: float = 1.0,
    ) -> None:
        """Create a seed in a DORMANT slot. ``alpha_target`` is a value in ALPHA_TARGETS or its index."""
        name = (
            BLUEPRINTS[blueprint]
            if _is_index(blueprint, len(BLUEPRINTS))
            else BLUEPRINTS[blueprint_index(blueprint)]
        )
        if name == NOOP_BLUEPRINT:
            raise IllegalTransitionError(
                "GERMINATE with the 'noop' blueprint is illegal (it is always masked)"
            )
        if self.supported_blueprints is not None and name not in self.supported_blueprints:
            raise IllegalTransitionError(
                f"blueprint {name!r} does not apply to the {self.config.architecture} host (masked); "
                f"valid here: {', '.join(self.supported_blueprints)}"
            )
        style = enum_value(BlendStyle, style)
        tempo = enum_value(Tempo, tempo)
        target = _alpha_target(alpha_target)
        s = self._require(Op.GERMINATE, slot)
        init_seed = (self.seed * 1_000_003 + 7919 * (self.counters.created + 1)) % (2**63)
        s.seed = Seed(
            name, s.channels, style, seed=init_seed, geometry=self.host.slot_geometry(s.index),
            norm_groups=self.norm_groups,
        ).to(self.device, memory_format=self.memory_format)  # fmt: skip
        s.seed.requires_grad_(False)
        s.optimizer = self._seed_optimizer(s.seed)
        lifecycle.germinate(
            s.state,
            name,
            style,
            tempo,
            target,
            seed_id=self.counters.created,
            accuracy=self._last_val_accuracy(),
        )
        self.counters.created += 1

    def advance(self, slot: int) -> None:
        s = self._require(Op.ADVANCE, slot)
        assert s.seed is not None
        if lifecycle.advance(s.state, accuracy=self._last_val_accuracy()) == Stage.TRAINING:
            s.seed.requires_grad_(True)

    def set_alpha_target(
        self,
        slot: int,
        alpha_target: float,
        speed: AlphaSpeed | int | str = AlphaSpeed.MEDIUM,
        curve: AlphaCurve | int | str = AlphaCurve.LINEAR,
    ) -> None:
        target = _alpha_target(alpha_target)
        speed = enum_value(AlphaSpeed, speed)
        curve = enum_value(AlphaCurve, curve)
        s = self._require(Op.SET_ALPHA_TARGET, slot)
        lifecycle.set_alpha_target(s.state, target, speed, curve, accuracy=self._last_val_accuracy())

    def prune(
        self,
        slot: int,
        speed: AlphaSpeed | int | str = AlphaSpeed.INSTANT,
        curve: AlphaCurve | int | str = AlphaCurve.LINEAR,
    ) -> None:
        """Ramp alpha down to 0 over ``speed`` epochs, then delete the seed and embargo the slot."""
        speed = enum_value(AlphaSpeed, speed)
        curve = enum_value(AlphaCurve, curve)
        s = self._require(Op.PRUNE, slot)
        lifecycle.prune(s.state, speed, curve, accuracy=self._last_val_accuracy())
        assert s.seed is not None
        s.seed.requires_grad_(False)
        self.counters.pruned += 1

    def fossilize(self, slot: int) -> None:
        s = self._require(Op.FOSSILIZE, slot)
        lifecycle.fossilize(s.state, accuracy=self._last_val_accuracy())
        self.counters.fossilized += 1

    def apply(self, op: Op | int, slot: int = 0, **params: Any) -> None:
        """Dispatch one operation; ``params`` are the keyword arguments of the op's method."""
        op = enum_value(Op, op)
        if op == Op.WAIT:
            return
        method = {
            Op.GERMINATE: self.germinate,
            Op.ADVANCE: self.advance,
            Op.SET_ALPHA_TARGET: self.set_alpha_target,
            Op.PRUNE: self.prune,
            Op.FOSSILIZE: self.fossilize,
        }[op]
        method(slot, **params)

    # ------------------------------------------------------------------ forward passes

    def _run(
        self,
        h: Tensor,
        start: int,
        capture: Sequence[int] = (),
        inject: Tensor | None = None,
        alphas: Mapping[int, Tensor] | None = None,
        replicate: tuple[int, int] | None = None,
    ) -> tuple[Tensor, dict[int, tuple[Tensor, Tensor]]]:
        """The one forward walk: segments ``start..`` with the slots in between.

        ``inject`` is added inside segment ``start`` (a widening seed's new channels for its first
        layer). ``captured[i]`` is ``(input of the block before slot i, features at slot i)`` for
        each ``i`` in ``capture``. ``alphas`` overrides the alpha of some slots (the counterfactual
        pass gives each replica its own); ``replicate=(i, n)`` repeats the batch ``n`` times after
        segment ``i``, so what comes before is computed once.
        """
        captured: dict[int, tuple[Tensor, Tensor]] = {}
        segments = self.host.segments
        for i in range(start, len(segments) - 1):
            x = h
            h = self.host.run_segment(i, h, inject)
            inject = None
            if replicate is not None and i == replicate[0]:
                h, x = h.repeat(replicate[1], 1, 1, 1), x.repeat(replicate[1], 1, 1, 1)
            if i >= len(self.slots):
                continue
            if i in capture:
                captured[i] = (x, h)
            slot = self.slots[i]
            if not slot.in_forward:
                continue
            alpha: float | Tensor = slot.state.alpha
            if alphas is not None and i in alphas:
                alpha = alphas[i]
            elif alpha == 0.0:
                continue  # exactly the identity
            assert slot.seed is not None
            h, inject = slot.seed.graft(h, x, alpha)
        return self.host.run_segment(len(segments) - 1, h, inject), captured

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the host with its seeds as they are blended now."""
        return self._run(x, 0)[0]

    def _last_val_accuracy(self) -> float | None:
        return self.history.val_accuracy[-1] if self.history.val_accuracy else None

    # ------------------------------------------------------------------ one epoch

    def train_epoch(self) -> tuple[float, float, bool]:
        """Train host and seeds on one pass over the training images. Returns (loss, acc, finite)."""
        data = self.data
        self.host.train()
        training = [s for s in self.slots if s.stage == Stage.TRAINING]
        stepping = [s for s in self.slots if s.stage in TRAINABLE_STAGES and s.optimizer is not None]
        for s in self.slots:
            if s.seed is not None:
                s.seed.train()
        capture = [s.index for s in training]
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for xb, yb in iterate_batches(
            data.train_x,
            data.train_y,
            self.config.batch_size,
            generator=self.generator,
            mean=data.mean,
            std=data.std,
            augment=True,
            shuffle=True,
        ):
            xb = xb.contiguous(memory_format=self.memory_format)
            logits, captured = self._run(xb, 0, capture=capture)
            loss = F.cross_entropy(logits, yb)
            self.host_optimizer.zero_grad(set_to_none=True)
            for s in stepping:
                assert s.optimizer is not None
                s.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for s in training:
                x_in, h_slot = captured[s.index]
                self._train_isolated_seed(s, x_in.detach(), h_slot.detach(), yb)
            self.host_optimizer.step()
            for s in stepping:
                assert s.optimizer is not None
                s.optimizer.step()
            loss_sum += loss.detach() * len(yb)
            correct += (logits.detach().argmax(1) == yb).sum()
            seen += len(yb)
            self.history.global_step += 1
        loss_value = float(loss_sum) / max(seen, 1)
        finite = bool(torch.isfinite(loss_sum)) and all(
            bool(torch.isfinite(p).all()) for p in self.host.parameters()
        )
        return loss_value, float(correct) / max(seen, 1), finite

    def _train_isolated_seed(self, slot: Slot, x: Tensor, h: Tensor, y: Tensor) -> None:
        """Give a TRAINING seed the task gradient without touching the host's state or gradients.

        ``x`` and ``h`` are the detached input of the block before the slot and the slot's features.
        """
        assert slot.seed is not None
        saved = [b.clone() for b in self._bn_buffers]
        h, inject = slot.seed.graft(h, x, 1.0)
        logits, _ = self._run(h, slot.index + 1, inject=inject)
        loss = F.cross_entropy(logits, y)
        params = [p for p in slot.seed.parameters()]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = torch.zeros_like(p) if g is None else g
        with torch.no_grad():
            for b, v in zip(self._bn_buffers, saved):
                b.copy_(v)

    @torch.no_grad()
    def evaluate(
        self, x: Tensor, y: Tensor, measured: Sequence[int] = ()
    ) -> tuple[float, float, list[float]]:
        """Loss and accuracy on ``(x, y)``, plus the accuracy with each measured slot's alpha at 0.

        The counterfactuals are fused into the same pass: at the first measured slot the batch is
        replicated K+1 times, replica 0 keeps every alpha, replica k+1 forces slot ``measured[k]``
        to alpha 0. BatchNorm is in eval mode, so a replica's result does not depend on the others.
        """
        self.host.eval()
        for s in self.slots:
            if s.seed is not None:
                s.seed.eval()
        k = len(measured)
        first = min(measured) if k else None
        correct = torch.zeros(k + 1, device=self.device, dtype=torch.long)
        loss_sum = torch.zeros((), device=self.device)
        data = self.data
        for xb, yb in iterate_batches(
            x,
            y,
            self.val_batch_size,
            generator=self.generator,
            mean=data.mean,
            std=data.std,
            augment=False,
            shuffle=False,
        ):
            b = len(yb)
            xb = xb.contiguous(memory_format=self.memory_format)
            if first is None:
                logits = self.forward(xb).unsqueeze(0)
            else:
                logits = self._run_counterfactual(xb, list(measured), first).view(k + 1, b, -1)
            correct += (logits.argmax(-1) == yb).sum(-1)
            loss_sum += F.cross_entropy(logits[0], yb, reduction="sum")
        n = len(y)
        accs = (correct.double() / n).tolist()
        return float(loss_sum) / n, accs[0], accs[1:]

    def _run_counterfactual(self, xb: Tensor, measured: list[int], first: int) -> Tensor:
        """Logits of ``len(measured) + 1`` replicas of ``xb``: replica 0 as blended now, replica
        ``k + 1`` with slot ``measured[k]``'s alpha forced to 0 (the walk of :meth:`_run`)."""
        k, b = len(measured), xb.shape[0]
        alphas = {}
        for j, i in enumerate(measured):
            per_replica = torch.full((k + 1,), self.slots[i].state.alpha, device=xb.device, dtype=xb.dtype)
            per_replica[1 + j] = 0.0
            alphas[i] = per_replica.repeat_interleave(b).view(-1, 1, 1, 1)
        return self._run(xb, 0, alphas=alphas, replicate=(first, k + 1))[0]

    def measured_slots(self) -> list[int]:
        return [
            s.index for s in self.slots if s.in_forward and s.stage in MEASURED_STAGES and s.state.alpha > 0
        ]

    def validate(self) -> tuple[float, float, dict[int, float]]:
        """Validation loss, accuracy and the contribution of every measured seed."""
        measured = self.measured_slots()
        loss, acc, without = self.evaluate(self.data.val_x, self.data.val_y, measured)
        return loss, acc, {i: acc - a0 for i, a0 in zip(measured, without)}

    def test_accuracy(self) -> float:
        """Accuracy on the test split. Only for reporting at episode end, never an agent signal."""
        return self.evaluate(self.data.test_x, self.data.test_y)[1]

    def run_epoch(self) -> EpochResult:
        """Train one epoch, validate (with counterfactuals), then advance schedules and timers."""
        train_loss, train_acc, finite = self.train_epoch()
        h = self.history
        if not finite:
            nan = float("nan")
            h.record(train_loss, train_acc, nan, 0.0)
            return EpochResult(h.epoch, train_loss, train_acc, nan, 0.0, {}, True, "non-finite loss")
        val_loss, val_acc, contributions = self.validate()
        for i, c in contributions.items():
            st = self.slots[i].state
            st.contribution = c
            st.measured_in_stage = True
            st.history.append(c)
        self._advance_timers()
        h.record(train_loss, train_acc, val_loss, val_acc)
        reason = h.divergence(train_loss, val_loss, val_acc, self.data.num_classes, self.chance_patience)
        diverged = reason is not None
        return EpochResult(h.epoch, train_loss, train_acc, val_loss, val_acc, contributions, diverged, reason)

    def _advance_timers(self) -> None:
        for s in self.slots:
            if lifecycle.tick(s.state, self.gates):
                s.seed, s.optimizer = None, None  # the prune's ramp-down is over: delete the module

    # ------------------------------------------------------------------ accounting

    def host_parameters(self) -> int:
        """Parameters of the host, fossilized seeds included (as priced)."""
        fossils = sum(self.pricing.seed(s) for s in self.slots if s.stage == Stage.FOSSILIZED)
        return self.pricing.base + fossils

    def seed_parameters(self) -> int:
        """Parameters of the seeds that are not (yet) part of the host (as priced)."""
        return sum(
            self.pricing.seed(s) for s in self.slots if s.stage in SEED_STAGES and s.stage != Stage.FOSSILIZED
        )

    # ------------------------------------------------------------------ snapshot / restore

    def snapshot(self) -> dict[str, Any]:
        """The whole state as nested dicts of tensors and plain values (loadable with weights_only)."""
        return {
            "version": SNAPSHOT_VERSION,
            "config_id": self.config.config_id,
            "seed": self.seed,
            "host": _clone_tree(self.host.state_dict()),
            "host_optimizer": _clone_tree(self.host_optimizer.state_dict()),
            "generator": self.generator.get_state().clone(),
            "history": asdict(self.history),
            "counters": asdict(self.counters),
            "slots": [
                {
                    "state": s.state.to_dict(),
                    "seed": None if s.seed is None else _clone_tree(s.seed.state_dict()),
                    "optimizer": None if s.optimizer is None else _clone_tree(s.optimizer.state_dict()),
                }
                for s in self.slots
            ],
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Bring the engine back to ``snap`` exactly; continuing then equals never having left."""
        version = snap.get("version")
        if version != SNAPSHOT_VERSION:
            raise ValueError(
                f"snapshot version {version!r} is not supported; this engine reads version {SNAPSHOT_VERSION}"
            )
        if len(snap["slots"]) != len(self.slots):
            raise ValueError(f"snapshot has {len(snap['slots'])} slots, this engine has {len(self.slots)}")
        for key, kind in (("history", TrainingHistory), ("counters", SeedCounters)):
            expected = {f.name for f in fields(kind)}
            if not isinstance(snap[key], dict) or set(snap[key]) != expected:
                got = sorted(snap[key]) if isinstance(snap[key], dict) else type(snap[key]).__name__
                raise ValueError(
                    f"the engine snapshot's {key} must have the keys {sorted(expected)}, got {got}"
                )
        self.host.load_state_dict(snap["host"])
        self.host_optimizer.load_state_dict(_clone_tree(snap["host_optimizer"]))
        self.generator.set_state(snap["generator"].clone())
        self.history = TrainingHistory(
            **{k: (list(v) if isinstance(v, list) else v) for k, v in snap["history"].items()}
        )
        self.counters = SeedCounters(**snap["counters"])
        for s, saved in zip(self.slots, snap["slots"]):
            s.state = SlotState.from_dict(saved["state"])
            s.seed, s.optimizer = None, None
            if saved["seed"] is not None:
                assert s.state.blueprint is not None
                geometry = self.host.slot_geometry(s.index)
                s.seed = Seed(
                    s.state.blueprint, s.channels, s.state.style, seed=0, geometry=geometry,
                    norm_groups=self.norm_groups,
                ).to(self.device, memory_format=self.memory_format)  # fmt: skip
                s.seed.load_state_dict(saved["seed"])
                s.seed.requires_grad_(s.stage in TRAINABLE_STAGES)
                s.optimizer = self._seed_optimizer(s.seed)
                if saved["optimizer"] is not None:
                    s.optimizer.load_state_dict(_clone_tree(saved["optimizer"]))


def _is_index(value: object, n: int) -> bool:
    """An integer (Python or NumPy, not bool) in ``range(n)``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= int(value) < n


def _alpha_target(value: float) -> float:
    """Accept an alpha target value (0.5, 0.7, 1.0) or its index (0, 1, 2)."""
    if _is_index(value, len(ALPHA_TARGETS)):
        return ALPHA_TARGETS[value]
    if isinstance(value, float) and value in ALPHA_TARGETS:
        return value
    raise ValueError(
        f"unknown alpha target {value!r}; valid are the values {ALPHA_TARGETS} or their indices 0..2"
    )


def _clone_tree(obj: Any) -> Any:
    """Deep copy of nested dicts/lists/tuples whose tensors are cloned (detached)."""
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone_tree(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_clone_tree(v) for v in obj)
    return obj
