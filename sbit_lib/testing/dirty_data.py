"""A small data set of dirty sources: every bad-input case of README "Bad input", in two sets.

Not the course's data: written here, record by record, so each rule has a record that
exercises it (the comment beside it says what should happen). The expected tables,
rejects and quarantine come from the reference (:mod:`sbit_lib.testing.reference`),
like for the clean sets.

    python -m sbit_lib.testing.dirty_data DIR      # writes DIR/<files> and DIR/expected/
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from sbit_lib import PROJECT_ROOT

START = 1678521600            # 2023-03-11 08:00:00 UTC
END = START + 3600            # a one-hour workout
DATE_LOOKUP = "6-date-lookup.json"


class _Kafka:
    """JSON lines of Kafka envelopes with increasing offsets (arrival order = offset order)."""

    def __init__(self, first_offset: int):
        self.offset = first_offset
        self.lines: list[str] = []

    def add(self, topic: str, value, ts: int = START, **envelope) -> None:
        self.offset += 1
        text = value if isinstance(value, str) else json.dumps(value)
        self.lines.append(json.dumps({"key": "k", "value": text, "topic": topic, "partition": 0,
                                      "offset": self.offset, "timestamp": ts, **envelope}))

    def raw(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")


def _profile(user, kind="new", ts=START - 86400, dob="01/15/1990", city="Alpha") -> dict:
    value = {"user_id": user, "update_type": kind, "timestamp": ts, "dob": dob, "sex": "F", "gender": "F",
             "first_name": "A", "last_name": "B",
             "address": {"street_address": "1 Main St", "city": city, "state": "CA", "zip": 90001}}
    if dob is None:
        del value["dob"]
    return value


def _workout(user, action, ts, session=1, workout=1) -> dict:
    return {"user_id": user, "workout_id": workout, "timestamp": ts, "action": action, "session_id": session}


def files() -> dict[str, str]:
    """Return {file name: content} of sets 1 and 2."""
    out: dict[str, str] = {}
    # ---- set 1 -------------------------------------------------------------------------
    out["1-registered_users_1.csv"] = (
        # the header names the columns in another order: read by name
        "device_id,user_id,registration_timestamp,mac_address\n"
        "101,1,1678450000,m1\n102,2,1678450001,m2\n103,3,1678450002,m3\n104,4,1678450003,m4\n"
        ",5,1678450004,m5\n"            # no device_id: rejected
        "106,6,1678450005,\n"           # no mac_address: rejected
        "107,abc,1678450006,m7\n"       # user_id not a number: quarantined (bronze)
        "108,8,1678450007\n"            # a field short: quarantined (bronze)
        "109,1,1678450008,m9\n"         # user 1 again: dropped by design (the first wins)
        "110,10,1e20,m10\n"             # a time out of range: rejected
    )
    out["5-gym_logins_1.csv"] = (
        "mac_address,gym,login,logout\n"
        f"m1,1,{START - 600},{END + 600}\n"
        f"m2,,{START},{END}\n"          # no gym: rejected
        f"m3,3,{START},xyz\n"           # logout not a number: quarantined
        f"m4,4,{START},{START + 60}\n"
    )
    info = _Kafka(0)
    info.add("user_info", _profile(1, dob="not-a-date"))      # kept; dob NULL, age NULL
    info.add("user_info", _profile(2))
    info.add("user_info", _profile(3, dob=None))              # no dob: kept; dob NULL, age NULL
    info.add("user_info", _profile(4))
    info.add("user_info", _profile(4, kind="delete", ts=START - 3600))   # delete: rejected
    info.add("user_info", "not json at all")                  # value not JSON: rejected
    info.add("user_info", {**_profile(11), "user_id": "abc"})  # user_id text: rejected
    info.add("user_info", {**_profile(12), "timestamp": "soon"})  # timestamp text: rejected
    info.add("user_info", _profile(2, kind="update", ts=START - 2 * 86400, city="Stale"))  # older: dropped
    info.raw("{{{ this line is not JSON")                     # quarantined (bronze)
    info.raw(json.dumps({"key": "k", "value": "{}", "topic": "user_info", "partition": 0,
                         "offset": "x", "timestamp": START}))   # offset not a number: quarantined
    info.add("alerts", {"what": "a topic no table reads"})    # kept in bronze, counted as unread
    out["2-user_info_1.json"] = info.text()

    work = _Kafka(100)
    work.add("workout", _workout(1, "start", START))
    work.add("workout", _workout(1, "stop", END))
    work.add("workout", _workout(1, "start", START, session=9))   # user 1 at the same time again: dropped
    work.add("workout", _workout(2, "start", START))
    work.add("workout", _workout(2, "stop", START - 600))     # stops before it starts: no completed workout
    work.add("workout", _workout(3, "start", "later"))        # timestamp text: rejected
    work.add("workout", _workout(3, "pause", START + 60))     # unknown action: rejected
    work.add("workout", {"user_id": 3, "workout_id": 1, "timestamp": START + 120, "action": "start"})  # no session
    out["4-workout_1.json"] = work.text()

    bpm = _Kafka(1000)
    for i in range(1, 31):                                      # 30 readings inside user 1's workout
        bpm.add("bpm", {"device_id": 101, "time": START + 60 * i, "heartrate": 80.0 + i})
    bpm.add("bpm", {"device_id": 101, "time": START + 1900, "heartrate": None})   # NULL: kept, valid false
    bpm.add("bpm", {"device_id": 101, "time": START + 1900.5, "heartrate": -1.0})  # not > 0: valid false
    bpm.add("bpm", {"device_id": 101, "time": START + 60, "heartrate": 150.0})    # same device and time: dropped
    bpm.add("bpm", {"device_id": 101, "time": "abc", "heartrate": 90.0})          # time text: rejected
    bpm.add("bpm", {"time": START + 200, "heartrate": 90.0})                      # no device: rejected
    bpm.add("bpm", {"device_id": 102, "time": START + 100, "heartrate": 95.0})    # user 2: no completed workout
    bpm.add("bpm", "[1, 2, 3]")                                                  # value not an object: rejected
    bpm.raw("not json either")                                                   # quarantined (bronze)
    out["3-bpm_1.json"] = bpm.text()

    # ---- set 2 -------------------------------------------------------------------------
    out["1-registered_users_2.csv"] = (
        "user_id,device_id,mac_address,registration_timestamp,email\n"   # an extra column: quarantined whole
        "20,120,m20,1678460000,a@b.c\n21,121,m21,1678460001,d@e.f\n"
    )
    out["5-gym_logins_2.csv"] = "mac_address,gym,login,logout\n"        # header only: no rows, no error
    out["2-user_info_2.json"] = ""                                       # empty: no rows, no error
    work2 = _Kafka(200)
    work2.add("workout", _workout(4, "start", START + 86400, workout=2))
    work2.add("workout", _workout(4, "stop", START + 86400 + 1200, workout=2))
    out["4-workout_2.json"] = work2.text()
    bpm2 = _Kafka(2000)
    for i in range(1, 11):
        bpm2.add("bpm", {"device_id": 104, "time": START + 86400 + 100 * i, "heartrate": 100.0 + i})
    bpm2.add("bpm", {"device_id": 101, "time": START + 120, "heartrate": 10.0})    # set 1 has it: dropped
    out["3-bpm_2.json"] = bpm2.text()
    return out


def write(folder, as_of=None) -> Path:
    """Write the dirty sets and their expected results into `folder`; return it."""
    from sbit_lib.testing.reference import REFERENCE_AS_OF, write_expectations

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (folder / name).write_text(text)
    shutil.copyfile(PROJECT_ROOT / "test_data" / DATE_LOOKUP, folder / DATE_LOOKUP)
    write_expectations(folder, as_of=as_of or REFERENCE_AS_OF, sets=(1, 2))
    return folder


if __name__ == "__main__":
    print(write(sys.argv[1] if len(sys.argv) > 1 else PROJECT_ROOT / "build" / "dirty_data"))
