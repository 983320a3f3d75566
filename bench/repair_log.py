"""Repair a run's log.csv whose rows gained a column its header lacks (written by a version
whose `append_csv` did not migrate the header): `python bench/repair_log.py runs/x/log.csv NEW_COLUMN_BEFORE`."""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def main() -> None:
    path, before = Path(sys.argv[1]), sys.argv[2]
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    width = max(len(r) for r in body)
    if width == len(header):
        print("nothing to repair")
        return
    new = sys.argv[3] if len(sys.argv) > 3 else "G_style_id"
    at = header.index(before)
    fixed_header = header[:at] + [new] + header[at:]
    fixed = [r[:at] + [""] + r[at:] if len(r) == len(header) else r for r in body]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([fixed_header, *fixed])
    print(f"repaired {path}: inserted {new!r} before {before!r}")


if __name__ == "__main__":
    main()
