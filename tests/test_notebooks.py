"""The notebooks run from top to bottom (in their quick mode), show their figures, keep
their progress output short and write nothing into the repository."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = pathlib.Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# Figures each notebook displays, and files it writes under its working directory.
FIGURES = {"01_sgd_derivative_rates.ipynb": 3, "02_dsgd.ipynb": 2, "03_stochastic_smoothing.ipynb": 1,
           "04_hypergradients.ipynb": 2, "05_falsifying_claims.ipynb": 3}
WRITES = {"02_dsgd.ipynb": ["output/dsgd/dsgd.json", "output/dsgd/dsgd_elbo.png"]}


def _tree(folder: pathlib.Path) -> dict:
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*")}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("RATES_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    notebook = nbformat.read(path, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert 'jax.config.update("jax_enable_x64", True)' in first.source
    before = _tree(NOTEBOOK_DIR)
    # The kernel runs in tmp_path: whatever a notebook writes lands there.
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert _tree(NOTEBOOK_DIR) == before, "running the notebook changed files in notebooks/"
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.get("output_type") == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == FIGURES[path.name]
    stderr = "".join(output.get("text", "") for output in outputs if output.get("name") == "stderr")
    assert "\r" not in stderr and len(stderr.splitlines()) <= 10, stderr
    for name in WRITES.get(path.name, []):
        assert (tmp_path / name).exists()


def test_notebooks_write_only_into_ignored_or_temporary_folders():
    """What a notebook writes next to itself goes to `notebooks/output/`, which git ignores."""
    gitignore = (NOTEBOOK_DIR.parent / ".gitignore").read_text().split()
    assert "/notebooks/output/" in gitignore
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and "pathlib.Path(" in cell.source:
                assert 'pathlib.Path("output")' in cell.source, (path.name, cell.source)
