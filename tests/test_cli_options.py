"""Issue 10 item 5: one shared ``--store`` option, the same flag on every command that opens the store."""

from __future__ import annotations

from pathlib import Path

import click

import runtrace.cli
from runtrace import semconv
from runtrace.cli import main

CLI = Path(runtrace.cli.__file__).parent


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        found[prefix + name] = command
        if isinstance(command, click.Group):
            found.update(_commands(command, prefix + name + " "))
    return found


def test_every_store_flag_is_the_shared_option() -> None:
    with_store = {}
    for name, command in _commands(main).items():
        for param in command.params:
            if isinstance(param, click.Option) and "--store" in param.opts:
                with_store[name] = param
    assert {"runs", "show", "serve", "report", "reprice", "outcome", "forward"} <= set(with_store)
    for name, param in with_store.items():
        assert (param.name, param.envvar, param.show_envvar) == ("store_path", semconv.ENV_STORE, True), name
        assert isinstance(param.type, click.Path) and param.type.dir_okay is False, name
        assert param.type.type is None, name  # the same value type everywhere: the path as typed (str)


def test_only_cli_options_declares_it() -> None:
    declaring = sorted(p.name for p in CLI.glob("*.py") if '"--store"' in p.read_text(encoding="utf-8"))
    assert declaring == ["options.py"]
