"""The feed contract (see docs/data.md): columns, types, rules, keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["string", "number", "integer", "flag", "date", "timestamp"]
FORMATS = (".csv", ".csv.gz", ".parquet", ".jsonl")


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = False
    min_value: float | None = None  # inclusive
    strict_min: bool = False  # True: value must be > min_value
    max_value: float | None = None
    not_blank: bool = False
    allowed: tuple[str, ...] = ()
    not_after_drop_date: bool = False


@dataclass(frozen=True)
class Feed:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = field(default=())

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


SALES = Feed(
    "sales",
    (
        Column("date", "date", required=True, not_after_drop_date=True),
        Column("store_id", "string", required=True, not_blank=True),
        Column("sku", "string", required=True, not_blank=True),
        Column("units", "number", required=True, min_value=0),
        Column("price", "number", min_value=0, strict_min=True),
        Column("promo", "flag"),
    ),
    key=("date", "store_id", "sku"),
)

REVIEWS = Feed(
    "reviews",
    (
        Column("review_id", "string", required=True, not_blank=True),
        Column("sku", "string", required=True, not_blank=True),
        Column("text", "string", required=True, not_blank=True),
        Column("created_at", "timestamp", required=True, not_after_drop_date=True),
        Column("label", "string"),
        Column("rating", "integer", min_value=1, max_value=5),
        Column("customer_id", "string"),
    ),
    key=("review_id",),
)

INTERACTIONS = Feed(
    "interactions",
    (
        Column("customer_id", "string", required=True, not_blank=True),
        Column("sku", "string", required=True, not_blank=True),
        Column("timestamp", "timestamp", required=True, not_after_drop_date=True),
        Column("event", "string", allowed=("view", "cart", "purchase", "rating")),
        Column("value", "number"),
    ),
)

CATALOG = Feed(
    "catalog",
    (
        Column("sku", "string", required=True, not_blank=True),
        Column("title", "string", required=True, not_blank=True),
        Column("category", "string"),
        Column("description", "string"),
        Column("brand", "string"),
    ),
    key=("sku",),
)

# optional: stock on hand per store and sku; inventory planning orders against it when present
STOCK = Feed(
    "stock",
    (
        Column("date", "date", required=True, not_after_drop_date=True),
        Column("store_id", "string", required=True, not_blank=True),
        Column("sku", "string", required=True, not_blank=True),
        Column("on_hand", "number", required=True, min_value=0),
    ),
    key=("date", "store_id", "sku"),
)

# optional: the promotion calendar and planned prices per store, sku and period, the
# forecaster's known future inputs. A plan is about the future: its dates may lie after
# the drop's date. A later drop's row replaces an earlier one with the same key.
PLAN = Feed(
    "plan",
    (
        Column("date", "date", required=True),
        Column("store_id", "string", required=True, not_blank=True),
        Column("sku", "string", required=True, not_blank=True),
        Column("price", "number", min_value=0, strict_min=True),
        Column("promo", "flag"),
    ),
    key=("date", "store_id", "sku"),
)

FEEDS: dict[str, Feed] = {f.name: f for f in (SALES, REVIEWS, INTERACTIONS, CATALOG, STOCK, PLAN)}


def get_feed(name: str) -> Feed:
    try:
        return FEEDS[name]
    except KeyError:
        raise ValueError(f"unknown feed {name!r}; expected one of {sorted(FEEDS)}") from None
