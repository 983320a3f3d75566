"""The project's packaging stays honest: conda and pip describe the same environment,
and notebooks are committed without outputs (nbval's policy here: strip everything)."""

import json
import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_side = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_side = {_name(r) for r in pip_section if not r.startswith("-e")}
    assert pip_side == conda_side, (
        f"only in pyproject: {pip_side - conda_side}; only in env: {conda_side - pip_side}"
    )


def test_notebooks_are_stripped_and_parameterized():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count") is not None]
        assert not dirty, f"{nb_path.name}: code cells {dirty} have outputs; run `make strip`"
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb_path.name}: needs exactly one cell tagged 'parameters'"
        assert "/work/" not in nb_path.read_text() and "/home/" not in nb_path.read_text(), "absolute path"
