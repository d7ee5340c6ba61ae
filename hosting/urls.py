from django.urls import path

from hosting import views

urlpatterns = [
    path("", views.hosting_list, name="hosting-list"),
]
