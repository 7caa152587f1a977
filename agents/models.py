from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Mode(models.TextChoices):
    SINGLE = "single", "Single (one generator call, no loop: the baseline)"
    PIPELINE = "pipeline", "Pipeline (A→B→C→D with repair rounds)"
    COMPETITIVE = "competitive", "Competitive (best of n parallel candidates, chosen by tests)"
    COLLABORATIVE = "collaborative", "Collaborative (parallel candidates, then a vote: tests, then judges)"
    DEBATE = "debate", "Debate (two critics argue over each candidate, a judge decides, the generator repairs)"
    HIERARCHICAL = "hierarchical", "Hierarchical (a lead splits the work, workers build parts, the lead integrates)"
    CONSENSUS = "consensus", "Consensus (samples vote by behaviour; the stronger model joins when unsure)"
    CONSENSUS_ONE = "consensus_one", "Consensus on one model (samples vote by behaviour, no escalation)"


CONSENSUS_MODES = (Mode.CONSENSUS, Mode.CONSENSUS_ONE)  # the judge chooses among candidates
ONE_ROUND_MODES = (Mode.SINGLE, *CONSENSUS_MODES)  # judged by tests (and behaviour), never repaired


class StopReason(models.TextChoices):
    ACCEPTED = "accepted"
    GAVE_UP = "gave_up", "the optimizer gave up"
    ROUNDS = "rounds", "rounds ran out"
    TOKENS = "tokens", "token budget spent"
    WALL_TIME = "wall_time", "wall-time budget spent"
    NOT_DEPLOYED = "not_deployed", "accepted, but the deploy failed"
    LOOP = "loop", "the watcher found a loop"
    ERROR = "error", "infrastructure error"
    CANCELLED = "cancelled", "cancelled by the owner"


class Project(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    default_mode = models.CharField(
        max_length=20, choices=Mode.choices, blank=True, default="",
        help_text="The mode of tasks that do not name one; blank: the mode of the live policy.",
    )  # fmt: skip
    use_memory = models.BooleanField(
        default=True, help_text="Give the generator and the diagnostician what the owner's memory knows."
    )
    hold_below = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Hold an accepted task for the owner's review instead of deploying it when the evidence "
        "for its code (agreeing share of candidates, halved for a weak verdict) is below this; 0: never hold.",
    )
    staging = models.BooleanField(
        default=False, editable=False,
        help_text="The improvement cycle's A/B project: its tasks never deploy and never read or write memory.",
    )  # fmt: skip
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_project_name")]

    def __str__(self):
        return self.name

    @property
    def workspace(self):
        """The project's directory: `repo/` (git, accepted code), `releases/`, `deployed` (symlink)."""
        return settings.GRYPHGEN_WORKSPACES_DIR / f"project-{self.pk}"

    def get_absolute_url(self):
        return reverse("project", args=[self.pk])


class Policy(models.Model):
    """One version of how tasks are worked (the values of agents.policy.Values): the global line
    (no project) or a project's own. Exactly one version per line is live; new tasks run under it."""

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="policies")
    version = models.PositiveIntegerField()
    # RESTRICT: a version with tasks or children stays, unless its whole project goes with them
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.RESTRICT, related_name="children")
    values = models.JSONField()
    live = models.BooleanField(default=False)
    note = models.CharField(max_length=300, blank=True, help_text="Where it came from: settings, a cycle, a rollback.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "-version"]
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], nulls_distinct=False, name="one_policy_per_version"),
            models.UniqueConstraint(
                fields=["project"], condition=models.Q(live=True), nulls_distinct=False, name="one_live_policy_per_line"
            ),
        ]

    def __str__(self):
        return f"{self.project or 'global'} v{self.version}" + (" (live)" if self.live else "")


