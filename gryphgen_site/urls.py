from django.contrib import admin
from django.urls import include, path

from agents import views
from api.api import api
from gryphgen_site import health, metrics

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:pk>/", views.project_detail, name="project"),
    path("tasks/<int:pk>/", views.task_detail, name="task"),
    path("tasks/<int:pk>/review", views.task_review, name="task_review"),
    path("tasks/<int:pk>/cancel", views.task_cancel, name="task_cancel"),
    path("tasks/<int:pk>/retry", views.task_retry, name="task_retry"),
    path("tasks/<int:pk>/rollback", views.task_rollback, name="task_rollback"),
    path("accounts/", include("django.contrib.auth.urls")),  # login, logout, password change
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics, name="metrics"),
]
