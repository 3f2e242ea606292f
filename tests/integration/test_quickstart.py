"""The README's quick start is exactly `make demo` and `make test`, and `make demo` works from a
fresh copy of the repository with nothing but python3 and make (CI runs `make test` itself)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", section, re.S)
    assert block, "the quick start has no code block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_quick_start_is_exactly_two_make_commands() -> None:
    assert quick_start_commands() == ["make demo", "make test"]


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.slow
def test_make_demo_runs_on_a_fresh_copy(tmp_path: Path) -> None:
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("make and git are needed")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["COLUMNS"] = "160"
    result = subprocess.run(
        ["make", "demo"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600
    )
    stop = re.search(r"gsomia demo --stop --data (\S+)", result.stdout)
    try:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        assert "every step ended as the story says" in result.stdout
        assert "JPN → USA → KOR" in result.stdout  # the hub route after the lapse
        assert "route KOR → USA → JPN" in result.stdout  # the missile-warning link's hub
        assert (tmp_path / ".venv" / "bin" / "gsomia").exists()
    finally:
        if stop:  # the demo leaves its nodes running for the user: stop them
            subprocess.run(
                [str(tmp_path / ".venv" / "bin" / "gsomia"), "demo", "--stop", "--data", stop[1]],
                capture_output=True,
                timeout=60,
            )
    assert stop, "the demo did not say how to stop its nodes"


def test_readme_python_example_runs_and_prints_what_it_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code, "the README has no Python example"
    exec(compile(code.group(1), "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["in-force", "terminated", "True ('JPN', 'USA', 'KOR') ('TISA', 'TISA')"]
    # Every comment that shows output in the example matches what was printed.
    for shown in re.findall(r"# (in-force|terminated|True .*)$", code.group(1), re.M):
        assert shown in out
