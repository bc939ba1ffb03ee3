"""The interview walkthrough answers every question of the course's list, the way it is said aloud.

The course's questions are read from the project's list, ``docs/interview-questions.md`` (one
numbered line per question, in the project's words; nothing outside the repository is read);
a missing or unnumbered list fails the test with a message saying so. The walkthrough (the
committed notebook; nbmake executes it separately) gives each question a heading
``## Q<n>. <the question> (course Q<k>)``, then an answer cell opening with the spoken answer
(``**Say:** "..."``) followed by the detail, then its proof: code cells written out in the
notebook, a few lines each, not calls into ``sbit_lib.teaching.lessons``. The project's own
questions follow, untagged, and the notebook ends with the pitch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from sbit_lib.course.config import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "00-interview-walkthrough.ipynb"
COURSE_QUESTIONS = PROJECT_ROOT / "docs" / "interview-questions.md"
COURSE_QUESTION_COUNT = 30        # the notebook's introduction promises thirty

# The questions only this project can answer: (topic, a pattern its heading must match).
PROJECT_QUESTIONS = [
    ("the float32 minutes", r"66\.13 instead of 65\.0"),
    ("2 summary rows in course mode", r"only 2 rows.*course mode"),
    ("idempotent foreachBatch writes", r"foreachBatch writes idempotent"),
    ("an embedded metastore and two processes", r"embedded metastore.*two processes"),
    ("the pipeline as a declarative pipeline", r"Delta Live Tables.*declarative pipelines.*give up"),
]
SAY = "**Say:**"
SAY_CHARS = (80, 600)          # one or two spoken sentences
MIN_DETAIL_CHARS = 150         # then the detail from the project's code
MAX_PROOF_LINES = 16           # the lines an interviewer asks you to write, not a module
MIN_PITCH_WORDS = 500
HEADING = re.compile(r"## Q(\d+)\. (.+?)(?: \(course (Q\d+(?:, Q\d+)*)\))?\s*$")
_STOPWORDS = {"the", "and", "for", "what", "does", "how", "you", "are", "its", "did", "which", "why", "with",
              "when", "use", "vs", "in", "of", "to", "a", "an", "it", "do", "is", "if"}


def read_course_questions(path: Path = COURSE_QUESTIONS) -> dict[int, str]:
    """{number: question} of the course's list; fails the calling test when the file is missing or empty."""
    if not path.is_file():
        pytest.fail(f"the course's interview questions are missing: {path} is not there. The project "
                    "keeps them in docs/interview-questions.md, one numbered line per question.")
    questions = {int(n): text.strip() for n, text in re.findall(r"^(\d+)\.\s+(.+)$", path.read_text(), re.M)}
    if sorted(questions) != list(range(1, len(questions) + 1)) or not questions:
        pytest.fail(f"{path}: want questions numbered 1, 2, 3, ... one per line, got {sorted(questions)}")
    return questions


def words(text: str) -> set[str]:
    """The words of a question that matter: lower case, no backticks or punctuation, no small words."""
    return {w.strip("'") for w in re.findall(r"[a-z0-9_']+", text.lower().replace("`", ""))
            if len(w.strip("'")) > 2 and w.strip("'") not in _STOPWORDS}


@dataclass
class Question:
    """One `## Q<n>.` heading of the walkthrough, its answer cell and its proof cells."""

    index: int
    number: int
    text: str
    course: tuple[int, ...]
    answer: nbformat.NotebookNode | None
    proofs: list = field(default_factory=list)


def questions(cells) -> list[Question]:
    """Every question heading, with the cell after it and the code cells up to the next heading."""
    found = []
    for i, cell in enumerate(cells):
        match = HEADING.match(cell.source.splitlines()[0]) if cell.cell_type == "markdown" and cell.source else None
        if not match:
            continue
        course = tuple(int(q[1:]) for q in match.group(3).split(", ")) if match.group(3) else ()
        answer = cells[i + 1] if i + 1 < len(cells) and cells[i + 1].cell_type == "markdown" else None
        proofs = []
        for later in cells[i + 2:]:
            if later.cell_type == "markdown" and later.source.startswith("#"):
                break
            if later.cell_type == "code":
                proofs.append(later)
        found.append(Question(i, int(match.group(1)), match.group(2), course, answer, proofs))
    return found


