"""Re-run every search of the audit from scratch and store what it found in ``_stored.py``.

``python -m gradtheory.claims._store`` (the statuses must not change: the audit test compares).
"""

from __future__ import annotations

import pprint
import sys
from pathlib import Path

import numpy as np

from . import _core


def _code(value) -> str:
    np.set_printoptions(precision=17, floatmode="unique", threshold=10**6)
    try:
        return pprint.pformat(value, width=100)
    finally:
        np.set_printoptions(precision=8, floatmode="maxprec", threshold=1000)


def main() -> int:
    from . import run_audit

    record: dict = {}
    results = run_audit(settings=_core.AuditSettings(use_stored_examples=False, record=record))
    path = Path(__file__).with_name("_stored.py")
    head = path.read_text().split("STORED: dict = ")[0]
    body = (
        "STORED: dict = {\n"
        + "".join(f"    {k!r}: [\n        {_code(v)},\n    ],\n" for k, v in sorted(record.items()))
        + "}\n"
    )
    path.write_text(head + body)
    for r in results:
        print(f"{r.claim.id:45s} {r.status}")
    return 0 if all(r.status in _core.SETTLED for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
