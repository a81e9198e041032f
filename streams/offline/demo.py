"""``recprice demo``: the whole pipeline on a slice of MovieLens, on a local broker."""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import asdict
from functools import partial
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from encoders.behaviour import apply_with_catalog, render_summary
from streams.connection import ConnectionProblem, check_connection
from streams.offline.collect import TopicCollector, latest_recommendations
from streams.offline.demo_model import (
    MODEL_NAME,
    DemoModel,
    ModelChoice,
    prepare_demo_model,
    valid_events,
)
from streams.offline.kafka_io import Refusal, producer, send_log
from streams.offline.local import (
    answers,
    spawn_worker,
    start_local_broker,
    stop_local_broker,
    stop_worker,
)
from streams.offline.movielens import Converted, convert
from streams.offline.ports import free_port
from streams.offline.replay import read_log
from streams.records.files import read_items
from streams.records.inputs import Event, Item, item_titles
from streams.records.user_state import UserState
from streams.settings import Settings
from streams.topics import AppTopics, create_topics

# Shown in the DLQ file: a demo should show that bad input is kept, not lost.
BAD_LINES = (
    b'{"event_id": "bad-1", "type": "view", "user_id": ',
    b'{"event_id":"bad-2","type":"teleport","user_id":"1","item_id":"1","ts":1}',
    b'{"event_id":"bad-3","type":"purchase","user_id":"1","item_id":"1","ts":1,"price":-3}',
)


def expected_states(
    events: list[Event], items: dict[str, Item], settings: Settings
) -> dict[str, UserState]:
    """Each user's final state, computed offline with the stream's own functions."""
    states: dict[str, UserState] = defaultdict(UserState)
    for event in events:
        states[event.user_id] = apply_with_catalog(
            states[event.user_id], event, items, settings.state
        )
    return dict(states)


