"""Consumer throughput: reviews scored, series forecast and customers served per second.

Uses the champions in the configured MLflow registry and the validated data in the lake
(run `make demo` first). Reviews are also scored, in the same run on the same machine, by
a plain ``transformers.pipeline("text-classification")`` over the same MiniLM encoder
size (the base encoder with a sequence-classification head: the pipeline cannot load the
champion's mean-pooling head, and the head's cost is negligible): with its defaults
(batch size 1), with batch size 64, and with batch size 64 in bfloat16. Run on demand::

    python benchmarks/consumers_bench.py [--reviews 1000]

Writes benchmarks/results/consumers_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import time

import torch

from common import machine as machine_name  # noqa: E402 - also puts the project on sys.path
from common import write_results  # noqa: E402
from pipeline.lake import lake_from_settings  # noqa: E402
from pipeline.registry import load_champion  # noqa: E402
from pipeline.series import forecast_input  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from pipeline.encoders.select import resolve_base_model  # noqa: E402
from pipeline.validated import read_validated  # noqa: E402



def timed(fn, *args, **kwargs) -> tuple[float, object]:  # noqa: ANN001
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=1000)
    parser.add_argument("--date", default=None, help="data up to this day (default: the last demo day)")
    args = parser.parse_args()
    settings = load_settings()
    day = datetime.date.fromisoformat(args.date) if args.date else (
        datetime.date.fromisoformat(settings.demo_start) + datetime.timedelta(days=settings.demo_days - 1))
    lake = lake_from_settings(settings)
    rows = []

    # reviews: the champion's pyfunc against transformers.pipeline
    texts = read_validated(lake, "reviews", day)["text"].astype(str).head(args.reviews).tolist()
    sentiment, version = load_champion(settings, "sentiment")
    import pandas as pd

    sentiment.predict(pd.DataFrame({"text": texts[:16]}))  # warm up
    seconds, _ = timed(sentiment.predict, pd.DataFrame({"text": texts}))
    rows.append(("reviews scored", f"sentiment champion v{version} (pyfunc, bucketed batches of 64)", len(texts), seconds))
    from transformers import pipeline

    for label, kwargs, batch in (("defaults", {}, 1), ("batch_size=64", {}, 64),
                                 ("batch_size=64, bfloat16", {"dtype": torch.bfloat16}, 64)):
        classifier = pipeline("text-classification", model=resolve_base_model(""), device=-1, **kwargs)
        classifier(texts[:16], truncation=True, max_length=128)
        seconds, _ = timed(classifier, texts, truncation=True, max_length=128, batch_size=batch)
        rows.append(("reviews scored", f"transformers.pipeline('text-classification'), {label}", len(texts), seconds))

    # series: the forecaster champion on every store x sku series, next `horizon` periods
    forecaster, version = load_champion(settings, "forecaster")
    meta = forecaster.unwrap_python_model().meta
    question = forecast_input(read_validated(lake, "sales", day), horizon=meta.horizon, period_days=meta.period_days)
    seconds, _ = timed(forecaster.predict, question)
    series = len(question[["store_id", "sku"]].drop_duplicates())
    rows.append(("series forecast", f"forecaster champion v{version}, {meta.horizon} periods each", series, seconds))

    # customers: the recommender champion, the whole batch and one customer at a time
    recommender, version = load_champion(settings, "recommender")
    history = read_validated(lake, "interactions", day)[["customer_id", "sku", "timestamp"]]
    seconds, _ = timed(recommender.predict, history, params={"top_k": 10})
    customers = history["customer_id"].nunique()
    rows.append(("customers served", f"recommender champion v{version}, batch of all customers", customers, seconds))
    one = history[history["customer_id"] == history["customer_id"].iloc[0]]
    recommender.predict(one, params={"top_k": 10})
    singles = [timed(recommender.predict, one, params={"top_k": 10})[0] for _ in range(20)]
    rows.append(("customers served", f"recommender champion v{version}, one customer per call", 20, sum(singles)))

    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = machine_name(device)
    today = datetime.date.today().isoformat()
    results = [{"what": w, "how": h, "items": n, "seconds": round(s, 3), "per_second": round(n / s, 1)}
               for w, h, n, s in rows]
    plain = results[1]["per_second"]  # transformers.pipeline with its defaults
    lines = [f"Consumer throughput ({today}, {machine})", "",
             "| what | how | items | seconds | per second | vs pipeline defaults |", "|---|---|---:|---:|---:|---:|"]
    for r in results:
        ratio = f"{r['per_second'] / plain:.1f}x" if r["what"] == "reviews scored" else ""
        lines.append(f"| {r['what']} | {r['how']} | {r['items']:,} | {r['seconds']} | {r['per_second']:,} | {ratio} |")
    write_results(f"consumers_{device}", {"date": today, "machine": machine, "results": results}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
