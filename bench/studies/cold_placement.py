"""Where should items without an ID row sit among the trained ones? A study on a held-out model.

Not something we serve: it scores the test split of a model trained with
``--hold-out-items`` in several ways that differ only in the scores of the
held-out (cold) items, and prints NDCG@10 / HR@10 on every test case and on
the cold-target cases (docs/model.md, "Cold items: the held-out split"):

* the hybrid as served (cold items: text vector only, no ID vector or bias);
* every item with the ID features off;
* the cold items ranked among themselves only (how well the text path orders them);
* the hybrid with a constant added to every cold item's logit;
* a "fair" placement: per user, the cold items get the hybrid logit that a
  trained item with the same text logit has on average (a least-squares line
  over the trained items).

    python -m bench.studies.cold_placement --events data/ml/events.jsonl \\
        --items data/ml/items.jsonl --model models/ml-cold --hold-out-items 0.1
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from encoders.dataset import evaluation_view, load_dataset
from encoders.evaluation import make_ranker
from encoders.hold_out import check_hold_out, pick_hold_out, read_hold_out
from encoders.metrics import mask_rows, summarize, target_ranks
from encoders.model import history_rows, load_model_dir
from streams.settings import Settings


def fair_line(text: torch.Tensor, hybrid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row least-squares ``hybrid ~ a + b * text``: (a, b), each (rows, 1)."""
    tm, hm = text.mean(1, keepdim=True), hybrid.mean(1, keepdim=True)
    slope = ((text - tm) * (hybrid - hm)).sum(1, keepdim=True) / (
        ((text - tm) ** 2).sum(1, keepdim=True).clamp(min=1e-12)
    )
    return hm - slope * tm, slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--items", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--hold-out-items", type=float, default=0.1)
    parser.add_argument("--hold-out-seed", type=int, default=0)
    parser.add_argument("--shifts", default="0.25,0.5,1,2")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings()
    dataset = load_dataset(args.events, args.items, settings.state)
    split = pick_hold_out(dataset, args.hold_out_items, args.hold_out_seed)
    if split is None:
        raise SystemExit("the study needs a held-out split (--hold-out-items > 0)")
    check_hold_out(args.model.name, read_hold_out(args.model), split)
    view = evaluation_view(dataset, split.items)
    model = load_model_dir(args.model)
    head = model.head
    ranker = make_ranker(model, view, settings.encoder, torch.device("cpu"))
    assert ranker.item_vectors is not None and ranker.item_rows is not None
    cases = list(view.test)
    items, rows = ranker.item_vectors, ranker.item_rows
    # The evaluator's own scores, as `recprice evaluate` ranks them.
    hybrid = ranker.scores(cases)
    ids_off = replace(ranker, use_item_features=False).scores(cases)
    recent = history_rows([e.recent for e in cases], view.rows, head.history)
    with torch.no_grad():  # the hybrid's text part: its user vector against text alone
        users = head.with_history(ranker.users(cases), items, rows, recent)
        text = users @ items.T * head.log_inv_temperature.exp()
    cold = rows < 0
    targets = torch.tensor([view.rows[e.target] for e in cases])
    cold_case = cold[targets].tolist()
    seen = [[view.rows[i] for i in e.history if i in view.rows] for e in cases]

    def line(name: str, scores: torch.Tensor, *, every_case: bool = True) -> None:
        scores = scores.clone()
        mask_rows(scores, seen)
        ranks = target_ranks(scores, targets).tolist()
        every = summarize(ranks)
        on_cold = summarize([r for r, c in zip(ranks, cold_case, strict=True) if c])
        whole = f"{every['ndcg@10']:.4f} | {every['hr@10']:.4f}" if every_case else "- | -"
        print(f"| {name} | {whole} | {on_cold['ndcg@10']:.4f} | {on_cold['hr@10']:.4f} |")

    print(f"{len(cases)} test cases, {sum(cold_case)} on {int(cold.sum())} cold items\n")
    print("| scores | all NDCG@10 | all HR@10 | cold NDCG@10 | cold HR@10 |")
    print("|---|---:|---:|---:|---:|")
    line("hybrid, as served", hybrid)
    line("ID features off for every item", ids_off)
    among_cold = hybrid.masked_fill(~cold, float("-inf"))
    line("hybrid, cold items ranked among themselves only", among_cold, every_case=False)
    for shift in (float(s) for s in args.shifts.split(",")):
        line(f"hybrid, cold items +{shift:g}", hybrid + shift * cold)
    warm = ~cold
    intercept, slope = fair_line(text[:, warm], hybrid[:, warm])
    fair = torch.where(cold, intercept + slope * text, hybrid)
    line("hybrid, cold items at a trained item's mean for their text", fair)


if __name__ == "__main__":
    main()
