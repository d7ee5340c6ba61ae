from django.urls import path

from hosting import views

urlpatterns = [
    path("", views.hosting_list, name="hosting-list"),
    path("hostings/<str:service_name>/", views.hosting_detail, name="hosting-detail"),
]
