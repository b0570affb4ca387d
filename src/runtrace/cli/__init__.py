"""The ``runtrace`` command line: one click group (``app``) and a module per command family.

``serve``/``report``/``reprice``, ``prices``/``forward``, ``outcome`` and ``agents``
are attached lazily by ``app`` so that one command whose dependencies fail to
load still leaves the others working.
"""

from __future__ import annotations

from .app import main, open_store, parse_when

__all__ = ["main", "open_store", "parse_when"]
