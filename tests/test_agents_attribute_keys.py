"""The logs decoder reads only the record attributes an adapter reads (``agents.attribute_keys``), and that changes nothing.

Claude Code's adapter declares its keys (``claude.EVENT_KEYS``); every
recorded Claude session (the shared sample and the kit's recordings: resumed,
retried, API error, defaults, project) must give the very same span records
from its events decoded with every attribute and decoded with those keys only,
over OTLP/protobuf and OTLP/JSON. A key the adapter reads but does not
declare reads as absent and fails here.
"""

from __future__ import annotations

import json

import pytest

from agent_samples import FIXTURES, SAMPLES, protobuf_body, raw_requests
from runtrace import agents
from runtrace import semconv as sc
from runtrace.agents import claude
from runtrace.store.otlp_logs import decode_logs_json, decode_logs_protobuf

CLAUDE_RECORDINGS = [(SAMPLES, "claude")] + [(FIXTURES, name) for name in
                                             ("claude-apierror", "claude-defaults", "claude-project",
                                              "claude-resume", "claude-retry")]
OTHERS = [(SAMPLES, "codex"), (FIXTURES, "codex-resume"), (FIXTURES, "gemini")]


def _bodies(root: object, name: str) -> list[dict[str, object]]:
    found = [b for b in raw_requests(name, "logs", root) if "_trimmed" not in b]  # type: ignore[arg-type]
    if not found:
        pytest.skip(f"no recording {name} in {root}")
    return found


@pytest.mark.parametrize(("root", "name"), CLAUDE_RECORDINGS)
def test_claude_records_are_the_same_from_the_declared_keys_only(root: object, name: str) -> None:
    records = 0
    for body in _bodies(root, name):
        wire = protobuf_body(body, "logs")
        text = json.dumps(body)
        full = decode_logs_protobuf(wire)
        some = decode_logs_protobuf(wire, agents.attribute_keys)
        assert some == decode_logs_json(text, agents.attribute_keys)
        assert len(some) == len(full)
        for event, whole in zip(some, full, strict=True):
            assert set(event.attributes) <= claude.EVENT_KEYS | {sc.EVENT_NAME}
            assert event.attributes == {k: v for k, v in whole.attributes.items()
                                        if k in claude.EVENT_KEYS or k == sc.EVENT_NAME}
            assert (event.name, event.time_ns, event.resource, event.body) == (
                whole.name, whole.time_ns, whole.resource, whole.body)
        made = agents.records_from_events(some)
        assert made == agents.records_from_events(full)
        records += len(made)
    assert records > 0


def test_the_shared_claude_sample_skips_the_attributes_no_adapter_reads() -> None:
    bodies = _bodies(SAMPLES, "claude")
    full = [e for b in bodies for e in decode_logs_protobuf(protobuf_body(b, "logs"))]
    some = [e for b in bodies for e in decode_logs_protobuf(protobuf_body(b, "logs"), agents.attribute_keys)]
    assert (len(full), sum(len(e.attributes) for e in full)) == (25, 365)
    assert sum(len(e.attributes) for e in some) == 199  # 8 a record, of 14.6
    assert all("terminal.type" not in e.attributes and "user.id" not in e.attributes for e in some)


@pytest.mark.parametrize(("root", "name"), OTHERS)
def test_agents_that_declare_no_keys_get_every_attribute(root: object, name: str) -> None:
    for body in _bodies(root, name):
        wire = protobuf_body(body, "logs")
        assert decode_logs_protobuf(wire, agents.attribute_keys) == decode_logs_protobuf(wire)


def test_events_of_a_service_no_adapter_takes_keep_only_their_name() -> None:
    body = {"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "some-other-service"}}]},
        "scopeLogs": [{"scope": {"name": "x"}, "logRecords": [{
            "timeUnixNano": "1700000000000000000",
            "attributes": [{"key": "event.name", "value": {"stringValue": "thing"}},
                           {"key": "secret", "value": {"stringValue": "not read"}},
                           {"key": "count", "value": {"intValue": "3"}}]}]}]}]}
    (event,) = decode_logs_protobuf(protobuf_body(body, "logs"), agents.attribute_keys)
    assert (event.name, event.attributes, event.resource) == ("thing", {"event.name": "thing"},
                                                              {"service.name": "some-other-service"})
    assert agents.records_from_events([event]) == []
    (whole,) = decode_logs_protobuf(protobuf_body(body, "logs"))
    assert whole.attributes == {"event.name": "thing", "secret": "not read", "count": 3}
