"""`manage.py gryphgen token ...` and `manage.py gryphgen submit ...`: the API's keys, and a
command-line client that submits a request and follows it to the end.

gryphgen token create --owner NAME [--name N]     prints a new key once (only its hash is kept)
gryphgen token list --owner NAME
gryphgen token revoke PREFIX --owner NAME
gryphgen submit --owner NAME --project P "REQUEST" [--mode M] [--tests FILE] [--timeout S]
    prints each progress event as it happens; exits 0 when the task is accepted, 1 otherwise
"""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.utils import timezone

from agents import progress
from agents.models import Project, Task
from agents.services import submit_task
from api.models import ApiToken


def add_token_arguments(parser):
    actions = parser.add_subparsers(dest="token_action", required=True)
    create = actions.add_parser("create", help="a new API key for an owner (shown once)")
    create.add_argument("--owner", required=True)
    create.add_argument("--name", default="cli")
    actions.add_parser("list", help="an owner's tokens").add_argument("--owner", required=True)
    revoke = actions.add_parser("revoke", help="revoke a token by the prefix `list` shows")
    revoke.add_argument("prefix")
    revoke.add_argument("--owner", required=True)


def add_submit_arguments(parser):
    parser.add_argument("request", help="the request, as an owner writes it")
    parser.add_argument("--owner", required=True, help="user name")
    parser.add_argument("--project", required=True, help="the owner's project: name or id")
    parser.add_argument("--mode", help="a mode other than the project's")
    parser.add_argument("--tests", type=Path, help="a pytest file of acceptance tests")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to follow the task")


def _owner(name):
    try:
        return get_user_model().objects.get(username=name, is_active=True)
    except get_user_model().DoesNotExist:
        raise CommandError(f"no active user named {name!r}") from None


def token(command, options):
    owner = _owner(options["owner"])
    action = options["token_action"]
    if action == "create":
        made, key = ApiToken.issue(owner, options["name"])
        command.stdout.write(
            f"{made}: {key}\nKeep it now: only its hash is stored. Send it as `Authorization: Bearer <key>`."
        )
    elif action == "list":
        for t in ApiToken.objects.filter(owner=owner):
            state = f"revoked {t.revoked:%Y-%m-%d}" if t.revoked else f"last used {t.last_used or 'never'}"
            command.stdout.write(f"{t.prefix}  {t.name}  created {t.created:%Y-%m-%d}  {state}")
    else:
        if not ApiToken.objects.filter(owner=owner, prefix=options["prefix"], revoked=None).update(
            revoked=timezone.now()
        ):
            raise CommandError(f"{owner} has no live token starting {options['prefix']!r}")
        command.stdout.write(f"revoked {options['prefix']}")


def submit(command, options):
    owner = _owner(options["owner"])
    named = options["project"]
    project = Project.objects.filter(
        owner=owner, staging=False, **({"pk": int(named)} if named.isdigit() else {"name": named})
    ).first()
    if project is None:
        raise CommandError(f"{owner} has no project {named!r}")
    tests = ""
    if options["tests"]:
        try:
            tests = options["tests"].read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {options['tests']}: {exc}") from exc
    try:
        task = submit_task(project, options["request"], tests, mode=options["mode"])
    except ValidationError as exc:
        raise CommandError(" ".join(exc.messages)) from exc
    command.stdout.write(f"task #{task.pk} ({task.mode}) queued")
    for event in progress.follow(task, seconds=options["timeout"]):
        command.stdout.write(f"{event.created:%H:%M:%S} {event.stage:<9} {event.message}")
    if not task.is_finished:
        raise CommandError(f"task #{task.pk} is still {task.status} after {options['timeout']:.0f} s; it goes on")
    command.stdout.write(f"task #{task.pk}: {task.status}: {task.message}")
    if task.status != Task.Status.ACCEPTED:
        raise CommandError(f"task #{task.pk} was not accepted ({task.status})")
