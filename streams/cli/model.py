"""``recprice train`` and ``recprice evaluate``: fine-tune and measure the recommender.

Both read any ``events.jsonl`` + ``items.jsonl`` in our record contracts and
replay them through the stream's state and summary code, with the user-state
shape from the same settings object the worker uses (``RECPRICE__STATE__*``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from encoders.dataset import Dataset, evaluation_view, load_dataset, training_view
from encoders.hold_out import (
    HoldOut,
    HoldOutMismatch,
    check_hold_out,
    pick_hold_out,
    read_hold_out,
    training_notes,
    write_hold_out,
)
from encoders.train_config import TrainConfig
from streams.cli.config_flags import config_from_flags, with_config_flags

if TYPE_CHECKING:
    from encoders.config import EncoderConfig
    from encoders.evaluation import CaseScorer
    from encoders.model import Recommender

EventsFile = Annotated[Path, typer.Option("--events", exists=True, help="events.jsonl")]
ItemsFile = Annotated[Path, typer.Option("--items", exists=True, help="items.jsonl")]


def _dataset(events: Path, items: Path) -> Dataset:
    from streams.settings import Settings

    started = time.perf_counter()
    dataset = load_dataset(events, items, Settings().state)
    typer.echo(
        f"{len(dataset.items)} items, {len(dataset.train)} train / {len(dataset.valid)} valid / "
        f"{len(dataset.test)} test examples, {dataset.skipped_events} events and "
        f"{dataset.skipped_items} items skipped ({time.perf_counter() - started:.1f} s)"
    )
    return dataset


def _share(value: float) -> float:
    if not 0 <= value < 1:
        raise typer.BadParameter(f"{value} is not a share in [0, 1)")
    return value


HoldOutShare = Annotated[
    float,
    typer.Option(
        "--hold-out-items",
        callback=_share,
        help="Share of the items held out of training entirely, scored by text only "
        '(0 = none; docs/model.md, "Cold items: the held-out split").',
    ),
]
HoldOutSeed = Annotated[int, typer.Option("--hold-out-seed", help="Seed of the held-out draw.")]


def _hold_out(dataset: Dataset, share: float, seed: int) -> HoldOut | None:
    hold_out = pick_hold_out(dataset, share, seed)
    if hold_out is not None:
        typer.echo(f"{len(hold_out.items)} items held out of training ({hold_out.flags()})")
    return hold_out


# Flags of earlier releases spelled unlike the field they set; they still work, unlisted.
OLD_SPELLINGS = {
    "--item-layers": "item_train_layers",
    "--max-length": "user_max_length",
    "--per-user": "max_train_per_user",
}


@with_config_flags(TrainConfig, OLD_SPELLINGS)
def train(
    ctx: typer.Context,
    events: EventsFile,
    items: ItemsFile,
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    base: Annotated[
        Path | None,
        typer.Option(help="Model directory to start from (default: bundled MiniLM)."),
    ] = None,
    hold_out_items: HoldOutShare = 0.0,
    hold_out_seed: HoldOutSeed = 0,
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes training data-parallel on this machine (torch.distributed DDP: "
            "gloo on CPU, NCCL with one GPU each). Under torchrun, leave it at 1.",
        ),
    ] = 1,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Folder for the lower layers' states files (default: a temporary one)."),
    ] = None,
    **flags: Any,
) -> None:
    """Fine-tune the two-tower recommender and write a model directory."""
    # torch and transformers load here, not when the command line starts.
    from streams.offline.training_run import TorchrunPlace, TrainJob, run_torchrun, train_model

    # One option per TrainConfig field (streams.cli.config_flags), checked by the config.
    config = config_from_flags(ctx, TrainConfig, flags, OLD_SPELLINGS)
    place = TorchrunPlace.of(os.environ)
    if place is not None and nproc > 1:
        raise typer.BadParameter("under torchrun, torchrun starts the processes: leave --nproc 1")
    dataset = _dataset(events, items)
    hold_out = _hold_out(dataset, hold_out_items, hold_out_seed)
    if hold_out is not None:
        # The model never sees the held-out items: no head row, no training case.
        dataset = training_view(dataset, hold_out.items)
    job = TrainJob(dataset, config, out, base, cache_dir)
    _exit_on_sigterm()
    run = train_model(job, nproc) if place is None else run_torchrun(job, place)
    if not run:  # a torchrun process other than rank 0
        return
    write_hold_out(out, hold_out)
    typer.echo(
        f"best epoch {run['best_epoch']}: valid NDCG@10 {run['best_valid_ndcg@10']:.4f}, "
        f"{run['steps']} steps ({run['seconds_per_step']:.2f} s/step, {run['processes']} "
        f"process(es)), {run['seconds']:.0f} s; model {run['model_version']} written to {out}"
    )


def _exit_on_sigterm() -> None:
    """Make SIGTERM exit through the cleanup, so a stopped run removes its states files.

    By default the signal ends the interpreter at once, leaving the temporary
    folder of cached lower-layer states (gigabytes) behind.
    """
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def _sasrec(dataset: Dataset, encoder: EncoderConfig) -> dict[str, CaseScorer]:
    """Train the SASRec baseline on ``dataset`` and return its row's scorer."""
    from encoders.sasrec import SASRecConfig, train_sasrec

    fit = train_sasrec(dataset, SASRecConfig(device=encoder.device))
    typer.echo(
        f"SASRec baseline: best epoch {fit.best_epoch} of {len(fit.epochs)} "
        f"(valid NDCG@10 {fit.best_valid_ndcg:.4f}), {fit.seconds:.0f} s"
    )
    return {"sasrec": fit.scorer}


