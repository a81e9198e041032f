"""``recprice train`` and ``recprice evaluate``: fine-tune and measure the recommender.

Both read any ``events.jsonl`` + ``items.jsonl`` in our record contracts and
replay them through the stream's state and summary code, with the user-state
shape from the same settings object the worker uses (``RECPRICE__STATE__*``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from encoders.dataset import Dataset, load_dataset
from encoders.train_config import TrainConfig

if TYPE_CHECKING:
    from encoders.model import Recommender

# The command's defaults are the config's: one source for the recipe.
DEFAULTS = TrainConfig()
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


def train(
    events: EventsFile,
    items: ItemsFile,
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    base: Annotated[
        Path | None,
        typer.Option(help="Model directory to start from (default: bundled MiniLM)."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Upper bound on epochs.")] = DEFAULTS.epochs,
    patience: Annotated[
        int, typer.Option(help="Early-stopping patience (epochs).")
    ] = DEFAULTS.patience,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = DEFAULTS.batch_size,
    encoder_lr: Annotated[float, typer.Option(help="Encoder learning rate.")] = DEFAULTS.encoder_lr,
    head_lr: Annotated[float, typer.Option(help="Head learning rate.")] = DEFAULTS.head_lr,
    train_layers: Annotated[
        int, typer.Option(help="Top user-tower layers to fine-tune.")
    ] = DEFAULTS.train_layers,
    item_layers: Annotated[
        int, typer.Option(help="Top item-tower layers to fine-tune; 0 = item tower frozen.")
    ] = DEFAULTS.item_train_layers,
    item_refresh: Annotated[
        int, typer.Option(help="Steps between recomputing every cached item vector.")
    ] = DEFAULTS.item_refresh,
    item_negatives: Annotated[
        int, typer.Option(help="Sampled negatives per step in the item tower's loss.")
    ] = DEFAULTS.item_negatives,
    max_length: Annotated[
        int, typer.Option(help="Token budget of a summary.")
    ] = DEFAULTS.user_max_length,
    per_user: Annotated[
        int, typer.Option(help="Most recent training examples per user; 0 = all.")
    ] = DEFAULTS.max_train_per_user,
    length_buckets: Annotated[
        int,
        typer.Option(help="Batches per length-sorted run (less padding per step); 0 = off."),
    ] = DEFAULTS.length_buckets,
    loss: Annotated[
        str, typer.Option(help="full | sampled (in-batch + sampled, log-Q).")
    ] = DEFAULTS.loss,
    negatives: Annotated[
        int, typer.Option(help="Sampled negatives per step.")
    ] = DEFAULTS.negatives,
    rating_weight: Annotated[
        float, typer.Option(help="Weight of MSE on ratings.")
    ] = DEFAULTS.rating_weight,
    item_ids: Annotated[bool, typer.Option(help="Learned item-ID embedding.")] = DEFAULTS.item_ids,
    item_bias: Annotated[bool, typer.Option(help="Learned item bias.")] = DEFAULTS.item_bias,
    history: Annotated[
        int, typer.Option(help="Recent items pooled into the user vector; 0 = summary only.")
    ] = DEFAULTS.history,
    id_dropout: Annotated[
        float, typer.Option(help="Share of steps trained with the item-ID features off.")
    ] = DEFAULTS.id_dropout,
    seed: Annotated[int, typer.Option(help="Random seed.")] = DEFAULTS.seed,
    threads: Annotated[
        int, typer.Option(help="torch CPU threads; 0 = default.")
    ] = DEFAULTS.threads,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = DEFAULTS.device,
    precision: Annotated[
        str, typer.Option(help="auto (bf16 where the hardware has it) | bf16 | fp32")
    ] = DEFAULTS.precision,
) -> None:
    """Fine-tune the two-tower recommender and write a model directory."""
    # torch and transformers load here, not when the command line starts.
    from encoders.model import load_model_dir, load_pretrained
    from encoders.training import save_trained
    from encoders.training import train as fit

    try:
        config = TrainConfig.model_validate(
            {
                "epochs": epochs,
                "patience": patience,
                "batch_size": batch_size,
                "encoder_lr": encoder_lr,
                "head_lr": head_lr,
                "train_layers": train_layers,
                "item_train_layers": item_layers,
                "item_refresh": item_refresh,
                "item_negatives": item_negatives,
                "user_max_length": max_length,
                "max_train_per_user": per_user,
                "length_buckets": length_buckets,
                "loss": loss,
                "negatives": negatives,
                "rating_weight": rating_weight,
                "item_ids": item_ids,
                "item_bias": item_bias,
                "id_dropout": id_dropout,
                "history": history,
                "seed": seed,
                "threads": threads,
                "device": device,
                "precision": precision,
            }
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    dataset = _dataset(events, items)
    result = fit(load_model_dir(base) if base else load_pretrained(), dataset, config)
    save_trained(result, dataset, config, out)
    typer.echo(
        f"best epoch {result.best_epoch}: valid NDCG@10 {result.best_valid_ndcg:.4f}, "
        f"{result.seconds:.0f} s; model {result.model.model_version} written to {out}"
    )


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
) -> None:
    """Full-ranking HR@10, NDCG@10, MRR with baselines, parity check and report."""
    import torch

    from encoders.evaluation import load_history, parity_check, run_evaluation
    from encoders.model import load_model_dir, load_pretrained
    from encoders.report import write_report
    from streams.settings import Settings

    if threads:
        torch.set_num_threads(threads)
    settings = Settings()
    dataset = _dataset(events, items)
    models: dict[str, Recommender] = {path.name: load_model_dir(path) for path in model}
    results = run_evaluation(
        dataset, models, load_pretrained() if zero_shot else None, settings.encoder
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
    write_report(out, results, parity, load_history(model[0]), info, reference=next(iter(models)))
    typer.echo((out / "report.md").read_text())
    if parity is not None and not parity["ok"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``train`` and ``evaluate`` commands to the ``recprice`` app."""
    app.command()(train)
    app.command()(evaluate)
