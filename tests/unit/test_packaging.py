"""The operator's runtime is only the operator: what the wheel declares, and what the runtime
modules import, stay apart from the demo, the local control plane and the tests.

A platform team installs `vigil` (or runs its image) and gets kopf, the Kubernetes client, the
statistics and the Prometheus client, never scikit-learn, matplotlib or pytest.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "vigil"
# the extras hold everything else; `vigil operator` needs exactly these
CORE = {"kopf", "kubernetes", "pydantic", "numpy", "scipy", "prometheus-api-client", "prometheus-client",
        "requests", "urllib3", "pyyaml", "cryptography", "tenacity", "python-json-logger",
        "aiohttp"}
DEMO_OR_DEV_ONLY = {"scikit-learn", "matplotlib", "jinja2", "psutil", "pytest", "hypothesis"}
# packages the operator's process must never load (aiohttp is not among them: kopf needs it,
# and the operator serves /healthz and /readyz with it)
BLOCKED_AT_RUNTIME = ("sklearn", "matplotlib", "jinja2", "psutil", "pytest", "hypothesis")
# the parts of the package that are extras, not runtime
NOT_RUNTIME = ("demo", "dev")


def _name(requirement: str) -> str:
    """The canonical distribution name of a requirement string (PEP 503)."""
    head = re.split(r"[\s;<>=!~\[(]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", head).lower()


@pytest.fixture(scope="module")
def wheel_metadata(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str | None, set[str]], str]:
    """Build the wheel from a copy of the sources (the shared checkout gets no build/ or
    egg-info) and return its Requires-Dist by extra, and its entry points."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copytree(REPO / "operator", src / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("vigil-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(meta_name).decode())
        entry_points = zf.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    by_extra: dict[str | None, set[str]] = {}
    for req in meta.get_all("Requires-Dist") or []:
        marker = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
        by_extra.setdefault(marker.group(1) if marker else None, set()).add(_name(req))
    return by_extra, entry_points


def test_the_wheel_requires_only_the_operators_runtime(wheel_metadata: tuple[dict[str | None, set[str]], str]) -> None:
    by_extra, _ = wheel_metadata
    assert by_extra[None] == CORE
    assert not by_extra[None] & DEMO_OR_DEV_ONLY


def test_demo_dev_and_test_extras_bring_the_rest(wheel_metadata: tuple[dict[str | None, set[str]], str]) -> None:
    by_extra, _ = wheel_metadata
    assert {"scikit-learn", "matplotlib", "jinja2", "vigil"} <= by_extra["demo"]
    assert "psutil" in by_extra["dev"]
    assert {"pytest", "hypothesis", "vigil"} <= by_extra["test"]


def test_the_console_scripts_are_the_cli(wheel_metadata: tuple[dict[str | None, set[str]], str]) -> None:
    _, entry_points = wheel_metadata
    assert re.search(r"^vigil\s*=\s*vigil\.cli\.main:main$", entry_points, re.MULTILINE), entry_points
    assert re.search(r"^kubectl-vigil\s*=\s*vigil\.cli\.main:kubectl_plugin$", entry_points, re.MULTILINE), entry_points


def _runtime_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if p.relative_to(PACKAGE).parts[0] not in NOT_RUNTIME]


def _module_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Top-level package names imported when the module loads (function bodies are lazy;
    `if TYPE_CHECKING:` blocks never run)."""
    found: list[tuple[int, str]] = []

    def visit(stmts: list[ast.stmt]) -> None:
        for node in stmts:
            if isinstance(node, ast.Import):
                found.extend((node.lineno, a.name.split(".")[0]) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((node.lineno, node.module.split(".")[0]))
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(tree.body)
    return found


def test_runtime_modules_import_only_core_packages_at_load_time() -> None:
    """Every package a runtime module imports when it loads is the standard library, Vigil,
    or a declared core dependency; demo and dev packages are imported inside the function
    that needs them."""
    allowed = set(sys.stdlib_module_names) | {"vigil"}
    for import_name, dists in md.packages_distributions().items():
        if any(_name(d) in CORE for d in dists):
            allowed.add(import_name)
    offenders = []
    for path in _runtime_modules():
        for line, name in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if name not in allowed:
                offenders.append(f"{path.relative_to(REPO)}:{line}: {name}")
    assert not offenders, "runtime modules import packages outside the core dependencies:\n" + "\n".join(offenders)


def test_runtime_modules_do_not_load_the_demo_or_dev_tooling() -> None:
    offenders = []
    for path in _runtime_modules():
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and re.match(r"vigil\.(demo|dev)\b", node.module):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.module}")
    assert not offenders, offenders


BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED_AT_RUNTIME!r}:
                raise ImportError("not in the operator's runtime: " + name)
            return None

    sys.meta_path.insert(0, Refuse())
""")


def _run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=REPO, check=False, timeout=300)


def test_the_operator_and_the_cli_load_without_demo_or_dev_packages() -> None:
    result = _run_blocked("""
        import vigil.handlers.operator, vigil.cli.main, vigil.cli.uninstall_cmd
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r})
        assert not loaded, loaded
        print("loaded")
    """.replace("{blocked!r}", repr(BLOCKED_AT_RUNTIME)))
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr


def test_the_blocker_really_refuses() -> None:
    """The check above can fail: loading the dev tooling under the same blocker is refused."""
    result = _run_blocked("import vigil.dev.process")  # psutil, at module level
    assert result.returncode != 0 and "not in the operator's runtime" in result.stderr


@pytest.mark.parametrize("argv", [["--help"], ["operator", "--help"], ["uninstall", "--help"]])
def test_vigil_help_runs_without_demo_or_dev_packages(argv: list[str]) -> None:
    result = _run_blocked(f"""
        from vigil.cli.main import main
        try:
            main({argv!r})
        except SystemExit as e:
            sys.exit(e.code)
    """)
    assert result.returncode == 0, result.stderr
    assert "usage: vigil" in result.stdout
