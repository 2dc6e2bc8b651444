"""Text and image renderings of an EsperEnv: the slots and the training curves."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from esper_env.lifecycle import Stage

if TYPE_CHECKING:
    from esper_env.env import EsperEnv

_SPARK = " .:-=+*#%@"


def _sparkline(values: list[float]) -> str:
    return "".join(_SPARK[min(int(max(v, 0.0) * (len(_SPARK) - 1) + 0.5), len(_SPARK) - 1)] for v in values)


def render_ansi(env: EsperEnv) -> str:
    e, h = env.engine, env.engine.history
    acc = f"{h.val_accuracy[-1]:.3f}" if h.val_accuracy else "-"
    best = f"{h.best_val_accuracy:.3f}" if h.best_val_accuracy is not None else "-"
    lines = [
        (
            f"epoch {h.epoch}/{env.max_epochs}  val_acc {acc}  best {best}  plateau {h.plateau_epochs}  "
            f"host {e.host_parameters():,} params  seeds {e.seed_parameters():,}"
        ),
        f"val acc |{_sparkline(h.val_accuracy)}|",
    ]
    for s in e.slots:
        st = s.state
        c = "-" if st.contribution is None else f"{st.contribution:+.3f}"
        bp = st.blueprint or "-"
        lines.append(
            f"  slot {s.index} {s.name:<8} {st.stage.name:<10} {bp:<18} alpha {st.alpha:.2f}->"
            f"{st.alpha_target if s.seed is not None else 0:.2f}  {st.epochs_in_stage:>2} ep  contrib {c}"
        )
    return "\n".join(lines) + "\n"


_STAGE_COLORS = {
    Stage.DORMANT: "#dddddd", Stage.GERMINATED: "#9ecae1", Stage.TRAINING: "#3182bd",
    Stage.BLENDING: "#fd8d3c", Stage.HOLDING: "#e6550d", Stage.FOSSILIZED: "#31a354",
    Stage.PRUNED: "#de2d26", Stage.EMBARGOED: "#756bb1",
}  # fmt: skip


def render_rgb(env: EsperEnv) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    e, h = env.engine, env.engine.history
    fig = Figure(figsize=(6.4, 4.0), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax_curve, ax_slots = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]})
    epochs = np.arange(1, h.epoch + 1)
    ax_curve.plot(epochs, h.val_accuracy, label="val accuracy", color="#3182bd")
    ax_curve.plot(epochs, h.train_accuracy, label="train accuracy", color="#9ecae1", linestyle="--")
    ax_curve.set_xlim(0, env.max_epochs)
    ax_curve.set_ylim(0, 1)
    ax_curve.set_ylabel("accuracy")
    ax_curve.legend(loc="lower right", fontsize=7)
    ax_curve.set_title(
        f"{env.dataset} / {env.config.config_id}  epoch {h.epoch}/{env.max_epochs}", fontsize=9
    )
    for s in e.slots:
        st = s.state
        ax_slots.barh(s.index, 1.0, color=_STAGE_COLORS[st.stage])
        ax_slots.barh(s.index, st.alpha, color="black", height=0.2)
        ax_slots.text(
            0.02, s.index, f"{s.name}: {st.stage.name} {st.blueprint or ''}", va="center", fontsize=7
        )
    ax_slots.set_xlim(0, 1)
    ax_slots.set_yticks([])
    ax_slots.set_xlabel("alpha (black bar); color = stage", fontsize=7)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
