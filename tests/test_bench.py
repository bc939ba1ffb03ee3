"""The benchmark's parts that need no Spark: DuckDB's single-machine tables equal the expected
results, a ratio is compared with docs/performance.md's committed one, and the report keeps
the keys scripts read."""

import json

from sbit_lib.ops import bench, bench_duckdb


def test_duckdb_computes_the_same_silver_and_gold_tables_as_expected(test_data):
    result = bench_duckdb.run(test_data, sets=1)
    assert bench_duckdb.check(test_data, result, sets=1) == []
    assert result["rows"]["heart_rate"] > 200_000 and result["seconds"] > 0

    # The check can fail: one reading's value changed, one summary row dropped.
    hr = result["tables"]["heart_rate"]
    hr.loc[hr.index[0], "heartrate"] = hr["heartrate"].iloc[0] + 1.0
    summary = result["tables"]["workout_bpm_summary"]
    result["tables"]["workout_bpm_summary"] = summary.iloc[1:]
    result["rows"]["workout_bpm_summary"] -= 1
    problems = bench_duckdb.check(test_data, result, sets=1)
    assert any(p.startswith("heart_rate") for p in problems), problems
    assert any(p.startswith("workout_bpm_summary: expected") for p in problems), problems


def test_a_ratio_more_than_15_percent_above_the_committed_one_has_regressed():
    committed = {"warm_set": (10.0, "2026-12-05"), "engine_ratio": (100.0, "2026-12-05")}
    found = bench.verdicts({"warm_set": 11.6, "engine_ratio": 114.0}, committed)
    assert found["warm_set"].startswith("regressed") and "+16%" in found["warm_set"]
    assert found["engine_ratio"].startswith("ok") and "+14%" in found["engine_ratio"]
    assert bench.verdicts({"warm_set": 5.0}, committed)["warm_set"].startswith("ok")      # faster is fine
    assert bench.verdicts({"make_run": 50.0}, committed) == {"make_run": "no committed row"}
    assert bench.verdicts({"make_run": 50.0}, {}) == {"make_run": "no committed row"}


def test_the_committed_table_gives_each_columns_latest_figure():
    rows = [bench.TABLE_HEADER, "|" + "---|" * len(bench.COLUMNS),
            "| 2026-12-05 | b3aaf01 | 1.63 | 15.8 | 19.8 | 24.3 | 48.3 | 67.5 | 106 (a later run) |",
            "| 2026-12-09 | abc1234 | 4.1 | 14.0 | to be measured | 20.0 | 47 | 66.0 | 90 |",
            "| to be measured | next | to be measured | to be measured | to be measured | to be measured "
            "| to be measured | to be measured | to be measured |", "", "| another | table |"]
    found = bench.committed_figures("# Performance\n\n" + "\n".join(rows) + "\n")
    assert found == {"calibration_s": (4.1, "2026-12-09"), "warm_set": (14.0, "2026-12-09"),
                     "new_process_set1": (19.8, "2026-12-05"), "freshness": (20.0, "2026-12-09"),
                     "silver_notebook": (47.0, "2026-12-09"), "make_run": (66.0, "2026-12-09"),
                     "engine_ratio": (90.0, "2026-12-09")}
    assert bench.committed_figures("# Performance\n\nno table yet\n") == {}
    # docs/performance.md's own table parses, with a figure in every column.
    assert set(bench.read_committed()) == {key for key, _ in bench.COLUMNS} - {"date", "code"}


def test_the_report_gives_each_figure_as_a_ratio_under_the_keys_scripts_read(tmp_path):
    results = {
        "date": "2026-12-08 03:00 UTC",
        "machine": {"cores": 2, "spark": "4.2.0", "delta": "4.4.0", "python": "3.11", "platform": "Linux"},
        "calibration": {"file": "3-bpm_1.json", "reps": 3, "calibration_s": 2.0, "duckdb_s": 0.2},
        "calibration_s": 2.0,
        "seconds": {"warm_set": 30.0, "new_process_set1": 40.0, "freshness": 50.0, "freshness_per_set": [50.0, 30.0],
                    "silver_notebook": 100.0, "make_run": 130.0},
        "warm_set_layers": {"bronze": 6.0, "silver": 20.0, "gold": 4.0},
        "engine": {"duckdb_s": 0.3, "same_tables": True, "differences": [], "ratio": 100.0},
    }
    committed = {"calibration_s": (1.0, "2026-12-05"), "warm_set": (10.0, "2026-12-05"),
                 "new_process_set1": (20.0, "2026-12-05"), "engine_ratio": (100.0, "2026-12-05")}
    text = bench.write_report(bench.add_ratios(results, committed), tmp_path)
    assert "machine factor vs committed table 2.0x (2026-12-05)" in text
    verdict = {line.split(" | ")[0].lstrip("| "): line.rstrip(" |").rsplit("| ", 1)[-1]
               for line in text.splitlines() if line.startswith("| ")}
    assert verdict[bench.FIGURES["warm_set"]].startswith("regressed")       # 15.0 against 10.0
    assert verdict[bench.FIGURES["new_process_set1"]].startswith("ok")      # 20.0 against 20.0
    assert verdict[bench.FIGURES["make_run"]] == "no committed row"
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["ratios"] == {"warm_set": 15.0, "new_process_set1": 20.0, "freshness": 25.0,
                               "silver_notebook": 50.0, "make_run": 65.0, "freshness_per_set": [25.0, 15.0]}
    assert (saved["engine_ratio"], saved["calibration_s"]) == (100.0, 2.0)
