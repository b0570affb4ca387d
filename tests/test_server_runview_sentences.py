"""The run page's detection sentences name argument values only for spans recorded with capture on."""

from __future__ import annotations

from typing import Any

from runtrace import semconv as sc
from runtrace.server.runview import explain_event

# What an older runtrace wrote with content capture off: the arguments inside the description.
LEAKY_LOOP = "lookup_customer(email='jane.doe@example.com', api_key='sk-live-SECRET123') returned the same result 3 times"
LEAKY_READ = "read_file(path='/home/jane/.ssh/id_rsa') returned the same result as an earlier read (2 times so far)"


def tool_span(name: str, **attributes: Any) -> dict[str, Any]:
    return {"span_id": "00000000000000a1", "name": f"execute_tool {name}", "tool_name": name,
            "attributes": attributes}


def loop_event(description: str | None, kind: str = "same_call", count: int = 3) -> dict[str, Any]:
    attrs: dict[str, Any] = {sc.LOOP_KIND: kind, sc.LOOP_COUNT: count}
    if description is not None:
        attrs[sc.LOOP_DESCRIPTION] = description
    return {"name": sc.EVENT_LOOP, "attributes": attrs}


def read_event(description: str | None, count: int = 2) -> dict[str, Any]:
    attrs: dict[str, Any] = {sc.TOOL_REPEAT_COUNT: count}
    if description is not None:
        attrs[sc.LOOP_DESCRIPTION] = description
    return {"name": sc.EVENT_REPEATED_READ, "attributes": attrs}


def test_without_captured_arguments_the_sentence_is_the_tool_and_counts() -> None:
    span = tool_span("lookup_customer")
    found = explain_event(loop_event(LEAKY_LOOP), span)
    assert found is not None and found.kind == "loop"
    assert found.sentence == "lookup_customer was called 3 times with the same arguments and returned the same result."
    read = explain_event(read_event(LEAKY_READ), tool_span("read_file"))
    assert read is not None
    assert read.sentence == "read_file returned content identical to an earlier read (2 times so far)."


def test_with_captured_arguments_the_description_is_shown_as_written() -> None:
    span = tool_span("lookup_customer", **{sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"email":"jane.doe@example.com"}'})
    found = explain_event(loop_event(LEAKY_LOOP), span)
    assert found is not None and found.sentence == LEAKY_LOOP + "."
    read_span = tool_span("read_file", **{sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"path":"/home/jane/.ssh/id_rsa"}'})
    read = explain_event(read_event(LEAKY_READ), read_span)
    assert read is not None and read.sentence == LEAKY_READ + "."


def test_cycle_and_completion_descriptions_carry_no_values_and_are_kept() -> None:
    span = {"span_id": "00000000000000b2", "name": "chat gpt-5.5", "tool_name": None, "attributes": {}}
    cycle = explain_event(loop_event("the cycle search -> read_file repeated 3 times", kind="cycle"), span)
    assert cycle is not None and cycle.sentence == "The cycle search -> read_file repeated 3 times."
    same = explain_event(loop_event(None, kind="same_completion"), span)
    assert same is not None and same.sentence == "The model returned the same completion 3 times."
