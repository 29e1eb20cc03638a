"""User feedback: a survey CSV with one answer per row.

Columns: ``journey``, ``site`` (or ``context``), ``time`` (seconds since the
epoch or ISO 8601 with an offset), ``score``, and optionally ``kind``:

* ``mos`` (default): an opinion score 1-5,
* ``csat``: customer satisfaction 1-5 (4 and 5 count as satisfied),
* ``nps``: "how likely to recommend" 0-10.

Every row is checked like a measurement row and reported with file and line.
"""

from __future__ import annotations

import csv
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from controller.errors import Diagnostic, Location
from controller.measure.files import display
from controller.measure.samples import EPOCH_2000, MAX_FUTURE_S, Problems, Vocabulary, parse_time

Kind = Literal["mos", "csat", "nps"]
RANGES: dict[str, tuple[float, float]] = {"mos": (1, 5), "csat": (1, 5), "nps": (0, 10)}
COLUMNS = ("journey", "site", "context", "time", "score", "kind")


@dataclass(frozen=True, slots=True)
class Answer:
    journey: str
    segment: int  # Vocabulary segment code
    time: float
    kind: Kind
    score: float


def read_feedback(path: Path, vocab: Vocabulary, now: float) -> tuple[tuple[Answer, ...], list[Diagnostic]]:
    file = display(path)
    problems = Problems(file)
    answers: list[Answer] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            if not header:
                problems.add(Location(file), "", "the file is empty", "header: journey,site,time,score[,kind]")
                return (), problems.diagnostics()
            unknown = [h for h in header if h not in COLUMNS]
            missing = [c for c in ("journey", "time", "score") if c not in header]
            if "site" not in header and "context" not in header:
                missing.append("site (or context)")
            if unknown or missing:
                word = unknown[0] if unknown else ""
                close = difflib.get_close_matches(word, COLUMNS, n=1, cutoff=0.6) if word else []
                problems.add(
                    Location(file, 1, 1),
                    word,
                    (f"unknown column '{word}'" if unknown else "missing column(s): " + ", ".join(missing)),
                    (f"did you mean '{close[0]}'? " if close else "") + "columns: journey, site or context, time, "
                    "score, and optionally kind (mos, csat or nps)",
                )
                return (), problems.diagnostics()
            reader.fieldnames = header
            last = reader.line_num
            for row in reader:
                line = last + 1
                last = reader.line_num
                answer = _answer(row, Location(file, line, 1), vocab, now, problems)
                if answer is not None:
                    answers.append(answer)
    except FileNotFoundError:
        problems.add(Location(file), "", "no such file", "check the path given to --feedback")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.add(Location(file), "", f"cannot read the file: {exc}", "save it as UTF-8 CSV")
    if not answers and not problems.count:
        problems.add(Location(file), "", "the file holds no answers", "give at least one survey answer")
    return tuple(answers), problems.diagnostics()


def _answer(row: dict[str, str], loc: Location, vocab: Vocabulary, now: float, problems: Problems) -> Answer | None:
    if None in row:  # more fields than the header
        problems.add(loc, "", "more fields than the header has", "one value per column")
        return None
    journey = (row.get("journey") or "").strip()
    if journey not in vocab.journey_code:
        close = difflib.get_close_matches(journey, vocab.journeys, n=1, cutoff=0.6)
        problems.add(
            loc,
            "journey",
            f"unknown journey {journey!r}" if journey else "journey is missing",
            (f"did you mean '{close[0]}'? " if close else "") + "journeys: " + ", ".join(vocab.journeys),
        )
        return None
    site = (row.get("site") or "").strip()
    context = (row.get("context") or "").strip()
    if site:
        if site not in vocab.site_code:
            close = difflib.get_close_matches(site, vocab.site_names(), n=1, cutoff=0.6)
            problems.add(
                loc,
                "site",
                f"unknown site {site!r}",
                (f"did you mean '{close[0]}'? " if close else "") + "see the inventory",
            )
            return None
        segment = vocab.site_code[site]
    elif context in vocab.context_code:
        segment = vocab.context_code[context]
    else:
        problems.add(loc, "site", "no known site or context", "name the site (or context) the user was at")
        return None
    kind = (row.get("kind") or "mos").strip().lower()
    if kind not in RANGES:
        problems.add(loc, "kind", f"unknown kind {kind!r}", "use mos (1-5), csat (1-5) or nps (0-10)")
        return None
    try:
        time = parse_time(row.get("time") or "")
    except ValueError:
        problems.add(
            loc, "time", f"{row.get('time')!r} is not a time", "seconds since the epoch or ISO 8601 with offset"
        )
        return None
    if not (EPOCH_2000 <= time <= now + MAX_FUTURE_S):
        problems.add(
            loc,
            "time",
            "time is in the future (clock skew?)" if time > now else "time is before the year 2000",
            "give the time the answer was given, in UTC",
        )
        return None
    try:
        score = float(row.get("score") or "")
    except ValueError:
        problems.add(loc, "score", f"{row.get('score')!r} is not a number", "give the answer as a number")
        return None
    low, high = RANGES[kind]
    if not (math.isfinite(score) and low <= score <= high):
        problems.add(
            loc, "score", f"{kind} score {score:g} is outside {low:g}-{high:g}", f"{kind} answers are {low:g}-{high:g}"
        )
        return None
    return Answer(journey, segment, time, kind, score)  # type: ignore[arg-type]
