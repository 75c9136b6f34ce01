"""Quantities in text: a number with its unit or currency and its role (a maximum, a minimum, a
typical value, a rate per day), so that a claim's "25 euros" is not supported by a passage's
"25 cents", nor its "a maximum of 12 kg" by a passage whose 12 kg is the typical load."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_WORD_NUMBERS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "sixty": "60", "ninety": "90", "hundred": "100",
}  # fmt: skip

# canonical unit -> its spellings (lower case); a currency may also stand before the number
_UNITS: dict[str, tuple[str, ...]] = {
    "eur": ("€", "eur", "euro", "euros"),
    "usd": ("$", "usd", "dollar", "dollars", "us$"),
    "gbp": ("£", "gbp", "pound", "pounds"),
    "chf": ("chf", "franc", "francs"),
    "cent": ("cent", "cents", "ct"),
    "percent": ("%", "percent", "per cent", "pct"),
    "second": ("second", "seconds", "sec", "secs", "s"),
    "minute": ("minute", "minutes", "min", "mins"),
    "hour": ("hour", "hours", "hr", "hrs", "h"),
    "working day": ("working day", "working days", "business day", "business days"),
    "day": ("day", "days"),
    "week": ("week", "weeks", "wk", "wks"),
    "month": ("month", "months"),
    "year": ("year", "years", "yr", "yrs"),
    "km/h": ("km/h", "kmh", "kph"),
    "mph": ("mph",),
    "mm": ("mm", "millimetre", "millimetres", "millimeter", "millimeters"),
    "cm": ("cm", "centimetre", "centimetres", "centimeter", "centimeters"),
    "m": ("m", "metre", "metres", "meter", "meters"),
    "km": ("km", "kilometre", "kilometres", "kilometer", "kilometers"),
    "mile": ("mile", "miles"),
    "g": ("g", "gram", "grams"),
    "kg": ("kg", "kilo", "kilos", "kilogram", "kilograms"),
    "t": ("t", "tonne", "tonnes", "ton", "tons"),
    "lb": ("lb", "lbs", "pound weight"),
    "ml": ("ml", "millilitre", "millilitres", "milliliter", "milliliters"),
    "l": ("l", "litre", "litres", "liter", "liters"),
    "w": ("w", "watt", "watts"),
    "kw": ("kw", "kilowatt", "kilowatts"),
    "kwh": ("kwh",),
    "wh": ("wh",),
    "v": ("v", "volt", "volts"),
    "mah": ("mah",),
    "rpm": ("rpm",),
    "db": ("db", "db(a)", "dba", "decibel", "decibels"),
    "lumen": ("lm", "lumen", "lumens"),
    "bar": ("bar",),
    "kpa": ("kpa",),
    "gb": ("gb", "gigabyte", "gigabytes"),
    "mb": ("mb", "megabyte", "megabytes"),
    "tb": ("tb", "terabyte", "terabytes"),
    "celsius": ("°c", "celsius", "degrees celsius", "degrees"),
    "person": ("person", "people", "persons", "guests", "guest", "adults", "adult"),
}  # fmt: skip
_SPELLING = {s: canon for canon, spellings in _UNITS.items() for s in spellings}
_CURRENCY_BEFORE = {"€": "eur", "$": "usd", "£": "gbp", "eur": "eur", "usd": "usd", "gbp": "gbp",
                    "chf": "chf", "us$": "usd"}  # fmt: skip
_UNIT_AFTER = re.compile(
    r"\s*("
    + "|".join(sorted((re.escape(s) for s in _SPELLING), key=len, reverse=True))
    + r")(?![\w])",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:[ ,]\d{3})+|\d+)(?:[.,](\d+))?(?![\d])")
_WORD_NUMBER = re.compile(r"\b(" + "|".join(_WORD_NUMBERS) + r")\b", re.IGNORECASE)

# words before a number that give it a role: the role word, at most four words of what it is
# about ("maximum load of the trolley is 12 kg", "typical runtime: 14 hours"), then the number,
# with no other number between
_GAP = r"(?:\s+[\w-]+){0,4}\s*(?:is|are|of|:|=|at)?\s*(?:about|approximately|around|of)?\s*$"


def _role(words: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{words})" + _GAP, re.IGNORECASE)


_ROLES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "max",
        _role(
            r"maximum|max\.?|up to|at most|no more than|not (?:to )?exceed|limit(?:ed)?|"
            r"capped|highest|top|peak"
        ),
    ),
    ("min", _role(r"minimum|min\.?|at least|no less than|not less than|lowest")),
    (
        "typical",
        _role(
            r"typical(?:ly)?|average|usually|normally|default|recommended|nominal|"
            r"standard"
        ),
    ),
)
_RATE_AFTER = re.compile(
    r"^\s*(?:\w+\s+)?(per|a|an|each|every)\s+(day|week|month|year|hour|night|person|trip|kg|km)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Quantity:
    value: str  # normalised: digits, one decimal point, no thousands separators
    unit: str | None  # canonical unit, e.g. "eur", "cent", "hour"
    role: str | None  # "max", "min", "typical" or None
    rate: str | None  # "day" in "3 per day", or None


def _value(whole: str, fraction: str | None) -> str:
    digits = re.sub(r"[ ,]", "", whole)
    if fraction and set(fraction) != {"0"}:
        return f"{int(digits)}.{fraction.rstrip('0')}"
    return str(int(digits))


def quantities(text: str) -> list[Quantity]:
    """Every number in `text` with the unit, role and rate around it."""
    out: list[Quantity] = []
    spans = [(m.start(), m.end(), _value(m.group(1), m.group(2))) for m in _NUMBER.finditer(text)]
    for m in _WORD_NUMBER.finditer(text):
        spans.append((m.start(), m.end(), _WORD_NUMBERS[m.group(1).lower()]))
    for start, end, value in sorted(spans):
        after = text[end : end + 40]
        before = text[max(0, start - 40) : start]
        unit = None
        found = _UNIT_AFTER.match(after)
        if found:
            unit = _SPELLING[found.group(1).lower()]
        else:
            symbol = before.rstrip()[-3:].lower()
            for spelling, canon in _CURRENCY_BEFORE.items():
                if symbol.endswith(spelling):
                    unit = canon
                    break
        # the role words stand in the same clause, after any other number
        clause = re.split(r"[.;!?]|,\s|\d", before)[-1]
        role = next((name for name, pattern in _ROLES if pattern.search(clause)), None)
        rate = _RATE_AFTER.match(after[found.end() :] if found else after)
        out.append(Quantity(value, unit, role, rate.group(2).lower() if rate else None))
    return out


def compatible(claim: Quantity, source: Quantity) -> bool:
    """Whether a quantity in a passage supports the same number in a claim: the same value, the
    same unit where both give one, the same role and rate where both say."""
    if claim.value != source.value:
        return False
    if claim.unit and source.unit and claim.unit != source.unit:
        return False
    if claim.role and source.role and claim.role != source.role:
        return False
    return not (claim.rate and source.rate and claim.rate != source.rate)


def unsupported(claim: str, sources: Iterable[str]) -> list[Quantity]:
    """The claim's quantities that no quantity of the source texts supports."""
    found = [q for text in sources for q in quantities(text)]
    return [q for q in quantities(claim) if not any(compatible(q, s) for s in found)]


def describe(q: Quantity) -> str:
    """How a quantity reads in an explanation: '25 eur', '12 kg (max)', '3 per day'."""
    parts = [q.value + (f" {q.unit}" if q.unit else "")]
    if q.role:
        parts.append(f"({q.role})")
    if q.rate:
        parts.append(f"per {q.rate}")
    return " ".join(parts)
