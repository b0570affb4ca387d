"""collector/otelcol.yaml and compose.yaml: they parse, every pipeline's components
are declared, and every component type exists in the pinned otelcol-contrib release.

No collector binary runs here, so the release's component list is kept as data:
source: open-telemetry/opentelemetry-collector-releases,
distributions/otelcol-contrib/manifest.yaml, the revision whose modules are all
v0.136.0 (read 2026-11-22). Type names map from module names by each component's
metadata.yaml (e.g. memorylimiterprocessor -> memory_limiter).
"""

from __future__ import annotations

import re

import yaml

from scale_helpers import ROOT

PINNED = "0.136.0"
CORE = "go.opentelemetry.io/collector"
CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib"
# (kind, type used in config) -> module in the v0.136.0 manifest
TYPES = {
    ("receivers", "otlp"): f"{CORE}/receiver/otlpreceiver",
    ("receivers", "prometheus"): f"{CONTRIB}/receiver/prometheusreceiver",
    ("processors", "batch"): f"{CORE}/processor/batchprocessor",
    ("processors", "memory_limiter"): f"{CORE}/processor/memorylimiterprocessor",
    ("processors", "deltatocumulative"): f"{CONTRIB}/processor/deltatocumulativeprocessor",
    ("processors", "transform"): f"{CONTRIB}/processor/transformprocessor",
    ("processors", "groupbytrace"): f"{CONTRIB}/processor/groupbytraceprocessor",
    ("exporters", "clickhouse"): f"{CONTRIB}/exporter/clickhouseexporter",
    ("exporters", "prometheus"): f"{CONTRIB}/exporter/prometheusexporter",
    ("exporters", "debug"): f"{CORE}/exporter/debugexporter",
    ("exporters", "otlphttp"): f"{CORE}/exporter/otlphttpexporter",
    ("connectors", "signaltometrics"): f"{CONTRIB}/connector/signaltometricsconnector",
    ("connectors", "spanmetrics"): f"{CONTRIB}/connector/spanmetricsconnector",
    ("extensions", "health_check"): f"{CONTRIB}/extension/healthcheckextension",
    ("extensions", "file_storage"): f"{CONTRIB}/extension/storage/filestorage",
}
# The manifest's modules for the kinds above (each at v0.136.0), abridged to what TYPES names
# plus neighbours, so a typo in TYPES cannot pass silently.
MANIFEST_V0_136_0 = {
    f"{CORE}/receiver/otlpreceiver", f"{CORE}/receiver/nopreceiver",
    f"{CONTRIB}/receiver/prometheusreceiver", f"{CONTRIB}/receiver/prometheusremotewritereceiver",
    f"{CORE}/processor/batchprocessor", f"{CORE}/processor/memorylimiterprocessor",
    f"{CONTRIB}/processor/deltatocumulativeprocessor", f"{CONTRIB}/processor/cumulativetodeltaprocessor",
    f"{CONTRIB}/processor/transformprocessor", f"{CONTRIB}/processor/groupbytraceprocessor",
    f"{CONTRIB}/processor/tailsamplingprocessor", f"{CONTRIB}/processor/probabilisticsamplerprocessor",
    f"{CORE}/exporter/debugexporter", f"{CORE}/exporter/otlpexporter", f"{CORE}/exporter/otlphttpexporter",
    f"{CONTRIB}/exporter/clickhouseexporter", f"{CONTRIB}/exporter/prometheusexporter",
    f"{CONTRIB}/exporter/prometheusremotewriteexporter",
    f"{CORE}/connector/forwardconnector", f"{CONTRIB}/connector/signaltometricsconnector",
    f"{CONTRIB}/connector/spanmetricsconnector", f"{CONTRIB}/connector/countconnector",
    f"{CONTRIB}/extension/healthcheckextension", f"{CONTRIB}/extension/storage/filestorage",
    f"{CONTRIB}/extension/pprofextension", f"{CORE}/extension/zpagesextension",
}
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")

CONFIG_TEXT = (ROOT / "collector" / "otelcol.yaml").read_text()
CONFIG = yaml.safe_load(CONFIG_TEXT)
COMPOSE = yaml.safe_load((ROOT / "collector" / "compose.yaml").read_text())


def type_of(component_id: str) -> str:
    return component_id.split("/", 1)[0]  # "batch/metrics" is a second batch processor


def test_release_is_pinned_and_named_consistently() -> None:
    assert f"otelcol-contrib v{PINNED}" in CONFIG_TEXT.splitlines()[1]
    assert COMPOSE["services"]["otelcol"]["image"] == f"otel/opentelemetry-collector-contrib:{PINNED}"
    assert set(TYPES.values()) <= MANIFEST_V0_136_0


def test_every_component_type_is_in_the_pinned_release() -> None:
    for kind in KINDS:
        for component_id in CONFIG.get(kind) or {}:
            assert (kind, type_of(component_id)) in TYPES, f"{kind}: {component_id} is not in v{PINNED}"


