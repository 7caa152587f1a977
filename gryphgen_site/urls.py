from django.contrib import admin
from django.urls import include, path

from agents import views
from api.api import api
from gryphgen_site import health, metrics
from guardians import views as guardian_views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:pk>/", views.project_detail, name="project"),
    path("projects/<int:pk>/settings", views.project_settings, name="project_settings"),
    path("projects/<int:pk>/download", views.project_download, name="project_download"),
    path("projects/<int:pk>/deployments/<int:deployment_pk>/rollback", views.project_rollback, name="project_rollback"),
    path("projects/<int:pk>/memory", views.project_memory_upload, name="project_memory"),
    path("projects/<int:pk>/memory/<int:entry_pk>/forget", views.memory_forget, name="memory_forget"),
    path("tasks/<int:pk>/", views.task_detail, name="task"),
    path("tasks/<int:pk>/review", views.task_review, name="task_review"),
    path("tasks/<int:pk>/cancel", views.task_cancel, name="task_cancel"),
    path("tasks/<int:pk>/retry", views.task_retry, name="task_retry"),
    path("tasks/<int:pk>/rollback", views.task_rollback, name="task_rollback"),
    path("accounts/", include("django.contrib.auth.urls")),  # login, logout, password change
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("dashboard/", guardian_views.dashboard, name="dashboard"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics, name="metrics"),
]
