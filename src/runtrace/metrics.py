"""runtrace's metrics: GenAI client metrics plus cost, runs, budget stops and loops.

Spans answer "what did this run do"; metrics answer "how much, how often"
across every run, cheaply, in Prometheus or any OTLP backend. The two GenAI
histograms follow the semantic conventions (names, units, advised buckets),
so dashboards built for other GenAI instrumentations read them unchanged.

Where the numbers go (``configure``, called by ``instrument()``):

- an SDK ``MeterProvider`` the application installed globally is joined: its
  readers export runtrace's metrics too;
- runtrace makes a provider of its own only when it has readers to give it:
  ``instrument(metric_readers=...)`` or an OTLP endpoint (explicit, or from the
  environment when the application has no SDK MeterProvider);
- with neither, runtrace records through the global API provider, a no-op
  until the application installs one. Until then nothing is built for it at
  all (no attribute dicts, no record calls): :meth:`MeterSinks.live` leaves the
  API's proxy instruments out while they have no real instrument behind them,
  and takes them back the moment a provider is set.

runtrace never sets the global MeterProvider itself: OpenTelemetry allows that
once per process, and ``uninstrument()`` must be able to shut runtrace's own
provider down so that a later ``instrument()`` can start a fresh one.
Recording is fail-open and costs a few dictionary look-ups when nothing listens.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics as metrics_api

from . import _config, _state, semconv
from ._internal import fail_open

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource

logger = logging.getLogger("runtrace")

TOKEN_INPUT = "input"  # gen_ai.token.type values
TOKEN_OUTPUT = "output"


@dataclass(frozen=True)
class _Instruments:
    """The instruments of one MeterProvider runtrace records into."""

    token_usage: metrics_api.Histogram
    duration: metrics_api.Histogram
    cost: metrics_api.Counter
    runs: metrics_api.Counter
    budget_stops: metrics_api.Counter
    loops: metrics_api.Counter

    @classmethod
    def create(cls, provider: metrics_api.MeterProvider) -> _Instruments:
        from . import __version__

        meter = provider.get_meter("runtrace", __version__)
        return cls(
            token_usage=meter.create_histogram(
                semconv.METRIC_TOKEN_USAGE, unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=semconv.TOKEN_USAGE_BUCKETS),
            duration=meter.create_histogram(
                semconv.METRIC_OPERATION_DURATION, unit="s",
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS),
            cost=meter.create_counter(
                semconv.METRIC_COST, unit="USD",
                description="Cost of priced LLM calls in US dollars (unpriced calls add nothing)."),
            runs=meter.create_counter(
                semconv.METRIC_RUNS, unit="{run}", description="Agent runs ended, by outcome."),
            budget_stops=meter.create_counter(
                semconv.METRIC_BUDGET_STOPS, unit="{stop}",
                description="Runs stopped by their budget, by the limit reached."),
            loops=meter.create_counter(
                semconv.METRIC_LOOPS, unit="{detection}",
                description="Runaway-loop detections, by kind."),
        )


    def listening(self) -> bool:
        """False while these are the API's proxy instruments with no MeterProvider set behind them.

        The proxy gives each instrument its real one when the application sets a
        provider (all at once); an SDK instrument has no ``_real_instrument`` and
        always listens. A private attribute, read defensively: if a later API
        renames it, this answers True and recording goes on as before.
        """
        return getattr(self.token_usage, "_real_instrument", True) is not None


@dataclass(frozen=True)
class MeterSinks:
    """Where runtrace's metrics go for one ``instrument()``: part of ``_state.Installed``."""

    sinks: tuple[_Instruments, ...]
    own_provider: MeterProvider | None
    proxy: _Instruments | None = None  # the sink on the global API provider, when it is only a proxy

    def live(self) -> tuple[_Instruments, ...]:
        """The sinks that record now: the proxy's only once a provider is set (hot path: one attribute read).

        Every LLM call asks; recording into a proxy that has nothing behind it
        would build four attribute dicts and make four calls that do nothing.
        """
        proxy = self.proxy
        if proxy is None or proxy.listening():
            return self.sinks
        return self.sinks[:-1]  # the proxy's sink is always the last one (configure)


def otlp_metrics_endpoint(explicit: str | None) -> str | None:
    """The OTLP metrics URL: ``explicit`` (a base URL), else the standard environment variables."""
    return _config.otlp_endpoint(explicit, "metrics")


def configure(*, resource: Resource | None = None, otlp_endpoint: str | None = None,
              metric_readers: Sequence[MetricReader] = ()) -> MeterSinks:
    """Choose where runtrace's metrics go (see the module docstring); ``instrument()`` installs the result."""
    from opentelemetry.sdk.metrics import MeterProvider

    global_provider = metrics_api.get_meter_provider()
    joined = isinstance(global_provider, MeterProvider)
    readers: list[MetricReader] = list(metric_readers)
    target = _config.otlp_target(otlp_endpoint, "metrics") if (otlp_endpoint or not joined) else None
    if target:
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        from ._otlp import metric_exporter

        readers.append(PeriodicExportingMetricReader(metric_exporter(target)))

    own: MeterProvider | None = None
    sinks: list[_Instruments] = []
    if readers:
        own = (MeterProvider(metric_readers=readers, resource=resource) if resource is not None
               else MeterProvider(metric_readers=readers))
        sinks.append(_Instruments.create(own))
    proxy: _Instruments | None = None
    if joined or own is None:
        sinks.append(_Instruments.create(global_provider))
        if not sinks[-1].listening():  # the API's proxy, nothing set behind it yet
            proxy = sinks[-1]
    return MeterSinks(tuple(sinks), own, proxy)


