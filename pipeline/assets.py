"""Names of the Airflow Assets that link the DAGs (plain strings: no Airflow import here)."""

from __future__ import annotations

FEEDS = ("sales", "reviews", "interactions", "catalog")
FAMILIES = ("sentiment", "forecaster", "recommender")


def validated_asset(feed: str) -> str:
    """Updated each time a feed's validated partition is published."""
    return f"retail://validated/{feed}"


def champion_asset(family: str) -> str:
    """Updated each time a family's champion alias moves."""
    return f"retail://champion/{family}"
