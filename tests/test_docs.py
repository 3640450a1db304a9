"""The README stays in step with the command line and with CI."""

import re
from pathlib import Path

import typer

from softplus_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = README + "".join(path.read_text() for path in sorted(ROOT.glob("docs/*.md")))


def quick_start_commands():
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.DOTALL)


def test_quick_start_has_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert commands[0].endswith("softplus eval -20 -1 0 1 20")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert script[-1] == quick_start_commands()[1]


def test_every_command_and_option_is_documented():
    group = typer.main.get_command(app)
    context = typer.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert f"softplus {name}" in DOCS, name
        for parameter in command.params:
            for option in parameter.opts:
                if option.startswith("--") and option != "--help":
                    assert option in DOCS, f"{name} {option}"
