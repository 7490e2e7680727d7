"""The GX suites built from pipeline.feeds: good drops pass, each contract rule quarantines."""

from __future__ import annotations

import datetime

import pandas as pd
import pytest

from pipeline.feeds import CATALOG, INTERACTIONS, PLAN, REVIEWS, SALES, Feed
from pipeline.ingest.validate import (
    DropRejected,
    ValidationResult,
    build_suite,
    validate_frame,
)

DROP = datetime.date(2024, 3, 1)


def sales() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": ["2024-02-26", "2024-02-26", "2024-03-01", "2024-02-19"],
            "store_id": ["12", "12", "14", "12"],
            "sku": ["A1", "B2", "A1", "A1"],
            "units": ["3", "0", "12.5", "7"],
            "price": ["1.99", "2.5", "0.01", "1.99"],
            "promo": ["0", "1", "", "1"],
        },
        dtype="str",
    )


def reviews() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "review_id": ["r1", "r2", "r3"],
            "sku": ["A1", "A1", "B2"],
            "text": ["Great coffee", "Too bitter.", "ok"],
            "created_at": ["2024-02-28T10:15:00Z", "2024-03-01 23:59:59", "2024-01-02T08:00:00+01:00"],
            "label": ["positive", "negative", None],
            "rating": ["5", "1", "3.0"],
            "customer_id": ["c1", None, "c3"],
        },
        dtype="str",
    )


def interactions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2", "c2"],
            "sku": ["A1", "A1", "B2", "A1"],
            "timestamp": ["2024-02-29T09:00:00", "2024-02-29T09:00:00", "2024-03-01T12:00:00", "2024-02-01"],
            "event": ["view", "view", "purchase", "rating"],
            "value": ["", None, "3.5", "4"],
        },
        dtype="str",
    )


def catalog() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sku": ["A1", "B2"],
            "title": ["Coffee beans 1kg", "Green tea"],
            "category": ["coffee", None],
            "description": ["Dark roast", ""],
            "brand": ["Acme", "Leafy"],
        },
        dtype="str",
    )


def plan() -> pd.DataFrame:
    """A promotion calendar: two of its periods lie after the drop's date (a plan may)."""
    return pd.DataFrame(
        {
            "date": ["2024-02-26", "2024-03-04", "2024-03-04", "2024-06-03"],
            "store_id": ["12", "12", "14", "12"],
            "sku": ["A1", "A1", "A1", "B2"],
            "price": ["1.99", "1.49", "", "2.5"],
            "promo": ["0", "1", "1", ""],
        },
        dtype="str",
    )


GOOD = {
    "sales": (SALES, sales),
    "reviews": (REVIEWS, reviews),
    "interactions": (INTERACTIONS, interactions),
    "catalog": (CATALOG, catalog),
    "plan": (PLAN, plan),
}


def run(feed: Feed, frame: pd.DataFrame, **kw) -> ValidationResult:
    """Validate with no share limit (small frames) and check that every row is accounted for."""
    kw.setdefault("max_bad_share", 1.0)
    result = validate_frame(feed, frame, DROP, **kw)
    assert result.rows_in == len(frame) == len(result.good) + len(result.bad)
    return result


def rules_of(result: ValidationResult, row: int) -> list[str]:
    """Rules broken by the drop's ``row`` (1-based); fails if the row is not quarantined."""
    match = result.bad.loc[result.bad["_row"] == row, "_rules"]
    assert len(match) == 1, f"row {row} not quarantined: {result.bad[['_row', '_rules']]}"
    return match.iloc[0].split(";")


def assert_only_bad(result: ValidationResult, rows: dict[int, str]) -> None:
    """Exactly ``rows`` (1-based) are quarantined, each with (at least) the given rule."""
    assert sorted(result.bad["_row"].tolist()) == sorted(rows)
    for row, rule in rows.items():
        assert rule in rules_of(result, row)


# ------------------------------------------------------------------- good drops


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_drop_passes(name: str) -> None:
    feed, make = GOOD[name]
    frame = make()
    result = run(feed, frame, max_bad_share=0.0)
    assert result.bad.empty, result.bad
    assert len(result.good) == len(frame)
    assert result.rule_counts == {}
    assert result.extra_columns == []
    assert list(result.good.columns) == feed.names


def test_good_sales_are_typed() -> None:
    good = run(SALES, sales(), max_bad_share=0.0).good
    assert pd.api.types.is_datetime64_dtype(good["date"])
    assert good["date"].iloc[2] == pd.Timestamp("2024-03-01")
    assert good["units"].dtype == "float64" and good["units"].tolist() == [3.0, 0.0, 12.5, 7.0]
    assert str(good["promo"].dtype) == "Int64"
    assert good["promo"].isna().tolist() == [False, False, True, False]
    assert pd.api.types.is_string_dtype(good["store_id"]) and good["store_id"].iloc[0] == "12"