def evaluate(
    events: EventsFile,
    items: ItemsFile,
    model: Annotated[
        list[Path],
        typer.Option("--model", help="Model directory to evaluate; repeat for several."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Report directory to write.")],
    zero_shot: Annotated[bool, typer.Option(help="Also score the zero-shot encoder.")] = True,
    parity_users: Annotated[int, typer.Option(help="Users in the parity check; 0 = skip.")] = 128,
    threads: Annotated[int, typer.Option(help="torch CPU threads; 0 = default.")] = 0,
    hold_out_items: HoldOutShare = 0.0,
    hold_out_seed: HoldOutSeed = 0,
    sasrec: Annotated[
        bool,
        typer.Option(
            help="Also train the ID-only SASRec baseline on the train split (early stopping "
            'on valid) and score it (docs/model.md, "SASRec baseline").'
        ),
    ] = True,
) -> None:
    """Full-ranking HR@10, NDCG@10, MRR with baselines, parity check and report.

    With ``--hold-out-items``, also on the test cases of the items that split
    held out of training; a model trained on another split is refused.
    """
    import torch

    from encoders.evaluation import load_history, parity_check, run_evaluation
    from encoders.evaluation_report import write_evaluation_report
    from encoders.model import load_model_dir, load_pretrained
    from streams.settings import Settings

    if threads:
        torch.set_num_threads(threads)
    settings = Settings()
    dataset = _dataset(events, items)
    hold_out = _hold_out(dataset, hold_out_items, hold_out_seed)
    trained = {path.name: read_hold_out(path) for path in model}
    try:
        for name, split in trained.items():
            check_hold_out(name, split, hold_out)
    except HoldOutMismatch as exc:
        raise typer.BadParameter(str(exc), param_hint="--hold-out-items") from None
    held_out = hold_out.items if hold_out is not None else frozenset()
    if hold_out is not None:
        # Every item and case, but popularity counted on the training view.
        dataset = evaluation_view(dataset, held_out)
    baselines = _sasrec(dataset, settings.encoder) if sasrec else {}
    models: dict[str, Recommender] = {path.name: load_model_dir(path) for path in model}
    results = run_evaluation(
        dataset,
        models,
        load_pretrained() if zero_shot else None,
        settings.encoder,
        held_out,
        baselines,
    )
    first = next(iter(models.values()))
    parity = None
    if parity_users:
        check = parity_check(first, dataset, settings.encoder, parity_users, settings.state)
        parity = {**vars(check), "ok": check.ok}
    info = {
        "items": len(dataset.items),
        "train": len(dataset.train),
        "valid": len(dataset.valid),
        "test": len(dataset.test),
    }
    report_hold_out = None
    if hold_out is not None:
        info["held-out items"] = len(held_out)
        report_hold_out = {
            "share": hold_out.share,
            "seed": hold_out.seed,
            "items": len(held_out),
            "notes": training_notes(results, trained)
            | ({"sasrec": "no (trained on the training view)"} if sasrec else {}),
        }
    write_evaluation_report(
        out,
        results,
        parity,
        load_history(model[0]),
        info,
        reference=next(iter(models)),
        hold_out=report_hold_out,
    )
    typer.echo((out / "report.md").read_text())
    if parity is not None and not parity["ok"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``train`` and ``evaluate`` commands to the ``recprice`` app."""
    app.command()(train)
    app.command()(evaluate)
