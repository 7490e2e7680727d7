"""Read one drop file in chunks of rows, with errors a person can act on.

CSV (optionally gzip) is read with pyarrow's streaming reader, every column as text so
that the suites, not the reader, judge the values; a row with the wrong number of
fields is not fatal: it comes back as a malformed row (its text) to be quarantined.
Parquet is read batch by batch; JSON lines with pandas in chunks. Files must be UTF-8.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.feeds import FORMATS

_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


class UnreadableFile(Exception):
    """A drop file that cannot be read: the message names the file and says why."""

    def __init__(self, file: str, reason: str) -> None:
        self.file = file
        self.reason = reason
        super().__init__(f"{file}: {reason}")


@dataclass
class Chunk:
    """Rows of one file: ``rows`` as read; ``malformed`` holds the text of CSV lines whose
    number of fields did not match the header (they cannot be split into columns)."""

    rows: pd.DataFrame
    malformed: list[str] = field(default_factory=list)


def iter_chunks(path: Path, name: str, chunk_rows: int) -> Iterator[Chunk]:
    """Yield the file's rows ``chunk_rows`` at a time (at least one chunk, maybe empty).

    A zero-byte file yields one empty chunk without columns. Raises
    :class:`UnreadableFile` for anything the reader rejects.
    """
    if not name.endswith(FORMATS):
        raise UnreadableFile(name, f"unsupported format; expected one of {', '.join(FORMATS)}")
    if path.stat().st_size == 0:
        yield Chunk(pd.DataFrame())
        return
    try:
        if name.endswith(".parquet"):
            yield from _parquet_chunks(path, chunk_rows)
        elif name.endswith(".jsonl"):
            yield from _jsonl_chunks(path, chunk_rows)
        else:
            yield from _csv_chunks(path, name, chunk_rows)
    except UnreadableFile:
        raise
    except UnicodeDecodeError as exc:
        raise UnreadableFile(name, f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise UnreadableFile(name, f"truncated or corrupt compressed file ({exc})") from exc
    except Exception as exc:  # pyarrow and pandas raise many types; the message is what matters
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "invalid UTF8" in reason:
            reason += "; save the file as UTF-8"
        raise UnreadableFile(name, f"cannot be read: {reason}") from exc


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    empty = True
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        empty = False
        yield Chunk(batch.to_pandas())
    if empty:
        yield Chunk(parquet.schema_arrow.empty_table().to_pandas())


def _jsonl_chunks(path: Path, chunk_rows: int) -> Iterator[Chunk]:
    with pd.read_json(path, lines=True, dtype=False, convert_dates=False, chunksize=chunk_rows,
                      encoding="utf-8", encoding_errors="strict") as reader:
        for frame in reader:
            yield Chunk(frame.reset_index(drop=True))


def _csv_chunks(path: Path, name: str, chunk_rows: int) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    compression = "gzip" if name.endswith(".gz") else None
    malformed: list[str] = []

    def keep_malformed(row: pacsv.InvalidRow) -> str:
        malformed.append(row.text)
        return "skip"

    parse = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=keep_malformed)
    with pa.input_stream(str(path), compression=compression) as stream:  # header only
        names = pacsv.open_csv(stream, parse_options=parse).schema.names
    _check_delimiter(name, names)
    malformed.clear()
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, strings_can_be_null=True, null_values=[""]
    )
    pending: list[pa.RecordBatch] = []
    size, yielded = 0, False
    with pa.input_stream(str(path), compression=compression) as stream:
        reader = pacsv.open_csv(stream, parse_options=parse, convert_options=convert,
                                read_options=pacsv.ReadOptions(block_size=8 << 20))
        for batch in reader:
            pending.append(batch)
            size += batch.num_rows
            if size >= chunk_rows:
                yield _flush(pending, malformed, reader.schema)
                pending, size, yielded = [], 0, True
    if pending or malformed or not yielded:
        yield _flush(pending, malformed, reader.schema)


def _flush(batches: list, malformed: list[str], schema) -> Chunk:
    import pyarrow as pa

    frame = pa.Table.from_batches(batches, schema=schema).to_pandas()
    chunk = Chunk(frame, list(malformed))
    malformed.clear()
    return chunk


def _check_delimiter(name: str, names: list[str]) -> None:
    """A header that is one column holding ';' (or tab, or '|') is a wrong delimiter."""
    if len(names) == 1:
        for char, word in _DELIMITERS.items():
            if char in names[0]:
                raise UnreadableFile(
                    name, f"the header is one column {names[0][:80]!r}: the file looks {word}-separated; "
                          "the feed contract wants comma-separated CSV")
