"""store/records.with_attributes: the fast copy ingest uses in place of dataclasses.replace."""

from __future__ import annotations

import dataclasses

from runtrace.store.records import EventRecord, SpanRecord, with_attributes


def _full_record() -> SpanRecord:
    """A record with every field set to a value other than its default."""
    return SpanRecord(
        trace_id="ab" * 16, span_id="cd" * 8, parent_span_id="ef" * 8, name="chat claude-opus-4-8",
        kind="CLIENT", start_ns=1_700_000_000_000_000_000, end_ns=1_700_000_001_500_000_000,
        status_code="ERROR", status_message="boom", attributes={"gen_ai.usage.input_tokens": 12},
        resource={"service.name": "claude-code"},
        events=(EventRecord(name="exception", time_ns=1_700_000_001_000_000_000, attributes={"k": "v"}),),
        scope_name="com.anthropic.claude_code", scope_version="2.1.0")


def test_with_attributes_equals_dataclasses_replace_on_every_field() -> None:
    record = _full_record()
    added = {"gen_ai.usage.input_tokens": 12, "runtrace.cost.usd": 0.25}
    fast = with_attributes(record, added)
    assert fast == dataclasses.replace(record, attributes=added)
    assert fast.attributes is added
    assert record.attributes == {"gen_ai.usage.input_tokens": 12}


def test_with_attributes_knows_every_field_of_span_record() -> None:
    # A field added to SpanRecord must be added to with_attributes too, or it would
    # be silently reset to its default on every span that ingest prices or folds.
    assert [f.name for f in dataclasses.fields(SpanRecord)] == [
        "trace_id", "span_id", "parent_span_id", "name", "kind", "start_ns", "end_ns", "status_code",
        "status_message", "attributes", "resource", "events", "scope_name", "scope_version"]
