"""Jittered, capped exponential back-off: the one retry policy of the project."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of ``min_s * 2**n`` capped at ``max_s``, each scaled by a random factor in
    [0.5, 1) so that many gateways cut off together do not reconnect together."""

    min_s: float = 0.5
    max_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the base up to ``max_s``."""
        base = min(self.max_s, self.min_s * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return base * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        """Start again from ``min_s`` (after a successful connection)."""
        self.attempt = 0