def answer_problems(q: Question) -> list[str]:
    """Why a question's answer or proof is not what the walkthrough promises (empty when fine)."""
    label = f"Q{q.number} ({q.text[:50]})"
    found = []
    if q.answer is None or q.answer.cell_type != "markdown":
        found.append(f"{label}: the cell after the heading must be its answer (markdown)")
    elif not q.answer.source.startswith(SAY):
        found.append(f"{label}: the answer must open with the spoken sentence, {SAY} \"...\"")
    else:
        say, _, detail = q.answer.source.partition("\n\n")
        spoken = len(say) - len(SAY)
        if not SAY_CHARS[0] <= spoken <= SAY_CHARS[1]:
            found.append(f"{label}: the spoken answer has {spoken} characters, want {SAY_CHARS[0]}-{SAY_CHARS[1]}")
        if len(detail) < MIN_DETAIL_CHARS:
            found.append(f"{label}: after the spoken answer, the detail from the code is missing or too short "
                         f"({len(detail)} characters)")
    if not q.proofs:
        found.append(f"{label}: no proof cell follows the answer")
    for proof in q.proofs:
        lines = [line for line in proof.source.splitlines() if line.strip()]
        if "lessons." in proof.source:
            found.append(f"{label}: a proof cell calls lessons.*: write the experiment in the cell")
        if len(lines) > MAX_PROOF_LINES:
            found.append(f"{label}: a proof cell has {len(lines)} lines, at most {MAX_PROOF_LINES}")
    return found


def problems(cells, course: dict[int, str], project=PROJECT_QUESTIONS) -> list[str]:
    """Everything that keeps the walkthrough from answering `course` and `project` (empty when fine)."""
    found = []
    qs = questions(cells)
    if [q.number for q in qs] != list(range(1, len(qs) + 1)):
        found.append(f"questions must be numbered Q1, Q2, ... in order, got {[q.number for q in qs]}")
    for number, text in course.items():
        tagged = [q for q in qs if number in q.course]
        if len(tagged) != 1:
            found.append(f"course Q{number} ({text!r}): want one heading tagged (course Q{number}), got {len(tagged)}")
            continue
        missing = words(text) - words(tagged[0].text)
        if missing:
            found.append(f"course Q{number}: heading Q{tagged[0].number} does not ask {text!r} "
                         f"(missing {sorted(missing)})")
    for q in qs:
        unknown = [n for n in q.course if n not in course]
        if unknown:
            found.append(f"Q{q.number} is tagged with course questions that do not exist: {unknown}")
    untagged = [q for q in qs if not q.course]
    for topic, pattern in project:
        matches = [q for q in untagged if re.search(pattern, q.text, re.IGNORECASE)]
        if len(matches) != 1:
            found.append(f"project question {topic!r}: want one untagged heading matching {pattern!r}, "
                         f"got {len(matches)}")
    strays = [q for q in untagged if not any(re.search(p, q.text, re.IGNORECASE) for _, p in project)]
    found += [f"Q{q.number} is neither tagged (course Q<k>) nor a known project question" for q in strays]
    if untagged and any(q.course for q in qs) and min(q.index for q in untagged) < max(q.index for q in qs if q.course):
        found.append("the course's questions come first, the project's after them")
    for q in qs:
        found += answer_problems(q)
    return found


@pytest.fixture(scope="module")
def cells():
    return nbformat.read(NOTEBOOK, as_version=4).cells


def test_the_course_questions_are_read_from_the_projects_own_list():
    assert COURSE_QUESTIONS.resolve().is_relative_to(PROJECT_ROOT.resolve()), "read nothing outside the repository"
    course = read_course_questions()
    assert len(course) == COURSE_QUESTION_COUNT, f"{COURSE_QUESTIONS} lists {len(course)} questions"
    assert all(words(text) for text in course.values())


def test_every_course_and_project_question_is_answered_said_and_proved(cells):
    course = read_course_questions()
    found = problems(cells, course)
    assert found == [], "\n".join(found)
    assert len(questions(cells)) == len(course) + len(PROJECT_QUESTIONS)


