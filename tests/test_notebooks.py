"""Every research notebook runs top to bottom (small budgets); a cell that raises fails the test."""

from pathlib import Path

import pytest
from conftest import needs_jackd, needs_sclang, needs_scsynth

nbformat = pytest.importorskip("nbformat", reason="dev extra not installed (pip install 'synthenv[dev]')")
nbclient = pytest.importorskip("nbclient", reason="dev extra not installed (pip install 'synthenv[dev]')")

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
#: the programs each notebook needs; the others run with none of them on PATH (checked below)
NEEDS = {
    "01_quickstart": (),
    "02_backends": (needs_scsynth, needs_jackd),
    "03_train_ppo": (),
    "04_match_a_recording": (needs_scsynth,),
    "05_custom_synth": (needs_scsynth, needs_sclang),
    "06_inverse_model": (),
}


def _case(path: Path):
    return pytest.param(path, marks=NEEDS[path.stem], id=path.stem)


def test_every_notebook_is_committed_without_outputs():
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(NEEDS)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            assert not cell.get("outputs") and not cell.get("execution_count"), f"{path.name} has outputs: strip them"


@pytest.mark.slow
@pytest.mark.parametrize("path", [_case(p) for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    if not NEEDS[path.stem]:  # must run where SuperCollider is not installed: synthenv finds no scsynth/sclang
        for var in ("SYNTHENV_SCSYNTH", "SYNTHENV_SCLANG"):
            monkeypatch.setenv(var, str(tmp_path / "not-installed"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    rich = [o for o in outputs if o.get("output_type") in ("display_data", "execute_result")]
    assert any("image/png" in o.get("data", {}) for o in rich), "no plot was rendered"
    for i, cell in enumerate(nb.cells):  # every plt.show() draws (no library switched the backend away)
        if cell.cell_type == "code" and "plt.show()" in cell.source:
            pngs = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
            assert pngs, f"cell {i} calls plt.show() but shows no plot"
    assert any("text/html" in o.get("data", {}) and "<audio" in o["data"]["text/html"] for o in rich), "no audio player"
