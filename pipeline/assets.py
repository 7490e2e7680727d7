"""Names of the Airflow Assets that link the DAGs (plain strings: no Airflow import here)."""

from __future__ import annotations

FEEDS = ("sales", "reviews", "interactions", "catalog", "stock")
FAMILIES = ("sentiment", "forecaster", "recommender")
# the feeds each model family is trained on (a hold on one of them holds its retraining)
FAMILY_FEEDS = {"sentiment": ("reviews",), "forecaster": ("sales",), "recommender": ("interactions", "catalog")}


def validated_asset(feed: str) -> str:
    """Updated each time a feed's drop is published and its quality checked."""
    return f"retail://validated/{feed}"


def champion_asset(family: str) -> str:
    """Updated each time a family's champion alias moves."""
    return f"retail://champion/{family}"
