"""Which code a benchmark measured: printed with its figures."""

from __future__ import annotations

import subprocess
from pathlib import Path


def code_version() -> str:
    """The commit under measurement, and whether core/ or store/ differ from it (read-only git)."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "--no-optional-locks", "-C", str(root)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            [*git, "diff", "--quiet", "HEAD", "--", "core", "store"], check=False
        ).returncode
    except (OSError, subprocess.CalledProcessError):
        return "code version unknown"
    return f"commit {head.stdout.strip()}" + (" + local changes in core/ or store/" if dirty else "")