def test_good_reviews_are_typed() -> None:
    good = run(REVIEWS, reviews(), max_bad_share=0.0).good
    assert str(good["rating"].dtype) == "Int64" and good["rating"].tolist() == [5, 1, 3]
    assert pd.api.types.is_datetime64_dtype(good["created_at"])
    # time zones are converted to UTC and dropped
    assert good["created_at"].iloc[0] == pd.Timestamp("2024-02-28 10:15:00")
    assert good["created_at"].iloc[2] == pd.Timestamp("2024-01-02 07:00:00")


def test_suite_is_built_from_the_feed() -> None:
    suite = build_suite(SALES, DROP)
    assert suite.name == "sales_suite"
    rules = {e.meta["rule"] for e in suite.expectations}
    assert {
        "not_null:date",
        "type:date",
        "not_after_drop_date:date",
        "not_null:units",
        "type:units",
        "min:units",
        "min:price",
        "in_set:promo",
        "not_blank:store_id",
        "unique:date+store_id+sku",
    } <= rules
    assert "not_null:price" not in rules  # price is optional
    assert build_suite(REVIEWS, DROP).name == "reviews_suite"
    assert "unique:review_id" in {e.meta["rule"] for e in build_suite(REVIEWS, DROP).expectations}
    assert not any(e.meta["rule"].startswith("unique:") for e in build_suite(INTERACTIONS, DROP).expectations)


def test_plan_suite_lets_dates_lie_after_the_drop() -> None:
    rules = {e.meta["rule"] for e in build_suite(PLAN, DROP).expectations}
    assert {"not_null:date", "type:date", "not_blank:store_id", "not_blank:sku", "min:price", "in_set:promo",
            "unique:date+store_id+sku"} <= rules
    assert not any(r.startswith("not_after_drop_date:") for r in rules)  # a plan is about the future
    assert "not_null:price" not in rules and "not_null:promo" not in rules  # both optional


def test_good_plan_is_typed_and_keeps_its_future_dates() -> None:
    good = run(PLAN, plan(), max_bad_share=0.0).good
    assert pd.api.types.is_datetime64_dtype(good["date"])
    assert good["date"].max() == pd.Timestamp("2024-06-03") > pd.Timestamp(DROP)
    assert good["price"].dtype == "float64" and good["price"].isna().tolist() == [False, False, True, False]
    assert str(good["promo"].dtype) == "Int64" and good["promo"].isna().tolist() == [False, False, False, True]


# ------------------------------------------------------------------ rule by rule


def test_null_in_required_column() -> None:
    frame = sales()
    frame.loc[1, "units"] = None
    result = run(SALES, frame)
    assert_only_bad(result, {2: "not_null:units"})
    assert result.rule_counts == {"not_null:units": 1}


def test_blank_in_required_number_is_null() -> None:
    frame = sales()
    frame.loc[0, "units"] = "  "
    assert rules_of(run(SALES, frame), 1) == ["not_null:units"]


def test_text_in_numeric_column() -> None:
    frame = sales()
    frame.loc[2, "units"] = "twelve"
    result = run(SALES, frame)
    assert_only_bad(result, {3: "type:units"})
    assert rules_of(result, 3) == ["type:units"]  # not also not_null:units
    assert result.bad["units"].iloc[0] == "twelve"  # raw value kept


def test_text_in_optional_numeric_column() -> None:
    frame = interactions()
    frame.loc[3, "value"] = "n/a"
    assert_only_bad(run(INTERACTIONS, frame), {4: "type:value"})


def test_unparseable_date() -> None:
    frame = sales()
    frame.loc[0, "date"] = "26/02/2024 or so"
    result = run(SALES, frame)
    assert_only_bad(result, {1: "type:date"})
    assert result.rule_counts == {"type:date": 1}


def test_unparseable_timestamp() -> None:
    frame = reviews()
    frame.loc[1, "created_at"] = "yesterday"
    assert_only_bad(run(REVIEWS, frame), {2: "type:created_at"})


def test_negative_units() -> None:
    frame = sales()
    frame.loc[3, "units"] = "-1"
    assert_only_bad(run(SALES, frame), {4: "min:units"})


def test_price_zero() -> None:
    frame = sales()
    frame.loc[0, "price"] = "0"
    frame.loc[1, "price"] = "-2.5"
    result = run(SALES, frame)
    assert_only_bad(result, {1: "min:price", 2: "min:price"})
    assert result.rule_counts == {"min:price": 2}


def test_rating_six() -> None:
    frame = reviews()
    frame.loc[0, "rating"] = "6"
    frame.loc[1, "rating"] = "0"
    result = run(REVIEWS, frame)
    assert_only_bad(result, {1: "max:rating", 2: "min:rating"})


