"""The mail service's settings (SPEC §3, §4, §10, §11), all from the environment; each
non-obvious one with its comment. `portal.settings` takes them all (README's table lists them)."""

from pathlib import Path

from portal.paths import VAR_DIR, env

# --- Mail service behaviour (SPEC §3, §4).
HOLD_HOURS = env.int("HOLD_HOURS", default=72)  # how long a held message is kept
PURGE_GRACE_SECONDS = env.int("PURGE_GRACE_SECONDS", default=300)  # delay before a purge deletes
PURGE_BATCH_SIZE = env.int("PURGE_BATCH_SIZE", default=20000)  # rows per purge/expiry transaction
DIGEST_TIME = env("DIGEST_TIME", default="06:00")  # local time of the daily error digest
DIGEST_MAX_ERRORS = env.int("DIGEST_MAX_ERRORS", default=100)  # errors listed in one digest
RETENTION_DAYS = env.int("RETENTION_DAYS", default=30)  # metadata of sent/failed messages
MAX_MESSAGE_BYTES = env.int("MAX_MESSAGE_BYTES", default=10 * 1024 * 1024)
MAX_RECIPIENTS = env.int("MAX_RECIPIENTS", default=100)
# A message submitted through the API travels inside JSON: room for it and its escaping.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * MAX_MESSAGE_BYTES + 1024 * 1024
# Where delivery goes; the default writes .eml files so a person sees what was "sent".
SMTP_RELAY_URL = env("SMTP_RELAY_URL", default=f"file://{VAR_DIR / 'outbox'}")
SMTP_RELAY_TIMEOUT = env.int("SMTP_RELAY_TIMEOUT", default=20)  # per SMTP command
SMTP_INGRESS_ADDR = env("SMTP_INGRESS_ADDR", default="127.0.0.1:2525")
SMTP_INGRESS_HOSTNAME = env("SMTP_INGRESS_HOSTNAME", default="portal.localhost")
SMTP_TLS_CERT = env("SMTP_TLS_CERT", default="")  # with SMTP_TLS_KEY: STARTTLS, then AUTH requires it
SMTP_TLS_KEY = env("SMTP_TLS_KEY", default="")
SMTP_AUTH_MAX_FAILURES = env.int("SMTP_AUTH_MAX_FAILURES", default=5)  # per client address and user name
# Per client address, all user names together: a shared web server's scripts all come from one address.
SMTP_AUTH_MAX_FAILURES_PER_ADDRESS = env.int("SMTP_AUTH_MAX_FAILURES_PER_ADDRESS", default=100)
SMTP_AUTH_FAILURE_WINDOW = env.int("SMTP_AUTH_FAILURE_WINDOW", default=300)  # seconds
# SMTP door limits, as Postfix's smtpd: connections per client address (0: none; extra ones get 421),
# seconds for each command or message data (smtpd_timeout), seconds for a whole session.
SMTP_CLIENT_CONNECTION_LIMIT = env.int("SMTP_CLIENT_CONNECTION_LIMIT", default=50)
SMTP_IDLE_TIMEOUT = env.int("SMTP_IDLE_TIMEOUT", default=300)
SMTP_SESSION_MAX_SECONDS = env.int("SMTP_SESSION_MAX_SECONDS", default=600)
# Door processes sharing the port (runsmtpd --processes; mailqueue/smtpd_processes.py): one runs on
# one CPU at most; about one per CPU under load. The per-address limits above are shared out among them.
SMTP_DOOR_PROCESSES = env.int("SMTP_DOOR_PROCESSES", default=1)
# The SMTP and bounce doors' event loop: "uvloop" (libuv's; about 0.1 ms less CPU a message at the
# door than asyncio's, bench/README.md) or "asyncio" (the standard library's).
SMTP_EVENT_LOOP = env("SMTP_EVENT_LOOP", default="uvloop")
# On SIGTERM the door stops accepting at once and lets transactions in flight finish this long.
SMTP_DRAIN_SECONDS = env.int("SMTP_DRAIN_SECONDS", default=10)
# Group commit (mailqueue/group_commit.py): the messages of concurrent sessions stored in one
# transaction, at most SMTP_GROUP_COMMIT_MAX_BATCH of them, SMTP_GROUP_COMMIT_IN_FLIGHT
# transactions at a time (more overlap one batch's INSERT with another's COMMIT; fewer make larger
# batches). Two: at 4 clients on PostgreSQL the door stored 504 and 430 msg/s against 398 and 422
# with one, the same at 16 (bench/README.md); on SQLite the second waits for the first's write lock.
SMTP_GROUP_COMMIT_MAX_BATCH = env.int("SMTP_GROUP_COMMIT_MAX_BATCH", default=64)
SMTP_GROUP_COMMIT_IN_FLIGHT = env.int("SMTP_GROUP_COMMIT_IN_FLIGHT", default=2)
PORTAL_SENDMAIL_URL = env("PORTAL_SENDMAIL_URL", default="")
# Where `manage.py sendmail` keeps mail while the door is unreachable (sendmail_flush submits it).
SENDMAIL_SPOOL_DIR = Path(env("SENDMAIL_SPOOL_DIR", default=str(VAR_DIR / "sendmail-spool")))
# A delivery run's first batch; the next grow up to DELIVERY_BATCH_SIZE_MAX while a batch takes
# under a second (mailqueue.delivery_runs.batch_size_next).
DELIVERY_BATCH_SIZE = env.int("DELIVERY_BATCH_SIZE", default=100)
DELIVERY_BATCH_SIZE_MAX = env.int("DELIVERY_BATCH_SIZE_MAX", default=500)
# A batch sends nothing new after this long (the rest is deferred): tasks stay under their limits.
DELIVERY_BATCH_DEADLINE = env.int("DELIVERY_BATCH_DEADLINE", default=30)
# A batch's worker renews its claim every DELIVERY_CLAIM_HEARTBEAT seconds; a claim not renewed
# for DELIVERY_CLAIM_TIMEOUT seconds is a dead worker's and is recovered by the retries sweep.
DELIVERY_CLAIM_HEARTBEAT = env.int("DELIVERY_CLAIM_HEARTBEAT", default=10)
DELIVERY_CLAIM_TIMEOUT = env.int("DELIVERY_CLAIM_TIMEOUT", default=45)
RETRY_BASE_SECONDS = env.int("RETRY_BASE_SECONDS", default=60)  # first back-off, doubled each try
RETRY_MAX_DELAY_SECONDS = env.int("RETRY_MAX_DELAY_SECONDS", default=4 * 3600)
RETRY_MAX_AGE_SECONDS = env.int("RETRY_MAX_AGE_SECONDS", default=5 * 24 * 3600)  # then failed
ABUSE_RATE_FACTOR = env.int("ABUSE_RATE_FACTOR", default=5)  # × hourly limit submitted in 1 h
ABUSE_BOUNCE_RATIO = env.float("ABUSE_BOUNCE_RATIO", default=0.5)
ABUSE_BOUNCE_MIN_MESSAGES = env.int("ABUSE_BOUNCE_MIN_MESSAGES", default=50)
# A spam block within this many days of one the customer purged can be lifted by support only.
SPAM_REPEAT_DAYS = env.int("SPAM_REPEAT_DAYS", default=30)
# Complaints (feedback reports) within an hour that block a hosting for `spam` (SPEC §10.1, §11.1).
SPAM_BLOCK_COUNT = env.int("SPAM_BLOCK_COUNT", default=5)

