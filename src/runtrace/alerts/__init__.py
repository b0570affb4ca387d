"""Alerts without Grafana: ``runtrace serve --alerts alerts.toml`` (docs/alerts.md).

:mod:`.config` reads and checks the file, :mod:`.rules` evaluates it against
the store's runs, :mod:`.deliver` posts firings to the webhook, :mod:`.engine`
runs both on background threads of the server. The store is the memory: one
``alerts`` row per rule and run (or window) and a cursor over ``spans``.
"""

from __future__ import annotations

from .config import AlertsConfig, AlertsConfigError, Rule, load_alerts

__all__ = ["AlertsConfig", "AlertsConfigError", "Rule", "load_alerts"]