def test_rating_not_integer() -> None:
    frame = reviews()
    frame.loc[2, "rating"] = "2.5"
    result = run(REVIEWS, frame)
    assert_only_bad(result, {3: "type:rating"})


def test_promo_two() -> None:
    frame = sales()
    frame.loc[0, "promo"] = "2"
    frame.loc[1, "promo"] = "yes please"
    result = run(SALES, frame)
    assert_only_bad(result, {1: "in_set:promo", 2: "type:promo"})


def test_promo_true_false_words_are_flags() -> None:
    frame = sales()
    frame["promo"] = ["True", "false", "1.0", "0"]
    result = run(SALES, frame, max_bad_share=0.0)
    assert result.good["promo"].tolist() == [1, 0, 1, 0]


def test_blank_review_text() -> None:
    frame = reviews()
    frame.loc[0, "text"] = "   "
    frame.loc[1, "text"] = ""
    result = run(REVIEWS, frame)
    assert_only_bad(result, {1: "not_blank:text", 2: "not_blank:text"})


def test_duplicate_key_keeps_the_first() -> None:
    frame = pd.concat([sales(), sales().iloc[[0]]], ignore_index=True)
    frame.loc[4, "units"] = "99"  # same key, other values: still a duplicate
    result = run(SALES, frame)
    assert_only_bad(result, {5: "unique:date+store_id+sku"})
    assert result.good["units"].iloc[0] == 3.0  # the first one is published


def test_duplicate_key_matches_on_typed_values() -> None:
    frame = pd.concat([sales(), sales().iloc[[0]]], ignore_index=True)
    frame.loc[4, "date"] = "2024-02-26T00:00:00"  # same date, other spelling
    assert_only_bad(run(SALES, frame), {5: "unique:date+store_id+sku"})


def test_duplicate_key_keeps_the_first_valid_row() -> None:
    frame = pd.concat([sales(), sales().iloc[[0]]], ignore_index=True)
    frame.loc[0, "units"] = "-5"  # the first copy is bad anyway: the later, valid one wins
    result = run(SALES, frame)
    assert rules_of(result, 1) == ["min:units", "unique:date+store_id+sku"]
    assert 5 not in result.bad["_row"].tolist()
    assert len(result.good) == 4


def test_duplicate_single_column_key() -> None:
    frame = catalog()
    frame.loc[1, "sku"] = "A1"
    assert_only_bad(run(CATALOG, frame), {2: "unique:sku"})


def test_date_after_drop_date() -> None:
    frame = sales()
    frame.loc[1, "date"] = "2024-03-02"
    assert_only_bad(run(SALES, frame), {2: "not_after_drop_date:date"})


def test_timestamp_after_drop_date() -> None:
    frame = interactions()
    frame.loc[0, "timestamp"] = "2024-03-02T00:00:00"  # first instant of the next day
    frame.loc[1, "timestamp"] = "2024-03-01T23:59:59"  # still the drop's day: fine
    assert_only_bad(run(INTERACTIONS, frame), {1: "not_after_drop_date:timestamp"})


def test_event_not_allowed() -> None:
    frame = interactions()
    frame.loc[2, "event"] = "click"
    frame.loc[3, "event"] = "VIEW"
    assert_only_bad(run(INTERACTIONS, frame), {3: "in_set:event", 4: "in_set:event"})


def test_several_rules_on_one_row() -> None:
    frame = sales()
    frame.loc[0, ["units", "price", "store_id"]] = ["-1", "0", " "]
    result = run(SALES, frame)
    assert rules_of(result, 1) == ["not_blank:store_id", "min:units", "min:price"]
    assert result.rule_counts == {"not_blank:store_id": 1, "min:units": 1, "min:price": 1}


def test_rows_are_accounted_for_with_many_bad_rows() -> None:
    frame = pd.concat([sales()] * 25, ignore_index=True)  # 100 rows, 75 duplicates
    frame.loc[::10, "units"] = "oops"
    result = run(SALES, frame)
    assert result.rows_in == 100
    assert len(result.good) == 4  # the first copy of each distinct key
    assert len(result.bad) == 96
    assert result.bad["_row"].is_unique
    assert result.bad_share == pytest.approx(0.96)


def test_plan_rules_quarantine_bad_rows_and_keep_the_good() -> None:
    frame = pd.concat([plan(), plan().iloc[[1]]], ignore_index=True)  # row 5 repeats row 2's key
    frame.loc[0, "price"] = "0"
    frame.loc[2, "promo"] = "2"
    frame.loc[3, "sku"] = "  "
    frame.loc[4, "price"] = "0.99"  # other values, same key: still a duplicate
    result = run(PLAN, frame)
    assert_only_bad(result, {1: "min:price", 3: "in_set:promo", 4: "not_blank:sku", 5: "unique:date+store_id+sku"})
    assert result.rule_counts == {"min:price": 1, "in_set:promo": 1, "not_blank:sku": 1,
                                  "unique:date+store_id+sku": 1}
    assert result.good[["store_id", "sku", "price"]].values.tolist() == [["12", "A1", 1.49]]  # the first copy