def run_demo(
    base: Settings,
    out: Path,
    n_events: int,
    timeout_s: float = 240.0,
    model: ModelChoice | None = None,
) -> int:
    """Run the demo; return the process exit code (0 when every user got a recommendation).

    The worker serves the demo's fine-tuned model (:mod:`streams.offline.demo_model`),
    trained on the first run, unless ``model`` names a directory or asks for zero-shot.
    """
    model = model or ModelChoice()
    console = Console()
    started_broker = False
    if not answers(base.kafka.bootstrap):
        if base.kafka.security_protocol != "PLAINTEXT":
            # The local broker speaks PLAINTEXT only: it would not be the broker asked for.
            console.print(
                f"kafka: nothing answers at {base.kafka.bootstrap}, and the local broker "
                f"cannot stand in for a {base.kafka.security_protocol} one",
                soft_wrap=True,
            )
            return 1
        console.print(f"starting local broker on {base.kafka.bootstrap}")
        start_local_broker(base.kafka.bootstrap)
        started_broker = True
    try:
        check_connection(base.kafka)
    except ConnectionProblem as exc:
        console.print(str(exc), markup=False, soft_wrap=True)
        if started_broker:
            stop_local_broker(base.kafka.bootstrap)
        return 1
    prefix = f"demo-{int(time.time())}-"
    settings = Settings(
        **{**base.model_dump(), "topics": {**base.topics.model_dump(), "prefix": prefix}}
    )
    work = Path(tempfile.mkdtemp(prefix="recprice-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        data = convert(work / "movielens")
        lines = data.events_path.read_bytes().splitlines()[:n_events]
        slice_path = work / "slice.jsonl"
        slice_path.write_bytes(b"\n".join([*lines, *BAD_LINES]) + b"\n")
        catalog = {item.item_id: item for item in read_items(data.items_path)[0]}
        valid = valid_events(lines)
        expected = expected_states(valid, catalog, settings)
        console.print(
            f"MovieLens slice: {len(valid)} events from {len(expected)} users "
            f"(+{len(BAD_LINES)} malformed records), {len(catalog)} items"
        )
        model_dir = _served_model(console, model, data, n_events, settings, out)
        create_topics(settings)
        topics = AppTopics.of(settings)
        connect = partial(producer, settings.kafka)

        def report(refusal: Refusal) -> None:
            console.print(str(refusal), markup=False)

        sent_items = send_log(
            connect, topics.items.name, read_log(data.items_path, "item_id"), report
        )
        env = {
            "RECPRICE__KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
            "RECPRICE__TOPICS__PREFIX": prefix,
            "RECPRICE__WORKER__DATA_DIR": str(work / "worker-data"),
        }
        if model_dir is not None:
            env["RECPRICE__ENCODER__MODEL_DIR"] = str(model_dir.resolve())
        metrics_port = settings.metrics.port or free_port()
        env["RECPRICE__METRICS__HOST"] = "127.0.0.1"
        env["RECPRICE__METRICS__PORT"] = str(metrics_port)
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        worker = spawn_worker(env, out / "worker.log")
        console.print(f"metrics: {metrics_url}", markup=False)
        try:
            sent_events = send_log(connect, topics.events.name, read_log(slice_path), report)
            console.print(
                f"produced {sent_items.sent + sent_events.sent} records "
                f"({sent_items.failed + sent_events.failed} failed, "
                f"{sent_items.skipped + sent_events.skipped} skipped)"
            )
            names = [t.name for t in (topics.recommendations, topics.price_updates, topics.dlq)]
            collector = TopicCollector(settings.kafka, names)

            def done() -> bool:
                latest = latest_recommendations(collector.records[names[0]])
                return len(collector.records[names[2]]) >= len(BAD_LINES) and all(
                    u in latest and int(latest[u]["state_version"]) >= s.version  # type: ignore[call-overload]
                    for u, s in expected.items()
                )

            complete = collector.until(done, timeout_s)
            collector.close()
            _save_metrics(metrics_url, out / "metrics.txt")
        finally:
            code = stop_worker(worker)
        for name, file in zip(names, ("recommendations", "price_updates", "dlq"), strict=True):
            (out / f"{file}.jsonl").write_bytes(
                b"".join(orjson.dumps(r) + b"\n" for r in collector.records[name])
            )
        _print_table(console, collector.records, names, expected, catalog, settings)
        elapsed = time.monotonic() - t0
        latest = latest_recommendations(collector.records[names[0]])
        versions = sorted({str(r["model_version"]) for r in latest.values()})
        console.print(
            f"{len(latest)}/{len(expected)} users recommended by {', '.join(versions) or '-'}, "
            f"{len(collector.records[names[1]])} price updates, "
            f"{len(collector.records[names[2]])} dead letters in {elapsed:.0f} s; "
            f"outputs in {out}/ (worker exit code {code})"
        )
        return 0 if complete else 1
    finally:
        if started_broker:
            stop_local_broker(base.kafka.bootstrap)


def _save_metrics(url: str, path: Path) -> None:
    """Write the worker's metrics as its last scrape saw them; nothing if it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            path.write_bytes(answer.read())
    except OSError:
        return


def _served_model(
    console: Console,
    choice: ModelChoice,
    data: Converted,
    n_events: int,
    settings: Settings,
    out: Path,
) -> Path | None:
    """Pick the model directory the worker serves (None: zero-shot); print its scores.

    ``demo-model.json`` in ``out`` says which model was served and, for the
    demo's own model, its scores.
    """
    served: dict[str, object] = {"model_dir": None, "reused": False, "scores": []}
    trained = None
    if choice.model_dir is not None:
        console.print(f"serving {choice.model_dir} (--model; not measured by the demo)")
        served["model_dir"] = str(choice.model_dir)
    elif choice.zero_shot:
        console.print("serving the zero-shot MiniLM (--zero-shot)")
    else:
        started = time.monotonic()
        trained = prepare_demo_model(
            data.events_path,
            data.items_path,
            n_events,
            choice,
            settings.state,
            settings.encoder,
            say=lambda line: console.print(line, markup=False),
        )
        _print_scores(console, trained, time.monotonic() - started)
        served |= {
            "model_dir": str(trained.model_dir),
            "reused": trained.reused,
            "scores": [asdict(s) for s in trained.scores],
        }
    (out / "demo-model.json").write_text(json.dumps(served, indent=2))
    return trained.model_dir if trained is not None else choice.model_dir


def _print_scores(console: Console, trained: DemoModel, seconds: float) -> None:
    users = trained.score(MODEL_NAME).users
    table = Table(
        title=f"test split of the {users} MovieLens users outside the demo's slice "
        f"(full ranking; the demo model never saw the slice's {trained.excluded_users} users)"
    )
    for column in ("model", "NDCG@10", "95% interval", "HR@10", "users"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for score in trained.scores:
        table.add_row(
            score.name,
            f"{score.ndcg:.4f}",
            f"{score.ndcg_lo:.4f}-{score.ndcg_hi:.4f}",
            f"{score.hr:.4f}",
            str(score.users),
        )
    console.print(table)
    if trained.reused:
        how = f"kept from an earlier run (trained then in {trained.train_seconds:.0f} s)"
    else:
        how = f"trained in {trained.train_seconds:.0f} s, {seconds:.0f} s with its measurement"
    console.print(f"serving the demo model {trained.model_dir}: {how}", markup=False)


def _print_table(
    console: Console,
    records: dict[str, list[dict[str, object]]],
    names: list[str],
    expected: dict[str, UserState],
    catalog: dict[str, Item],
    settings: Settings,
) -> None:
    latest = latest_recommendations(records[names[0]])
    prices: dict[tuple[str, str], dict[str, object]] = {}
    for update in records[names[1]]:
        prices[(str(update["user_id"]), str(update["item_id"]))] = update
    table = Table(title="recprice demo: a few users")
    for column in ("user", "summary", "top-5 (price shown / base)", "arm"):
        table.add_column(column)
    titles = item_titles(catalog)
    for user in sorted(latest, key=lambda u: -expected[u].version if u in expected else 0)[:4]:
        summary = render_summary(expected[user], titles, settings.state) if user in expected else ""
        rows, arm = [], ""
        for entry in latest[user]["items"][:5]:  # type: ignore[index]
            item_id = str(entry["item_id"])
            update = prices.get((user, item_id), {})
            arm = str(update.get("arm", arm))
            rows.append(
                f"{titles(item_id) or item_id}: "
                f"{update.get('price', '?')} / {update.get('base_price', '?')}"
            )
        table.add_row(user, summary[:160], "\n".join(rows), arm)
    console.print(table)
