"""A cycle A/B-tests candidate policies against the live one; each arm's trial on each problem is
a row, so a cycle killed half-way resumes without repeating a finished trial."""

from django.db import models


class Cycle(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        ADOPTED = "adopted"  # a candidate won and is live
        KEPT = "kept"  # no candidate won: the live policy stays
        FAILED = "failed"  # the cycle could not decide (nothing to test, trials in error); nothing changed

    class Canary(models.TextChoices):
        WATCHING = "watching"
        PASSED = "passed"
        ROLLED_BACK = "rolled_back", "rolled back"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    project = models.ForeignKey(
        "agents.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="cycles",
        help_text="The policy line it tests: a project's own, or the global one (blank).",
    )  # fmt: skip
    baseline = models.ForeignKey(
        "agents.Policy", on_delete=models.PROTECT, related_name="+", help_text="The live version when it began."
    )
    adopted = models.ForeignKey("agents.Policy", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    problems = models.JSONField(default=list, help_text="[{key, source, ...}]: every arm runs each once.")
    decision = models.TextField(blank=True, help_text="The decision in words, with the rule that made it.")
    table = models.JSONField(default=list, blank=True, help_text="One row per arm: solved, Δ and its interval, cost.")
    canary = models.CharField(max_length=12, choices=Canary.choices, blank=True)
    loop = models.PositiveIntegerField(default=0, help_text="The polling loop that owns it; older loops stop.")
    started = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=models.Q(status="running"), name="one_running_cycle")
        ]

    def __str__(self):
        return f"cycle {self.pk} ({self.status})"


class Arm(models.Model):
    """One policy in a cycle: the live one (baseline) or a candidate version, not live, reviewed."""

    cycle = models.ForeignKey(Cycle, on_delete=models.CASCADE, related_name="arms")
    policy = models.ForeignKey("agents.Policy", on_delete=models.PROTECT, related_name="arms")
    label = models.CharField(max_length=300)
    baseline = models.BooleanField(default=False)
    proposal = models.ForeignKey("guardians.Proposal", null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["cycle", "-baseline", "id"]
        constraints = [models.UniqueConstraint(fields=["cycle", "policy"], name="one_arm_per_policy")]

    def __str__(self):
        return self.label


class Trial(models.Model):
    """One arm on one problem: a staging task, then its score."""

    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="trials")
    problem = models.CharField(max_length=100)
    task = models.ForeignKey("agents.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    passed = models.BooleanField(null=True, help_text="Accepted and right; blank until scored.")
    error = models.TextField(blank=True, help_text="Why the trial could not be judged (an error, not a loss).")
    wall_seconds = models.FloatField(null=True, blank=True)
    tokens = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["arm", "id"]
        constraints = [models.UniqueConstraint(fields=["arm", "problem"], name="one_trial_per_arm_and_problem")]

    def __str__(self):
        return f"{self.arm} on {self.problem}"
