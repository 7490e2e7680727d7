"""Validate one drop of a feed against its contract with Great Expectations 1.x.

The suites are built in code from :mod:`pipeline.feeds`. :func:`validate_frame` runs
them over a typed copy of the drop and splits it into rows to publish and rows to
quarantine, each quarantined row tagged with every rule it broke.

How a drop is checked:

1. Column names are normalised (``strip().lower()``). A drop that lacks a required
   column fails as a whole (:class:`DropRejected`); extra columns are kept and
   reported; a missing optional contract column is added as all-null.
2. Each contract column is coerced in pandas (``pd.to_numeric`` / ``pd.to_datetime``
   with ``errors="coerce"``). A value that was present (not null, not blank) but did
   not parse breaks ``type:<column>``; a boolean helper column ``_type_ok_<column>``
   carries this into the suite. Dates and timestamps are ISO 8601; time zones are
   converted to UTC and dropped; ``date`` columns are floored to the day. An
   ``integer`` value with a fraction (rating 2.5) is a type failure; a ``flag`` value
   other than 0/1 (promo 2) breaks ``in_set:<column>``. Numbers must be finite.
3. The suite runs once with ``result_format="COMPLETE"`` over a frame indexed by row
   position, so every failing row comes back (no partial lists).

Rule names (stable, used in ``_rules`` and ``rule_counts``): ``not_null:<col>``,
``type:<col>``, ``min:<col>``, ``max:<col>``, ``in_set:<col>``, ``not_blank:<col>``,
``not_after_drop_date:<col>`` and ``unique:<k1>+<k2>...``. A ``type:`` failure is not
also counted as ``not_null:`` for the same cell. Blank text in a string column is
``not_blank:`` (a reader that turned "" into null makes it ``not_null:`` instead).

Duplicate keys: in each group of rows sharing a key, the first row (in drop order)
that breaks no other rule is kept and published; every other row of the group is
quarantined with ``unique:<key>``. If every row of the group is bad anyway, the first
one is spared the ``unique:`` tag. Rows with a null key column are never duplicates
(they already break ``not_null:``).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.feeds import Column, Feed

if TYPE_CHECKING:  # importing great_expectations takes seconds: only when validating
    import great_expectations as gx

log = logging.getLogger(__name__)

ROW_COLUMN = "_row"
RULES_COLUMN = "_rules"
TYPE_OK_PREFIX = "_type_ok_"
NOT_BLANK_PREFIX = "_not_blank_"
DEFAULT_MAX_BAD_SHARE = 0.05
_TRUE_FALSE = {"true": 1.0, "false": 0.0}


class DropRejected(Exception):
    """The whole drop fails: a required column is missing or too many rows are bad.

    ``reason`` says why, ``file`` names the drop when the caller knows it, ``column``
    names the missing column(s) (comma-joined) where that is the cause, and ``result``
    holds the :class:`ValidationResult` when the drop failed on its bad share.
    """

    def __init__(
        self,
        reason: str,
        file: str | None = None,
        column: str | None = None,
        result: ValidationResult | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.column = column
        self.result = result
        super().__init__(f"{file}: {reason}" if file else reason)


@dataclass
class ValidationResult:
    """One drop split into rows to publish and rows to quarantine.

    ``good`` holds the contract columns typed (dates datetime64, numbers float64, flag
    and integer nullable Int64, strings str) followed by the extra columns as they
    came. ``bad`` holds the raw values of the bad rows (normalised column names) plus
    ``_rules`` (";"-joined rule names) and ``_row`` (1-based position of the row in
    the drop, header not counted).
    """

    good: pd.DataFrame
    bad: pd.DataFrame
    rows_in: int
    rule_counts: dict[str, int] = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)
    good_rows: np.ndarray = field(default_factory=lambda: np.asarray([], dtype=np.int64))  # 1-based, as _row

    @property
    def bad_share(self) -> float:
        """Share of the rows that went to quarantine (0.0 for an empty drop)."""
        return len(self.bad) / self.rows_in if self.rows_in else 0.0


# --------------------------------------------------------------------------- rules


def type_ok_column(column: str) -> str:
    """Name of the boolean helper column that says a value of ``column`` parsed."""
    return f"{TYPE_OK_PREFIX}{column}"


def key_rule(feed: Feed) -> str | None:
    """The uniqueness rule name of a feed, e.g. ``unique:date+store_id+sku``."""
    return f"unique:{'+'.join(feed.key)}" if feed.key else None


def _column_expectations(col: Column, drop_date: datetime.date) -> list[Any]:
    """The expectations for one contract column, each tagged with ``meta["rule"]``."""
    import great_expectations as gx

    E = gx.expectations
    name = col.name
    out: list[Any] = []
    if col.required:
        out.append(E.ExpectColumnValuesToNotBeNull(column=name, meta={"rule": f"not_null:{name}"}))
    if col.type != "string":
        out.append(
            E.ExpectColumnValuesToBeInSet(
                column=type_ok_column(name), value_set=[True], meta={"rule": f"type:{name}"}
            )
        )
    if col.min_value is not None:
        out.append(
            E.ExpectColumnValuesToBeBetween(
                column=name,
                min_value=col.min_value,
                strict_min=col.strict_min,
                meta={"rule": f"min:{name}"},
            )
        )
    if col.max_value is not None:
        out.append(
            E.ExpectColumnValuesToBeBetween(
                column=name, max_value=col.max_value, meta={"rule": f"max:{name}"}
            )
        )
    if col.not_blank:  # a helper column: a regex runs row by row in Python, this is vectorised
        out.append(
            E.ExpectColumnValuesToBeInSet(
                column=f"{NOT_BLANK_PREFIX}{name}", value_set=[True], meta={"rule": f"not_blank:{name}"}
            )
        )
    if col.allowed:
        out.append(
            E.ExpectColumnValuesToBeInSet(
                column=name, value_set=list(col.allowed), meta={"rule": f"in_set:{name}"}
            )
        )
    if col.type == "flag":
        out.append(
            E.ExpectColumnValuesToBeInSet(column=name, value_set=[0, 1], meta={"rule": f"in_set:{name}"})
        )
    if col.not_after_drop_date:
        # Anything before midnight after the drop date: same rule for dates and timestamps.
        limit = datetime.datetime.combine(drop_date + datetime.timedelta(days=1), datetime.time())
        out.append(
            E.ExpectColumnValuesToBeBetween(
                column=name,
                max_value=limit,
                strict_max=True,
                meta={"rule": f"not_after_drop_date:{name}"},
            )
        )
    return out


def build_suite(feed: Feed, drop_date: datetime.date) -> gx.ExpectationSuite:
    """The suite for ``feed``, named ``f"{feed.name}_suite"``.

    It expects the typed frame that :func:`validate_frame` builds: contract columns
    coerced to their types plus a ``_type_ok_<column>`` boolean per non-string column.
    Every expectation carries its rule name in ``meta["rule"]``.
    """
    import great_expectations as gx

    expectations = [e for col in feed.columns for e in _column_expectations(col, drop_date)]
    rule = key_rule(feed)
    if rule is not None:
        E = gx.expectations
        if len(feed.key) == 1:
            expectations.append(E.ExpectColumnValuesToBeUnique(column=feed.key[0], meta={"rule": rule}))
        else:
            expectations.append(
                E.ExpectCompoundColumnsToBeUnique(column_list=list(feed.key), meta={"rule": rule})
            )
    # Passed to the constructor: suite.add_expectation() needs an active data context.
    return gx.ExpectationSuite(name=f"{feed.name}_suite", expectations=expectations)


# ---------------------------------------------------------------------- coercion


def _missing(raw: pd.Series) -> pd.Series:
    """Null, or (for text) empty/whitespace-only: no value was given."""
    missing = raw.isna()
    if raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype):
        text = raw.astype("str")
        missing |= text.str.strip().eq("").fillna(False).astype(bool)
    return missing.astype(bool)


def _to_number(raw: pd.Series, flag: bool = False) -> pd.Series:
    """Float64 values; anything that does not parse (or is not finite) becomes NaN.

    With ``flag``, the words "true"/"false" (any case) also read as 1/0.
    """
    if pd.api.types.is_bool_dtype(raw.dtype) or pd.api.types.is_numeric_dtype(raw.dtype):
        num = raw.astype("float64")
    elif (fast := _arrow_to_float(raw)) is not None:
        num = fast
    else:
        values = raw
        if raw.dtype == object:  # Python bools among the objects count as 1/0
            is_bool = raw.map(lambda v: isinstance(v, (bool, np.bool_))).astype(bool)
            if is_bool.any():
                values = raw.where(~is_bool, raw.where(is_bool).astype("float64"))
        num = pd.to_numeric(values, errors="coerce").astype("float64")
        if flag:
            words = raw.astype("str").str.strip().str.lower().map(_TRUE_FALSE).astype("float64")
            num = num.fillna(words)
    return num.where(np.isfinite(num))


def _arrow_to_float(raw: pd.Series) -> pd.Series | None:
    """Arrow's string-to-float cast: ~10x faster than pd.to_numeric, but all or nothing,
    so None when any value does not parse (pd.to_numeric then finds which)."""
    if not pd.api.types.is_string_dtype(raw.dtype) or raw.dtype == object:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        values = pc.cast(pa.array(raw, from_pandas=True), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return pd.Series(values.to_numpy(zero_copy_only=False), index=raw.index, dtype="float64")


def _to_datetime(raw: pd.Series, day: bool) -> pd.Series:
    """Naive UTC datetime64 values (floored to the day if ``day``); failures are NaT."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw.dtype):
        src = raw
    else:  # str() of date/datetime objects is ISO; numbers are never read as epochs
        src = raw.astype("str").str.strip()
    parsed = pd.to_datetime(src, errors="coerce", format="ISO8601", utc=True).dt.tz_convert(None)
    # nanoseconds: GX compares datetime64[ns] vectorised (other units row by row); a value
    # outside that range (before 1677 or after 2262) is no usable date: a type failure
    in_range = parsed.between(pd.Timestamp.min, pd.Timestamp.max)
    parsed = parsed.where(in_range).astype("datetime64[ns]")
    return parsed.dt.floor("D") if day else parsed


