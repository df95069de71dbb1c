"""The one task of a placeholder DAG for a spec that does not load: it fails, saying why."""

from __future__ import annotations

from typing import Any, Sequence

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException


class InvalidSpecOperator(BaseOperator):
    """Fails every run with the spec's ``FILE:LINE:COL`` problem lines; fix the spec to replace the DAG."""

    def __init__(self, *, problems: Sequence[str], **kwargs: Any):
        super().__init__(**kwargs)
        self.problems = list(problems)

    def execute(self, context: Any) -> None:
        for line in self.problems:
            self.log.error("%s", line)
        raise AirflowFailException(f"the spec of this DAG does not load: {self.problems[0] if self.problems else 'unknown problem'}")
