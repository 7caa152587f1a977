from django.apps import AppConfig


class GuardiansConfig(AppConfig):
    name = "guardians"

    def ready(self):
        """Subscribe to what the workflow announces (agents.signals); the workflow never calls us."""
        from agents import signals
        from guardians import recovery, safety, tasks

        for signal, receiver in (
            (signals.code_reviewed, safety.report),
            (signals.round_decided, tasks.round_decided),
            (signals.deployed, recovery.repaired),
            (signals.failed_over, recovery.failed_over),
            (signals.rollback_refused, recovery.rollback_refused),
            (signals.step_retrying, recovery.step_retrying),
            (signals.step_recovered, recovery.step_recovered),
        ):
            signal.connect(receiver, dispatch_uid=f"guardians.{receiver.__module__}.{receiver.__name__}")
