"""Hypothesis profiles: ``ci`` for ``make test``, ``fuzz`` for ``make fuzz``.

``make test`` (CI) draws the same examples on every run, so that a red CI is
reproducible and never a lottery, and a quarter as many as the test asks for:
the property tests are there to catch regressions on every change, and most of
what they find turns up in the first examples. ``make fuzz`` draws fresh random
examples, the full number each test asks for, ``FUZZ_ROUNDS`` times: that is
where the hunting happens. A test states its full number as
``max_examples=examples(N)``.
"""

from __future__ import annotations

import os

from hypothesis import settings

__all__ = ["CI_SHARE", "PROFILE", "examples", "load_profile"]

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
CI_SHARE = 4  # make test draws 1/CI_SHARE of each test's examples


def examples(full: int) -> int:
    """How many examples to draw for a test whose full run is ``full``."""
    return full if PROFILE == "fuzz" else max(full // CI_SHARE, 5)


# A test that states no number gets Hypothesis's own default (100) in full, the same share.
settings.register_profile(
    "ci", derandomize=True, database=None, print_blob=True, max_examples=100 // CI_SHARE
)
settings.register_profile("fuzz", derandomize=False, print_blob=True)


def load_profile() -> None:
    settings.load_profile(PROFILE)
