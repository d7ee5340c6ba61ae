"""Settings of the hosting portal, all driven by the environment (django-environ).

Defaults run the whole product on one machine with no server: SQLite and a
filesystem Celery broker under var/. DATABASE_URL and REDIS_URL switch to
PostgreSQL and Redis; production differences come from the environment only.
"""

import datetime

from celery.schedules import crontab
from kombu import transport as kombu_transports

from portal.paths import BASE_DIR, VAR_DIR, env

# The default key is for development only; `check --deploy` flags it (security.W009).
SECRET_KEY = env("SECRET_KEY", default="django-insecure-development-only-key-change-me-in-production")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "hosting",
    "mailqueue",
    "reports",
    "api",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "api.middleware.QueryIdMiddleware",  # every /1.0/ answer, redirects and NUL 404s included
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.NulInUrlNotFoundMiddleware",  # before anything looks a value up
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",  # last of the request middleware, as django-axes requires
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes SQLite's write lock when a transaction starts: on SQLite it is
        # what serialises transitions, as the row lock does on PostgreSQL.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that worker processes started by tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # The few statements run on server-side binding cursors (the doors' INSERT, a sent message's
    # record) are prepared on the server after this many runs; Django's own cursors bind on the
    # client and are never prepared. 0 (psycopg's None) for a pooler in transaction mode that
    # does not keep prepared statements (PgBouncer before 1.21).
    prepare_threshold = env.int("DATABASE_PREPARE_THRESHOLD", default=2)
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = prepare_threshold or None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses logins while locked out, before checking passwords
    "django.contrib.auth.backends.ModelBackend",
]
# Reverse proxies in front of the web process whose X-Forwarded-For is trusted (0: none).
PROXY_COUNT = env.int("PROXY_COUNT", default=0)
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_IPWARE_PROXY_COUNT = PROXY_COUNT or None  # None: REMOTE_ADDR only
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)  # failed logins before a lock-out
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Password-reset e-mails per client address and per e-mail address, per window (seconds).
PASSWORD_RESET_LIMIT = env.int("PASSWORD_RESET_LIMIT", default=5)
PASSWORD_RESET_WINDOW = env.int("PASSWORD_RESET_WINDOW", default=3600)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", default="Europe/Paris")
USE_I18N = True
USE_TZ = True
USE_THOUSAND_SEPARATOR = True  # « 1 042 » in French, "1,042" in English, wherever a number is localized

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise expects it, even before collectstatic
STATICFILES_DIRS = [BASE_DIR / "static"]

REDIS_URL = env("REDIS_URL", default="")
# A Redis that hangs must not hang requests: cache calls give up after a second (and fail open).
REDIS_CACHE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "portal",  # the broker shares the database: never call cache.clear()
            "OPTIONS": REDIS_CACHE_OPTIONS,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# Mail sent by the platform itself (error digests, notices): never through a hosting's queue. Without
