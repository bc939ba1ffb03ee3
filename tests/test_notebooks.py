"""The course's batch test, as a notebook run by papermill, in both modes (sets 1 and 2)."""

import papermill
import pytest

from sbit_lib.config import PROJECT_ROOT

NOTEBOOKS = PROJECT_ROOT / "notebooks"


@pytest.mark.parametrize("mode", ["default", "course"])
def test_the_batch_test_notebook_passes(mode, lakehouse_home, test_data, tmp_path):
    out = tmp_path / f"08-batch-test-{mode}.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "08-batch-test.ipynb"), str(out),
        parameters=dict(environment=f"nb_{mode}", sets=2, mode=mode, home=str(lakehouse_home),
                        test_data=str(test_data)),
        cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")
    text = out.read_text()
    assert "Set 2 validated" in text
    if mode == "course":
        assert "66.13" in text          # the course's float32 minutes
    else:
        assert "66.13" not in text and "|65.0" in text
