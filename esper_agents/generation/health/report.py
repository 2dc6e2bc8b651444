"""Health report files (``health.md``, ``health.json``, plots) and ``esper health --pack DIR``."""

from __future__ import annotations

import json
from pathlib import Path

from esper_agents.generation.health.checks import run_health_checks
from esper_agents.generation.health.config import DEFAULT_CONFIG, HealthConfig
from esper_agents.generation.health.inputs import HealthInput, load_health_input
from esper_agents.generation.health.plots import plot_clusters, plot_op_mix, plot_returns
from esper_agents.generation.health.results import HealthReport, format_number, format_percent, verdict


def format_table(report: HealthReport) -> str:
    """A plain-text table of every check (figure, threshold, verdict) and the failed checks' details."""
    rows = [("check", "tier", "figure", "threshold", "verdict")]
    rows += [
        (c.name, c.tier, format_number(c.figure), f"{c.comparison} {format_number(c.threshold)}", verdict(c))
        for c in report.checks
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for c in report.errors + report.warnings:
        lines.append(f"{verdict(c)} {c.name}: {c.detail}")
    status = "PASSED" if report.passed else "FAILED"
    lines.append(
        f"{status}: {len(report.errors)} blocking error(s), {len(report.warnings)} warning(s) on "
        f"{report.n_transitions} transitions, {report.n_episodes} episodes, "
        f"{report.clusters.n_clusters} clusters ({report.seconds:.2f} s)"
    )
    return "\n".join(lines)


def check_pack(
    path: str | Path, out_dir: str | Path, *, n_clusters: int | None = None, partial: bool = False
) -> int:
    """``esper health --pack DIR``: check a pack, print the table, write the report; 1 if a blocking check fails.

    A pack that cannot be read raises :class:`~esper_agents.generation.packs.PackError`; an
    incomplete one too, unless ``partial``.
    """
    if Path(out_dir).is_file():
        raise ValueError(f"--out {out_dir} is a file; the health report is a directory")
    data = load_health_input(path, partial=partial)
    report = run_health_checks(data, n_clusters=n_clusters)
    print(format_table(report))
    paths = write_report(report, data, out_dir)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0 if report.passed else 1


# ---------------------------------------------------------------------------------------------
# Report files

_EXPLANATION = """\
The original design's tiered checks: a failed **error** blocks generation, a failed **warning** is
logged for review. "Op" groups the compact actions by operation (WAIT, GERMINATE, ADVANCE,
SET_ALPHA_TARGET, PRUNE, FOSSILIZE). States are clustered by k-means on standardised observations
({k} clusters); a cluster with fewer than {min_states} states counts as empty, and a single-action
cluster is an occupied cluster where one op has >= {single_pct} of the transitions. Entropy is per
cluster, divided by log(number of ops), averaged with cluster sizes as weights. Definitions in
`esper_agents/generation/health/__init__.py`.
"""


def write_report(
    report: HealthReport, data: HealthInput, out_dir: str | Path, config: HealthConfig = DEFAULT_CONFIG
) -> list[Path]:
    """Write ``health.md``, ``health.json`` and the PNG plots into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = [
        plot_op_mix(data, out / "op_mix.png"),
        plot_clusters(report.clusters, out / "state_clusters.png", config),
        plot_returns(data, out / "returns.png"),
    ]
    status = "PASSED" if report.passed else "FAILED"
    md = [
        "# Dataset health",
        "",
        (
            f"**{status}**: {len(report.errors)} blocking error(s), {len(report.warnings)} warning(s); "
            f"{report.n_transitions} transitions, {report.n_episodes} episodes."
        ),
        "",
        report.to_markdown(),
        _EXPLANATION.format(
            k=report.clusters.n_clusters,
            min_states=config.min_cluster_states,
            single_pct=format_percent(config.single_action_share),
        ),
        "## Details",
        "",
    ]
    for c in report.checks:
        line = f"- **{c.name}** ({c.tier}, {verdict(c)}): {c.detail}"
        if c.cells and not c.passed:
            shown = ", ".join("/".join(x) if isinstance(x, tuple) else str(x) for x in c.cells[:10])
            more = f" and {len(c.cells) - 10} more" if len(c.cells) > 10 else ""
            line += f". Implicated: {shown}{more}"
        md.append(line)
    md += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    md_path = out / "health.md"
    md_path.write_text("\n".join(md))
    json_path = out / "health.json"
    json_path.write_text(json.dumps(report.to_dict(), indent=2))
    return [md_path, json_path, *plots]
