"""JSON that may arrive as text: tool arguments, tool inputs and captured messages.

A model sends tool-call arguments as JSON text, a tool receives them as values,
an agent's telemetry and the store keep them as strings: every reader that
compares, hashes or shows them parses through this one function, so the same
arguments read alike wherever they were recorded.
"""

from __future__ import annotations

import json
from typing import Any


def parse_json_text(value: Any) -> Any:
    """``value`` parsed when it is JSON text; anything else, or text that is not JSON, as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
