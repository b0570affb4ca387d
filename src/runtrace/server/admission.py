"""How many body bytes the receiver reads and decodes at once, across all requests.

Decoding costs about 9-13 times the body in memory (measured: a 55 MiB OTLP/JSON
body peaked at 470 MiB above idle, a 34.5 MiB protobuf one of the same spans at
300 MiB), so six large bodies at once took 4 GiB. A request first takes its
bytes from this budget; when they are not there it is a 503 with Retry-After,
which OTLP exporters retry with backoff, as the specification expects.
"""

from __future__ import annotations

__all__ = ["ByteBudget"]


class ByteBudget:
    """A counter of bytes in use, touched only from the event loop (so it needs no lock)."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.in_use = 0

    def try_take(self, size: int) -> bool:
        """Take ``size`` bytes if they are free. One request alone is always let in, whatever its size,
        so a body under the body limit is never refused on an idle server."""
        if self.in_use and self.in_use + size > self.capacity:
            return False
        self.in_use += size
        return True

    def give_back(self, size: int) -> None:
        self.in_use = max(0, self.in_use - size)
