from django.urls import path

from api import portal_views, validation_views

urlpatterns = [
    path("api-credentials/", portal_views.credentials, name="api-credentials"),
    path("api-credentials/applications/new/", portal_views.application_create, name="api-app-create"),
    path("api-credentials/applications/<int:pk>/revoke/", portal_views.application_revoke, name="api-app-revoke"),
    path("api-credentials/keys/<int:pk>/revoke/", portal_views.consumer_key_revoke_view, name="api-key-revoke"),
    path("api-credentials/tokens/<int:pk>/revoke/", portal_views.token_revoke, name="api-token-revoke"),
    path("api-credentials/validate/<str:token>/", validation_views.credential_validate, name="api-credential-validate"),
]
