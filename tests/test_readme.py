"""The README's code runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(BLOCKS[index], f"README.md[{index}]", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out


def _readme_commands() -> list[str]:
    """The commands of the README's set-up block, without comments or ``&& rcu-compare``."""
    block = re.search(r"## Set up\n\n```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None
    commands = []
    for line in block.group(1).splitlines():
        command = line.split("#", 1)[0].strip()
        commands.append(command.split(" && ")[0].strip())
    return [c for c in commands if c]


def test_ci_runs_the_readme_commands_exactly_in_their_own_venv() -> None:
    script = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    section = re.search(r'step "the README, exactly.*?\n(.*?)\nstep "', script, re.S)
    assert section is not None, "no README step in .ci/run"
    ran = [
        line.strip()
        for line in section.group(1).splitlines()
        if line.strip().startswith(("python ", "pip "))
    ]
    assert ran == _readme_commands()
    assert 'python3 -m venv "$work/readme"' in section.group(1)  # a fresh one
