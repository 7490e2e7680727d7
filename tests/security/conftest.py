"""The security tests reuse the reliability tests' MLflow server process (faults.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))  # faults.py: not a package