def test_plan_negative_price_and_promo_word() -> None:
    frame = plan()
    frame.loc[0, "price"] = "-1.5"
    frame.loc[1, "promo"] = "maybe"
    assert_only_bad(run(PLAN, frame), {1: "min:price", 2: "type:promo"})


# ----------------------------------------------------------------- whole drop


def test_missing_required_column_rejects_the_drop() -> None:
    frame = sales().drop(columns=["units", "sku"])
    with pytest.raises(DropRejected) as err:
        validate_frame(SALES, frame, DROP, file="sales_2024-03-01.csv")
    assert "units" in str(err.value) and "sku" in str(err.value)
    assert set(err.value.column.split(", ")) == {"sku", "units"}
    assert err.value.file == "sales_2024-03-01.csv"
    assert "required" in err.value.reason


def test_plan_without_a_required_column_is_rejected() -> None:
    with pytest.raises(DropRejected) as err:
        validate_frame(PLAN, plan().drop(columns=["store_id"]), DROP, file="plan.csv")
    assert err.value.column == "store_id" and err.value.file == "plan.csv"
    assert "plan drop lacks required column(s): store_id" in err.value.reason


def test_plan_with_neither_price_nor_promo_passes() -> None:
    result = run(PLAN, plan().drop(columns=["price", "promo"]), max_bad_share=0.0)
    assert list(result.good.columns) == PLAN.names
    assert result.good["price"].isna().all() and result.good["promo"].isna().all()


def test_missing_optional_column_is_added_as_null() -> None:
    result = run(SALES, sales().drop(columns=["promo"]), max_bad_share=0.0)
    assert list(result.good.columns) == SALES.names
    assert result.good["promo"].isna().all()


def test_bad_share_over_the_limit_rejects_the_drop() -> None:
    frame = pd.concat([sales()] * 5, ignore_index=True)
    frame["date"] = pd.date_range("2024-01-01", periods=20).strftime("%Y-%m-%d")
    frame.loc[0, "units"] = "-1"  # 1/20 = 5%: exactly at the limit passes
    assert validate_frame(SALES, frame, DROP, max_bad_share=0.05).bad_share == pytest.approx(0.05)
    frame.loc[1, "price"] = "0"  # 2/20 = 10%
    with pytest.raises(DropRejected) as err:
        validate_frame(SALES, frame, DROP, max_bad_share=0.05)
    message = str(err.value)
    assert "10.00%" in message and "5.00%" in message
    assert "min:units" in message and "min:price" in message
    assert err.value.result is not None and len(err.value.result.bad) == 2


def test_extra_columns_are_kept_and_reported() -> None:
    frame = sales()
    frame["upc_desc"] = ["COFFEE", "TEA", "COFFEE", "MILK"]
    frame["Move Week"] = ["1", "2", "3", "x"]
    frame.loc[0, "units"] = "-1"
    result = run(SALES, frame)
    assert result.extra_columns == ["upc_desc", "move week"]
    assert list(result.good.columns) == SALES.names + ["upc_desc", "move week"]
    assert result.good["upc_desc"].tolist() == ["TEA", "COFFEE", "MILK"]
    assert result.bad["upc_desc"].tolist() == ["COFFEE"]
    assert result.rule_counts == {"min:units": 1}  # extra columns are never checked


def test_upper_case_column_names_are_normalised() -> None:
    frame = sales()
    frame.columns = [" DATE", "Store_ID", "SKU ", "Units", "PRICE", "Promo"]
    result = run(SALES, frame, max_bad_share=0.0)
    assert list(result.good.columns) == SALES.names
    assert result.extra_columns == []
    assert len(result.good) == 4


def test_typed_input_from_a_columnar_reader() -> None:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-02-26", "2024-03-05"]),
            "store_id": ["12", "12"],
            "sku": ["A1", "A1"],
            "units": [3, -1],
            "price": [1.99, None],
            "promo": [True, False],
        }
    )
    result = run(SALES, frame)
    assert_only_bad(result, {2: "not_after_drop_date:date"})
    assert rules_of(result, 2) == ["not_after_drop_date:date", "min:units"]
    assert result.good["promo"].tolist() == [1]


def test_empty_drop() -> None:
    result = run(SALES, sales().iloc[:0], max_bad_share=0.0)
    assert result.rows_in == 0 and result.good.empty and result.bad.empty
    assert result.bad_share == 0.0
