"""``recprice bench``: every measurement in one run, a table, and the results file."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.common import machine_name, markdown_table, ratio, write_results
from bench.e2e import run_e2e
from bench.ingest import median_round, run_ingest
from bench.ranker import ScoringPath
from bench.scoring_steps import (
    GPU_SIZES,
    at_least,
    describe_device,
    run_scoring_steps,
    scoring_targets,
    sizes_table,
    targets_table,
)
from bench.state import run_state
from bench.workload import load_workload
from encoders.ranker import Ranker
from streams.settings import KafkaSettings, Settings
from streams.worker.runtime import load_model


@dataclass(frozen=True)
class Plan:
    """How much of each measurement a run does."""

    name: str
    states: int
    catalog: int | None
    """Items in the index (first N of MovieLens by id); None = all 1,682."""
    sizes: tuple[int, ...]
    size_budget_s: float
    batching_budget_s: float
    ingest_events: int
    ingest_rounds: int
    """Ingest/no-op pairs; the median round is reported."""
    e2e_events: int
    e2e_rounds: int
    """Saturation rounds, each with its scorer-only reference; the median ratio is reported."""
    half_load_s: float
    reference_budget_s: float
    state_users: int


QUICK = Plan(
    name="quick",
    states=512,
    catalog=256,
    sizes=(1, 8, 32, 64),
    size_budget_s=5.0,
    batching_budget_s=8.0,
    ingest_events=20_000,
    ingest_rounds=1,
    e2e_events=384,
    e2e_rounds=1,
    half_load_s=20.0,
    reference_budget_s=6.0,
    state_users=200_000,
)
FULL = Plan(
    name="full",
    states=2048,
    catalog=None,
    sizes=(1, 8, 32, 64, 128, 256),
    size_budget_s=30.0,
    batching_budget_s=30.0,
    ingest_events=100_000,
    ingest_rounds=3,
    e2e_events=1024,
    e2e_rounds=3,
    half_load_s=60.0,
    reference_budget_s=20.0,
    state_users=1_000_000,
)


def default_out() -> Path:
    """``bench/results/<machine>.json`` beside this package."""
    return Path(__file__).resolve().parent / "results" / f"{machine_name()}.json"


def targets(results: Mapping[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(target, bound, measured, met) for each target the results cover (RESULTS.md, "Targets")."""
    p99_bound = float(results["p99_target_ms"])
    out = at_least(
        [
            *scoring_targets(results),
            ("ingest events/s, one worker", ">= 10,000", results["ingest_events_per_s"], 10_000.0),
            ("end to end vs scorer-only", ">= 0.7x", results["e2e_vs_scorer"], 0.7),
        ]
    )
    p99 = float(results["p99_latency_ms"])
    out.append(
        ("p99 latency at half load, ms", f"<= {p99_bound:,.0f}", f"{p99:,.0f}", p99 <= p99_bound)
    )
    state = float(results["state_bytes_per_user"])
    out.append(("state bytes per user (on disk)", "<= 2,048", f"{state:,.0f}", state <= 2048))
    return out


