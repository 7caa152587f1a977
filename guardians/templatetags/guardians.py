"""What the guardians add to the owner's pages: `{% load guardians %}{% open_alerts project as alerts %}`."""

from django import template

from guardians.models import Alert

register = template.Library()


@register.simple_tag
def open_alerts(project):
    return Alert.objects.filter(task__project=project, resolved=None)
