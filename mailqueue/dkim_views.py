"""The hosting's DKIM and SPF page (SPEC §11.2): the DNS records to publish, and the rotation of
the signing key (a POST, confirmed; the old record stays valid DKIM_ROTATION_DAYS)."""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from hosting.views import hosting_view
from mailqueue.dkim_keys import (
    dkim_key_create,
    dkim_key_rotate,
    dkim_keys_published,
    dns_name,
    dns_record,
    dns_value,
    spf_hint,
)


@hosting_view("GET", "HEAD", "POST")
def dkim(request, hosting):
    if request.method == "POST":
        key = dkim_key_rotate(hosting=hosting)
        messages.success(
            request,
            _("A new key signs from now on (selector %(selector)s): publish its record now.")
            % {"selector": key.selector},
        )
        return redirect("mailqueue:dkim", service_name=hosting.service_name)
    dkim_key_create(hosting=hosting)  # a hosting provisioned before keys existed gets its key here
    keys = [
        {
            "key": key,
            "name": dns_name(key, hosting),
            "value": dns_value(key),
            "record": dns_record(key, hosting),
        }
        for key in dkim_keys_published(hosting=hosting)
    ]
    context = {
        "hosting": hosting,
        "keys": keys,
        "spf": spf_hint(hosting),
        "rotation_days": settings.DKIM_ROTATION_DAYS,
        "confirm_rotation": request.GET.get("rotate") == "1",
    }
    return render(request, "mailqueue/dkim.html", context)
