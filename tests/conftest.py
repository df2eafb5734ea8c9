"""Shared test fixtures."""

from __future__ import annotations

import os

# The notebooks and course tests run on the quick profile whatever the caller's environment says.
os.environ.setdefault("SF2F_PROFILE", "quick")
