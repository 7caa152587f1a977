"""The runner: problems as real tasks, K in flight, each row written to its mode's result file at once.

Each problem becomes a real Task (Celery, database, llama-server, sandbox) in a project of its
own. `Benchmark` keeps K tasks in flight, scores each finished one (`scoring`), and appends it to a
JSON file per mode at once, so an interrupted run can be resumed and a stopped one is marked
partial.
"""

import json
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agents.models import Task
from benchmarks import BenchmarkError, scoring

# --- results: one JSON file per mode, written after every problem ---------------------------------


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores"


@dataclass
class ResultFile:
    """`<out>/<mode>-<split>.json`: the settings, a row per finished problem, tasks still in flight."""

    path: Path
    data: dict

    @classmethod
    def open(cls, path: Path, header: dict, *, resume: bool, fresh: bool) -> "ResultFile":
        if path.exists() and not fresh:
            if not resume:
                raise BenchmarkError(
                    f"{path} exists: pass --resume to continue it, or --fresh to start over and replace it."
                )
            data = cls.read(path)
            for key in ("mode", "split", "settings"):
                if data.get(key) != header[key]:
                    raise BenchmarkError(
                        f"{path} was run with {key} {data.get(key)!r}, not {header[key]!r}; "
                        "resume with the same options, or pass --fresh."
                    )
            data.update({key: header[key] for key in ("selection", "command")})
        else:
            data = {**header, "started": now(), "problems": {}, "in_flight": {}}
        result = cls(path, data)
        result.save(partial_reason="running")
        return result

    @staticmethod
    def read(path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BenchmarkError(f"cannot resume from {path}: {exc}") from exc

    @property
    def rows(self) -> dict:
        return self.data["problems"]

    def missing(self) -> list:
        return [pid for pid in self.data["selection"] if pid not in self.rows]

    def add(self, problem_id: str, row: dict) -> None:
        self.rows[problem_id] = row
        self.data["in_flight"].pop(problem_id, None)
        self.save()

    def submitted(self, problem_id: str, task_id: int) -> None:
        self.data["in_flight"][problem_id] = task_id
        self.save()

    def save(self, partial_reason: str | None = None) -> None:
        if partial_reason is not None:
            self.data["partial_reason"] = partial_reason
        self.data["partial"] = bool(self.missing())
        if not self.data["partial"]:
            self.data["partial_reason"] = ""
        self.data["updated"] = now()
        self.data["totals"] = totals(self.rows, self.data["selection"])
        write_json(self.path, self.data)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(data, indent=2) + "\n")
    scratch.replace(path)  # readers never see half a file


def totals(rows: dict, selection: list) -> dict:
    done = [rows[pid] for pid in selection if pid in rows]
    passed = sum(row["pass"] for row in done)
    tokens = sum(row["tokens"] for row in done)
    seconds = sum(row["wall_seconds"] for row in done)
    accepted = sum(row.get("accepted", row["status"] == Task.Status.ACCEPTED) for row in done)
    by_model = {}
    for row in done:
        for model, count in row.get("tokens_by_model", {}).items():
            by_model[model] = by_model.get(model, 0) + count
    return {
        "selected": len(selection),
        "done": len(done),
        "passed": passed,
        "pass_at_1": round(passed / len(done), 4) if done else None,
        "best_code": sum(row.get("best_code", row["pass"]) for row in done),
        "accepted": accepted,
        # accepted by the verdict tests, wrong by the hidden check: the share an owner would be misled by
        "accepted_wrong": accepted - passed,
        "accepted_wrong_share": round((accepted - passed) / accepted, 4) if accepted else None,
        "escalated_share": round(sum(row.get("escalated", False) for row in done) / len(done), 4) if done else None,
        "tokens_per_problem_by_model": {m: round(t / len(done)) for m, t in sorted(by_model.items())} if done else {},
        "tokens": tokens,
        "tokens_per_solved": round(tokens / passed) if passed else None,
        "seconds_per_problem": round(seconds / len(done), 1) if done else None,
        "busy_seconds_per_problem": round(sum(row.get("busy_seconds", 0) for row in done) / len(done), 1)
        if done
        else None,
        "errors": sum(row["status"] in (Task.Status.ERROR, "timeout") for row in done),
    }


# --- the runner ----------------------------------------------------------------------------------------


@dataclass
class InFlight:
    task_id: int
    problem_id: str
    mode: str
    deadline: float


@dataclass
class Benchmark:
    """Keep up to `concurrency` tasks in flight over (problem, mode) pairs, problem by problem, so
    modes compared in one run cover the same problems even when it stops early."""

    problems: dict
    files: dict  # mode -> ResultFile
    submit: object  # (problem_id, mode) -> Task
    concurrency: int = 1
    task_timeout: float = 1800
    max_consecutive_errors: int = 3
    poll_seconds: float = 1.0
    report: object = print
    active: list = field(default_factory=list)
    consecutive_errors: int = 0
    last_error: str = ""

    def queue(self) -> list:
        pending = {mode: set(f.missing()) - set(f.data["in_flight"]) for mode, f in self.files.items()}
        selection = next(iter(self.files.values())).data["selection"]
        return [(pid, mode) for pid in selection for mode in self.files if pid in pending[mode]]

    def adopt_in_flight(self) -> None:
        """On resume: wait for tasks the interrupted run left in flight instead of submitting them again."""
        for mode, result in self.files.items():
            for pid, task_id in list(result.data["in_flight"].items()):
                if Task.objects.filter(pk=task_id).exists():
                    self.active.append(InFlight(task_id, pid, mode, time.monotonic() + self.task_timeout))
                else:
                    del result.data["in_flight"][pid]

    def run(self) -> None:
        self.adopt_in_flight()
        queue = self.queue()
        while queue or self.active:
            while queue and len(self.active) < self.concurrency:
                pid, mode = queue.pop(0)
                task = self.submit(pid, mode)
                self.files[mode].submitted(pid, task.pk)
                self.active.append(InFlight(task.pk, pid, mode, time.monotonic() + self.task_timeout))
            self.collect()
            if self.consecutive_errors >= self.max_consecutive_errors:
                raise BenchmarkError(
                    f"Stopped: {self.consecutive_errors} problems in a row ended in error (last: {self.last_error}). "
                    "Is the LLM server up? Tasks still in flight are recorded; fix the cause and rerun with --resume."
                )
            if self.active:
                time.sleep(self.poll_seconds)

    def collect(self) -> None:
        finished = {
            t.pk: t for t in Task.objects.filter(pk__in=[a.task_id for a in self.active], status__in=Task.TERMINAL)
        }
        for item in list(self.active):
            task = finished.get(item.task_id)
            if task is not None:
                row = scoring.result_row(task, self.problems[item.problem_id])
            elif time.monotonic() > item.deadline:
                task = Task.objects.get(pk=item.task_id)
                row = {"pass": False, "score": "not scored: timed out", "checkpoint": None,
                       **scoring.measure(task), "status": "timeout",
                       "message": f"still {task.status} after {self.task_timeout:.0f} s"}  # fmt: skip
            else:
                continue
            self.active.remove(item)
            self.record(item, row)

    def record(self, item: InFlight, row: dict) -> None:
        self.files[item.mode].add(item.problem_id, row)
        if row["status"] in (Task.Status.ERROR, "timeout"):
            self.consecutive_errors += 1
            self.last_error = row["message"]
        else:
            self.consecutive_errors = 0
        self.report(item, row)