# EMAIL_URL each e-mail is written to var/platform-mail/ as an .eml file and logged in one INFO line.
EMAIL_URL = env("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url_config(EMAIL_URL))
else:
    EMAIL_BACKEND = "portal.mail_backends.EmlFileBackend"
    EMAIL_FILE_PATH = VAR_DIR / "platform-mail"
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Hosting portal <no-reply@portal.localhost>")

# --- Security: secure by default. Without DEBUG, HTTPS is on unless HTTPS=false is set explicitly
# (`make run` sets DEBUG=true, the test suite HTTPS=false); `check --deploy` then passes.
HTTPS = env.bool("HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
# Probes and Prometheus on the host speak plain HTTP to the web process: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 60 * 60 * 8
CSRF_COOKIE_HTTPONLY = True
# Served on every response by portal.middleware: no inline script (the admin still uses style attributes).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

# --- Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport under var/.
CELERY_BROKER_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # Longer than any task's run; long waits are due times in the database, never ETAs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    # kombu's filesystem transport, writing whole messages only (portal/broker.py).
    kombu_transports.TRANSPORT_ALIASES["portalfs"] = "portal.broker:AtomicFilesystemTransport"
    CELERY_BROKER_URL = "portalfs://"
    for _folder in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE_PREFIX", default="") + "portal"
# Production routes delivery to its own queue and workers, so a mail flood never starves the
# purge, expiry and digest work (Procfile, compose.yaml); empty: one queue for everything.
CELERY_DELIVERY_QUEUE = env("CELERY_DELIVERY_QUEUE", default="")
CELERY_TASK_ROUTES = {"mailqueue.tasks.delivery_run": {"queue": CELERY_DELIVERY_QUEUE}} if CELERY_DELIVERY_QUEUE else {}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- The mail service (SPEC §3, §4, §10, §11): portal/mail_settings.py.
from portal import mail_settings  # noqa: E402
from portal.mail_settings import *  # noqa: E402, F403

_digest_hour, _digest_minute = (int(part) for part in mail_settings.DIGEST_TIME.split(":"))
CELERY_BEAT_SCHEDULE = {
    "deliver": {"task": "mailqueue.tasks.delivery_run", "schedule": datetime.timedelta(seconds=30)},
    "retries": {"task": "mailqueue.tasks.retries_sweep", "schedule": datetime.timedelta(seconds=30)},
    "purge-watchdog": {"task": "mailqueue.tasks.purge_watchdog", "schedule": datetime.timedelta(minutes=1)},
    "expiry": {"task": "mailqueue.tasks.held_expire", "schedule": datetime.timedelta(minutes=5)},
    "abuse-check": {"task": "mailqueue.tasks.abuse_check", "schedule": datetime.timedelta(minutes=1)},
    "webhooks": {"task": "mailqueue.tasks.webhooks_send_due", "schedule": datetime.timedelta(seconds=30)},
    "retention": {"task": "mailqueue.tasks.retention_apply", "schedule": crontab(hour=3, minute=30)},
    "error-digest-retry": {"task": "reports.tasks.error_digests_retry", "schedule": crontab(minute=17)},
    "error-digest": {
        "task": "reports.tasks.error_digests_send",
        "schedule": crontab(hour=_digest_hour, minute=_digest_minute),
    },
}

# --- API (SPEC §7).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.OvhSignatureAuthentication",
        "api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the browsable API
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "api.permissions.AccessRulesGranted",  # a consumer key or a token makes only the calls its rules allow
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "api.throttling.AddressRateThrottle",  # counted atomically (DRF's own lose counts under load)
        "api.throttling.CustomerRateThrottle",  # one bucket per customer, whatever the credential
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", default="60/minute"),
        "user": env("API_THROTTLE_USER", default="600/minute"),
    },
    "EXCEPTION_HANDLER": "api.exceptions.handler",
    "NUM_PROXIES": PROXY_COUNT,  # X-Forwarded-For is trusted only this deep
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Hosting portal API",
    "DESCRIPTION": "OVH-shaped API of the web hostings' outgoing mail (hosting.web.email).",
    "VERSION": "1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}
API_SIGNATURE_WINDOW = env.int("API_SIGNATURE_WINDOW", default=180)  # seconds either side of server time
# How long the validation link of a requested consumer key (POST /1.0/auth/credential) can be used.
API_VALIDATION_LINK_HOURS = env.int("API_VALIDATION_LINK_HOURS", default=24)
API_AUTH_MAX_FAILURES = env.int("API_AUTH_MAX_FAILURES", default=20)  # per client address and credential
# Per client address, all credentials together: many customers' scripts may share one address.
API_AUTH_MAX_FAILURES_PER_ADDRESS = env.int("API_AUTH_MAX_FAILURES_PER_ADDRESS", default=400)
API_AUTH_FAILURE_WINDOW = env.int("API_AUTH_FAILURE_WINDOW", default=300)
# Encrypts API application secrets at rest (a Fernet key); derived from SECRET_KEY when empty.
CREDENTIALS_ENCRYPTION_KEY = env("CREDENTIALS_ENCRYPTION_KEY", default="")
# Addresses allowed to scrape /metrics (others get a 404); the monitoring network in production.
METRICS_ALLOWED_ADDRESSES = env.list("METRICS_ALLOWED_ADDRESSES", default=["127.0.0.1", "::1"])

LOG_FORMAT = env("LOG_FORMAT", default="plain")  # "json" in production: one JSON object per line
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "portal.logging.JsonFormatter"},
    },
    "filters": {"api_access_line_dropped": {"()": "portal.log_filters.ApiAccessLineDropped"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # One line per request, in one format: Django's own console handler (DEBUG) and runserver's are
    # dropped for the root one; 4xx answers are in the access line, so django.request logs 5xx only.
    "loggers": {
        "django": {"handlers": [], "level": "INFO"},
        "django.request": {"level": "ERROR"},
        "django.server": {"handlers": [], "filters": ["api_access_line_dropped"], "propagate": True},
        "gunicorn.access": {"handlers": ["console"], "filters": ["api_access_line_dropped"], "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}
