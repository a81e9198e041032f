"""Recovery time after a worker is SIGKILLed, with and without standby table replicas.

    python -m bench.studies.failover --bootstrap 127.0.0.1:19092 [--users 6000] [--rounds 2]

Three workers share the partitions and every user gets one state. Then one
worker is SIGKILLed and, at once, one new event per probe user is sent. A
probe user's recovery time is the time from the kill to its next
recommendation (the worker's own clock, in the record's ``ts``): the users
the killed worker owned wait for the group to notice, rebalance and recover
their tables; the others are served at once. Rounds alternate standbys off
and on, so each pair runs on the same minutes of the machine.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from bench.common import machine_name
from encoders.model import save_model_dir, tiny_random_model
from streams.connection import security_settings
from streams.offline.deployment import Deployment, unique_prefix
from streams.records.inputs import Item
from streams.settings import KafkaSettings, Settings

WORKERS = 3
PARTITIONS = 6
PROBES = 120


def catalog() -> list[Item]:
    return [
        Item(f"i{n}", f"Film {n}", ["drama", "comedy", "action"][n % 3], 10.0 + n)
        for n in range(50)
    ]


def event(user: int, n: int, ts: int) -> dict[str, object]:
    uid = f"u{user}"
    return {
        "event_id": f"{uid}-{n}",
        "type": "click",
        "user_id": uid,
        "item_id": f"i{(user + n) % 50}",
        "ts": ts,
    }


def wait_served(deployment: Deployment, users: set[str], timeout_s: float) -> dict[str, int]:
    """Each probe user's first recommendation on its second state (worker clock, ms)."""
    deadline = time.monotonic() + timeout_s
    while True:
        served: dict[str, int] = {}
        for _, rec in deployment.read(deployment.topics.recommendations):
            user = str(rec["user_id"])
            if user in users and rec["state_version"] == 2:
                served[user] = min(served.get(user, int(rec["ts"])), int(rec["ts"]))  # type: ignore[call-overload]
        if len(served) == len(users):
            return served
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(users) - len(served)} probes not served:\n{deployment.log()}")
        time.sleep(2)


def one_round(
    kafka: KafkaSettings, root: Path, model: Path, users: int, standbys: int
) -> dict[str, float]:
    deployment = Deployment(
        kafka.bootstrap,
        root,
        prefix=unique_prefix("bench"),
        kafka={**security_settings(kafka), "partitions": PARTITIONS},
    )
    deployment.create()
    try:
        items = [i.to_json() for i in catalog()]
        deployment.send(deployment.topics.items, items, key_field="item_id")
        env = {
            "RECPRICE__ENCODER__MODEL_DIR": str(model),
            "RECPRICE__ENCODER__CPU_THREADS": "1",
            "RECPRICE__WORKER__STANDBY_REPLICAS": str(standbys),
        }
        for n in range(WORKERS):
            deployment.start_worker(f"w{n}", env)
        now = int(time.time() * 1000)
        deployment.send(deployment.topics.events, [event(u, 0, now) for u in range(users)])
        if deployment.wait_count(deployment.topics.recommendations, users, 600) < users:
            raise RuntimeError(f"prefill did not finish:\n{deployment.log()}")
        if not deployment.wait_consumed(deployment.topics.events, 120):
            raise RuntimeError("prefill events not committed")
        time.sleep(5)  # standbys catch up with the last changelog writes
        probes = [u * (users // PROBES) for u in range(PROBES)]
        victim = deployment.workers[1]
        killed_ms = int(time.time() * 1000)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        deployment.workers.remove(victim)
        deployment.send(deployment.topics.events, [event(u, 1, killed_ms) for u in probes])
        served = wait_served(deployment, {f"u{u}" for u in probes}, 300)
        waits = sorted((ts - killed_ms) / 1000 for ts in served.values())
        return {"max_s": waits[-1], "median_s": statistics.median(waits), "probes": len(waits)}
    finally:
        deployment.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2, help="pairs of (standbys 0, standbys 1)")
    args = parser.parse_args()
    # The connection's security settings come from RECPRICE__KAFKA__* like everywhere else.
    kafka = Settings().kafka.model_copy(update={"bootstrap": args.bootstrap})
    print(
        f"machine: {machine_name()}; {WORKERS} workers, {PARTITIONS} partitions, {args.users} users"
    )
    with TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        save_model_dir(tiny_random_model(seed=7, history=20), model)
        for pair in range(args.rounds):
            for standbys in (0, 1):
                result = one_round(
                    kafka, Path(tmp) / f"r{pair}-{standbys}", model, args.users, standbys
                )
                print(
                    f"pair {pair + 1} standbys={standbys}: slowest probe {result['max_s']:.1f} s, "
                    f"median {result['median_s']:.2f} s ({result['probes']:.0f} probes)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