# --- What comes back after delivery (SPEC §10.1, §10.2).
# The envelope sender of every delivered message is BOUNCE_LOCAL_PART+<token>@BOUNCE_DOMAIN; the
# domain's MX must lead to the bounce door (runbounced, or an MTA piping to receive_bounce).
BOUNCE_DOMAIN = env("BOUNCE_DOMAIN", default="bounces.portal.localhost")
BOUNCE_LOCAL_PART = env("BOUNCE_LOCAL_PART", default="bounce")
BOUNCE_INGRESS_ADDR = env("BOUNCE_INGRESS_ADDR", default="127.0.0.1:2526")
SUPPRESSION_DAYS = env.int("SUPPRESSION_DAYS", default=90)  # an address stays suppressed after a hard bounce

# --- What leaves the platform (SPEC §11.2).
DKIM_KEY_BITS = env.int("DKIM_KEY_BITS", default=2048)  # RSA size of each hosting's key
DKIM_ROTATION_DAYS = env.int("DKIM_ROTATION_DAYS", default=7)  # a replaced key stays published this long
# The SPF hint of the SMTP page: the hosting's domain should include the relay's senders.
SPF_INCLUDE = env("SPF_INCLUDE", default="_spf.portal.localhost")
# `own-domains`: a hosting sends only as its domain, its subdomains or domains an operator allowed;
# `any`: as any domain but another tenant's (SPEC §11.2).
SENDER_POLICY = env("SENDER_POLICY", default="own-domains")

# --- Webhooks (SPEC §10.4).
# Endpoints on loopback, private, link-local or metadata addresses are refused (server-side request
# forgery) unless this is true: development (`make run` sets it) and tests with a local receiver.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False)
WEBHOOK_TIMEOUT_SECONDS = env.int("WEBHOOK_TIMEOUT_SECONDS", default=10)  # per attempt
WEBHOOK_RETRY_HOURS = env.int("WEBHOOK_RETRY_HOURS", default=24)  # retried this long; an endpoint failing
# for this long is disabled, with a notice to the customer

# --- Outbound spam scanning (SPEC §11.1).
SPAMD_URL = env.str("SPAMD_URL", default="")  # spamd://host:port of SpamAssassin's spamd; empty: nothing is scanned
SPAM_SCORE_THRESHOLD = env.float("SPAM_SCORE_THRESHOLD", default=5.0)  # at or above: kept from the relay, failed
SPAMD_TIMEOUT_SECONDS = env.int("SPAMD_TIMEOUT_SECONDS", default=10)  # connect + answer; past it: deferred, retried
SPAMD_MAX_BYTES = env.int("SPAMD_MAX_BYTES", default=500 * 1024)  # larger messages are not scanned, as spamc's default
