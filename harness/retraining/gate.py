"""The champion/challenger gate: both models score the same holdout (drawn from the same window as the training
rows, never trained on); AUC and log-loss each with a 95% interval, and the challenger's gain over the champion
with a paired interval (stratified bootstrap: the same resampled rows for both models, positives and negatives
resampled apart so every resample has both classes).

The challenger is published only when
    its AUC gain is at least `margin`, and the paired interval's lower bound is above 0 (the gain is not noise),
    and its log-loss is not worse than the champion's by more than `logloss_slack`.
Otherwise the champion stays, and the verdict says which condition failed, with the figures.

What the gate can catch: labels corrupted at random (flipped for a share of the records) add noise to the
training rows and to the holdout alike; the challenger learns a weaker ranking and its AUC gain on the holdout is
not there, so it is refused. What it cannot: labels changed systematically in the same way in the training rows
and the holdout (a holdout from the same window shares their bias), see docs/closed-loop.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

EPS = 1e-15


@dataclass
class Figure:
    value: float
    lo: float
    hi: float

    def text(self, digits: int = 4) -> str:
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


@dataclass
class Verdict:
    rows: int
    positives: int
    champion_auc: Figure
    challenger_auc: Figure
    auc_gain: Figure
    champion_logloss: Figure
    challenger_logloss: Figure
    logloss_change: Figure
    margin: float
    logloss_slack: float
    publish: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _auc_rows(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of `scores` (shape (k, n)) against the labels `y` (shape (k, n)); ties count half."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=1)
    pos = y.astype(bool)
    n1 = pos.sum(axis=1)
    n0 = y.shape[1] - n1
    return (np.where(pos, ranks, 0.0).sum(axis=1) - n1 * (n1 + 1) / 2) / np.maximum(n1 * n0, 1)


def _logloss_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p), axis=-1)


def _figure(value: float, samples: np.ndarray) -> Figure:
    lo, hi = np.quantile(samples, [0.025, 0.975])
    return Figure(round(float(value), 5), round(float(lo), 5), round(float(hi), 5))


def judge(
    y: np.ndarray,
    p_champion: np.ndarray,
    p_challenger: np.ndarray,
    margin: float = 0.01,
    logloss_slack: float = 0.005,
    rounds: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Champion against challenger on the holdout (labels `y`, each model's probabilities)."""
    y = np.asarray(y, dtype=np.int64)
    a, b = np.asarray(p_champion, dtype=np.float64), np.asarray(p_challenger, dtype=np.float64)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) < 2 or len(neg) < 2:
        raise ValueError(f"the holdout needs both classes ({len(pos)} positives, {len(neg)} negatives)")
    rng = np.random.default_rng(seed)
    idx = np.hstack([rng.choice(pos, (rounds, len(pos))), rng.choice(neg, (rounds, len(neg)))])
    yb = y[idx]
    auc_a = _auc_rows(yb, a[idx])
    auc_b = _auc_rows(yb, b[idx])
    ll_a = _logloss_rows(yb, a[idx])
    ll_b = _logloss_rows(yb, b[idx])
    full_a = float(_auc_rows(y[None, :], a[None, :])[0])
    full_b = float(_auc_rows(y[None, :], b[None, :])[0])
    full_ll_a, full_ll_b = float(_logloss_rows(y, a)), float(_logloss_rows(y, b))
    gain = _figure(full_b - full_a, auc_b - auc_a)
    change = _figure(full_ll_b - full_ll_a, ll_b - ll_a)
    if gain.value < margin:
        publish, reason = False, f"the challenger's AUC gain {gain.text()} is below the margin {margin:g}"
    elif gain.lo <= 0:
        publish, reason = False, f"the challenger's AUC gain {gain.text()} is within noise (its interval reaches 0)"
    elif change.value > logloss_slack:
        publish, reason = False, f"the challenger's log-loss is worse by {change.text()} (allowed {logloss_slack:g})"
    else:
        publish, reason = True, f"the challenger's AUC gain {gain.text()} clears the margin {margin:g}"
    return Verdict(
        rows=len(y),
        positives=len(pos),
        champion_auc=_figure(full_a, auc_a),
        challenger_auc=_figure(full_b, auc_b),
        auc_gain=gain,
        champion_logloss=_figure(full_ll_a, ll_a),
        challenger_logloss=_figure(full_ll_b, ll_b),
        logloss_change=change,
        margin=margin,
        logloss_slack=logloss_slack,
        publish=publish,
        reason=reason,
    )
