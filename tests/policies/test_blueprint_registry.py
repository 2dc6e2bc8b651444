"""Registering a blueprint is one entry: the policies derive what they need from the registry.

The check runs in a subprocess on a copy of ``esper_env`` whose ``blueprints.py`` registers one
extra blueprint, as adding one would; ``esper_agents`` is imported unchanged from the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "#: The blueprint names, in registration order"
EXTRA = """
@register("A test-only extra blueprint: one 1x1 conv", version=1)
class ExtraForTest(ConvSmall):
    name = "extra_for_test"


"""
SCRIPT = """
import gymnasium as gym, numpy as np
import esper_env
from esper_env.blueprints import BLUEPRINTS, BLUEPRINT_DESCRIPTIONS
from esper_agents.policies import DEFAULT_BLUEPRINT_ORDER, EpsilonGreedy, get_policy
from esper_env.wrappers import CompactActions
assert esper_env.__file__.startswith({copy!r}), esper_env.__file__
assert BLUEPRINTS[-1] == "extra_for_test" and "extra_for_test" in BLUEPRINT_DESCRIPTIONS
assert DEFAULT_BLUEPRINT_ORDER[-1] == "extra_for_test" and len(DEFAULT_BLUEPRINT_ORDER) == len(BLUEPRINTS) - 1
env = CompactActions(gym.make("Esper-SynthCIFAR-v2", fidelity="test", max_epochs=1, device="cpu"))
assert env.unwrapped.action_space.nvec[2] == len(BLUEPRINTS)
obs, info = env.reset(seed=0)
policy = EpsilonGreedy(get_policy("baseline"), epsilon=0.0).bind(env)
decision = policy.decide(obs, info["action_mask"], np.random.default_rng(0))
env.step(decision.sampled_action)
print("ok")
"""


def test_an_extra_registered_blueprint_does_not_break_the_policies(tmp_path: Path) -> None:
    copy = tmp_path / "esper_env"
    shutil.copytree(ROOT / "esper_env", copy, ignore=shutil.ignore_patterns("__pycache__"))
    source = (copy / "blueprints.py").read_text()
    assert MARKER in source
    (copy / "blueprints.py").write_text(source.replace(MARKER, EXTRA + MARKER, 1))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(copy=str(copy))],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
