from django.urls import path

from mailqueue import dkim_views, message_log_views, suppression_views, views

app_name = "mailqueue"
urlpatterns = [
    path("hostings/<str:service_name>/emails/", views.emails, name="emails"),
    path("hostings/<str:service_name>/emails/status.json", views.status, name="status"),
    path("hostings/<str:service_name>/emails/recipient/", views.recipient, name="recipient"),
    # Before the actions' route, which would take "suppressions", "history"… for an action's slug.
    path("hostings/<str:service_name>/emails/suppressions/", suppression_views.suppressions, name="suppressions"),
    path("hostings/<str:service_name>/emails/history/", views.history, name="history"),
    path("hostings/<str:service_name>/emails/messages/", message_log_views.message_list, name="messages"),
    path(
        "hostings/<str:service_name>/emails/messages/export.csv",
        message_log_views.messages_export,
        name="messages-export",
    ),
    path("hostings/<str:service_name>/emails/messages/<int:pk>/", message_log_views.message_detail, name="message"),
    path("hostings/<str:service_name>/emails/errors/export.csv", message_log_views.errors_export, name="errors-export"),
    path("hostings/<str:service_name>/emails/<slug:slug>/", views.action, name="action"),
    path("hostings/<str:service_name>/smtp/", views.smtp_credentials, name="smtp"),
    path("hostings/<str:service_name>/smtp/dkim/", dkim_views.dkim, name="dkim"),
]
