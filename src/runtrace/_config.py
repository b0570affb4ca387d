"""Settings that instrument() decides once and the instrumentations read per call.

Kept apart from ``_setup`` so that ``instrumentation/*`` can read them without
importing the module that imports the instrumentations.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from opentelemetry import trace

from . import semconv

logger = logging.getLogger("runtrace")

_TRUE = {"true", "1", "yes", "on", "span_only", "span_and_event"}
_FALSE = {"false", "0", "no", "off", "", "no_content", "event_only"}


def capture_content_from_env() -> bool:
    """Read OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT.

    Accepts the legacy boolean and util-genai's enum (SPAN_ONLY and
    SPAN_AND_EVENT put content on spans, which is where runtrace records it).
    A value we do not understand is treated as off, with a warning: leaking
    prompts because of a typo would be the worse failure.
    """
    raw = os.environ.get(semconv.ENV_CAPTURE_CONTENT)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value not in _FALSE:
        logger.warning("runtrace: %s=%r is not one of true, false, NO_CONTENT, SPAN_ONLY, "
                       "EVENT_ONLY, SPAN_AND_EVENT; content capture stays off",
                       semconv.ENV_CAPTURE_CONTENT, raw)
    return False


def otlp_endpoint(explicit: str | None, signal: str) -> str | None:
    """The OTLP/HTTP URL of one signal ("traces", "metrics").

    ``explicit`` is a base URL (``/v1/<signal>`` is added unless present);
    otherwise the standard variables, the signal's own first.
    """
    path = f"/v1/{signal}"
    if explicit:
        base = explicit.rstrip("/")
        return base if base.endswith(path) else base + path
    own = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if own:
        return own
    shared = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return shared.rstrip("/") + path if shared else None


@dataclass
class Settings:
    capture_content: bool = False
    stream_usage: bool = False
    tracer_provider: trace.TracerProvider | None = None
    extra: dict[str, object] = field(default_factory=dict)
    _tracers: dict[str, trace.Tracer] = field(default_factory=dict, repr=False)

    def tracer(self, name: str) -> trace.Tracer:
        """One tracer per name for as long as these settings last (hot path: every call)."""
        tracer = self._tracers.get(name)
        if tracer is None:
            from . import __version__

            tracer = self._tracers[name] = trace.get_tracer(name, __version__,
                                                            tracer_provider=self.tracer_provider)
        return tracer


_settings = Settings()


def settings() -> Settings:
    return _settings


def replace_settings(new: Settings) -> None:
    global _settings
    _settings = new
