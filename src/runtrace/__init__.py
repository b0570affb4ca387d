"""runtrace: what each agent run cost, whether it was worth it, and where it wasted money.

```python
import runtrace

runtrace.instrument(service_name="support-agent")
with runtrace.run("fix flaky test #412", project="billing", owner="alice") as run:
    agent.solve(issue)
    run.accept()
```
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._setup import flush, instrument, uninstrument
from .policy import Policy
from .runs import Budget, BudgetExceeded, Run, current_run, record_outcome, run

__all__ = [
    "Budget",
    "BudgetExceeded",
    "Policy",
    "Run",
    "__version__",
    "current_run",
    "flush",
    "instrument",
    "record_outcome",
    "run",
    "tool",
    "uninstrument",
]


def __getattr__(name: str) -> object:
    # `tool` lives with the tool instrumentation, imported on first use so that
    # `import runtrace` stays light.
    if name == "tool":
        from .instrumentation.tools import tool

        return tool
    raise AttributeError(f"module 'runtrace' has no attribute {name!r}")
