"""What the tests of every format hold its adapter to (adapters/base.py): a bad batch is refused with one BadInput
and costs nothing, a closed adapter refuses to predict (closing twice is fine), and a model file changed after the
build is refused when the bundle is loaded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.errors import AdapterClosed, BadInput, BundleError


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
