"""Every notebook also runs under papermill with CI-sized parameters (nbval runs them as-is)."""

from pathlib import Path

import papermill as pm
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_under_papermill(nb: Path, tmp_path: Path):
    out = tmp_path / nb.name
    pm.execute_notebook(
        str(nb),
        str(out),
        parameters={"FAST": True},
        cwd=str(nb.parent),
        kernel_name="python3",
        progress_bar=False,
    )
    assert out.exists()
