"""Every command and subcommand of ``vigie`` explains itself and each of its options and arguments."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

from vigie.cli import app

ROOT = typer.main.get_command(app)


def _walk(command, path: tuple[str, ...]):
    """(path, command, its parameters) for ``command`` and every command below it."""
    ctx = command.context_class(command, info_name=path[-1])
    yield path, command, command.get_params(ctx)
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            yield from _walk(command.get_command(ctx, name), path + (name,))


COMMANDS = list(_walk(ROOT, ("vigie",)))


def test_the_tree_is_walked():
    names = {" ".join(path) for path, _, _ in COMMANDS}
    assert {"vigie", "vigie serve", "vigie check", "vigie keys create", "vigie simulate water",
            "vigie db upgrade"} <= names


@pytest.mark.parametrize("path, command, params", COMMANDS, ids=[" ".join(p) for p, _, _ in COMMANDS])
def test_command_and_each_parameter_have_help(path, command, params):
    assert (command.help or "").strip(), f"{' '.join(path)}: no help text (its docstring or help=)"
    missing = [p.name for p in params if not (getattr(p, "help", None) or "").strip()]
    assert not missing, f"{' '.join(path)}: no help for {', '.join(missing)}"


@pytest.mark.parametrize("path", [p for p, _, _ in COMMANDS], ids=[" ".join(p) for p, _, _ in COMMANDS])
def test_help_renders(path):
    result = CliRunner().invoke(app, [*path[1:], "--help"], prog_name="vigie", env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert f"Usage: {' '.join(path)}" in result.output and "--help" in result.output
