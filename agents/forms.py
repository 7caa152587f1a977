from django import forms
from django.conf import settings

from agents.models import Mode, Project
from agents.services import validate_text


class TaskForm(forms.Form):
    request = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Describe the function or module. Doctest examples (>>> lines) become verdict tests.",
    )
    mode = forms.ChoiceField(
        choices=[("", "The project's mode (or the policy's)"), *Mode.choices],
        required=False,
        help_text="How the agents cooperate on this task.",
    )
    acceptance_tests = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False)
    acceptance_file = forms.FileField(required=False, help_text="Or upload a pytest file (UTF-8).")

    def clean_request(self):
        return validate_text(self.cleaned_data["request"], "The request", required=True)

    def clean(self):
        data = super().clean()
        upload = data.get("acceptance_file")
        if upload:
            if upload.size > settings.GRYPHGEN_MAX_REQUEST_BYTES:
                raise forms.ValidationError("The acceptance test file is over 64 KB.")
            data["acceptance_tests"] = validate_text(upload.read(), "The acceptance test file", required=False)
        return data


class RetryForm(forms.Form):
    request = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), help_text="Edit it, or send it as it was.")
    mode = forms.ChoiceField(choices=[("", "The same mode"), *Mode.choices], required=False)

    def clean_request(self):
        return validate_text(self.cleaned_data["request"], "The request", required=True)


class ProjectSettingsForm(forms.ModelForm):
    """What an owner may change; the budgets become a version of the project's own policy line."""

    budget_tokens = forms.IntegerField(min_value=0, help_text="Per task, prompt + completion; 0: unlimited.")
    budget_seconds = forms.IntegerField(min_value=0, help_text="Per task, wall time; 0: unlimited.")

    class Meta:
        model = Project
        fields = ["default_mode", "use_memory", "hold_below"]


class MemoryUploadForm(forms.Form):
    document = forms.FileField(allow_empty_file=False, help_text="A text or source file; it is chunked and embedded.")


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "default_mode"]
