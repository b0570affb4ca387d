"""Coding agents' OpenTelemetry (Claude Code, Codex CLI, Gemini CLI) as runtrace runs.

One module per agent turns its log events into the store's normalised span
records (see each module's docstring); they enter the store through the one
ingest path like any span. (Placeholder: the logs-infrastructure branch adds
``records_from_events`` here, dispatching by resource ``service.name``.)
"""