def shutdown(meters: MeterSinks | None, timeout_millis: float = 30_000) -> None:
    """Flush and shut down runtrace's own provider of ``meters`` (a joined one is left alone).

    ``uninstrument()`` calls it after swapping the state out, so nothing records into it any more.
    """
    if meters is not None and meters.own_provider is not None:
        with fail_open("metrics shutdown"):
            meters.own_provider.shutdown(timeout_millis=timeout_millis)


def force_flush(timeout_millis: int = 30_000) -> bool:
    """Export what runtrace's own provider holds now; True when it succeeded (or there is none)."""
    installed = _state.current()
    meters = installed.meters if installed is not None else None
    if meters is None or meters.own_provider is None:
        return True
    return bool(meters.own_provider.force_flush(timeout_millis))


def _attrs(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """OpenTelemetry attributes cannot be None: a value runtrace does not know is left out."""
    return {k: v for k, v in pairs if v is not None}


def _sinks() -> tuple[_Instruments, ...]:
    installed = _state.current()
    meters = installed.meters if installed is not None else None
    return meters.live() if meters is not None else ()


def record_llm_call(*, operation: str, provider: str | None, request_model: str | None,
                    response_model: str | None, input_tokens: int | None, output_tokens: int | None,
                    duration_s: float | None, error_type: str | None, cost_usd: float | None,
                    project: str | None, owner: str | None,
                    sinks: tuple[_Instruments, ...] | None = None) -> None:
    """One finished LLM call: token usage, duration, and its cost when it was priced.

    Token counts that the response did not report are passed as None and not
    recorded (the semantic conventions say so); so is the cost of an unpriced
    call, which is never a $0 observation. ``sinks``: the installed state's live
    sinks when the caller has read them already (else read here).
    """
    if sinks is None:
        sinks = _sinks()
    if not sinks:
        return
    with fail_open("metrics record_llm_call"):
        common = _attrs(((semconv.GEN_AI_OPERATION_NAME, operation), (semconv.GEN_AI_PROVIDER_NAME, provider),
                         (semconv.GEN_AI_REQUEST_MODEL, request_model),
                         (semconv.GEN_AI_RESPONSE_MODEL, response_model)))
        duration_attrs = dict(common, **_attrs(((semconv.ERROR_TYPE, error_type),)))
        cost_attrs = _attrs(((semconv.PROJECT, project), (semconv.OWNER, owner),
                             (semconv.GEN_AI_REQUEST_MODEL, request_model),
                             (semconv.GEN_AI_PROVIDER_NAME, provider)))
        for sink in sinks:
            if input_tokens is not None:
                sink.token_usage.record(input_tokens, {**common, semconv.GEN_AI_TOKEN_TYPE: TOKEN_INPUT})
            if output_tokens is not None:
                sink.token_usage.record(output_tokens, {**common, semconv.GEN_AI_TOKEN_TYPE: TOKEN_OUTPUT})
            if duration_s is not None:
                sink.duration.record(duration_s, duration_attrs)
            if cost_usd is not None and cost_usd >= 0:
                sink.cost.add(cost_usd, cost_attrs)


def record_run(*, outcome: str, project: str | None, owner: str | None) -> None:
    """A run ended with ``outcome`` (``open`` when it had no verdict yet)."""
    _add("runs", {semconv.RUN_OUTCOME: outcome, semconv.PROJECT: project, semconv.OWNER: owner})


def record_budget_stop(*, reason: str, project: str | None, owner: str | None) -> None:
    """A run was stopped by its budget; ``reason`` is the limit (``max_cost_usd``, ``loop``, ...)."""
    _add("budget_stops", {semconv.RUN_STOP_REASON: reason, semconv.PROJECT: project, semconv.OWNER: owner})


def record_loop(*, kind: str, project: str | None, owner: str | None) -> None:
    """The loop detector fired (``same_call``, ``cycle`` or ``same_completion``)."""
    _add("loops", {semconv.LOOP_KIND: kind, semconv.PROJECT: project, semconv.OWNER: owner})


def _add(instrument: str, attributes: Mapping[str, Any]) -> None:
    sinks = _sinks()
    if not sinks:
        return
    with fail_open(f"metrics {instrument}"):
        attrs = _attrs(attributes.items())
        for sink in sinks:
            getattr(sink, instrument).add(1, attrs)


__all__ = ["MeterSinks", "configure", "force_flush", "otlp_metrics_endpoint", "record_budget_stop", "record_llm_call",
           "record_loop", "record_run", "shutdown"]
