"""The scale path's Python side: price export for ClickHouse and the OTLP forwarder."""
