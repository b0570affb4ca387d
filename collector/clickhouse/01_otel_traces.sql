-- otel_traces exactly as the ClickHouse exporter (otelcol-contrib v0.136.0,
-- exporter/clickhouseexporter) writes it, so a team can own its DDL and run the
-- exporter with `create_schema: false`. Column names, types and order match the
-- exporter's INSERT (internal/sqltemplates/traces_insert.sql):
--   Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,
--   ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes,
--   Duration, StatusCode, StatusMessage, Events.*, Links.*
-- Engine, partitioning, indexes and TTL are ours to choose (exporter README);
-- these follow the exporter's own template (traces_table.sql).
-- Every attribute value arrives as a string (pcommon AsString): cast in SQL.

CREATE DATABASE IF NOT EXISTS otel;

CREATE TABLE IF NOT EXISTS otel.otel_traces
(
    `Timestamp` DateTime64(9) CODEC(Delta(8), ZSTD(1)),          -- span start
    `TraceId` String CODEC(ZSTD(1)),                               -- 32 lowercase hex
    `SpanId` String CODEC(ZSTD(1)),                                -- 16 lowercase hex
    `ParentSpanId` String CODEC(ZSTD(1)),                          -- '' for a root span
    `TraceState` String CODEC(ZSTD(1)),
    `SpanName` LowCardinality(String) CODEC(ZSTD(1)),
    `SpanKind` LowCardinality(String) CODEC(ZSTD(1)),              -- 'Client' or 'SPAN_KIND_CLIENT' (by exporter version)
    `ServiceName` LowCardinality(String) CODEC(ZSTD(1)),
    `ResourceAttributes` Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    `ScopeName` String CODEC(ZSTD(1)),
    `ScopeVersion` String CODEC(ZSTD(1)),
    `SpanAttributes` Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    `Duration` UInt64 CODEC(ZSTD(1)),                              -- nanoseconds
    `StatusCode` LowCardinality(String) CODEC(ZSTD(1)),            -- 'Error' or 'STATUS_CODE_ERROR' (by exporter version)
    `StatusMessage` String CODEC(ZSTD(1)),
    `Events` Nested
    (
        `Timestamp` DateTime64(9),
        `Name` LowCardinality(String),
        `Attributes` Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    `Links` Nested
    (
        `TraceId` String,
        `SpanId` String,
        `TraceState` String,
        `Attributes` Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
-- Add a retention if you want one; cost history is usually kept, so none by default:
-- TTL toDateTime(Timestamp) + toIntervalDay(400)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

-- The trace-id -> time-range helper the exporter creates next to otel_traces; the
-- Grafana ClickHouse plugin uses it (traceTimestampTableSuffix `_trace_id_ts`) to
-- bound the partition scan when it opens one trace. One row per insert block:
-- readers take min(Start) / max(End) again.
CREATE TABLE IF NOT EXISTS otel.otel_traces_trace_id_ts
(
    `TraceId` String CODEC(ZSTD(1)),
    `Start` DateTime CODEC(Delta(4), ZSTD(1)),
    `End` DateTime CODEC(Delta(4), ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel.otel_traces_trace_id_ts_mv
TO otel.otel_traces_trace_id_ts
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM otel.otel_traces
WHERE TraceId != ''
GROUP BY TraceId;
