"""Before/after: the ingest and end-to-end benchmarks of two source trees, alternating.

``python -m bench.studies.ab_trees BEFORE_DIR AFTER_DIR [--events N] [--rounds R]``,
e.g. with ``git worktree add /tmp/before <commit>``. Each measurement runs
in a fresh interpreter rooted at its tree (its own ``bench`` code, and its
own worker via ``python -m streams``), on the broker of the current settings.
Prints one line per run; the ratio of each pair is the figure to quote.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

# Trees since the connection settings travel with the address take the KafkaSettings;
# older ones take the bootstrap string.
BROKER = """
import inspect
def broker(run, kafka):
    return kafka if "kafka" in inspect.signature(run).parameters else kafka.bootstrap
"""

INGEST = (
    BROKER
    + """
from bench.workload import load_workload
from bench.ingest import run_ingest
from streams.settings import Settings
w = load_workload(10)
r = run_ingest(broker(run_ingest, Settings().kafka), list(w.items.values()), w.events[:{events}],
               log=lambda s: None)
print("RESULT", r.events_per_s)
"""
)

E2E = (
    BROKER
    + """
from bench.workload import load_workload
from bench.e2e import run_e2e
from encoders.ranker import Ranker
from streams.worker.runtime import load_model
from streams.settings import Settings
s = Settings()
w = load_workload(64)
ranker = Ranker(load_model(s.encoder), s.encoder)
items = dict(w.items)
index = ranker.build_index([(i.item_id, i.text()) for i in items.values()])
r = run_e2e(broker(run_e2e, s.kafka), ranker, index, w, items, 1024, 8.0, 8.0,
            log=lambda s: None)
print("RESULT", r.events_per_s, r.median.reference.scorer_users_per_s, r.vs_scorer)
"""
)


def measure(root: str, code: str) -> str:
    """Run ``code`` rooted at ``root``; return its RESULT line (or the error's tail)."""
    env = {**os.environ, "PYTHONPATH": root, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, env=env, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    return lines[-1] if lines else f"failed: {done.stderr[-800:]}"


def main() -> None:
    """Alternate before and after for ingest (``rounds`` pairs) and end to end (one pair)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    plan = [("ingest", INGEST.format(events=args.events), args.rounds), ("e2e", E2E, 1)]
    for kind, code, rounds in plan:
        for round_ in range(rounds):
            for name, root in (("before", args.before), ("after", args.after)):
                print(kind, round_, name, measure(os.path.abspath(root), code), flush=True)


if __name__ == "__main__":
    main()
