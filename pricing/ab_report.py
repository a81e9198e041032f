"""A/B report of a pricing run: per-arm table, uplift vs control, bounds audit, plots.

Reads an output folder of the demo, a replay or a back-test:

* ``price_updates.jsonl`` (required): price updates, one per offer
  (docs/architecture.md, "Records");
* ``outcomes.jsonl`` (optional): attributed purchases ``{user_id, item_id,
  arm, price, revenue, ts}``. Without it conversion and revenue are unknown
  and the report says so;
* ``shares.jsonl`` (optional): the bandit's traffic shares over time.

Statistics, all at 95%:

* conversion rate = conversions / offers, with a **Wilson** score interval
  (it treats offers as independent; repeated offers to one user are not, so it
  is somewhat narrow);
* revenue per offer, revenue per user and every **uplift vs control**
  (``arm / control - 1``) use a **user-level cluster bootstrap**: users are
  resampled with replacement within each arm (arms independently), the ratio
  statistic is recomputed, and the 2.5/97.5 percentiles of ``n_boot`` draws
  form the interval. Resampling users, not offers, keeps the correlation of
  one user's offers and purchases in the interval. A user whose arm changed
  (the bandit moved a boundary) counts once in each arm they were offered in.

The bounds audit recomputes, from the records alone, how many prices are not
finite and positive or lie outside their record's ``[floor, ceiling]`` (the
effective bounds after every guardrail); it must be 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from pricing.config import CONTROL_ARM

Z_95 = 1.959963984540054
TIME_BINS = 20
PLOT_FILES = ("arms.png", "over_time.png", "shares.png")


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% interval."""

    value: float
    low: float
    high: float

    def fmt(self, spec: str) -> str:
        """Format as ``value [low, high]``; NaN (undefined) renders as an em dash."""
        if math.isnan(self.value):
            return "—"
        return f"{self.value:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


@dataclass(frozen=True)
class ArmSummary:
    """Per-arm results; the outcome fields are None when outcomes are unknown."""

    arm: str
    offers: int
    users: int
    mean_price_ratio: float
    """Mean of price / base_price over the arm's offers."""
    conversions: int | None = None
    revenue: float | None = None
    conversion: Interval | None = None
    revenue_per_offer: Interval | None = None
    revenue_per_user: Interval | None = None
    uplift_conversion: Interval | None = None
    uplift_revenue_per_offer: Interval | None = None
    uplift_revenue_per_user: Interval | None = None


@dataclass
class ABReport:
    """Everything `write_ab_report` wrote, for callers and tests."""

    arms: dict[str, ArmSummary]
    offers: int
    out_of_bounds: int
    has_outcomes: bool
    report_path: Path
    plots: list[Path] = field(default_factory=list)


def wilson(successes: int, trials: int, z: float = Z_95) -> Interval:
    """Return the rate with its Wilson score interval (NaN when there are no trials)."""
    if trials <= 0:
        return Interval(math.nan, math.nan, math.nan)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(p, max(centre - half, 0.0), min(centre + half, 1.0))


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file; lines that are not objects are skipped."""
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj


def _number(value: object) -> float:
    """Return a JSON number as float; anything else is NaN (and fails the bounds audit)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


@dataclass
class _Offers:
    """Columns of the price-update records."""

    arm: list[str] = field(default_factory=list)
    user: list[str] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    out_of_bounds: int = 0


def _read_offers(path: Path) -> _Offers:
    offers = _Offers()
    for record in _jsonl(path):
        price = _number(record.get("price"))
        floor, ceiling = _number(record.get("floor")), _number(record.get("ceiling"))
        # NaN compares false, so a missing or non-numeric bound counts as out of bounds.
        if not (math.isfinite(price) and price > 0 and floor <= price <= ceiling):
            offers.out_of_bounds += 1
        offers.arm.append(str(record.get("arm", "unknown")))
        offers.user.append(str(record.get("user_id", "")))
        offers.price.append(price)
        offers.base.append(_number(record.get("base_price")))
        offers.ts.append(_number(record.get("ts")))
    return offers


