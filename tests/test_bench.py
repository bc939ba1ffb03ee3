"""The benchmark's parts that need no Spark: DuckDB's single-machine tables (figure 10) equal
the expected results, and the report shows every target with met / NOT met under stable keys."""

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


def test_the_report_names_each_target_and_keeps_the_keys_scripts_read(tmp_path):
    results = {
        "date": "2026-12-05 03:00 UTC",
        "machine": {"cores": 2, "spark": "4.2.0", "delta": "4.4.0", "python": "3.11", "platform": "Linux"},
        "end_to_end": {"total_s": 70.0, "layers": {"bronze": 10.0, "silver": 50.0, "gold": 10.0}, "queries": {},
                       "warm_set_s": 19.5, "warm_set_layers": {"bronze": 5.0, "silver": 12.0, "gold": 2.5},
                       "warm_set_queries": {}, "warm_set_met": True, "new_process_set1_s": 40.0},
        "freshness": {"per_set_s": [25.0, 15.0], "worst_s": 25.0, "target": 20.0, "met": False},
        "batch_test_s": 119.0, "silver_notebook_s": 50.0,
        "engine": {"duckdb_s": 1.5, "same_tables": True, "differences": [], "ratio": 13.0, "target": 20.0, "met": True},
        "engine_ratio": 13.0,
    }
    text = bench.write_report(results, tmp_path)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    verdict = {name.split(" ")[0] + " " + name.split(" ")[1]: line.rstrip(" |").rsplit("| ", 1)[-1]
               for name, line in rows.items() if name[0].isdigit()}
    assert verdict["3 one"] == "met" and verdict["3 `make"] == "met"          # 19.5 <= 20, 119 <= 120
    assert verdict["8 set"] == "NOT met" and verdict["9 05-silver"] == "NOT met" and verdict["6 freshness"] == "NOT met"
    assert verdict["10 engine"] == "met"
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert (saved["end_to_end"]["warm_set_s"], saved["end_to_end"]["new_process_set1_s"],
            saved["freshness"]["per_set_s"], saved["engine_ratio"]) == (19.5, 40.0, [25.0, 15.0], 13.0)
