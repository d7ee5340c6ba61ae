from django.urls import path

from api import portal_views

urlpatterns = [
    path("api-credentials/", portal_views.credentials, name="api-credentials"),
    path("api-credentials/applications/<int:pk>/revoke/", portal_views.application_revoke, name="api-app-revoke"),
    path("api-credentials/tokens/<int:pk>/revoke/", portal_views.token_revoke, name="api-token-revoke"),
]
