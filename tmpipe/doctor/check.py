"""One doctor check's outcome and its three statuses (shared by the core and the Airflow checks)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tmpipe.redaction import redact_url_credentials

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {key: redact_url_credentials(value) for key, value in asdict(self).items()}
