"""`manage.py gryphgen policy ...`: read and change the versioned policy from a shell.

gryphgen policy show [--project ID]                       the live version, its values, its history
gryphgen policy set PATH=VALUE [...] [--project ID]      a new live version with those values changed
gryphgen policy from-settings [--project ID]             the settings' values as a new live version
gryphgen policy live VERSION [--project ID]               make an earlier (or later) version live: a rollback

VALUE is JSON where it parses (`0.5`, `true`, `"qwen"`), else text (`qwen`). Every change is
checked against the policy's bounds first; nothing is written when any value is refused.
"""

import json

from django.core.management.base import CommandError

from agents import policy
from agents.models import Policy, Project


def add_arguments(parser):
    actions = parser.add_subparsers(dest="policy_action", required=True)
    for name, help_text in (
        ("show", "the live version, its values and the versions before it"),
        ("from-settings", "publish the settings' values as a new live version (when they differ)"),
    ):
        actions.add_parser(name, help=help_text).add_argument("--project", type=int, help="a project's own line")
    change = actions.add_parser("set", help="publish a new live version with PATH=VALUE changes")
    change.add_argument(
        "changes", nargs="+", metavar="PATH=VALUE", help="e.g. consensus_samples=6 roster.generator=large"
    )
    change.add_argument("--project", type=int, help="a project's own line (its first version copies the global one)")
    change.add_argument("--note", default="", help="why, kept on the version")
    live = actions.add_parser("live", help="make a version of the line live (roll back or forward)")
    live.add_argument("version", type=int)
    live.add_argument("--project", type=int)


def _project(pk):
    if pk is None:
        return None
    try:
        return Project.objects.get(pk=pk)
    except Project.DoesNotExist:
        raise CommandError(f"no project with id {pk}") from None


def _value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(command, options):
    project = _project(options["project"])
    action = options["policy_action"]
    current = policy.live(project)
    try:
        if action == "show":
            show(command, project, current)
            return
        if action == "from-settings":
            values, note = policy.from_settings(), "from the settings"
        elif action == "set":
            values = policy.values_of(current)
            for change in options["changes"]:
                path, sep, text = change.partition("=")
                if not sep:
                    raise CommandError(f"{change!r} is not PATH=VALUE")
                values = policy.changed(values, path.strip(), _value(text.strip()))
            note = options["note"] or "set: " + " ".join(options["changes"])
        else:  # live
            chosen = Policy.objects.filter(project=project, version=options["version"]).first()
            if chosen is None:
                raise CommandError(f"the {project or 'global'} line has no version {options['version']}")
            policy.make_live(chosen)
            command.stdout.write(f"{chosen} is live")
            return
    except policy.PolicyError as exc:
        raise CommandError(str(exc)) from exc
    if values == policy.values_of(current) and current.project_id == (project.pk if project else None):
        command.stdout.write(f"no change: {current} already has these values")
        return
    made = policy.publish(values.model_dump(), project=project, parent=current, note=note)
    changes = policy.diff(policy.values_of(current), values)
    command.stdout.write(f"{made} is live; changes from v{current.version}: " + (_changes(changes) or "none"))


def _changes(changes):
    return "; ".join(f"{path}: {old!r} → {new!r}" for path, old, new in changes)


def show(command, project, current):
    command.stdout.write(f"live: {current} ({current.note})")
    command.stdout.write(json.dumps(current.values, indent=2, sort_keys=True))
    for version in Policy.objects.filter(project=project).order_by("-version")[:20]:
        parent = version.parent
        changes = _changes(policy.diff(policy.values_of(parent), policy.values_of(version))) if parent else "first"
        command.stdout.write(f"v{version.version}{' (live)' if version.live else ''} {version.created:%Y-%m-%d %H:%M}: "
                             f"{version.note}; {changes or 'no changes'}")  # fmt: skip