class Task(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        ACCEPTED = "accepted"
        FAILED = "failed"  # the workflow gave up: no code met the verdict tests
        ERROR = "error"  # infrastructure failure (LLM server down, sandbox unavailable, bug)
        HELD = "held"  # accepted, waiting for the owner's review before it is deployed

    TERMINAL = (Status.ACCEPTED, Status.FAILED, Status.ERROR)

    class Stage(models.TextChoices):
        """Where the workflow is; blank while queued."""

        ROUTE = "route"
        PLAN = "plan"  # verdict tests fixed
        REUSE = "reuse"  # memory's answer tried
        SPLIT = "split"  # hierarchical: the task is split into parts
        GENERATE = "generate"
        ANALYZE = "analyze"
        EXECUTE = "execute"
        JUDGE = "judge"  # consensus: candidates' behaviour compared
        MONITOR = "monitor"
        DECIDE = "decide"
        HELD = "held"  # waiting for the owner's review
        DEPLOY = "deploy"
        DONE = "done"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    request = models.TextField()
    acceptance_tests = models.TextField(blank=True, help_text="Optional pytest file; import from `solution`.")
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.CONSENSUS)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(max_length=20, blank=True, choices=Stage.choices)
    max_rounds = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )  # services.MAX_ROUNDS
    candidates = models.PositiveSmallIntegerField(
        default=1, help_text="Parallel candidates per round (consensus: candidates started so far)."
    )
    generator_model = models.CharField(
        max_length=20, blank=True, help_text="The generator's model for this task; blank: the roster's."
    )
    policy = models.ForeignKey(
        Policy, null=True, blank=True, on_delete=models.RESTRICT, related_name="tasks",
        help_text="The policy version the task ran under; blank for tasks written before versions existed.",
    )  # fmt: skip
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The owner who released held code for deployment.",
    )  # fmt: skip
    escalated = models.BooleanField(default=False, help_text="Consensus: the stronger model was asked.")
    probe_inputs = models.JSONField(
        null=True, blank=True, help_text="Consensus: the extra inputs candidates are run on (argument lists)."
    )
    budget_tokens = models.PositiveIntegerField(default=0, help_text="Prompt + completion tokens; 0: unlimited.")
    budget_seconds = models.PositiveIntegerField(default=0, help_text="Wall time from start; 0: unlimited.")
    stop_reason = models.CharField(max_length=20, choices=StopReason.choices, blank=True)
    entry_point = models.CharField(max_length=100, blank=True)
    verdict_tests = models.JSONField(null=True, blank=True, help_text="{file name: source}")
    verdict_source = models.CharField(max_length=20, blank=True)  # acceptance | doctest | monitor | calls | agreement
    subtasks = models.JSONField(null=True, blank=True, help_text="Hierarchical mode: the lead's split.")
    memory_key = models.CharField(
        max_length=200,
        blank=True,
        help_text="What this task solves (e.g. a benchmark problem): never retrieved for it.",
    )
    message = models.TextField(blank=True, help_text="Outcome in words: why it was accepted, gave up or failed.")
    created = models.DateTimeField(auto_now_add=True)
    sent = models.DateTimeField(
        null=True, blank=True, help_text="When the first step last reached the task queue; blank: not yet."
    )
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"#{self.pk} {self.request[:60]}"

    @property
    def is_finished(self):
        return self.status in self.TERMINAL

    @property
    def wall_seconds(self) -> float:
        """From its start (or creation) to its end, or to now while it runs."""
        return ((self.finished or timezone.now()) - (self.started or self.created)).total_seconds()

    def tokens_spent(self) -> int:
        """Prompt and completion tokens of all its model calls."""
        return self.calls.aggregate(total=AgentCall.tokens())["total"] or 0

    def get_absolute_url(self):
        return reverse("task", args=[self.pk])


class TaskEvent(models.Model):
    """One progress event, persisted so the task page shows history; also sent live."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="events")
    stage = models.CharField(max_length=20)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.stage}: {self.message}"

    class Meta:
        ordering = ["id"]


class Checkpoint(models.Model):
    """One round's code and everything learned about it. A redelivered step finds its stage done."""

    class Stage(models.TextChoices):
        GENERATED = "generated"
        ANALYZED = "analyzed"
        EXECUTED = "executed"
        MONITORED = "monitored"
        DECIDED = "decided"

    class Decision(models.TextChoices):
        ACCEPT = "accept"
        REPAIR = "repair"
        REVERT = "revert"
        GIVE_UP = "give_up"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="checkpoints")
    round = models.PositiveSmallIntegerField()
    candidate = models.PositiveSmallIntegerField(default=0)
    chosen = models.BooleanField(default=True, help_text="The round's candidate that goes on to monitor and decide.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    stage = models.CharField(max_length=10, choices=Stage.choices, default=Stage.GENERATED)
    files = models.JSONField(default=dict, help_text="{path: source}")
    generation_error = models.TextField(blank=True)
    findings = models.JSONField(default=list, blank=True)
    test_results = models.JSONField(default=list, blank=True)
    tests_passed = models.PositiveIntegerField(default=0)
    tests_total = models.PositiveIntegerField(default=0)
    verdict = models.JSONField(default=dict, blank=True)
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True)
    reason = models.TextField(blank=True)
    repair_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The checkpoint the next round starts from (this one on repair, the best on revert).",
    )  # fmt: skip
    good = models.BooleanField(default=False, help_text="All verdict tests passed.")
    model = models.CharField(max_length=200, blank=True, help_text="The model that wrote this code.")
    behaviour = models.JSONField(
        null=True, blank=True, help_text="Consensus: {status, outputs}: what the code returned on each extra input."
    )
    evidence = models.JSONField(default=dict, blank=True, help_text="Why this code was chosen (consensus).")
    reused = models.ForeignKey(
        "memory.MemoryEntry", null=True, blank=True, on_delete=models.SET_NULL, related_name="reuses",
        help_text="The remembered solution this code is, when memory answered the request (agents/reuse.py).",
    )  # fmt: skip
    commit_sha = models.CharField(max_length=40, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "round", "candidate"]
        constraints = [
            models.UniqueConstraint(fields=["task", "round", "candidate"], name="one_checkpoint_per_candidate"),
            models.UniqueConstraint(
                fields=["task", "round"], condition=models.Q(chosen=True), name="one_chosen_checkpoint_per_round"
            ),
        ]

    def __str__(self):
        return f"task {self.task_id} round {self.round}" + (f" candidate {self.candidate}" if self.candidate else "")


