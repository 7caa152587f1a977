"""Benchmarks of the real stack: HumanEval and the owner-request suite as real tasks, scored on hidden tests.

`problems` loads the suites and their splits, `task_request` turns a problem into the request an
owner would send, `scoring` runs the hidden check (in the sandbox, after the task is finished),
`runner` keeps tasks in flight and writes the result files, `statistics` and `plots` summarize
them, `report` writes docs/benchmarks.md, `command` is `manage.py gryphgen bench humaneval` and
`stack` starts the private stack the bench/ scripts run on.
"""


class BenchmarkError(Exception):
    """The benchmark cannot go on; the message says why and what to do."""
