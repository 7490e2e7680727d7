"""Plain-text tables for task logs and the command line."""

from __future__ import annotations

from typing import Any


def text_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A fixed-width table, for task logs."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])
