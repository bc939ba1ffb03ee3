"""The course's batch test, as a notebook run by papermill, in both modes (sets 1 and 2)."""

import pytest

from sbit_lib.batch_test import printed_output, run_batch_test


@pytest.mark.parametrize("mode", ["default", "course"])
def test_the_batch_test_notebook_passes(mode, lakehouse_home, test_data, tmp_path):
    executed = run_batch_test(sets=2, mode=mode, environment=f"nb_{mode}", output=tmp_path / "08.ipynb",
                              home=str(lakehouse_home), test_data=str(test_data))
    text = printed_output(executed)
    assert "Set 1 validated" in text and "Set 2 validated" in text
    if mode == "course":
        assert "|66.13" in text          # the course's float32 minutes, as in 7-gym_summary
    else:
        assert "|66.13" not in text and "|65.0" in text


def test_the_stream_test_notebook_passes_in_course_mode(lakehouse_home, test_data, tmp_path):
    """09-stream-test under papermill (default mode runs under nbmake, from pyproject's testpaths)."""
    import papermill

    from sbit_lib.config import PROJECT_ROOT

    output = tmp_path / "09.ipynb"
    papermill.execute_notebook(
        str(PROJECT_ROOT / "notebooks" / "09-stream-test.ipynb"), str(output), kernel_name="python3",
        progress_bar=False, cwd=str(PROJECT_ROOT / "notebooks"),
        parameters=dict(environment="nb09_course", sets=2, mode="course", home=str(lakehouse_home),
                        test_data=str(test_data)))
    text = printed_output(output)
    assert "Set 1 validated" in text and "Set 2 validated" in text
    assert "Stream job stopped cleanly (exit 0, 12 queries stopped)" in text
    assert "Freshness: median" in text
