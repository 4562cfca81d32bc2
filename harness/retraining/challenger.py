"""A challenger from a training set: the champion's recipe (trainer, parameters, seed, feature order, formats)
trained on the set's training rows, every format exported and held to the model by the parity gate on the set's
holdout rows (which become the bundle's reference rows), then judged against the champion on the same holdout.

The challenger's model id hashes the training set's content with the recipe and the exporter code: the same
snapshot trains the same model (`harness retrain --from-snapshot FILE` does it again, offline).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from adapters.bundle import Bundle
from adapters.errors import AdapterError
from harness.modelbuild.errors import BuildError
from harness.modelbuild.parity import verify_bundle
from harness.modelbuild.pipeline import Recipe, build_bundle, code_hash, lib_versions
from harness.retraining.errors import RetrainError
from harness.retraining.gate import Verdict, judge
from harness.retraining.trainingset import TrainingSet


def challenger_id(ts: TrainingSet, recipe: Recipe) -> tuple[str, str]:
    """(model id, cache key) of the model `recipe` trains on `ts`."""
    h = hashlib.sha256(ts.content_sha256().encode())
    h.update(json.dumps(asdict(recipe), sort_keys=True).encode())
    h.update(code_hash().encode())
    h.update(json.dumps(lib_versions(), sort_keys=True).encode())
    key = h.hexdigest()
    return f"{recipe.trainer}-{recipe.algorithm}-r{key[:11]}", key


def train_challenger(
    ts: TrainingSet, recipe: Recipe, name: str, out: Path, log: Callable[[str], None], snapshot: Path | None = None
) -> Path:
    """The challenger's bundle folder (`out/<model id>`); built once per training set and recipe."""
    model_id, key = challenger_id(ts, recipe)
    final = out / model_id
    if final.exists():
        try:
            verify_bundle(final)
            return final
        except AdapterError as e:
            log(f"retrain: the bundle {final} is not usable ({e}); building it again")
    work = final.with_name(model_id + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    h = ts.holdout
    data = (ts.X[~h], ts.y[~h], ts.X[h], ts.y[h])
    extra = {"training_set": {**ts.meta, "snapshot": str(snapshot) if snapshot else None}}
    try:
        build_bundle(work, name, model_id, key, recipe, data, list(ts.feature_names), log, extra=extra)
    except BuildError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return final


def champion_scores(champion: Bundle, X: np.ndarray) -> np.ndarray:
    """The champion's probabilities for X, by its reference evaluator (the native model)."""
    from adapters.registry import adapter_class

    with adapter_class("native").load(champion) as a:
        return np.asarray(a.predict(X), dtype=np.float64)


def evaluate(
    ts: TrainingSet, champion: Bundle, challenger: Path, margin: float, logloss_slack: float, rounds: int
) -> Verdict:
    """Champion against challenger on the training set's holdout."""
    if list(champion.feature_names) != list(ts.feature_names):
        raise RetrainError("the champion's features are not the training set's (another model?): nothing to compare")
    Xh, yh = ts.X[ts.holdout], ts.y[ts.holdout]
    _, _, p_new = Bundle.open(challenger).reference()
    return judge(yh, champion_scores(champion, Xh), p_new, margin, logloss_slack, rounds)
