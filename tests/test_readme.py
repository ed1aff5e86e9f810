"""Every command the README shows is one the tools accept as written.

Each ``python experiments/<tool>.py ...`` line of the README's bash blocks (continuation lines
joined, ``$W`` as the README defines it) goes through that tool's own argument parser: a flag
that was renamed or removed, or a value a choice does not allow, fails here. The README's set-up
commands themselves are what CI runs.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from experiments.commands import extract, predict, sweep

README = Path(__file__).resolve().parents[1] / "README.md"
PARSERS = {
    "experiments/sweep.py": sweep.parse_args,
    "experiments/extract.py": extract.parse_args,
    "experiments/predict.py": predict.parse_args,
}


def readme_commands() -> list[str]:
    """The README's shell commands, one string each, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    commands = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def tool_commands() -> list[str]:
    found = [c for c in readme_commands() for tool in PARSERS if c.startswith(f"python {tool}")]
    assert len(found) >= 10, "the README shows the sweep, extraction and prediction commands"
    return found


@pytest.mark.parametrize("command", tool_commands())
def test_readme_command_parses(command: str, tmp_path: Path, monkeypatch) -> None:
    text = README.read_text()
    for name, value in re.findall(r'^([A-Z])="([^"]*)"', text, re.M):  # as the README sets
        command = command.replace(f"${name}", value)
    monkeypatch.chdir(tmp_path)  # the files the README writes first, e.g. databases.toml
    for path, body in re.findall(r"cat > (\S+) <<'END'\n(.*?)\nEND\n", text, re.S):
        (tmp_path / path).write_text(body + "\n")
    words = shlex.split(command)
    for flag, value in zip(words, words[1:], strict=False):  # a weights file is read as parsed
        if flag == "--weights" and not Path(value).is_absolute():
            (tmp_path / value).write_bytes(b"\x89HDF\r\n\x1a\n")  # a converted file's start
    parse = PARSERS[words[1]]
    try:
        parse(words[2:])
    except SystemExit as exit:  # argparse's way of refusing
        pytest.fail(f"the README's `{command}` is refused (exit {exit.code})")


def test_readme_weights_path_is_the_tools_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The port example writes where extraction and the sweep look by default."""
    from core.features.extract import default_weights_path

    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    monkeypatch.delenv("VGGFACE_WEIGHTS", raising=False)
    port = [c for c in readme_commands() if c.startswith("python -m core.port") and "--out" in c]
    assert port, "the README shows how to write the converted weights"
    out = shlex.split(port[0])[-1].replace("${XDG_CACHE_HOME:-$HOME/.cache}", "/xdg")
    assert Path(out) == default_weights_path()
