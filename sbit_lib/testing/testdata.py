"""Prepare the test-data folder: heart-rate files and the expected results.

``sbit prepare-data`` (run by ``make setup``) generates ``3-bpm_<n>.json`` and
then computes the expected contents of every table with the independent
reference computation (:mod:`sbit_lib.testing.reference`). Both steps skip work that is
already done.
"""

from __future__ import annotations

from pathlib import Path

from sbit_lib.testing import bpm_generator


def prepare(folder: Path, sets=bpm_generator.SETS) -> None:
    """Generate the heart-rate sets and write the expectations into `folder`."""
    from sbit_lib.testing import reference

    folder = Path(folder)
    print(f"Heart-rate sets {sets[0]}..{sets[-1]} in {folder}: generating those missing or not matching "
          f"their checksum ...")
    before = {n: _stamp(folder / bpm_generator.bpm_file_name(n)) for n in sets}
    bpm_generator.generate(folder, sets)
    made = [n for n in sets if _stamp(folder / bpm_generator.bpm_file_name(n)) != before[n]]
    print(f"  generated sets {', '.join(map(str, made))}" if made else "  all present and matching, none generated")
    known = bpm_generator.read_checksums(folder)
    for n in sets:
        name = bpm_generator.bpm_file_name(n)
        if known and known.get(name) != bpm_generator.sha256(folder / name):
            raise RuntimeError(
                f"{name} differs from its committed checksum in {bpm_generator.CHECKSUM_FILE}: "
                "the generator's output changed. If that was intended, run "
                "`python -m sbit_lib.testing.testdata --write-checksums` and commit the file."
            )
    print("Computing the expected results (reference computation) ...")
    reference.write_expectations(folder)
    print("Test data ready")


def _stamp(path: Path):
    """(inode, modification time) of `path`, None if absent: changes when the file is rewritten."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", help="test-data folder (default: the configured one)")
    parser.add_argument("--write-checksums", action="store_true",
                        help="record the SHA-256 of the generated files after an intended change")
    args = parser.parse_args(argv)
    from sbit_lib.testing import reference

    folder = Path(args.folder) if args.folder else reference._default_folder()
    if args.write_checksums:
        bpm_generator.generate(folder)
        print(bpm_generator.write_checksums(folder))
        return 0
    prepare(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
