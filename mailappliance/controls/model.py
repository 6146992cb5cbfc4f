"""The unit of judgement of `dns check` and the audit: a control with a stable ID, its verdict and the evidence
behind it.

Controls come from several sources (DNS checks, live probes, host inspection, and the audit run itself); each
source turns what it observed into Control values through `Spec.judge`, so a new source only needs its own
catalogue entries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low", "info")
PASS, FAIL, WARN, NOT_APPLICABLE, ERROR = "pass", "fail", "warn", "not-applicable", "error"
STATUSES = (PASS, FAIL, WARN, NOT_APPLICABLE, ERROR)
# An error means the control could not be checked: an auditor must treat it like a failure.
FAILING = (FAIL, ERROR)


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    severity: str
    status: str
    evidence: str
    remediation: str
    references: tuple[str, ...] = ()
    # Where the evidence came from: probe (from the controller), host (Ansible), dns, audit (the run itself).
    source: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.id}: unknown severity {self.severity!r}")
        if self.status not in STATUSES:
            raise ValueError(f"{self.id}: unknown status {self.status!r}")

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["references"] = list(self.references)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Control:
        return cls(**{**data, "references": tuple(data.get("references") or ())})


# Worst first: a control judged from several observations is as bad as its worst one.
WORST_FIRST = (ERROR, FAIL, WARN, PASS, NOT_APPLICABLE)


def worst(statuses: list[str]) -> str:
    return min(statuses, key=WORST_FIRST.index)


def at_or_above(severity: str, threshold: str) -> bool:
    """Whether `severity` is as serious as `threshold` or more (critical is the most serious)."""
    return SEVERITIES.index(severity) <= SEVERITIES.index(threshold)


def failing_at(controls: list[Control], threshold: str) -> list[Control]:
    return [c for c in controls if c.failing and at_or_above(c.severity, threshold)]


@dataclass(frozen=True)
class Spec:
    """What a control checks; `{port}` in the ID and title is filled in for per-port controls."""

    id: str
    title: str
    severity: str
    remediation: str
    references: tuple[str, ...] = ()
    source: str = ""

    def judge(self, status: str, evidence: str, port: int | None = None,
              remediation: str | None = None) -> Control:
        fill = {"port": port} if port is not None else {}
        return Control(
            id=self.id.format(**fill), title=self.title.format(**fill), severity=self.severity, status=status,
            evidence=evidence, remediation=(remediation or self.remediation).format(**fill),
            references=self.references, source=self.source,
        )
