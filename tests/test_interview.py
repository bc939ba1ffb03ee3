"""The interview walkthrough answers every question of the course's interview-prep material.

Read from the committed notebook (nbmake executes it separately): each question has a
`## Q<n>. ...` heading followed by a markdown cell holding its answer, and the notebook ends
with the pitch.
"""

import re

import nbformat
import pytest

from sbit_lib.course.config import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "00-interview-walkthrough.ipynb"

# (topic as the course's material names it, a pattern its heading must match, case-insensitive)
COURSE_QUESTIONS = [
    ("config and external locations", r"\bconfig\b.*external locations"),
    ("checkpointing and what happens without one", r"checkpoint.*without one"),
    ("maxFilesPerTrigger", r"maxFilesPerTrigger"),
    ("IF NOT EXISTS vs OR REPLACE", r"IF NOT EXISTS.*OR REPLACE"),
    ("views", r"\bviews?\b"),
    ("cleanup", r"\bclean ?up\b"),
    ("schema changes in a live table", r"schema of a live table"),
    ("the Bronze class and readStream", r"\bBronze\b.*\breadStream\b"),
    ("consistency across streams", r"several streams consistent"),
    ("trigger modes", r"trigger modes"),
    ("queryName", r"\bqueryName\b"),
    ("assert_count", r"\bassert_count\b"),
    ("Delta's advantages", r"Delta Lake give you"),
    ("the lookup join", r"lookup join"),
    ("MERGE upserts", r"MERGE upserts"),
    ("Delta Lake and the medallion architecture", r"medallion architecture.*Delta Lake"),
    ("schema evolution", r"schema evolution"),
    ("Spark's role", r"Spark's role"),
    ("batch vs stream", r"\bbatch\b.*\bstream\b"),
    ("validation at every layer", r"validated at every layer"),
    ("data-quality techniques", r"data-quality techniques"),
    ("consistency in streaming (watermarks, checkpoints, exactly-once)",
     r"consistent in streaming.*watermarks.*checkpoints.*exactly-once"),
    ("orchestration", r"orchestrated"),
    ("performance tuning", r"performance.*partitioning.*caching.*broadcast joins.*shuffle partitions"),
]
PROJECT_QUESTIONS = [
    ("the float32 minutes", r"66\.13 instead of 65\.0"),
    ("2 summary rows in course mode", r"only 2 rows.*course mode"),
    ("idempotent foreachBatch writes", r"foreachBatch writes idempotent"),
    ("an embedded metastore and two processes", r"embedded metastore.*two processes"),
]
QUESTIONS = COURSE_QUESTIONS + PROJECT_QUESTIONS
MIN_ANSWER_CHARS = 100
MIN_PITCH_WORDS = 500


@pytest.fixture(scope="module")
def cells():
    return nbformat.read(NOTEBOOK, as_version=4).cells


def headings(cells) -> list[tuple[int, str]]:
    """(cell index, first line) of every `## Q<n>.` question heading."""
    return [(i, c.source.splitlines()[0]) for i, c in enumerate(cells)
            if c.cell_type == "markdown" and re.match(r"## Q\d+\. \S", c.source)]


def problem(cells, topic: str, pattern: str) -> str | None:
    """Why `topic` is not answered in `cells` (None when it is): its heading, then its answer cell."""
    matches = [(i, line) for i, line in headings(cells) if re.search(pattern, line, re.IGNORECASE)]
    if len(matches) != 1:
        return f"{topic!r}: want exactly one `## Q<n>.` heading matching {pattern!r}, got {matches}"
    index, line = matches[0]
    answer = cells[index + 1] if index + 1 < len(cells) else None
    if answer is None or answer.cell_type != "markdown":
        return f"{line}: the next cell must be its answer (markdown)"
    if not answer.source.startswith("**Answer.**"):
        return f"{line}: the answer must start with **Answer.**"
    if len(answer.source) <= MIN_ANSWER_CHARS:
        return f"{line}: the answer is too short to be one ({len(answer.source)} characters)"
    return None


@pytest.mark.parametrize("topic, pattern", QUESTIONS, ids=[topic for topic, _ in QUESTIONS])
def test_each_question_has_its_heading_and_an_answer(cells, topic, pattern):
    assert problem(cells, topic, pattern) is None


def test_the_check_fails_when_a_question_or_its_answer_is_missing(cells):
    topic, pattern = COURSE_QUESTIONS[2]
    index = next(i for i, line in headings(cells) if re.search(pattern, line, re.IGNORECASE))
    dropped = cells[:index] + cells[index + 2:]
    assert "want exactly one" in problem(dropped, topic, pattern)
    emptied = [nbformat.from_dict(dict(c)) for c in cells]
    emptied[index + 1].source = "**Answer.** Yes."
    assert "too short" in problem(emptied, topic, pattern)
    swapped = cells[:index + 1] + cells[index + 2:]
    assert problem(swapped, topic, pattern) is not None


def test_the_questions_are_numbered_in_order_and_the_course_comes_first(cells):
    found = headings(cells)
    assert [int(re.match(r"## Q(\d+)\.", line).group(1)) for _, line in found] == list(range(1, len(found) + 1))
    assert len(found) == len(QUESTIONS)
    course_end = max(i for i, line in found if any(re.search(p, line, re.I) for _, p in COURSE_QUESTIONS))
    project_start = min(i for i, line in found if any(re.search(p, line, re.I) for _, p in PROJECT_QUESTIONS))
    assert course_end < project_start


def test_the_notebook_ends_with_the_pitch(cells):
    starts = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("# The pitch")]
    assert len(starts) == 1, "one `# The pitch` section"
    after = cells[starts[0]:]
    assert all(c.cell_type == "markdown" for c in after), "the pitch is the last section: nothing runs after it"
    words = sum(len(c.source.split()) for c in after)
    assert words >= MIN_PITCH_WORDS, f"the pitch has {words} words, at least {MIN_PITCH_WORDS} wanted"


def test_every_code_cell_has_code_and_the_parameters_name_their_own_environment(cells):
    code = [c for c in cells if c.cell_type == "code"]
    assert code and all(c.source.strip() for c in code)
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and 'environment = "interview"' in parameters[0].source
