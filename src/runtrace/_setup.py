"""``instrument()``, ``uninstrument()`` and ``flush()``: wiring runtrace into OpenTelemetry.

runtrace joins an SDK TracerProvider that the program already installed
(adding its processors to it) and only installs its own when there is none,
so it never takes tracing away from an application that has it. Everything
runtrace adds sits behind one ``SwitchableProcessor``, which is how
``uninstrument()`` detaches from a provider that cannot remove processors.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import sys
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import wrapt
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from . import _config, _state, detect, metrics, policy_enforce, pricing, runs, semconv
from ._forksafe import fork_safe_rlock
from ._internal import fail_open
from ._processors import DuplicateMarker, RunStampProcessor, SwitchableProcessor, flush_all, shutdown_all
from .policy import Policy

logger = logging.getLogger("runtrace")

# (name, runtrace module, client module) of every client runtrace can patch. A
# client is patched when the program imports it (wrapt post-import hook), or at
# once if it already has: instrument() never imports an SDK the program does not use.
INSTRUMENTATIONS: tuple[tuple[str, str, str], ...] = (
    ("openai", "runtrace.instrumentation.openai", "openai"),
    ("anthropic", "runtrace.instrumentation.anthropic", "anthropic"),
    ("mcp", "runtrace.instrumentation.mcp", "mcp"),
    ("litellm", "runtrace.instrumentation.litellm", "litellm"),
    ("gemini", "runtrace.instrumentation.gemini", "google.genai"),
    ("bedrock", "runtrace.instrumentation.bedrock", "botocore.client"),
    # mistralai 2.x+ is a namespace package (no import hook fires for it): hook its client
    # module; 1.x had everything in the regular package ``mistralai``.
    ("mistral", "runtrace.instrumentation.mistral", "mistralai.client"),
    ("mistral", "runtrace.instrumentation.mistral", "mistralai"),
)


STORE_QUEUE_SIZE = 65_536  # spans waiting for the local store (about 100 MB at worst)

# What instrument() sets up is one _state.Installed, published whole. What is left here lasts
# for the process, across instrument()/uninstrument() pairs:
_lock = fork_safe_rlock()  # instrument()/uninstrument()/patching one at a time; re-created unheld after fork
_switches: dict[int, SwitchableProcessor] = {}  # one per provider we ever joined (it cannot remove them)
_atexit_registered = False


def _resolve_store_path(store: str | os.PathLike[str] | bool | None) -> str | None:
    if store is False:
        return None
    if store is None or store is True:
        env = os.environ.get(semconv.ENV_STORE)
        return str(Path(env).expanduser()) if env else str(Path("~/.runtrace/runtrace.db").expanduser())
    return str(Path(store).expanduser())


def _store_exporter(path: str) -> SpanExporter | None:
    """The local store's exporter; None (and one error logged) when the file cannot be opened.

    A read-only disk or a bad path must not stop the program that is being
    instrumented: its spans still reach any other exporter.
    """
    import sqlite3

    from .store.db import Store
    from .store.errors import StoreError
    from .store.exporter import StoreSpanExporter

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return StoreSpanExporter(Store.open(path))
    except (OSError, sqlite3.Error, StoreError) as exc:
        logger.error("runtrace: cannot open the store %s (%s); spans are not kept locally", path, exc)
        return None


def _sdk_provider(provider: object) -> TracerProvider | None:
    """The SDK TracerProvider behind the global provider, or None when there is none to join.

    Logfire (and pydantic-ai through it) installs a proxy that is an API provider
    wrapping an SDK one in ``.provider``; runtrace joins that SDK provider, so
    runtrace's spans and Logfire's go to both sides. Were Logfire re-configured
    later, it would swap in a new SDK provider without runtrace's processors.
    """
    if isinstance(provider, TracerProvider):
        return provider
    inner = getattr(provider, "provider", None)
    return inner if isinstance(inner, TracerProvider) else None


def instrument(*, service_name: str | None = None, store: str | os.PathLike[str] | bool | None = None,
               otlp_endpoint: str | None = None, capture_content: bool | None = None,
               prices: Mapping[str, Any] | str | os.PathLike[str] | None = None,
               stream_usage: bool = False, default_budget: runs.Budget | None = None,
               loop_thresholds: detect.LoopThresholds | None = None,
               span_processors: tuple[SpanProcessor, ...] = (),
               metric_readers: tuple[MetricReader, ...] = (),
               policies: Policy | str | os.PathLike[str] | None = None) -> None:
    """Patch the LLM and tool clients and route their spans to the store and OTLP.

    Call once at start-up; later calls do nothing (call ``uninstrument()``
    first to change settings).

    - ``service_name``: else ``OTEL_SERVICE_NAME``, else ``"runtrace"``.
    - ``store``: SQLite path; default ``RUNTRACE_STORE`` or ``~/.runtrace/runtrace.db``;
      ``False`` keeps nothing locally.
    - ``otlp_endpoint``: also export over OTLP; default from
      ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``
      when runtrace installs the provider (a provider you installed keeps its own exporters).
      ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]PROTOCOL`` picks ``grpc`` or ``http/protobuf``
      (the default); set without an endpoint, it means the spec's localhost:4317 / :4318.
    - ``capture_content``: record prompts, completions, tool arguments and
      results, argument values in detection sentences and exception messages;
      default from ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, off.
      Off, only hashes, lengths, counts, names and exception types leave the process.
    - ``prices``: overrides, a mapping or a TOML file (see ``runtrace.pricing``);
      ``RUNTRACE_PRICES`` names a file too.
    - ``stream_usage``: ask OpenAI for the usage chunk on streams
      (``stream_options={"include_usage": True}``) when the caller did not say.
    - ``default_budget``: the budget of runs that do not name one.
    - ``loop_thresholds``: when the runaway-loop detector fires (default: 3 identical
      calls, a cycle of up to 4 calls repeated 3 times, 3 identical completions).
    - ``metric_readers``: readers for runtrace's metrics (see ``runtrace.metrics``); metrics also
      go over OTLP with the endpoint rules above, or to a global SDK MeterProvider you installed.
    - ``policies``: a :class:`runtrace.Policy` or the path of a policy TOML file (default:
      ``RUNTRACE_POLICY``): caps per project and owner, approved tools and models
      (docs/policies.md). A bad file raises :class:`runtrace.policy.PolicyError` here.
    """
    global _atexit_registered
    with _lock:
        if _state.current() is not None:
            logger.debug("runtrace.instrument() called again; keeping the first configuration")
            return
        # Bad settings fail here, before anything is attached, and not at the first call.
        if prices is not None:
            pricer = pricing.Pricer(prices) if isinstance(prices, Mapping) else pricing.load_prices_file(prices)
        else:
            pricer = pricing.default_pricer()
        policy = policy_enforce.resolve(policies)
        current = _sdk_provider(trace.get_tracer_provider())
        owns = current is None
        otlp = _config.otlp_target(otlp_endpoint, "traces") if (owns or otlp_endpoint) else None
        _config.otlp_protocol("metrics")  # a bad protocol variable fails here, not in metrics.configure
        store_path = _resolve_store_path(store)
        processors: list[SpanProcessor] = [RunStampProcessor(), DuplicateMarker()]
        if store_path is not None:
            exporter = _store_exporter(store_path)
            if exporter is None:
                store_path = None
            else:
                # The SDK's default queue (2,048 spans) drops spans when an agent outruns the
                # writer; dropped spans are lost money in the totals, so the queue is deeper.
                queue = int(os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE", STORE_QUEUE_SIZE))
                processors.append(BatchSpanProcessor(exporter, max_queue_size=queue))

        if otlp is not None:
            from ._otlp import span_exporter

            processors.append(BatchSpanProcessor(span_exporter(otlp)))
        processors.extend(span_processors)

        if owns:
            name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "runtrace"
            provider = TracerProvider(resource=Resource.create({semconv.SERVICE_NAME: name}))
            trace.set_tracer_provider(provider)
            # set_tracer_provider refuses a second provider; use whatever is global now.
            provider = _sdk_provider(trace.get_tracer_provider()) or provider
        else:
            assert current is not None
            provider = current
            if service_name:
                logger.info("runtrace: joined the existing TracerProvider; its resource keeps its own "
                            "service.name (service_name=%r ignored)", service_name)

        switch = _switches.get(id(provider))
        if switch is None:
            switch = SwitchableProcessor(processors)
            provider.add_span_processor(switch)
            _switches[id(provider)] = switch
        else:
            switch.replace(processors)

        settings = _config.Settings(
            capture_content=_config.capture_content_from_env() if capture_content is None else capture_content,
            stream_usage=stream_usage,
            tracer_provider=provider,
        )
        meters: metrics.MeterSinks | None = None
        with fail_open("configure metrics"):
            meters = metrics.configure(resource=provider.resource, otlp_endpoint=otlp_endpoint,
                                       metric_readers=metric_readers)
        installed = _state.Installed(
            settings=settings, pricer=pricer, default_budget=default_budget,
            loop_thresholds=loop_thresholds or detect.LoopThresholds(),
            policy=policy_enforce.configure(policy, store_path), meters=meters,
            provider=provider, switch=switch, owns_provider=owns, store_path=store_path)
        _state.publish(installed)  # the one assignment that turns it all on
        hooks = [(_patch_hook(name, module, client, installed), client)
                 for name, module, client in INSTRUMENTATIONS]
        if not _atexit_registered:
            atexit.register(_at_exit)
            _atexit_registered = True
    # Outside _lock: wrapt runs the hook right here when the client is already in sys.modules,
    # possibly half-imported by another thread (see _patch_hook).
    for hook, client in hooks:
        wrapt.register_post_import_hook(hook, client)


def _patch_hook(name: str, module: str, client: str, installed: _state.Installed) -> Callable[[Any], None]:
    """The post-import hook that patches one client.

    A hook runs either in the importing thread, which holds the client's import lock, or
    in ``instrument()``'s thread while another thread may still be importing the client.
    Both must not wait for ``_lock`` and an import lock in opposite orders, so every import
    happens before ``_lock`` is taken (which waits for a half-done import of the client to
    finish), and ``_lock`` is never held while waiting for an import lock of a client.
    A hook of an earlier ``instrument()`` (wrapt cannot take one back) finds its state
    swapped out and stands down; it holds that state weakly, so the hooks of clients never
    imported do not keep an old configuration alive.
    """
    ref = weakref.ref(installed)
    del installed

    def patch(_client: Any) -> None:
        if _state.current() is None or _state.current() is not ref():
            return
        with fail_open(f"instrument {name}"):
            try:
                importlib.import_module(client)
                mod = importlib.import_module(module)
            except ModuleNotFoundError as exc:  # a part of the client our module needs is absent
                logger.debug("runtrace: %s not instrumented: %s", name, exc)
                return
            with _lock:
                installed = ref()
                if installed is None or _state.current() is not installed or name in installed.patched:
                    return
                if mod.instrument():
                    installed.patched.append(name)
    return patch


def instrumented_clients() -> list[str]:
    """The clients patched so far (a client is patched when the program imports it)."""
    installed = _state.current()
    return list(installed.patched) if installed else []


def uninstrument(timeout_millis: int = 30_000) -> None:
    """Undo ``instrument()``: restore every patched method and detach runtrace's processors.

    Pending spans are flushed to the store first, waiting at most ``timeout_millis`` in all
    (spans of threads still running go to no runtrace exporter once it returns).
    """
    deadline = time.monotonic() + max(0, timeout_millis) / 1000
    with _lock:
        # Swapped out first, in one assignment: from here every wrapper passes straight through,
        # and a call already under way finishes with the objects it read at its start.
        state = _state.publish(None)
        if state is None:
            return
        for name, module, _client in INSTRUMENTATIONS:
            loaded = sys.modules.get(module)  # patched, so loaded: no import under _lock
            if name in state.patched and loaded is not None:
                with fail_open(f"uninstrument {name}"):
                    loaded.uninstrument()
        # Detached first, so that threads still ending spans cannot keep the flush going.
        processors = state.switch.detach()
        policy_enforce.close(state.policy)
        with fail_open("uninstrument flush"):
            flush_all(processors, _remaining_ms(deadline))
            shutdown_all(processors, _remaining_ms(deadline))
        with fail_open("uninstrument metrics"):
            metrics.shutdown(state.meters, _remaining_ms(deadline))


def _remaining_ms(deadline: float) -> int:
    return max(0, int((deadline - time.monotonic()) * 1000))


def flush(timeout_millis: int = 30_000) -> bool:
    """Push every finished span into the store and exporters now; True when all succeeded.

    Returns within ``timeout_millis`` (False when the spans, or the metrics, were not all
    out by then), also while other threads keep making spans.
    """
    state = _state.current()
    if state is None:
        return True
    deadline = time.monotonic() + max(0, timeout_millis) / 1000
    spans_ok = state.switch.force_flush(timeout_millis)
    return metrics.force_flush(_remaining_ms(deadline)) and spans_ok


def is_instrumented() -> bool:
    return _state.current() is not None


def store_path() -> str | None:
    """Where this process writes its spans (None when it keeps none locally)."""
    installed = _state.current()
    return installed.store_path if installed else None


def _at_exit() -> None:
    with fail_open("flush at exit"):
        flush(10_000)
