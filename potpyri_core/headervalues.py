"""The one validating layer between raw header cards and the values classification uses.

astropy parses a card's value only when it is read, and an unparsable card
(``EXPTIME = 12O.0XYZ``, an unquoted ``NaN``, a TAB or control byte inside a string) raises
``VerifyError`` naming neither the file nor how to fix it. Every value the classification
reads goes through this module instead: a missing, unparsable or impossible value raises
:class:`HeaderValueError`, whose message names the file, the keyword and the value as
written, so that file becomes BAD with that reason and the sort goes on. An instrument's
``header_rules`` (ranges, allowed values, patterns per keyword) are checked here too
(:func:`check_rule`).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from astropy.io import fits

if TYPE_CHECKING:
    from potpyri_core.settings import HeaderRule

MAX_BINNING = 64
"""Largest on-chip binning factor accepted."""


class HeaderValueError(ValueError):
    """A header value is missing, unparsable or impossible.

    Parameters
    ----------
    file : str
        Name of the raw file.
    keyword : str
        The keyword (or keywords, ``A/B``) concerned.
    value : str
        The value as written in the file (escaped), or ``"missing"``.
    problem : str
        What is wrong and what was expected.
    """

    def __init__(self, file: str, keyword: str, value: str, problem: str) -> None:
        self.file, self.keyword, self.value, self.problem = file, keyword, value, problem
        super().__init__(f"{file}: {keyword} = {value}: {problem}")

    @classmethod
    def missing(cls, file: str, keywords: list[str], what: str) -> HeaderValueError:
        """The error for a value none of ``keywords`` holds."""
        error = cls(file, "/".join(keywords), "missing", what)
        error.args = (f"{file}: missing keyword for the {what}: expected one of {', '.join(keywords)}",)
        return error

    def __str__(self) -> str:
        return str(self.args[0])


def printable(text: str) -> str:
    """Return ``text`` with control and non-ASCII characters escaped (``\\t``, ``\\x01``)."""
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in text)


def written_value(header: fits.Header, keyword: str) -> str:
    """The value field of ``keyword``'s card as written in the file, escaped for messages."""
    card = header.cards[keyword]
    # the card image as read: Card.image would try to "fix" an unparsable card and may raise
    image = getattr(card, "_image", None) or ""
    field = image[10:] if image[8:10] == "= " else image[8:]
    return printable(field.split(" /")[0].strip()) or "''"


def raw_value(header: fits.Header, keyword: str, file: str) -> Any:
    """Return the parsed value of ``keyword`` (None when absent or blank).

    Raises
    ------
    HeaderValueError
        If the card is present but astropy cannot parse its value.
    """
    if keyword not in header:
        return None
    try:
        value = header[keyword]
    except Exception as exc:  # VerifyError, ValueError from a non-ASCII value, ...
        raise HeaderValueError(file, keyword, written_value(header, keyword),
                               f"unparsable card ({type(exc).__name__}); fix the value in a copy of the file") from exc
    if value is None or isinstance(value, fits.card.Undefined) or (isinstance(value, str) and not value.strip()):
        return None
    return value


def check_parsable(header: fits.Header, keywords: Iterable[str], file: str) -> None:
    """Raise :class:`HeaderValueError` for the first of ``keywords`` whose card is unparsable."""
    for keyword in keywords:
        raw_value(header, keyword, file)


def first_value(header: fits.Header, keywords: list[str], file: str) -> tuple[str, Any] | None:
    """Return ``(keyword, value)`` of the first of ``keywords`` present and not blank, else None."""
    for keyword in keywords:
        value = raw_value(header, keyword, file)
        if value is not None:
            return keyword, value
    return None


def text(value: Any, keyword: str, file: str) -> str:
    """Return a header value as stripped text, refusing control characters.

    Raises
    ------
    HeaderValueError
        If the text contains a control character (TAB, NUL, ESC, ...).
    """
    result = str(value).strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in result):
        raise HeaderValueError(file, keyword, repr(printable(result)), "control character in a text value")
    return result


