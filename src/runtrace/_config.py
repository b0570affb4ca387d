"""Settings that instrument() decides once and the instrumentations read per call.

Kept apart from ``_setup`` so that ``instrumentation/*`` can read them without
importing the module that imports the instrumentations.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from opentelemetry import trace

from . import _state, semconv

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


PROTOCOL_GRPC = "grpc"
PROTOCOL_HTTP = "http/protobuf"
_HTTP_JSON = "http/json"  # in the spec, but the Python exporters do not speak it
DEFAULT_ENDPOINTS = {PROTOCOL_GRPC: "http://localhost:4317", PROTOCOL_HTTP: "http://localhost:4318"}


def otlp_protocol(signal: str) -> str:
    """``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``, else http/protobuf.

    An unknown value raises ValueError naming the variable (a typo must not silently send
    nowhere); ``http/json`` falls back to http/protobuf with a warning.
    """
    for key in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = os.environ.get(key)
        if raw is None or not raw.strip():
            continue
        value = raw.strip().lower()
        if value in (PROTOCOL_GRPC, PROTOCOL_HTTP):
            return value
        if value == _HTTP_JSON:
            logger.warning("runtrace: %s=http/json is not supported by the Python OTLP exporters; "
                           "using http/protobuf", key)
            return PROTOCOL_HTTP
        raise ValueError(f"{key}={raw!r} is not one of grpc, http/protobuf, http/json")
    return PROTOCOL_HTTP


def _protocol_set(signal: str) -> bool:
    return any(os.environ.get(k, "").strip() for k in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL",
                                                       "OTEL_EXPORTER_OTLP_PROTOCOL"))


@dataclass(frozen=True)
class OtlpTarget:
    """Where one signal goes over OTLP, and how."""

    endpoint: str
    protocol: str


def otlp_target(explicit: str | None, signal: str) -> OtlpTarget | None:
    """The OTLP endpoint and protocol of one signal ("traces", "metrics"); None: no OTLP export.

    ``explicit`` is a base URL; otherwise the standard variables, the signal's own first.
    Over http/protobuf a base URL gets ``/v1/<signal>`` (a signal's own variable is used as
    is); over gRPC every URL is used as is. A protocol variable set without any endpoint
    means "export over OTLP": the spec's default, localhost:4317 (gRPC) or :4318 (HTTP).
    """
    protocol = otlp_protocol(signal)
    grpc = protocol == PROTOCOL_GRPC
    path = f"/v1/{signal}"

    def from_base(base: str) -> str:
        base = base.rstrip("/")
        return base if grpc or base.endswith(path) else base + path

    if explicit:
        return OtlpTarget(from_base(explicit), protocol)
    own = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if own:
        return OtlpTarget(own, protocol)
    shared = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if shared:
        return OtlpTarget(from_base(shared), protocol)
    if _protocol_set(signal):
        return OtlpTarget(from_base(DEFAULT_ENDPOINTS[protocol]), protocol)
    return None


def otlp_endpoint(explicit: str | None, signal: str) -> str | None:
    """The OTLP URL of one signal (see ``otlp_target``)."""
    target = otlp_target(explicit, signal)
    return target.endpoint if target else None


@dataclass
class Settings:
    """What the instrumentations read per call; part of ``_state.Installed``, made once per instrument()."""

    capture_content: bool = False
    stream_usage: bool = False
    tracer_provider: trace.TracerProvider | None = None
    extra: dict[str, object] = field(default_factory=dict)
    _tracers: dict[str, trace.Tracer] = field(default_factory=dict, repr=False)

    def tracer(self, name: str) -> trace.Tracer:
        """One tracer per name for as long as these settings last (hot path: ``get_tracer`` costs ~10 us).

        The settings of the uninstrumented process (no provider) keep none: their
        tracer comes from the global provider, which the program may set later.
        """
        tracer = self._tracers.get(name)
        if tracer is None:
            from . import __version__

            tracer = trace.get_tracer(name, __version__, tracer_provider=self.tracer_provider)
            if self.tracer_provider is not None:
                self._tracers[name] = tracer
        return tracer


_UNINSTRUMENTED = Settings()  # what settings() answers while runtrace is not instrumenting


def settings() -> Settings:
    """The settings of the installed state (``_state.current()``), else the defaults."""
    installed = _state.current()
    return installed.settings if installed is not None else _UNINSTRUMENTED
