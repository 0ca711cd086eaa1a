"""Executes every notebook in notebooks/ from top to bottom in a fresh Jupyter kernel, in a
temporary working directory: a notebook that raises fails the test. Notebooks that need
more than the embedded server get the marks of NEEDS below (so ``-m "not ha"`` skips the
failover report, for instance).
"""

from __future__ import annotations

import pathlib

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"

# Extra marks by notebook name: what a notebook needs beyond the embedded server.
NEEDS: dict[str, list[pytest.MarkDecorator]] = {
    "failover_report.ipynb": [pytest.mark.redis, pytest.mark.ha],
}


def _cases() -> list[object]:
    return [
        pytest.param(path, id=path.stem, marks=[pytest.mark.notebook, *NEEDS.get(path.name, [])])
        for path in sorted(NOTEBOOKS.glob("*.ipynb"))
    ]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", _cases())
def test_notebook_runs_top_to_bottom(path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, errors
