"""The operator image as written: this machine has no container builder, so the Dockerfile is
checked for what a cluster relies on (non-root user, the console script as entry point, files
that exist, pinned bases) and the chart's default tag is checked to follow the package."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from vigil.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM this belongs to


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped (enough for the
    checks here; Dockerfile's own grammar is simple at this level)."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if not full:
            continue
        keyword, _, args = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    assert not pending, "a line continuation runs to the end of the file"
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile((REPO / "Dockerfile").read_text())


def _final(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def test_parser_joins_continuations_and_counts_stages() -> None:
    got = parse_dockerfile("# c\nFROM a:1 AS b\nRUN x \\\n  && y\nFROM c:2\nUSER 1\n")
    assert [(i.keyword, i.args, i.stage) for i in got] == [
        ("FROM", "a:1 AS b", 0), ("RUN", "x && y", 0), ("FROM", "c:2", 1), ("USER", "1", 1)]


def test_it_is_multi_stage_and_every_base_is_pinned_by_tag(dockerfile: list[Instruction]) -> None:
    froms = [i.args.split()[0] for i in dockerfile if i.keyword == "FROM"]
    assert len(froms) >= 2, "the wheel is built in a builder stage, the runtime stage only installs it"
    for image in froms:
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{image}: pin the base image by a version tag"
        assert "python" in name


def test_the_runtime_python_satisfies_requires_python(dockerfile: list[Instruction]) -> None:
    base = next(i.args.split()[0] for i in _final(dockerfile) if i.keyword == "FROM")
    major, minor = map(int, re.search(r":(\d+)\.(\d+)", base).groups())
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    low = tuple(map(int, re.search(r">=\s*(\d+)\.(\d+)", required).groups()))
    assert (major, minor) >= low


def test_the_runtime_runs_as_user_65532(dockerfile: list[Instruction]) -> None:
    users = [i.args for i in _final(dockerfile) if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] == "65532"


def test_the_entry_point_is_the_console_script_and_runs_the_operator(dockerfile: list[Instruction]) -> None:
    final = _final(dockerfile)
    entrypoint = json.loads([i.args for i in final if i.keyword == "ENTRYPOINT"][-1])
    cmd = json.loads([i.args for i in final if i.keyword == "CMD"][-1])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["vigil"] and scripts["vigil"] == "vigil.cli.main:main"
    # `vigil operator` is a real command of that script
    assert build_parser().parse_args(cmd).func.__name__ == "cmd_operator"


def test_nothing_is_written_to_the_root_filesystem_at_run_time(dockerfile: list[Instruction]) -> None:
    env = " ".join(i.args for i in _final(dockerfile) if i.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env  # the one writable place: the chart mounts an emptyDir there
    # (the rendered chart's read-only root and /tmp mount: tests/unit/test_chart.py)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex (Go's filepath.Match plus `**`)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics: the last matching pattern wins, `!` re-includes; a pattern
    matches a path or any of its parent directories."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def test_every_copied_source_exists_and_reaches_the_build_context(dockerfile: list[Instruction]) -> None:
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    copies = [i for i in dockerfile if i.keyword in {"COPY", "ADD"} and "--from=" not in i.args]
    assert copies
    for copy in copies:
        words = [w for w in copy.args.split() if not w.startswith("--")]
        for source in words[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
            assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_matcher_can_exclude() -> None:
    assert _ignored("tests/unit", ["*", "!pyproject.toml", "!operator/"])
    assert not _ignored("operator/vigil/cli/main.py", ["*", "!pyproject.toml", "!operator/"])
    assert _ignored("operator/vigil/__pycache__/x.pyc", ["*", "!operator/", "**/__pycache__"])


def test_the_charts_default_image_tag_is_the_package_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((REPO / "charts" / "vigil" / "Chart.yaml").read_text())
    values = yaml.safe_load((REPO / "charts" / "vigil" / "values.yaml").read_text())
    assert chart["appVersion"] == version
    assert values["image"]["tag"] in ("", None)  # empty: the template falls back to appVersion
    # (that the rendered image is <repository>:<appVersion>: tests/unit/test_chart.py)
