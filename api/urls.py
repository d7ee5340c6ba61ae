from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from api import credential_views, me_webhook_views, message_views, suppression_views, views

EMAIL = "hosting/web/<str:service_name>/email"
urlpatterns = [
    path("auth/time", views.AuthTimeView.as_view(), name="api-auth-time"),
    path("auth/credential", credential_views.CredentialRequestView.as_view(), name="api-auth-credential"),
    path("auth/currentCredential", credential_views.CurrentCredentialView.as_view(), name="api-current-credential"),
    path("auth/logout", credential_views.LogoutView.as_view(), name="api-auth-logout"),
    path("hosting/web", views.HostingListView.as_view(), name="api-hostings"),
    path("hosting/web/<str:service_name>", views.HostingDetailView.as_view(), name="api-hosting"),
    path(EMAIL, views.EmailView.as_view(), name="api-email"),
    path(f"{EMAIL}/request", views.EmailRequestView.as_view(), name="api-email-request"),
    path(f"{EMAIL}/bounces", views.BouncesView.as_view(), name="api-email-bounces"),
    path(f"{EMAIL}/bounces/export", message_views.BouncesExportView.as_view(), name="api-email-bounces-export"),
    path(f"{EMAIL}/volumes", views.VolumesView.as_view(), name="api-email-volumes"),
    path(f"{EMAIL}/messages", message_views.MessagesView.as_view(), name="api-email-messages"),
    path(f"{EMAIL}/messages/export", message_views.MessagesExportView.as_view(), name="api-email-messages-export"),
    path(f"{EMAIL}/messages/<int:pk>", message_views.MessageView.as_view(), name="api-email-message"),
    path(f"{EMAIL}/messages/<int:pk>/retry", message_views.MessageRetryView.as_view(), name="api-email-message-retry"),
    path(f"{EMAIL}/events", views.EventsView.as_view(), name="api-email-events"),
    path(f"{EMAIL}/suppressions", suppression_views.SuppressionsView.as_view(), name="api-email-suppressions"),
    # `str` takes any character but "/": an address's "@" and "+" reach the view as written.
    path(
        f"{EMAIL}/suppressions/<str:address>",
        suppression_views.SuppressionView.as_view(),
        name="api-email-suppression",
    ),
    path("me/webhooks", me_webhook_views.WebhooksView.as_view(), name="api-webhooks"),
    path("me/webhooks/<int:pk>", me_webhook_views.WebhookView.as_view(), name="api-webhook"),
    path(
        "me/webhooks/<int:pk>/rotateSecret",
        me_webhook_views.WebhookSecretRotateView.as_view(),
        name="api-webhook-rotate-secret",
    ),
    path("me/webhooks/<int:pk>/test", me_webhook_views.WebhookTestView.as_view(), name="api-webhook-test"),
    path(
        "me/webhooks/<int:pk>/deliveries",
        me_webhook_views.WebhookDeliveriesView.as_view(),
        name="api-webhook-deliveries",
    ),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[]), name="api-schema"),
    # The split view serves its start-up script as a file (?script): no inline script, so the
    # Content-Security-Policy (script-src 'self') lets the page run.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=[]), name="api-docs"),
    # Anything else under /1.0/ is a 404 shaped like every other API error, not an HTML page.
    re_path(r"^(?!(?:schema|docs)$)", views.not_found, name="api-not-found"),  # keeps APPEND_SLASH for those
]
