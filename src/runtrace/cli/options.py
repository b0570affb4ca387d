"""The options several commands share, declared once so ``--store`` means the same file everywhere.

``runtrace runs``, ``show``, ``serve``, ``report``, ``reprice``, ``outcome``,
``forward`` and the agent commands all read or write one store: the same flag,
the same ``RUNTRACE_STORE`` fallback, the same path checks (issue 10, item 5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .. import semconv

__all__ = ["STORE_HELP", "STORE_OPTION", "store_option"]

STORE_HELP = "SQLite store file [default: ~/.runtrace/runtrace.db]."


def store_option(help: str = STORE_HELP) -> Callable[[Any], Any]:  # noqa: A002 - click's own name
    """``--store PATH`` (into ``store_path``), falling back to ``RUNTRACE_STORE``; ``help`` says what it is for."""
    return click.option("--store", "store_path", type=click.Path(dir_okay=False), envvar=semconv.ENV_STORE,
                        show_envvar=True, help=help)


STORE_OPTION = store_option()
