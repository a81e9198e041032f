"""Evaluation outputs: ``metrics.json``, ``report.md`` and PNG plots (matplotlib Agg)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402

METRICS = ("ndcg@10", "hr@10", "mrr")


def _interval(values: dict[str, float], metric: str) -> str:
    return f"[{values[metric + '_lo']:.4f}, {values[metric + '_hi']:.4f}]"


def metrics_table(
    results: dict[str, dict[str, dict[str, float]]],
    split: str,
    notes: dict[str, str] | None = None,
    note_title: str = "",
) -> str:
    """Markdown table of every model's metrics on one split, with intervals where present.

    With ``notes``, a last column titled ``note_title`` holds each row's note.
    """
    ci = f"{split}_ci95"
    with_ci = all(ci in splits for splits in results.values())
    head = " | 95% CI" if with_ci else ""
    extra = f" {note_title} |" if notes is not None else ""
    lines = [
        f"| model | NDCG@10{head} | HR@10{head} | MRR | cases |{extra}",
        "|---|" + "---:|" * (5 if with_ci else 3) + "---:|" + ("---|" if extra else ""),
    ]
    for name, splits in results.items():
        m = splits[split]
        cells = [f"{m['ndcg@10']:.4f}", f"{m['hr@10']:.4f}"]
        if with_ci:
            intervals = [_interval(splits[ci], "ndcg@10"), _interval(splits[ci], "hr@10")]
            cells = [cells[0], intervals[0], cells[1], intervals[1]]
        note = f" {notes.get(name, '')} |" if notes is not None else ""
        lines.append(f"| {name} | {' | '.join(cells)} | {m['mrr']:.4f} | {int(m['cases'])} |{note}")
    return "\n".join(lines)


def difference_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table of each row's paired test difference from the reference model."""
    lines = [
        "| model | NDCG@10 diff | 95% CI | HR@10 diff | 95% CI | MRR diff | 95% CI |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, splits in results.items():
        d = splits.get("test_diff")
        if d is not None:
            cells = [f"{d[m]:+.4f} | {_interval(d, m)}" for m in ("ndcg@10", "hr@10", "mrr")]
            lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def plot_metrics(results: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """Plot each metric on the test split as grouped bars, one bar per model."""
    names = list(results)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(names)), 4.0))
    width = 0.8 / len(METRICS)
    for j, metric in enumerate(METRICS):
        values = [results[n]["test"][metric] for n in names]
        ax.bar([i + j * width for i in range(len(names))], values, width, label=metric)
    ax.set_xticks([i + width for i in range(len(names))], names, rotation=20, ha="right")
    ax.set_title("Test split, full ranking")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(history: dict[str, Any], path: Path) -> None:
    """Training loss and validation NDCG@10 per epoch."""
    epochs = history["epochs"]
    xs = [e["epoch"] for e in epochs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    left.plot(xs, [e["loss"] for e in epochs], marker="o")
    left.set_title("training loss")
    left.set_xlabel("epoch")
    right.plot(xs, [e["valid_ndcg"] for e in epochs], marker="o", color="tab:green")
    right.set_title("validation NDCG@10")
    right.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _held_out_section(
    results: dict[str, dict[str, dict[str, float]]], hold_out: dict[str, Any]
) -> str:
    cases = int(next(iter(results.values()))["test_held_out"]["cases"])
    return (
        "## Test, held-out items (never in training)\n\n"
        f"{hold_out['items']} items held out of training (share {hold_out['share']}, "
        f"seed {hold_out['seed']}); the {cases} test cases whose target is one of them, "
        "each ranked over the whole catalogue, held-out items included. Popularity counts "
        "come from the training examples, so held-out items have none.\n\n"
        + metrics_table(results, "test_held_out", hold_out["notes"], "saw them in training")
    )


def write_evaluation_report(
    out: Path,
    results: dict[str, dict[str, dict[str, float]]],
    parity: dict[str, Any] | None,
    history: dict[str, Any] | None,
    dataset_info: dict[str, Any],
    reference: str | None = None,
    hold_out: dict[str, Any] | None = None,
) -> None:
    """Write ``metrics.json``, ``report.md``, ``metrics.png`` and ``training.png``.

    ``reference`` names the model whose paired differences ``results`` holds
    (``test_diff``, from :func:`encoders.evaluation.with_intervals`).
    ``hold_out`` describes a held-out split (``share``, ``seed``, ``items``:
    how many, ``notes``: for each row whether it saw them in training); the
    report then has the held-out items' section, from ``test_held_out``.
    """
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "dataset": dataset_info,
        "models": results,
        "reference": reference,
        "parity": parity,
        "training": history,
        "hold_out": hold_out,
    }
    (out / "metrics.json").write_text(json.dumps(payload, indent=2))
    plot_metrics(results, out / "metrics.png")
    sections = [
        "# Evaluation",
        "Full ranking over all items; items the user interacted with before are excluded. "
        "Per user, last interaction = test, second to last = validation.",
        "Dataset: " + ", ".join(f"{k} {v}" for k, v in dataset_info.items()),
        "## Test\n\n"
        + metrics_table(results, "test")
        + "\n\n95% CI: percentile bootstrap over the test users (1,000 draws).",
        "## Validation\n\n" + metrics_table(results, "valid"),
        "![metrics](metrics.png)",
    ]
    if hold_out is not None:
        sections.insert(-1, _held_out_section(results, hold_out))
    if reference is not None:
        sections.insert(
            4,
            f"## Test, paired differences from {reference}\n\n"
            + difference_table(results)
            + "\n\nSame users resampled for both models in each draw; an interval "
            "that holds 0 is no evidence of a difference.",
        )
    if history is not None:
        plot_training(history, out / "training.png")
        sections.append(
            f"## Training\n\nBest epoch {history['best_epoch']} of {len(history['epochs'])}, "
            f"{history['seconds']:.0f} s on {history['device']} "
            f"({history['threads']} threads), {history['train_examples']} training examples."
            "\n\n![training](training.png)"
        )
    if parity is not None:
        sections.append(
            "## Train/serve parity\n\n"
            f"{parity['same_top10']}/{parity['users']} users with the same top-10 from the "
            f"stream's Ranker and the evaluator, {parity['same_summary']}/{parity['users']} "
            f"identical summaries, max score difference {parity['max_score_diff']:.2e}: "
            f"**{'ok' if parity['ok'] else 'MISMATCH'}**."
        )
    (out / "report.md").write_text("\n\n".join(sections) + "\n")
