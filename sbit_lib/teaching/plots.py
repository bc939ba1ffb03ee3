"""The notebooks' pictures (matplotlib): a workout's heart rate, minutes in the gym, stream progress."""

from __future__ import annotations

import pandas as pd

from sbit_lib.course.config import Config


def _axes(ax, size=(9, 3.5)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def workout_heart_rate(spark, config: Config, user_id: int, session_id: int, ax=None):
    """Plot one workout's readings from silver ``workout_bpm`` with gold's min/avg/max; return the axes."""
    fq = config.qualified
    readings = (spark.table(fq("workout_bpm")).where(f"user_id = {int(user_id)} AND session_id = {int(session_id)}")
                .selectExpr("(unix_micros(time) - unix_micros(start_time)) / 6e7 AS minute", "heartrate")
                .orderBy("minute").toPandas())
    summary = (spark.table(fq("workout_bpm_summary"))
               .where(f"user_id = {int(user_id)} AND session_id = {int(session_id)}").toPandas())
    if readings.empty:
        raise ValueError(f"no readings in workout_bpm for user {user_id}, session {session_id}")
    ax = _axes(ax)
    ax.plot(readings["minute"], readings["heartrate"], lw=0.6, color="tab:gray", label="readings (silver)")
    if not summary.empty:
        row = summary.iloc[0]
        for column, style in (("max_bpm", "tab:red"), ("avg_bpm", "tab:blue"), ("min_bpm", "tab:green")):
            ax.axhline(row[column], color=style, ls="--", lw=1.2, label=f"{column} {row[column]:.1f} (gold)")
    ax.set(xlabel="minutes since the workout started", ylabel="bpm",
           title=f"user {user_id}, session {session_id}: {len(readings):,} readings")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def gym_minutes(spark, config: Config, ax=None):
    """Bar chart of minutes in the gym vs minutes exercising per visit (``gym_summary``); return the axes."""
    visits = spark.table(config.qualified("gym_summary")).toPandas()
    if visits.empty:
        raise ValueError("gym_summary is empty: run bronze and silver first")
    labels = [f"{r.date:%m-%d} gym {r.gym}\n{r.mac_address[-5:]} s{r.session_id}" for r in visits.itertuples()]
    ax = _axes(ax, size=(max(8, len(visits) * 0.7), 3.8))
    positions = range(len(visits))
    ax.bar([p - 0.2 for p in positions], visits["minutes_in_gym"], width=0.4, label="minutes in gym")
    ax.bar([p + 0.2 for p in positions], visits["minutes_exercising"], width=0.4, label="minutes exercising")
    ax.set_xticks(list(positions), labels, fontsize=7)
    ax.set(ylabel="minutes", title=f"{len(visits)} gym visits with a completed workout (gym_summary)")
    ax.legend(fontsize=8)
    return ax


def stream_progress(batches: pd.DataFrame, ax=None):
    """Scatter of rows per second of every micro-batch that read data, per query, over the run; return the axes."""
    if batches.empty:
        raise ValueError("no micro-batch read any rows")
    ax = _axes(ax, size=(9, 4))
    for name, group in batches.groupby("query"):
        ax.scatter(group["seconds"], group["rows_per_s"], s=18, label=name)
    ax.set_yscale("log")
    ax.set(xlabel="seconds since the job's first micro-batch", ylabel="rows per second (log)",
           title="Stream job: every micro-batch that read data")
    ax.legend(fontsize=6, ncol=2, loc="upper right")
    return ax