def number(value: Any, keyword: str, file: str, minimum: float | None = None, above_minimum: bool = False,
           maximum: float | None = None) -> float:
    """Return a header value as a finite float within a range.

    Parameters
    ----------
    value : object
        The parsed value (int, float or numeric text; a logical ``T``/``F`` is refused).
    keyword, file : str
        For the message.
    minimum : float, optional
        Lowest value allowed.
    above_minimum : bool
        True when ``minimum`` itself is not allowed (``> minimum``).
    maximum : float, optional
        Highest value allowed.

    Raises
    ------
    HeaderValueError
        If the value is logical, not a number, not finite or outside the range.
    """
    shown = printable(str(value))
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise HeaderValueError(file, keyword, shown, f"expected a number, got a {type(value).__name__} value")
    try:
        result = float(value)
    except ValueError:
        raise HeaderValueError(file, keyword, repr(shown), "expected a number") from None
    if not math.isfinite(result):
        raise HeaderValueError(file, keyword, shown, "expected a finite number")
    if minimum is not None and (result < minimum or (above_minimum and result == minimum)):
        raise HeaderValueError(file, keyword, shown, f"expected {'>' if above_minimum else '>='} {minimum:g}")
    if maximum is not None and result > maximum:
        raise HeaderValueError(file, keyword, shown, f"expected <= {maximum:g}")
    return result


def binning(value: Any, keyword: str, file: str) -> str:
    """Return a binning value (``'2 2'``, ``'2,2'``, ``'2x2'``, ``2``) as ``"NxM"``.

    Raises
    ------
    HeaderValueError
        If the value holds no integer factors or a factor is outside 1..:data:`MAX_BINNING`.
    """
    shown = repr(printable(str(value)))
    if isinstance(value, bool):
        raise HeaderValueError(file, keyword, shown, "expected a binning such as '2 2'")
    parts = re.split(r"[\sx,*]+", str(value).strip().lower())
    if not parts or not all(p.isdigit() for p in parts) or len(parts) > 2:
        raise HeaderValueError(file, keyword, shown, "expected a binning such as '2 2'")
    factors = [int(p) for p in parts] * (2 if len(parts) == 1 else 1)
    if not all(1 <= f <= MAX_BINNING for f in factors):
        raise HeaderValueError(file, keyword, shown, f"binning factors must be 1..{MAX_BINNING}")
    return f"{factors[0]}x{factors[1]}"


def check_rule(header: fits.Header, keyword: str, rule: HeaderRule, file: str, source: str = "") -> None:
    """Check ``keyword``'s value against an instrument's rule (nothing when the card is absent).

    Parameters
    ----------
    header : fits.Header
        The classification header.
    keyword : str
        The keyword the rule is for.
    rule : HeaderRule
        Bounds, allowed values or pattern (``each``: every item of a list value).
    file : str
        Name of the raw file, for the message.
    source : str
        Where the rule comes from (e.g. the instrument's name), for the message.

    Raises
    ------
    HeaderValueError
        The value is unparsable, not a number where the rule bounds one, or breaks the rule;
        the message names the file, the keyword, the value and what the rule expects.
    """
    value = raw_value(header, keyword, file)
    if value is None:
        return
    shown = repr(printable(value)) if isinstance(value, str) else printable(str(value))
    where = f" (header_rules.{keyword}{' of ' + source if source else ''})"
    items = [v for v in re.split(r"[\sx,*]+", str(value).strip().lower()) if v] if rule.each else [value]
    if not items:
        raise HeaderValueError(file, keyword, shown, "expected a list of values" + where)
    for item in items:
        problem = _rule_problem(item, keyword, rule, file)
        if problem:
            raise HeaderValueError(file, keyword, shown, f"expected {problem}{where}")


def _rule_problem(item: Any, keyword: str, rule: HeaderRule, file: str) -> str:
    """What ``item`` fails of ``rule`` (empty when it passes)."""
    if rule.numeric():
        result = number(item, keyword, file)
        bounds = [(rule.gt, ">", operator.gt), (rule.ge, ">=", operator.ge), (rule.lt, "<", operator.lt),
                  (rule.le, "<=", operator.le)]
        failed = [f"{sign} {bound:g}" for bound, sign, holds in bounds if bound is not None and not holds(result, bound)]
        if rule.allowed and result not in [float(a) for a in rule.allowed]:
            failed.append("one of " + ", ".join(f"{float(a):g}" for a in rule.allowed))
        return " and ".join(failed)
    value = text(item, keyword, file)
    if rule.allowed and value.lower() not in [str(a).lower() for a in rule.allowed]:
        return "one of " + ", ".join(str(a) for a in rule.allowed)
    if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
        return f"a value matching {rule.pattern!r}"
    return ""
