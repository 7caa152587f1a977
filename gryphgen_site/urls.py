from django.contrib import admin
from django.urls import path

from agents import views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:pk>/", views.project_detail, name="project"),
    path("tasks/<int:pk>/", views.task_detail, name="task"),
    path("admin/", admin.site.urls),
]
