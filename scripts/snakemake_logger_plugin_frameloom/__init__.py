"""A Snakemake logger plugin: the run's job events as JSON lines, for `frameloom run` to read.

`frameloom run` starts Snakemake with ``--logger frameloom --logger-frameloom-path FILE``
and follows FILE for its progress lines: structured events (Snakemake's job table, a
job's start with its rule, a job's end), not Snakemake's human log. Snakemake's own
log still goes to the terminal as usual (this handler writes to no stream).
"""

import json
from dataclasses import dataclass, field
from logging import LogRecord
from typing import Optional

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    # Snakemake builds its --logger-frameloom-path option from this type: no string annotations here.
    path: Optional[str] = field(default=None, metadata={"help": "file the JSON-lines job events are written to",
                                                      "required": True})


def event_of(record: LogRecord) -> Optional[dict]:
    """The JSON event of a record: the job table, a job's start (its id and rule), a job's end."""
    kind = getattr(record, "event", None)
    if kind == LogEvent.RUN_INFO and getattr(record, "stats", None):
        return {"event": "run_info", "stats": {rule: int(count) for rule, count in record.stats.items()}}
    if kind == LogEvent.JOB_INFO:
        return {"event": "job_info", "jobid": record.jobid, "rule": record.rule_name}
    if kind == LogEvent.JOB_FINISHED:
        return {"event": "job_finished", "jobid": record.job_id}
    return None


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        self._file = open(self.settings.path, "a", encoding="utf-8")  # closed in close()

    def emit(self, record: LogRecord) -> None:
        event = event_of(record)
        if event is not None:
            self._file.write(json.dumps(event) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return False

    @property
    def has_formatter(self) -> bool:
        return False

    @property
    def needs_rulegraph(self) -> bool:
        return False