def _coerce(feed: Feed, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The typed check frame (contract columns + ``_type_ok_*``) and the output-typed frame."""
    check: dict[str, pd.Series] = {}
    typed: dict[str, pd.Series] = {}
    for col in feed.columns:
        raw = frame[col.name]
        if col.type == "string":
            value = raw.astype("str")
            check[col.name] = value
            typed[col.name] = value
            if col.not_blank:  # null is not blank: it breaks not_null instead
                check[f"{NOT_BLANK_PREFIX}{col.name}"] = (value.isna() | value.str.strip().ne("")).astype(bool)
            continue
        if col.type in ("date", "timestamp"):
            value = _to_datetime(raw, day=col.type == "date")
            parsed = value.notna()
        else:
            value = _to_number(raw, flag=col.type == "flag")
            parsed = value.notna()
            if col.type == "integer":
                whole = value.eq(np.floor(value)).fillna(False).astype(bool)
                value = value.where(whole)
                parsed &= whole
        check[col.name] = value
        check[type_ok_column(col.name)] = (parsed | _missing(raw)).astype(bool)
        if col.type in ("integer", "flag"):
            # Only good rows are published; values that are not whole numbers stay NA here.
            whole = value.eq(np.floor(value)).fillna(False).astype(bool)
            typed[col.name] = value.where(whole).astype("Int64")
        else:
            typed[col.name] = value
    index = pd.RangeIndex(len(frame))
    return pd.DataFrame(check, index=index), pd.DataFrame(typed, index=index)


# -------------------------------------------------------------------- validation


def normalise_columns(frame: pd.DataFrame, file: str | None) -> pd.DataFrame:
    """Copy of ``frame`` with stripped, lower-case column names and a positional index."""
    names = [str(c).strip().lower() for c in frame.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DropRejected(
            f"duplicate column names after normalisation: {', '.join(dupes)}",
            file=file,
            column=", ".join(dupes),
        )
    out = frame.copy()
    out.columns = names
    return out.reset_index(drop=True)


class SuiteRunner:
    """One feed's suite in an ephemeral GX context, built once and run on every chunk."""

    def __init__(self, feed: Feed, drop_date: datetime.date) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.suite = build_suite(feed, drop_date)
        with _own_gx_project():
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            self._context = context
            self._batch_definition = (
                context.data_sources.add_pandas("drop")
                .add_dataframe_asset("frame")
                .add_batch_definition_whole_dataframe("whole")
            )

    def failures(self, check: pd.DataFrame) -> dict[str, np.ndarray]:
        """Rule name -> positions of every row that broke it (all rows, not a sample)."""
        from great_expectations.data_context.data_context.context_factory import project_manager

        with _own_gx_project():
            project_manager.set_project(self._context)
            batch = self._batch_definition.get_batch(batch_parameters={"dataframe": check})
            # Plain COMPLETE on a RangeIndex gives the failing positions as ints: much cheaper
            # than unexpected_index_column_names (a dict per row) and the pandas query string.
            result = batch.validate(
                self.suite, result_format={"result_format": "COMPLETE", "return_unexpected_index_query": False}
            )
        failures: dict[str, list[np.ndarray]] = {}
        for res in result.results:
            rule = res.expectation_config.meta["rule"]
            info = res.exception_info or {}
            if info.get("raised_exception"):
                raise RuntimeError(f"expectation for rule {rule} raised: {info.get('exception_message')}")
            positions = np.asarray(res.result.get("unexpected_index_list") or [], dtype=np.int64)
            if not res.success and positions.size != res.result.get("unexpected_count", positions.size):
                raise RuntimeError(f"rule {rule}: GX returned an incomplete list of failing rows")
            failures.setdefault(rule, []).append(positions)
        return {rule: np.unique(np.concatenate(parts)) for rule, parts in failures.items()}


@contextlib.contextmanager
def _own_gx_project() -> Iterator[None]:
    """GX keeps one process-wide current context; put back whatever was there before."""
    from great_expectations.data_context.data_context.context_factory import project_manager
    from great_expectations.exceptions import DataContextRequiredError

    try:
        previous = project_manager.get_current_project()
    except DataContextRequiredError:
        previous = None
    try:
        yield
    finally:
        project_manager.set_project(previous)


def _later_duplicates(feed: Feed, check: pd.DataFrame, members: np.ndarray, other_bad: np.ndarray) -> np.ndarray:
    """Positions in duplicate groups that are not the group's keeper (see module doc)."""
    if members.size == 0:
        return members
    keys = check.loc[members, list(feed.key)]
    keys = keys[keys.notna().all(axis=1)]  # a null key is no duplicate: it is not_null
    if keys.empty:
        return np.asarray([], dtype=np.int64)
    frame = keys.assign(_pos=keys.index.to_numpy(), _bad=np.isin(keys.index.to_numpy(), other_bad))
    frame = frame.sort_values(["_bad", "_pos"], kind="stable")
    keepers = frame.drop_duplicates(subset=list(feed.key), keep="first")["_pos"]
    dup = frame.duplicated(subset=list(feed.key), keep=False)
    in_group = frame.loc[dup, "_pos"]
    return np.setdiff1d(in_group.to_numpy(), keepers.to_numpy())


def split_rows(feed: Feed, raw: pd.DataFrame, runner: SuiteRunner, *, file: str | None = None) -> ValidationResult:
    """Split one frame of a drop into good (typed) and bad rows with the rules they broke.

    Raises :class:`DropRejected` when a required column is missing (the message names
    the columns); the bad share is the caller's to judge. ``file`` labels the exception.
    """
    frame = normalise_columns(raw, file)
    rows_in = len(frame)
    missing_required = [c for c in feed.required if c not in frame.columns]
    if missing_required:
        raise DropRejected(
            f"{feed.name} drop lacks required column(s): {', '.join(missing_required)}",
            file=file,
            column=", ".join(missing_required),
        )
    extra = [c for c in frame.columns if c not in feed.names]
    if extra:
        log.debug("%s drop has extra columns (kept): %s", feed.name, ", ".join(extra))
    absent = [c for c in feed.names if c not in frame.columns]
    if absent:
        log.debug("%s drop lacks optional columns (added as null): %s", feed.name, ", ".join(absent))
        frame = frame.assign(**{c: pd.Series(np.nan, index=frame.index, dtype=object) for c in absent})

    check, typed = _coerce(feed, frame)
    failures = runner.failures(check)

    # A value that did not parse is a type failure, not also a null.
    for col in feed.columns:
        t_rule, n_rule = f"type:{col.name}", f"not_null:{col.name}"
        if t_rule in failures and n_rule in failures:
            failures[n_rule] = np.setdiff1d(failures[n_rule], failures[t_rule])
    unique_rule = key_rule(feed)
    if unique_rule is not None and unique_rule in failures:
        other = [pos for rule, pos in failures.items() if rule != unique_rule]
        other_bad = np.unique(np.concatenate(other)) if other else np.asarray([], dtype=np.int64)
        failures[unique_rule] = _later_duplicates(feed, check, failures[unique_rule], other_bad)

    failures = {rule: pos for rule, pos in failures.items() if pos.size}
    rule_counts = {rule: int(pos.size) for rule, pos in failures.items()}
    bad_mask = np.zeros(rows_in, dtype=bool)
    rules_per_row: dict[int, list[str]] = {}
    for rule, positions in failures.items():  # suite order: stable rule order per row
        bad_mask[positions] = True
        for p in positions.tolist():
            rules_per_row.setdefault(p, []).append(rule)

    bad_positions = np.flatnonzero(bad_mask)
    bad = frame.iloc[bad_positions].copy()
    bad[RULES_COLUMN] = pd.Series(
        [";".join(rules_per_row[p]) for p in bad_positions.tolist()], index=bad.index, dtype="str"
    )
    bad[ROW_COLUMN] = bad_positions + 1
    bad = bad.reset_index(drop=True)

    good = pd.concat([typed, frame[extra]], axis=1).loc[~bad_mask].reset_index(drop=True)
    assert rows_in == len(good) + len(bad), "every row in must be published or quarantined"

    return ValidationResult(good=good, bad=bad, rows_in=rows_in, rule_counts=rule_counts, extra_columns=extra,
                            good_rows=np.flatnonzero(~bad_mask) + 1)


def validate_frame(
    feed: Feed,
    raw: pd.DataFrame,
    drop_date: datetime.date,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    *,
    file: str | None = None,
) -> ValidationResult:
    """Validate a whole drop held in one frame (see :func:`split_rows`) and judge its bad share.

    Raises :class:`DropRejected` when the bad share exceeds ``max_bad_share`` (the
    message gives the share, the limit and the top rules; ``.result`` holds the split).
    """
    result = split_rows(feed, raw, SuiteRunner(feed, drop_date), file=file)
    log.info("%s drop: %d rows in, %d published, %d quarantined (%.2f%%); rules: %s", feed.name,
             result.rows_in, len(result.good), len(result.bad), 100 * result.bad_share, result.rule_counts or "none")
    check_bad_share(feed.name, len(result.bad), result.rows_in, result.rule_counts, max_bad_share,
                    file=file, result=result)
    return result


def check_bad_share(feed_name: str, bad_rows: int, rows_in: int, rule_counts: dict[str, int], max_bad_share: float,
                    *, file: str | None = None, result: ValidationResult | None = None) -> None:
    """Raise :class:`DropRejected` when more than ``max_bad_share`` of the rows are bad."""
    share = bad_rows / rows_in if rows_in else 0.0
    if share > max_bad_share:
        top = ", ".join(f"{r}={n}" for r, n in sorted(rule_counts.items(), key=lambda kv: -kv[1])[:5])
        raise DropRejected(
            f"{feed_name} drop: bad share {share:.2%} ({bad_rows}/{rows_in} rows) "
            f"exceeds the limit {max_bad_share:.2%}; top rules: {top}",
            file=file,
            result=result,
        )
