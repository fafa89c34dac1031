"""Constants and helpers shared by the test folders (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from datetime import UTC, datetime

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
"""A fixed 'now' for tests that pass the clock in."""
