from django.db import models


class GuardianReport(models.Model):
    class Guardian(models.TextChoices):
        WATCHER = "watcher"
        DIAGNOSTICIAN = "diagnostician"
        OPTIMIZER = "optimizer"
        SAFETY = "safety"
        META = "meta"

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    task = models.ForeignKey("agents.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="reports")
    failure_class = models.CharField(max_length=20, blank=True, help_text="Diagnostician reports: the root cause.")
    checkpoint = models.ForeignKey(
        "agents.Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    guardian = models.CharField(max_length=15, choices=Guardian.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.INFO)
    subject = models.CharField(max_length=200)
    findings = models.JSONField(default=dict, blank=True)
    recommendation = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.guardian}: {self.subject}"

    class Meta:
        ordering = ["-id"]
        constraints = [
            # one watcher report per round, even when a step is redelivered
            models.UniqueConstraint(
                fields=["checkpoint", "guardian"],
                condition=models.Q(checkpoint__isnull=False),
                name="one_report_per_guardian_and_checkpoint",
            )
        ]


class FailureClass(models.TextChoices):
    """The diagnostician's root causes; `unknown` when the evidence fits none."""

    SYNTAX_ERROR = "syntax_error", "syntax error"
    WRONG_ANSWER = "wrong_answer", "wrong answer"
    TIMEOUT = "timeout"
    RESOURCE_LIMIT = "resource_limit", "resource limit"
    MODEL_FORMAT = "model_format", "model format error"
    SERVER_UNAVAILABLE = "server_unavailable", "server unavailable"
    SANDBOX_REFUSED = "sandbox_refused", "sandbox refused"
    SAFETY_BLOCKED = "safety_blocked", "blocked by the safety monitor"
    STALLED = "stalled", "no progress before the deadline"
    DEPLOY_FAILED = "deploy_failed", "deploy or rollback failed"
    REGRESSION = "regression", "an adopted policy did worse live"
    UNKNOWN = "unknown"


class Alert(models.Model):
    """Something an owner must look at. Repeats of an open alert count up instead of piling up."""

    task = models.ForeignKey("agents.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.CharField(max_length=200, help_text="What makes two alerts the same one.")
    failure_class = models.CharField(max_length=20, choices=FailureClass.choices)
    severity = models.CharField(max_length=10, choices=GuardianReport.Severity.choices, default="critical")
    message = models.TextField()
    count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)
    resolved = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"], condition=models.Q(resolved__isnull=True), name="one_open_alert_per_fingerprint"
            )
        ]

    def __str__(self):
        return f"{self.failure_class}: {self.message[:80]}"


class DeadLetter(models.Model):
    """A workflow step that failed for good, parked with its history; the admin re-runs it."""

    task = models.ForeignKey("agents.Task", on_delete=models.CASCADE, related_name="dead_letters")
    step = models.CharField(max_length=100, help_text="The Celery task name.")
    args = models.JSONField(default=list)
    chain = models.JSONField(default=list, blank=True, help_text="The steps that were to follow it.")
    failure_class = models.CharField(max_length=20, choices=FailureClass.choices)
    error = models.TextField()
    history = models.JSONField(default=list, help_text="One entry per attempt: when, what failed.")
    created = models.DateTimeField(auto_now_add=True)
    requeued = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.step}{tuple(self.args)}: {self.failure_class}"


class Proposal(models.Model):
    """A change the optimizer guardian suggests, with its evidence. Nothing applies it directly:
    only an A/B test adopts a proposal."""

    class Status(models.TextChoices):
        PROPOSED = "proposed"
        BLOCKED = "blocked"  # the safety monitor refused it
        ADOPTED = "adopted"
        REJECTED = "rejected"

    target = models.CharField(max_length=100, help_text="What it changes, e.g. roles.generator.temperature.")
    current = models.JSONField(null=True)
    proposed = models.JSONField()
    rationale = models.TextField()
    evidence = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PROPOSED)
    safety_review = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["target"], condition=models.Q(status="proposed"), name="one_open_proposal_per_target"
            )
        ]

    def __str__(self):
        return f"{self.target}: {self.current!r} → {self.proposed!r}"


class ScheduledRun(models.Model):
    """A periodic job's claim on one due time: whichever beat's message claims it first runs it."""

    job = models.CharField(max_length=100)
    due = models.DateTimeField()
    claimed = models.DateTimeField(auto_now_add=True)
    duplicates = models.PositiveIntegerField(default=0, help_text="Later messages for the same due time, skipped.")
    outcome = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-due"]
        constraints = [models.UniqueConstraint(fields=["job", "due"], name="one_run_per_job_and_due_time")]

    def __str__(self):
        return f"{self.job} @ {self.due:%Y-%m-%d %H:%M:%S}"