@dataclass(frozen=True)
class _Clusters:
    """Per-user totals of one arm: the bootstrap resamples these rows."""

    offers: np.ndarray
    conversions: np.ndarray
    revenue: np.ndarray


def _clusters(offers: _Offers, outcomes: list[dict[str, Any]], arm: str) -> _Clusters:
    rows: dict[str, int] = {}
    counts: list[int] = []
    for offer_arm, user in zip(offers.arm, offers.user, strict=True):
        if offer_arm != arm:
            continue
        row = rows.setdefault(user, len(counts))
        if row == len(counts):
            counts.append(0)
        counts[row] += 1
    conversions = np.zeros(len(counts))
    revenue = np.zeros(len(counts))
    for outcome in outcomes:
        found = rows.get(str(outcome.get("user_id", ""))) if outcome.get("arm") == arm else None
        if found is None:
            continue
        conversions[found] += 1
        amount = _number(outcome.get("revenue", outcome.get("price")))
        revenue[found] += amount if math.isfinite(amount) else 0.0
    return _Clusters(np.asarray(counts, dtype=float), conversions, revenue)


def _bootstrap_stats(clusters: _Clusters, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Return (n_boot, 3) draws of conversion rate, revenue per offer, revenue per user."""
    users = len(clusters.offers)
    out = np.full((n_boot, 3), np.nan)
    if users == 0:
        return out
    # Chunks keep the index matrix small for arms with many users.
    chunk = max(1, 2_000_000 // users)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        picks = rng.integers(0, users, size=(stop - start, users))
        offers = clusters.offers[picks].sum(axis=1)
        out[start:stop, 0] = clusters.conversions[picks].sum(axis=1) / offers
        revenue = clusters.revenue[picks].sum(axis=1)
        out[start:stop, 1] = revenue / offers
        out[start:stop, 2] = revenue / users
    return out


def _interval(point: float, draws: np.ndarray) -> Interval:
    finite = draws[np.isfinite(draws)]
    if not math.isfinite(point) or finite.size == 0:
        return Interval(point, math.nan, math.nan)
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(point, float(low), float(high))


def _ratio(a: float, b: float) -> float:
    return a / b - 1 if b else math.nan


def _summaries(
    offers: _Offers, outcomes: list[dict[str, Any]] | None, n_boot: int, seed: int
) -> dict[str, ArmSummary]:
    arms = sorted(set(offers.arm), key=lambda a: (a != CONTROL_ARM, a))
    arm_array = np.asarray(offers.arm)
    ratio = np.asarray(offers.price) / np.asarray(offers.base)
    basics = {}
    for arm in arms:
        mask = arm_array == arm
        users = len({u for u, a in zip(offers.user, offers.arm, strict=True) if a == arm})
        basics[arm] = (int(mask.sum()), users, float(np.nanmean(ratio[mask])))
    if outcomes is None:
        return {arm: ArmSummary(arm, *basics[arm]) for arm in arms}

    rng = np.random.default_rng(seed)
    clusters = {arm: _clusters(offers, outcomes, arm) for arm in arms}
    draws = {arm: _bootstrap_stats(clusters[arm], n_boot, rng) for arm in arms}
    points = {}
    for arm in arms:
        c = clusters[arm]
        n, conv, rev, users = c.offers.sum(), c.conversions.sum(), c.revenue.sum(), len(c.offers)
        points[arm] = np.array(
            [
                conv / n if n else math.nan,
                rev / n if n else math.nan,
                rev / users if users else math.nan,
            ]
        )
    control = CONTROL_ARM if CONTROL_ARM in arms else None
    out = {}
    for arm in arms:
        c = clusters[arm]
        p, d = points[arm], draws[arm]
        uplifts: list[Interval | None] = [None, None, None]
        if control is not None and arm != control:
            with np.errstate(divide="ignore", invalid="ignore"):
                relative = d / draws[control] - 1
            uplifts = [
                _interval(_ratio(p[k], points[control][k]), relative[:, k]) for k in range(3)
            ]
        out[arm] = ArmSummary(
            arm,
            *basics[arm],
            conversions=int(c.conversions.sum()),
            revenue=float(c.revenue.sum()),
            conversion=wilson(int(c.conversions.sum()), int(c.offers.sum())),
            revenue_per_offer=_interval(p[1], d[:, 1]),
            revenue_per_user=_interval(p[2], d[:, 2]),
            uplift_conversion=uplifts[0],
            uplift_revenue_per_offer=uplifts[1],
            uplift_revenue_per_user=uplifts[2],
        )
    return out


def _time_bins(ts: np.ndarray) -> np.ndarray:
    """Bin edges at quantiles of the offer times, so every bin holds similar traffic."""
    finite = ts[np.isfinite(ts)]
    if finite.size == 0:
        return np.array([0.0, 1.0])
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, TIME_BINS + 1)))
    if edges.size < 2:
        edges = np.array([edges[0], edges[0] + 1])
    return edges


def _time_unit(span_ms: float) -> tuple[str, float]:
    """Pick the time unit of the x axis: a back-test spans months, a live demo seconds."""
    for name, unit_ms in (("days", 86_400_000.0), ("hours", 3_600_000.0), ("minutes", 60_000.0)):
        if span_ms >= 2 * unit_ms:
            return name, unit_ms
    return "seconds", 1000.0


def _plot(
    out_dir: Path,
    arms: dict[str, ArmSummary],
    offers: _Offers,
    outcomes: list[dict[str, Any]] | None,
    shares: list[dict[str, Any]],
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(arms)
    paths = []

    # Per-arm bars: offers, and (with outcomes) conversion and revenue per offer with CIs.
    panels = 3 if outcomes is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.6), squeeze=False)
    axes[0][0].bar(names, [arms[a].offers for a in names], color="tab:gray")
    axes[0][0].set_title("offers per arm")
    if outcomes is not None:
        for ax, key, title in (
            (axes[0][1], "conversion", "conversion rate (Wilson 95%)"),
            (axes[0][2], "revenue_per_offer", "revenue per offer (bootstrap 95%)"),
        ):
            values = [getattr(arms[a], key) for a in names]
            centres = [v.value for v in values]
            # A percentile interval can sit a rounding error off its point: clip at 0.
            errors = np.nan_to_num(
                np.clip(
                    [[v.value - v.low for v in values], [v.high - v.value for v in values]],
                    0.0,
                    None,
                )
            )
            ax.bar(names, centres, yerr=errors, capsize=6, color="tab:blue")
            ax.set_title(title)
    fig.tight_layout()
    paths.append(out_dir / PLOT_FILES[0])
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    # Per time bin: traffic share per arm, and with outcomes conversion and revenue per offer.
    ts = np.asarray(offers.ts)
    edges = _time_bins(ts)
    centres = (edges[:-1] + edges[1:]) / 2
    unit_name, unit_ms = _time_unit(edges[-1] - edges[0])
    elapsed = (centres - edges[0]) / unit_ms
    offer_bin = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, len(edges) - 2)
    arm_array = np.asarray(offers.arm)
    total = np.bincount(offer_bin, minlength=len(centres)).astype(float)
    rows = 3 if outcomes is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2.8 * rows), sharex=True, squeeze=False)
    for arm in names:
        mask = arm_array == arm
        count = np.bincount(offer_bin[mask], minlength=len(centres)).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            axes[0][0].plot(elapsed, count / total, marker=".", label=arm)
        if outcomes is None:
            continue
        arm_outcomes = [o for o in outcomes if o.get("arm") == arm]
        out_ts = np.asarray([_number(o.get("ts")) for o in arm_outcomes])
        out_rev = np.asarray([_number(o.get("revenue", o.get("price"))) for o in arm_outcomes])
        out_bin = np.clip(np.searchsorted(edges, out_ts, side="right") - 1, 0, len(edges) - 2)
        conversions = np.bincount(out_bin, minlength=len(centres)).astype(float)
        revenue = np.bincount(out_bin, weights=np.nan_to_num(out_rev), minlength=len(centres))
        with np.errstate(divide="ignore", invalid="ignore"):
            axes[1][0].plot(elapsed, conversions / count, marker=".", label=arm)
            axes[2][0].plot(elapsed, revenue / count, marker=".", label=arm)
    axes[0][0].set_ylabel("share of offers")
    axes[0][0].set_title("per time bin (equal-traffic bins)")
    axes[0][0].legend(loc="best", fontsize="small")
    if outcomes is not None:
        axes[1][0].set_ylabel("conversion rate")
        axes[2][0].set_ylabel("revenue / offer")
    axes[-1][0].set_xlabel(f"{unit_name} since first offer")
    fig.tight_layout()
    paths.append(out_dir / PLOT_FILES[1])
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    if shares:
        fig, ax = plt.subplots(figsize=(8, 3.2))
        x = [float(s.get("offers", i)) for i, s in enumerate(shares)]
        for arm in sorted({a for s in shares for a in s.get("shares", {})}):
            ax.step(
                x, [s.get("shares", {}).get(arm, math.nan) for s in shares], where="post", label=arm
            )
        ax.set_xlabel("offers made")
        ax.set_ylabel("traffic share")
        ax.set_title("bandit traffic shares over the run")
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        paths.append(out_dir / PLOT_FILES[2])
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def _engine_audit(input_dir: Path) -> list[str]:
    """Lines on the back-test engine's own audit (``summary.json``), which also checks steps."""
    path = input_dir / "summary.json"
    if not path.is_file():
        return []
    try:
        result = orjson.loads(path.read_bytes())["result"]
        checked, broken = int(result["offers"]), int(result["out_of_bounds"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return ["Back-test `summary.json` is unreadable: no engine audit.", ""]
    return [
        f"Back-test engine audit (item floor/ceiling, max deviation, max step vs the previous "
        f"price shown, decision band) over {checked:,} offers: **{broken}** "
        + ("(OK)" if broken == 0 else f"(VIOLATION: {result.get('violations')})"),
        "",
    ]


def _bandit_verdict(
    arms: dict[str, ArmSummary], first: dict[str, float], late_mean: dict[str, float]
) -> list[str]:
    """Say whether the bandit moved traffic toward the arm that earned most per offer."""
    earned = {
        name: a.revenue_per_offer.value
        for name, a in arms.items()
        if name != CONTROL_ARM and a.revenue_per_offer is not None and name in late_mean
    }
    if len(earned) < 2:
        return []
    best = max(earned, key=earned.__getitem__)
    gained = late_mean[best] - first.get(best, math.nan)
    favoured = max(earned, key=late_mean.__getitem__) == best
    moved = "moved traffic toward" if gained > 0 and favoured else "did not clearly favour"
    return [
        "",
        f"Best non-control arm by revenue per offer: **{best}** "
        f"({earned[best]:.4f}); over the second half of the run the bandit {moved} it "
        f"({gained:+.3f} share vs its first share).",
    ]


def _markdown(
    input_dir: Path,
    arms: dict[str, ArmSummary],
    offers: _Offers,
    has_outcomes: bool,
    shares: list[dict[str, Any]],
    plots: Sequence[Path],
    n_boot: int,
) -> str:
    lines = [
        "# A/B report: personalized pricing",
        "",
        f"Input: `{input_dir}` — {len(offers.arm):,} offers, "
        f"{len(set(offers.user)):,} users, {len(arms)} arms.",
        "",
        "## Bounds audit",
        "",
        f"Offers outside their record's [floor, ceiling] (or not finite and positive): "
        f"**{offers.out_of_bounds}** "
        + ("(OK)" if offers.out_of_bounds == 0 else "(VIOLATION: must be 0)"),
        "",
        *_engine_audit(input_dir),
        "## Per arm",
        "",
    ]
    if not has_outcomes:
        lines += [
            "No `outcomes.jsonl` in the input: **conversion and revenue are unknown** "
            "(the demo publishes offers only). Offers per arm:",
            "",
            "| arm | offers | users | mean price / base |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {a.arm} | {a.offers:,} | {a.users:,} | {a.mean_price_ratio:.3f} |"
            for a in arms.values()
        ]
    else:
        lines += [
            "| arm | offers | users | mean price / base | conversions | conversion rate "
            "| revenue / offer | revenue / user |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for a in arms.values():
            assert a.conversion and a.revenue_per_offer and a.revenue_per_user
            lines.append(
                f"| {a.arm} | {a.offers:,} | {a.users:,} | {a.mean_price_ratio:.3f} "
                f"| {a.conversions:,} | {a.conversion.fmt('.2%')} "
                f"| {a.revenue_per_offer.fmt('.4f')} | {a.revenue_per_user.fmt('.2f')} |"
            )
        lines += [
            "",
            "## Uplift vs control",
            "",
            "| arm | conversion rate | revenue / offer | revenue / user |",
            "|---|---:|---:|---:|",
        ]
        for a in arms.values():
            if a.uplift_conversion is None:
                continue
            assert a.uplift_revenue_per_offer and a.uplift_revenue_per_user
            lines.append(
                f"| {a.arm} | {a.uplift_conversion.fmt('+.1%')} "
                f"| {a.uplift_revenue_per_offer.fmt('+.1%')} "
                f"| {a.uplift_revenue_per_user.fmt('+.1%')} |"
            )
    if shares:
        first, last = shares[0].get("shares", {}), shares[-1].get("shares", {})
        lines += [
            "",
            "## Traffic shares (bandit)",
            "",
            f"{len(shares) - 1} bandit updates; shares of all traffic (control is fixed).",
            "",
            "| arm | first share | mean share, second half | last share |",
            "|---|---:|---:|---:|",
        ]
        late = shares[len(shares) // 2 :]
        late_mean = {
            arm: float(np.mean([s.get("shares", {}).get(arm, math.nan) for s in late]))
            for arm in sorted(set(first) | set(last))
        }
        lines += [
            f"| {arm} | {first.get(arm, math.nan):.3f} | {late_mean[arm]:.3f} "
            f"| {last.get(arm, math.nan):.3f} |"
            for arm in late_mean
        ]
        lines += _bandit_verdict(arms, first, late_mean)
    lines += ["", "## Plots", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    lines += [
        "",
        "## Method",
        "",
        "Conversion rate: conversions / offers with a Wilson 95% interval (offers treated as "
        "independent). Revenue per offer, revenue per user and uplifts (arm / control - 1): "
        f"user-level cluster bootstrap, {n_boot} resamples per arm, 2.5/97.5 percentiles. "
        "Over-time plots use bins with equal total traffic.",
        "",
    ]
    return "\n".join(lines)


def write_ab_report(
    input_dir: Path, out_dir: Path, *, n_boot: int = 2000, seed: int = 0
) -> ABReport:
    """Read a pricing output folder and write ``report.md`` and PNG plots under ``out_dir``."""
    updates = input_dir / "price_updates.jsonl"
    if not updates.is_file():
        raise FileNotFoundError(f"{updates} not found")
    offers = _read_offers(updates)
    outcomes_path = input_dir / "outcomes.jsonl"
    outcomes = list(_jsonl(outcomes_path)) if outcomes_path.is_file() else None
    shares_path = input_dir / "shares.jsonl"
    shares = list(_jsonl(shares_path)) if shares_path.is_file() else []
    arms = _summaries(offers, outcomes, n_boot, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plot(out_dir, arms, offers, outcomes, shares) if offers.arm else []
    report_path = out_dir / "report.md"
    report_path.write_text(
        _markdown(input_dir, arms, offers, outcomes is not None, shares, plots, n_boot)
    )
    return ABReport(
        arms=arms,
        offers=len(offers.arm),
        out_of_bounds=offers.out_of_bounds,
        has_outcomes=outcomes is not None,
        report_path=report_path,
        plots=plots,
    )
