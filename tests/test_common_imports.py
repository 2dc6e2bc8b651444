"""esper_agents.common stays algorithm-neutral: importing it loads neither d3rlpy nor the
offline package (future online agents import it without either)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_common_imports_no_d3rlpy_and_no_offline() -> None:
    code = (
        "import json, sys\n"
        "import esper_agents.common\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'd3rlpy' or m.startswith(('d3rlpy.', "
        "'esper_agents.offline')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_offline_reexports_the_common_names() -> None:
    from esper_agents import common, offline

    for name in ("LoggedEpisode", "MaskInObservation", "evaluate_in_env", "make_eval_env", "mean_ci",
                 "rollout", "run_episode", "with_mask"):  # fmt: skip
        assert getattr(offline, name) is getattr(common, name)
