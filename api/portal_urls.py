from django.urls import path

from api import portal_views, validation_views, webhook_views

urlpatterns = [
    path("api-credentials/", portal_views.credentials, name="api-credentials"),
    path("api-credentials/applications/new/", portal_views.application_create, name="api-app-create"),
    path("api-credentials/applications/<int:pk>/revoke/", portal_views.application_revoke, name="api-app-revoke"),
    path("api-credentials/keys/<int:pk>/revoke/", portal_views.consumer_key_revoke_view, name="api-key-revoke"),
    path("api-credentials/tokens/<int:pk>/revoke/", portal_views.token_revoke, name="api-token-revoke"),
    path("api-credentials/validate/<str:token>/", validation_views.credential_validate, name="api-credential-validate"),
    path("webhooks/", webhook_views.webhooks, name="webhooks"),
    path("webhooks/<int:pk>/", webhook_views.webhook_detail, name="webhook"),
    path("webhooks/<int:pk>/rotate/", webhook_views.webhook_rotate, name="webhook-rotate"),
    path("webhooks/<int:pk>/delete/", webhook_views.webhook_delete, name="webhook-delete"),
    path("webhooks/<int:pk>/test/", webhook_views.webhook_test, name="webhook-test"),
]
