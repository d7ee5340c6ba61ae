from django.urls import path

from mailqueue import suppression_views, views

app_name = "mailqueue"
urlpatterns = [
    path("hostings/<str:service_name>/emails/", views.emails, name="emails"),
    path("hostings/<str:service_name>/emails/status.json", views.status, name="status"),
    path("hostings/<str:service_name>/emails/recipient/", views.recipient, name="recipient"),
    # Before the actions' route, which would take "suppressions" for an action's slug.
    path("hostings/<str:service_name>/emails/suppressions/", suppression_views.suppressions, name="suppressions"),
    path("hostings/<str:service_name>/emails/<slug:slug>/", views.action, name="action"),
    path("hostings/<str:service_name>/smtp/", views.smtp_credentials, name="smtp"),
]
