-- runtrace_prices: the price data the SDK uses (genai-prices' bundled snapshot),
-- flattened so ClickHouse can price spans that carry gen_ai.usage.* but no
-- runtrace.cost.usd (spans from other SDKs and languages). It must be filled
-- before spans arrive: the materialized views price at insert time, so spans
-- inserted earlier keep the prices they got (unpriced). 06_runtrace_prices_data.sql
-- fills it at init (it is `runtrace prices export --format clickhouse`, committed;
-- tests/test_scale_prices.py keeps it equal to the export). After upgrading runtrace
-- reload it with
--   runtrace prices export --format clickhouse | clickhouse-client --multiquery
-- (it truncates the table first).
--
-- One row per (provider, model, price period). A span matches the first row
-- (lowest `rank`) whose provider_names contains its gen_ai.provider.name and whose
-- `match_any` accepts its model, among the rows with valid_from <= span start,
-- the latest valid_from winning. `match_any` is genai-prices' match logic in
-- disjunctive normal form: a list of alternatives, each a list of RE2 patterns
-- that must all match; a pattern written `!P` must NOT match (RE2 has no lookahead).
-- Prices are USD per million tokens. A `*_tiers` entry (start, price) replaces the
-- base price for ALL tokens once the call's total input exceeds `start` (the
-- cliff model genai-prices uses). NULL cache prices mean "not priced separately":
-- those tokens are then charged as plain input, as genai-prices does.
-- Not expressed here (priced at standard rates in SQL): service-tier / batch
-- variants and time-of-day discounts.

CREATE TABLE IF NOT EXISTS otel.runtrace_prices
(
    `provider_id` LowCardinality(String),
    `provider_names` Array(String),
    `rank` UInt32,
    `model_id` String,
    `match_any` Array(Array(String)),
    `valid_from` Date,
    `input_mtok` Float64,
    `input_tiers` Array(Tuple(UInt64, Float64)),
    `cache_read_mtok` Nullable(Float64),
    `cache_read_tiers` Array(Tuple(UInt64, Float64)),
    `cache_write_mtok` Nullable(Float64),
    `cache_write_tiers` Array(Tuple(UInt64, Float64)),
    `output_mtok` Float64,
    `output_tiers` Array(Tuple(UInt64, Float64)),
    `price_table` LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (provider_id, rank, valid_from);
