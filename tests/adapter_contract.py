"""What the tests of every format hold its adapter to (adapters/base.py): it scores the bundle's reference rows as
the build did (a batch, one row as 1-D, a batch of one), a bad batch is refused with one BadInput and costs nothing,
a closed adapter refuses to predict (closing twice is fine), and a model file changed after the build is refused
when the bundle is loaded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.errors import AdapterClosed, BadInput, BundleError


def scores_reference(adapter: Any, atol: float) -> None:
    """The adapter's predictions of its bundle's reference rows are the build's reference predictions within
    `atol`: as one batch, one row given as 1-D, and a batch of one row."""
    Xr, _, p = adapter.bundle.reference()
    np.testing.assert_allclose(adapter.predict(Xr), p, rtol=0, atol=atol, equal_nan=True)
    np.testing.assert_allclose(adapter.predict(Xr[0]), p[:1], rtol=0, atol=atol, equal_nan=True)
    np.testing.assert_allclose(adapter.predict(Xr[5:6]), p[5:6], rtol=0, atol=atol, equal_nan=True)


def refuses_bad_input_then_closes(adapter: Any, good: np.ndarray, bad: Mapping[str, Any]) -> None:
    """Each batch of `bad` raises BadInput matching its key; `good` still scores after them (one output row per
    input row); once closed, the adapter raises AdapterClosed; a second close is a no-op."""
    for match, batch in bad.items():
        with pytest.raises(BadInput, match=match):
            adapter.predict(batch)
    assert len(adapter.predict(good)) == len(good)
    adapter.close()
    with pytest.raises(AdapterClosed):
        adapter.predict(good)
    adapter.close()


def refuses_changed_file(load: Callable[[Path], Any], root: Path, file: str, old: str, new: str) -> None:
    """Replace `old` by `new` in the bundle's `file` (it must hold `old`): `load(root)` raises BundleError saying
    the file was changed."""
    path = root / file
    text = path.read_text()
    assert old in text, f"{file} does not hold {old!r}"
    path.write_text(text.replace(old, new))
    with pytest.raises(BundleError, match="was changed"):
        load(root)
