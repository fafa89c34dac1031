"""Integration tests use both fake peers: put the ARI and AGI test folders on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for folder in ("ari", "agi"):
    path = str(_TESTS / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
