"""The dev / held-out split of a session suite: whole families held out by a seeded random choice.

Tuning the planner against a suite makes its figures flatter the planner; the held-out part says what a
request in new words gets. A family is every phrasing of one intent (sessions with the same `"family"`),
or one session where none is given, so no phrasing of a held-out intent is ever seen while tuning. The
seed and the share are written into the suite with each session's `"split"`, and `split_problems` checks
that the recorded split is the one the seed makes (a family moved by hand shows up):

    python -m hgpt_magic.bench.splits hgpt_magic/bench/data/sessions_paraphrases.json --seed 22 --share 0.3
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SPLITS = ("dev", "held_out")


def family(session: Mapping[str, Any]) -> str:
    return str(session.get("family") or session["id"])


def families(suite: Mapping[str, Any]) -> list[str]:
    """The suite's families, sorted (so the choice depends on the seed and the names only)."""
    return sorted({family(s) for s in suite["sessions"]})


def held_out_families(names: Sequence[str], seed: int, share: float) -> set[str]:
    """`share` of the families (at least one, never all), chosen by `random.Random(seed)`."""
    names = sorted(set(names))
    count = min(max(1, round(len(names) * share)), len(names) - 1) if len(names) > 1 else 0
    return set(random.Random(seed).sample(names, count))


def split_suite(suite: Mapping[str, Any], seed: int, share: float) -> dict[str, Any]:
    """`suite` with `split_seed`, `held_out_share` and every session's `"split"` written in."""
    held = held_out_families(families(suite), seed, share)
    sessions = [{**s, "split": "held_out" if family(s) in held else "dev"} for s in suite["sessions"]]
    head = {k: v for k, v in suite.items() if k != "sessions"}
    return {**head, "split_seed": seed, "held_out_share": share, "sessions": sessions}


def split_of(session: Mapping[str, Any]) -> str:
    """A session's part; a suite without a split (the original dev suite) is all dev."""
    return str(session.get("split", "dev"))


def split_problems(suite: Mapping[str, Any]) -> list[str]:
    """Where the recorded split is not the one its seed makes, or a family is split in two."""
    if "split_seed" not in suite:
        odd = [s["id"] for s in suite["sessions"] if split_of(s) != "dev"]
        return [f"{', '.join(odd)}: a split without a split_seed"] if odd else []
    problems = [f"{s['id']}: unknown split {s['split']!r}" for s in suite["sessions"] if split_of(s) not in SPLITS]
    expected = split_suite(suite, suite["split_seed"], suite.get("held_out_share", 0.3))
    for recorded, made in zip(suite["sessions"], expected["sessions"], strict=True):
        if split_of(recorded) != made["split"]:
            problems.append(
                f"{recorded['id']}: split {split_of(recorded)!r}, but seed {suite['split_seed']} puts family "
                f"{family(recorded)!r} in {made['split']!r}"
            )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hgpt_magic.bench.splits", description=__doc__.split("\n")[0])
    parser.add_argument("suite", help="the suite file; its split is rewritten in place")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--share", type=float, default=0.3, help="share of families held out (default 0.3)")
    args = parser.parse_args(argv)
    path = Path(args.suite)
    suite = split_suite(json.loads(path.read_text(encoding="utf-8")), args.seed, args.share)
    path.write_text(json.dumps(suite, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    held = sorted({family(s) for s in suite["sessions"] if s["split"] == "held_out"})
    print(f"{path}: held out {len(held)} of {len(families(suite))} families: {', '.join(held)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
