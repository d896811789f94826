"""The cluster conda environments (envs/*.yaml) hold what each rule's command imports."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from conftest import REPO

SYNC = REPO / "requirements" / "sync_envs.py"
RULE = re.compile(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", re.S | re.M)
# Built by hand where wanted (README: labels.instance.backend detectron2 has no wheel).
INSTALLED_BY_HAND = {"detectron2"}


def _stages() -> dict[str, list[str]]:
    spec = importlib.util.spec_from_file_location("sync_envs", SYNC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.STAGES


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def _rule_commands() -> list[tuple[str, str, str]]:
    """(rule, env, pipeline module its command runs) for every rule with a conda env."""
    found = []
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for name, body in RULE.findall(path.read_text()):
            env = re.search(r"envs/(\w+)\.yaml", body)
            module = re.search(r"python -m (pipeline[\w.]*)", body)
            if env and module:
                found.append((name, env.group(1), module.group(1)))
    return found


def _source(module: str) -> Path | None:
    base = REPO / Path(*module.split("."))
    for candidate in (base / "__main__.py", base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imports(path: Path) -> frozenset[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(names)


def _third_party(module: str) -> set[str]:
    """Top-level third-party modules ``module`` imports, through the pipeline modules it imports
    (statically, function-level imports included)."""
    seen, pending, outside = set(), [module], set()
    while pending:
        current = pending.pop()
        path = _source(current)
        if current in seen or path is None:
            continue
        seen.add(current)
        parts = current.split(".")
        pending.extend(".".join(parts[:i]) for i in range(2, len(parts)))     # its packages' __init__
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "pipeline":
                pending.append(name)
            elif top not in sys.stdlib_module_names | INSTALLED_BY_HAND and top != "__future__":
                outside.add(top)
    return outside


def test_the_envs_are_in_step_with_the_lock_file():
    result = subprocess.run([sys.executable, str(SYNC)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(("rule", "env", "module"), _rule_commands(), ids=lambda value: str(value))
def test_a_rules_env_lists_every_package_its_command_imports(rule, env, module):
    """A package only pulled in by another's requirements may vanish with its next release; one
    missing altogether fails the job on the cluster (the TF env once lacked tqdm)."""
    listed = {_normal(name) for name in _stages()[env]}
    distributions = importlib.metadata.packages_distributions()
    missing = sorted(f"{top} ({', '.join(distributions.get(top, ['not installed']))})"
                     for top in _third_party(module)
                     if not listed & {_normal(dist) for dist in distributions.get(top, [top])})
    assert not missing, f"rule {rule} runs {module} in envs/{env}.yaml, which does not list: {missing}"
