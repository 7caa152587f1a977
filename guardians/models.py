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