class AgentCall(models.Model):
    class Role(models.TextChoices):
        GENERATOR = "generator", "A · Code Generator"
        ANALYZER = "analyzer", "B · Code Analyzer"
        MONITOR = "monitor", "C · Task Monitor"
        OPTIMIZER = "optimizer", "D · Workflow Optimizer"
        GUARDIAN = "guardian", "Guardian"

    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.CASCADE, related_name="calls")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    role = models.CharField(max_length=10, choices=Role.choices)
    purpose = models.CharField(max_length=40, blank=True)
    endpoint = models.CharField(max_length=200)
    model = models.CharField(max_length=200, blank=True)
    prompt = models.JSONField(help_text="The messages sent.")
    response = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    memories = models.JSONField(default=list, blank=True, help_text="The memories the prompt carried, with scores.")
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.role} call {self.pk}"

    @staticmethod
    def tokens():
        """The aggregate of prompt and completion tokens, for .aggregate() and .annotate()."""
        return models.Sum("prompt_tokens") + models.Sum("completion_tokens")

    class Meta:
        ordering = ["id"]


class SandboxRun(models.Model):
    class Status(models.TextChoices):
        PASSED = "passed"  # exit 0
        FAILED = "failed"  # tests or code failed, exit non-zero
        LIMIT = "limit"  # a limit fired; see `limit`
        REFUSED = "refused"  # nothing ran: bad input (a path that escapes, a reserved name)
        UNAVAILABLE = "unavailable"  # nothing ran: the host could not isolate code

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="sandbox_runs")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    status = models.CharField(max_length=12, choices=Status.choices)
    exit_code = models.IntegerField(null=True, blank=True)
    purpose = models.CharField(max_length=10, default="verdict", help_text="verdict | deploy | reuse | probe | score")
    limit = models.CharField(
        max_length=20, blank=True, help_text="output, memory, processes, work_dir, cpu, file_size, wall_clock"
    )
    stdout = models.TextField(blank=True)
    stderr = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    cpu_ms = models.PositiveIntegerField(default=0)
    peak_memory_kb = models.PositiveIntegerField(default=0)
    inputs_digest = models.CharField(
        max_length=64, blank=True, help_text="sha256 of the files, verdict tests and limits a test run ran with"
    )
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"sandbox run {self.pk}: {self.status}"

    @classmethod
    def record(cls, task, checkpoint, result, purpose="verdict"):
        return cls.objects.create(
            task=task,
            checkpoint=checkpoint,
            purpose=purpose,
            status=result.status,
            exit_code=result.exit_code,
            limit=result.limit,
            stdout=result.stdout,
            stderr=result.stderr,
            duration_ms=result.duration_ms,
            cpu_ms=result.cpu_ms,
            peak_memory_kb=result.peak_memory_kb,
            inputs_digest=result.inputs_digest,
        )

    class Meta:
        ordering = ["id"]


class Deployment(models.Model):
    """One move of a project's `deployed` ref: a deploy of an accepted checkpoint, or a rollback."""

    class Kind(models.TextChoices):
        DEPLOY = "deploy"
        ROLLBACK = "rollback"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="deployments")
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="deployments")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DEPLOY)
    commit_sha = models.CharField(max_length=40)
    tree_sha = models.CharField(max_length=40)
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The deployment this one replaced.",
    )  # fmt: skip
    tested_by = models.ForeignKey(
        "SandboxRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The sandbox run that passed the verdict tests against exactly the deployed tree: the "
        "deploy's own, or the checkpoint's run when the tree and the tests are the same.",
    )  # fmt: skip
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint"], condition=models.Q(kind="deploy"), name="one_deploy_per_checkpoint"
            )
        ]

    def __str__(self):
        return f"{self.kind} {self.commit_sha[:10]} ({self.project})"