# ---------------------------------------------------------------------------- the check can fail
MADE_UP_COURSE = {1: "Why is checkpointing important?", 2: "What is `queryName` for?"}
SAID = (f'{SAY} "A checkpoint records what each micro-batch read and whether it committed, so a '
        'restarted query resumes where it stopped."\n\n' + "The detail from the project's code. " * 6)


def made_up_notebook(**changes) -> list:
    """A tiny walkthrough answering MADE_UP_COURSE and one project question; `changes` spoil a part."""
    new_md, new_code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [new_md("# Part 1"),
             new_md(changes.get("heading1", "## Q1. Why is checkpointing important? (course Q1)")),
             new_md(changes.get("answer1", SAID)),
             new_code(changes.get("proof1", "rows = spark.range(3).count()\nassert rows == 3")),
             new_md("## Q2. What is `queryName` for? (course Q2)"), new_md(SAID),
             new_md("Started twice with one name:"), new_code("names = [\"q\", \"q\"]\nassert len(set(names)) == 1"),
             new_md("# Part 2"), new_md("## Q3. Why are the course's expected minutes 66.13 instead of 65.0?"),
             new_md(SAID), new_code("assert 66.13 != 65.0")]
    if changes.get("drop_q2"):
        del cells[4:8]
        for cell in cells[4:]:
            cell.source = cell.source.replace("## Q3.", "## Q2.")
    if changes.get("no_proof"):
        del cells[3]
    return cells


def test_the_check_passes_a_made_up_walkthrough_and_fails_each_spoiled_part():
    project = PROJECT_QUESTIONS[:1]

    def check(**changes):
        return problems(made_up_notebook(**changes), MADE_UP_COURSE, project)

    assert check() == []
    spoiled = {
        "drop_q2": "course Q2",
        "heading1": "does not ask",
        "answer1": "must open with the spoken sentence",
        "proof1": "calls lessons",
        "no_proof": "no proof cell",
    }
    values = {"drop_q2": True, "no_proof": True,
              "heading1": "## Q1. What is a trigger? (course Q1)",
              "answer1": "**Answer.** A checkpoint records progress. " * 10,
              "proof1": "print(lessons.rerun_rows(config, spark))"}
    for change, expected in spoiled.items():
        found = check(**{change: values[change]})
        assert any(expected in line for line in found), (change, found)
    long_proof = check(proof1="\n".join(f"x{i} = {i}" for i in range(MAX_PROOF_LINES + 1)))
    assert any("at most" in line for line in long_proof)
    short_say = check(answer1=f'{SAY} "Yes."\n\n' + "Detail. " * 40)
    assert any("spoken answer has" in line for line in short_say)
    twice = check(heading1="## Q1. Why is checkpointing important? (course Q1, Q2)")
    assert any("got 2" in line for line in twice)


def test_a_missing_course_list_fails_with_a_clear_message(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="interview questions are missing"):
        read_course_questions(tmp_path / "interview-questions.md")
    (tmp_path / "empty.md").write_text("# The course's interview questions\n\nnone yet\n")
    with pytest.raises(pytest.fail.Exception, match="numbered"):
        read_course_questions(tmp_path / "empty.md")


# ---------------------------------------------------------------------------- the rest of the notebook
def test_the_notebook_ends_with_the_pitch(cells):
    starts = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("# The pitch")]
    assert len(starts) == 1, "one `# The pitch` section"
    after = cells[starts[0]:]
    assert all(c.cell_type == "markdown" for c in after), "the pitch is the last section: nothing runs after it"
    words_spoken = sum(len(c.source.split()) for c in after)
    assert words_spoken >= MIN_PITCH_WORDS, f"the pitch has {words_spoken} words, at least {MIN_PITCH_WORDS} wanted"


def test_every_code_cell_has_code_and_the_parameters_name_their_own_environment(cells):
    code = [c for c in cells if c.cell_type == "code"]
    assert code and all(c.source.strip() for c in code)
    assert not any("lessons." in c.source for c in code), "experiments are written in the cells"
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and 'environment = "interview"' in parameters[0].source
