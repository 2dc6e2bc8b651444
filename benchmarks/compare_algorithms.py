"""Compare every agent family on one suite: the script behind ``esper bench``.

    python benchmarks/compare_algorithms.py --suite smoke|tiny|full|micro --out DIR [--agents A ...]
        [--workers 2] [--device auto] [--report-only] [--no-progress]

Exactly ``esper bench`` (see ``esper bench --help`` and ``esper_agents/bench/``): the suite's
agents trained with equal budgets per family, evaluated on fixed seeds apart from the training
seeds, reported as ``DIR/results.{md,csv,json,png}``. The README's results table is
``--suite tiny --out benchmarks/results/bench-tiny``.
"""

import sys

from esper_agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
