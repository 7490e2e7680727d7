"""Safe files for classic models: scikit-learn objects through skops, loaded with a fixed
list of trusted types beyond skops' defaults (never ``trusted=True``), so a tampered file
cannot run code; everything else JSON, or numpy / scipy arrays without pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence


def dump_sklearn(obj: Any, path: Path) -> None:
    import skops.io

    skops.io.dump(obj, path)


def load_sklearn(path: Path, trusted: Sequence[str]) -> Any:
    """The object in a skops file; a file with any type outside skops' defaults and
    ``trusted`` is refused (``skops.io.exceptions.UntrustedTypesFoundException``)."""
    import skops.io

    return skops.io.load(path, trusted=list(trusted))


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
