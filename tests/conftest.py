"""Shared test fixtures."""

from __future__ import annotations

import os

# The notebooks and course tests run on the quick profile whatever the caller's environment says.
os.environ.setdefault("SF2F_PROFILE", "quick")
# nbval runs the notebooks without a browser: no widget controls (notebook 07), only the static figures
os.environ.setdefault("SF2F_INTERACTIVE", "0")
