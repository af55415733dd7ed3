"""Helpers for the benchmark tests: the repository root (the benchmarks and run.sh run from it), on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