def test_every_pipeline_component_is_declared_and_used() -> None:
    service = CONFIG["service"]
    declared = {kind: set(CONFIG.get(kind) or {}) for kind in KINDS}
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for name, pipeline in service["pipelines"].items():
        signal = type_of(name)
        assert signal in ("traces", "metrics", "logs"), name
        for kind in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(kind, []):
                where = declared[kind] | (declared["connectors"] if kind != "processors" else set())
                assert component_id in where, f"pipeline {name}: {kind} {component_id} is not declared"
                used["connectors" if component_id in declared["connectors"] else kind].add(component_id)
        assert pipeline["receivers"] and pipeline["exporters"], name
    for ext in service["extensions"]:
        assert ext in declared["extensions"]
    used["extensions"] = set(service["extensions"])
    for kind in KINDS:
        assert declared[kind] == used[kind], f"{kind} declared but unused: {declared[kind] - used[kind]}"


def test_traces_pipeline_shape() -> None:
    pipelines = CONFIG["service"]["pipelines"]
    traces = pipelines["traces"]
    assert traces["processors"] == ["memory_limiter", "batch"]  # memory_limiter first, then batch
    assert set(traces["exporters"]) == {"clickhouse", "signaltometrics"}
    # no sampling anywhere: cost data must be complete
    assert not [c for kind in ("processors",) for c in CONFIG[kind] if "sampl" in c]
    # a connector must be an exporter in one pipeline and a receiver in another
    assert "signaltometrics" in pipelines["metrics/runs"]["receivers"]
    assert pipelines["metrics/runs"]["processors"][-2:] == ["deltatocumulative", "batch/metrics"]
    receivers = CONFIG["receivers"]["otlp"]["protocols"]
    assert receivers["grpc"]["endpoint"].endswith(":4317") and receivers["http"]["endpoint"].endswith(":4318")


def test_clickhouse_exporter_is_durable_and_uses_our_schema() -> None:
    ch = CONFIG["exporters"]["clickhouse"]
    assert ch["create_schema"] is False and ch["database"] == "otel" and ch["traces_table_name"] == "otel_traces"
    assert ch["sending_queue"]["enabled"] is True and ch["sending_queue"]["storage"] == "file_storage"
    assert ch["retry_on_failure"]["enabled"] is True
    assert "file_storage" in CONFIG["service"]["extensions"]
    assert CONFIG["extensions"]["health_check"]["endpoint"].endswith(":13133")


def test_span_metrics_are_low_cardinality_and_name_known_attributes() -> None:
    from runtrace import semconv

    known = {v for k, v in vars(semconv).items() if k.isupper() and isinstance(v, str)}
    for metric in CONFIG["connectors"]["signaltometrics"]["spans"]:
        keys = {a["key"] for a in metric.get("attributes", [])}
        assert semconv.RUN_ID not in keys, metric["name"]  # one series per run would swamp Prometheus
        assert keys <= known, metric["name"]
        for condition in metric["conditions"]:
            assert set(re.findall(r'attributes\["([^"]+)"\]', condition)) <= known
        assert set(metric) & {"sum", "histogram", "gauge", "exponential_histogram"} == {"sum"}


def test_compose_mounts_what_exists() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"clickhouse", "otelcol", "prometheus", "grafana"}
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (ROOT / "collector" / source).exists(), f"{name}: {source} does not exist"
    assert "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_PLUGINS_PREINSTALL"]
    ports = {p.split(":")[0] for s in services.values() for p in s.get("ports", [])}
    assert ports == {"4317", "4318", "13133", "8123", "9000", "9090", "3000"}
    prometheus = yaml.safe_load((ROOT / "collector" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert "otelcol:8889" in targets
    assert CONFIG["exporters"]["prometheus"]["endpoint"].endswith(":8889")


def _seconds(duration: str) -> float:
    """A Go duration as the collector parses it (only the units these configs use)."""
    parts = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)", duration)
    assert parts, f"not a duration: {duration!r}"
    unit = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * unit[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


def test_prometheus_keeps_series_as_long_as_deltatocumulative() -> None:
    """A series deltatocumulative still accumulates must not expire from /metrics first (default 5m)."""
    assert _seconds("1h30m") == 5400 and _seconds("5m") == 300
    exporter = CONFIG["exporters"]["prometheus"]
    stale = _seconds(CONFIG["processors"]["deltatocumulative"]["max_stale"])
    assert _seconds(exporter.get("metric_expiration", "5m")) >= stale == 1800


def test_clickhouse_init_loads_schema_and_prices() -> None:
    (mount,) = [m for m in COMPOSE["services"]["clickhouse"]["volumes"] if "/docker-entrypoint-initdb.d" in m]
    source = ROOT / "collector" / mount.split(":")[0]
    names = sorted(p.name for p in source.glob("*.sql"))
    assert names[:2] == ["01_otel_traces.sql", "02_runtrace_prices.sql"]
    assert "06_runtrace_prices_data.sql" in names
