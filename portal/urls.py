from django.contrib import admin
from django.urls import include, path

from portal import metrics
from portal.favicon import favicon
from portal.health import healthz
from portal.password_reset import LimitedPasswordResetView

metrics.register()

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics.metrics_view, name="prometheus-django-metrics"),
    path("favicon.ico", favicon, name="favicon"),
    # Before Django's own: the same page and e-mail, with a limit on how many are sent.
    path("accounts/password_reset/", LimitedPasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("1.0/", include("api.urls")),
    path("", include("api.portal_urls")),
    path("", include("hosting.urls")),
    path("", include("mailqueue.urls")),
]
