"""The course's batch test in course mode, run by papermill (nbmake runs every notebook with its
own defaults: 08 in default mode, 09 with one set; see pyproject.toml)."""

from sbit_lib.batch_test import printed_output, run_batch_test


def test_the_batch_test_notebook_passes_in_course_mode(lakehouse_home, test_data, tmp_path):
    executed = run_batch_test(sets=2, mode="course", environment="nb_course", output=tmp_path / "08.ipynb",
                              home=str(lakehouse_home), test_data=str(test_data))
    text = printed_output(executed)
    assert "Set 1 validated" in text and "Set 2 validated" in text
    assert "|66.13" in text          # the course's float32 minutes, as in 7-gym_summary