def run_bench(
    plan: Plan, out: Path, kafka: KafkaSettings, command: str, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run every measurement of ``plan``; write and return the results."""
    settings = Settings()
    started = dt.datetime.now(dt.UTC)
    log(f"recprice bench ({plan.name}) on {machine_name()}, broker {kafka.bootstrap}")
    workload = load_workload(plan.states)
    ranker = Ranker(load_model(settings.encoder), settings.encoder)
    device = describe_device(ranker)
    log(f"device: {device}")
    catalog_ids = sorted(workload.items)[: plan.catalog] if plan.catalog else sorted(workload.items)
    catalog = {i: workload.items[i] for i in catalog_ids}
    index = ranker.build_index([(i.item_id, i.text()) for i in catalog.values()])
    path = ScoringPath(ranker, index, workload, catalog)
    sizes = GPU_SIZES if ranker.device.type == "cuda" else plan.sizes
    max_batch = settings.scorer.max_batch
    steps = run_scoring_steps(
        path,
        workload.states,
        sizes,
        plan.size_budget_s,
        max_batch,
        plan.batching_budget_s,
        log,
    )

    log(
        f"4. ingest through Kafka, scorer disabled, {plan.ingest_events:,} MovieLens events, "
        f"{plan.ingest_rounds} round(s):"
    )
    items, events = list(workload.items.values()), workload.events[: plan.ingest_events]
    rounds = [run_ingest(kafka, items, events, log=log) for _ in range(plan.ingest_rounds)]
    ingest = median_round(rounds)

    log(f"5. end to end through Kafka ({len(catalog)} items):")
    e2e = run_e2e(
        kafka,
        ranker,
        index,
        workload,
        catalog,
        plan.e2e_events,
        plan.half_load_s,
        plan.reference_budget_s,
        plan.e2e_rounds,
        log,
    )

    log(f"6. state size, {plan.state_users:,} synthetic users in RocksDB:")
    state = run_state(list(workload.latest.values()), plan.state_users, log=log)

    results: dict[str, Any] = {
        "device": device,
        **steps.to_results(),
        "ingest_events_per_s": ingest.events_per_s,
        "e2e_events_per_s": e2e.events_per_s,
        "e2e_vs_scorer": e2e.vs_scorer,
        "p99_latency_ms": e2e.latency(99),
        "p99_target_ms": e2e.p99_target_ms,
        "state_bytes_per_user": state.sst_bytes_per_user,
        "machine": machine_name(),
        "plan": plan.name,
        "command": command,
        "date": started.isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "catalogue_items": len(catalog),
        "ingest": {
            "events": ingest.events,
            "processed": ingest.processed,
            "seconds": ingest.seconds,
            "dlq": ingest.dlq,
            "faust_noop_events_per_s": ingest.noop_events_per_s,
            "vs_faust_noop": ratio(ingest.events_per_s, ingest.noop_events_per_s),
            "rounds": [
                {
                    "events_per_s": r.events_per_s,
                    "faust_noop_events_per_s": r.noop_events_per_s,
                }
                for r in rounds
            ],
        },
        "e2e": {
            "saturation_events": e2e.events,
            "half_load_events_per_s": e2e.half_load_events_per_s,
            "half_load_mean_batch": e2e.half_load_mean_batch,
            "saturated_batch_send_ms": e2e.median.send_ms,
            "latency_ms": {f"p{q}": e2e.latency(q) for q in (50, 95, 99)},
            "worker_latency_ms": {
                f"p{q}": (percentile_or_nan(e2e.scorer_latency_ms, q)) for q in (50, 95, 99)
            },
            "reference_batch": e2e.max_batch,
            "reference_scorer_users_per_s": e2e.median.reference.scorer_users_per_s,
            "reference_forward_ms": e2e.median.reference.forward_ms,
            "rounds": [
                {
                    "events_per_s": r.events_per_s,
                    "reference_scorer_users_per_s": r.reference.scorer_users_per_s,
                    "reference_forward_ms": r.reference.forward_ms,
                    "vs_scorer": r.vs_scorer,
                    "saturated_batch_send_ms": r.send_ms,
                }
                for r in e2e.rounds
            ],
            "max_wait_ms": e2e.max_wait_s * 1000.0,
        },
        "state": {
            "users": state.users,
            "sst_bytes_per_user": state.sst_bytes_per_user,
            "mean_value_bytes": state.mean_value_bytes,
            "mean_key_bytes": state.key_bytes / state.users,
        },
    }
    results["targets"] = [
        {"target": n, "bound": b, "measured": m, "met": ok} for n, b, m, ok in targets(results)
    ]
    write_results(out, results)
    log("")
    log(report(results))
    log(f"\nwrote {out}")
    return results


def percentile_or_nan(values: list[float], q: float) -> float:
    """Percentile, or NaN for an empty sample."""
    from bench.common import percentile

    return percentile(values, q) if values else math.nan


def report(results: Mapping[str, Any]) -> str:
    """Markdown tables of one results object."""
    sizes = sizes_table(results)
    e2e, state = results["e2e"], results["state"]
    summary = markdown_table(
        ["measure", "value"],
        [
            ["device", results["device"]],
            [
                "encoder seq/s (best batch)",
                f"{results['encoder_seq_per_s']:,.1f} @ {results['encoder_best_batch']}",
            ],
            [
                "scorer users/s (best batch)",
                f"{results['scorer_users_per_s']:,.1f} @ {results['scorer_best_batch']}",
            ],
            ["batched/single", f"{results['batched_vs_single']:.2f}x"],
            [
                "ingest events/s (median round)",
                f"{results['ingest_events_per_s']:,.0f}",
            ],
            [
                "no-op Faust agent events/s, same events, same round",
                f"{results['ingest']['faust_noop_events_per_s']:,.0f}",
            ],
            [
                "ingest / no-op, every round",
                ", ".join(
                    f"{r['events_per_s']:,.0f} / {r['faust_noop_events_per_s']:,.0f}"
                    for r in results["ingest"]["rounds"]
                ),
            ],
            ["e2e events/s (saturation, median round)", f"{results['e2e_events_per_s']:,.1f}"],
            [
                "scorer-only users/s, same users, same round",
                f"{e2e['reference_scorer_users_per_s']:,.1f} @ {e2e['reference_batch']}",
            ],
            [
                "e2e / scorer-only, every round",
                ", ".join(
                    f"{r['events_per_s']:,.1f} / {r['reference_scorer_users_per_s']:,.1f}"
                    for r in e2e["rounds"]
                ),
            ],
            [
                "latency p50/p95/p99 ms (half load)",
                "/".join(f"{e2e['latency_ms'][p]:,.0f}" for p in ("p50", "p95", "p99")),
            ],
            [
                "state B/user on disk; mean value B",
                f"{state['sst_bytes_per_user']:,.0f}; {state['mean_value_bytes']:,.0f}",
            ],
        ],
    )
    goals = targets_table(results)
    return "\n\n".join([sizes, summary, goals])
