"""Password reset with a limit on the e-mails it sends, per client address and per e-mail address.

Django's PasswordResetView sends one e-mail per POST: anyone could flood a user's mailbox, or
the platform's mailer, from one address or many. Here each request counts against its client
address and its (lower-cased) e-mail address over a window of PASSWORD_RESET_WINDOW seconds;
past PASSWORD_RESET_LIMIT of either, nothing is sent. The answer is the same redirect to the
same neutral "done" page either way, so the limit reveals nothing about accounts.
"""

import hashlib
import logging
import time

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpResponseRedirect

from api.throttling import client_address

log = logging.getLogger(__name__)
KEY_PREFIX = "password-reset"


def _count(kind: str, value: str) -> int:
    """Requests of this window for (kind, value), this one included."""
    window = settings.PASSWORD_RESET_WINDOW
    now = time.time()
    window_start = int(now // window * window)
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    key = f"{KEY_PREFIX}:{kind}:{digest}:{window_start}"
    cache.add(key, 0, timeout=window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        count = 1
    # Some backends' incr re-sets the default timeout: the key lives to the window's end.
    cache.touch(key, timeout=int(window_start + window - now) + 1)
    return count


def password_reset_allowed(*, address: str, email: str) -> bool:
    """Count one reset request; True while neither its address nor its e-mail is past the limit."""
    by_address = _count("address", address)
    by_email = _count("email", email.strip().lower())
    return max(by_address, by_email) <= settings.PASSWORD_RESET_LIMIT


class LimitedPasswordResetView(auth_views.PasswordResetView):
    def form_valid(self, form):
        if password_reset_allowed(address=client_address(self.request), email=form.cleaned_data["email"]):
            return super().form_valid(form)
        log.warning("password reset limit reached for client %s: no e-mail sent", client_address(self.request))
        return HttpResponseRedirect(self.get_success_url())
