"""Results of the conformance checks: :class:`Report`, :class:`ConformanceError`, :class:`NotInstantiable`."""

from __future__ import annotations

import traceback
from typing import Any, Callable, Optional

import attrs

from nami_core.errors import NamiError

__all__ = ["ConformanceError", "NotInstantiable", "Report", "CheckFailed", "require"]


class ConformanceError(NamiError, AssertionError):
    """A component failed one or more conformance checks (the message lists every failure)."""


class NotInstantiable(NamiError, RuntimeError):
    """A registered component cannot be built for testing: its factory needs arguments and it
    declares no ``conformance_example()``, or an optional dependency is missing.

    The pytest plugin turns it into a skip with this message as the reason.
    """


class CheckFailed(AssertionError):
    """Raised inside one check by :func:`require`; collected into the :class:`Report`."""


def require(condition: Any, message: str) -> None:
    """Fail the current check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


@attrs.define
class Report:
    """What the checks of one component found.

    Attributes:
        kind: the component kind.
        component: ``repr`` of the component.
        passed: names of the checks that passed.
        failures: ``(check, message)`` of the checks that failed.
        skipped: ``(check, reason)`` of the checks that did not apply.
        measured: measured quantities (e.g. ``{"order": {"linear": 4.01, ...}}``).
    """

    kind: str
    component: str
    passed: list[str] = attrs.Factory(list)
    failures: list[tuple[str, str]] = attrs.Factory(list)
    skipped: list[tuple[str, str]] = attrs.Factory(list)
    measured: dict[str, Any] = attrs.Factory(dict)

    @property
    def ok(self) -> bool:
        """No check failed."""
        return not self.failures

    def run(self, name: str, check: Callable[[], Optional[str]]) -> None:
        """Run one check: it passes, fails (:class:`CheckFailed` or any exception), or returns
        a string, the reason it was skipped."""
        try:
            skipped = check()
        except CheckFailed as exc:
            self.failures.append((name, str(exc)))
        except NotInstantiable:
            raise
        except Exception as exc:  # an unexpected exception is a failure of that check
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.failures.append(
                (name, f"raised {type(exc).__name__}: {exc} ({where.filename}:{where.lineno})")
            )
        else:
            if isinstance(skipped, str):
                self.skipped.append((name, skipped))
            else:
                self.passed.append(name)

    def skip(self, name: str, reason: str) -> None:
        """Record a check that does not apply."""
        self.skipped.append((name, reason))

    def merge(self, other: "Report") -> "Report":
        """Add the results of ``other`` (prefixing nothing; names should be distinct)."""
        self.passed += other.passed
        self.failures += other.failures
        self.skipped += other.skipped
        self.measured.update(other.measured)
        return self

    def summary(self) -> str:
        """A readable multi-line account (failures first)."""
        lines = [f"{self.kind} {self.component}: {len(self.failures)} failed, "
                 f"{len(self.passed)} passed, {len(self.skipped)} skipped"]
        lines += [f"  FAILED {name}: {msg}" for name, msg in self.failures]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)

    def raise_for_failures(self) -> "Report":
        """Raise :class:`ConformanceError` listing every failure; else return ``self``."""
        if self.failures:
            raise ConformanceError(self.summary())
        return self
