"""Who a hosting may send as (SPEC §11.2): with SENDER_POLICY `own-domains` (the default), the
envelope and From: domains of its mail must be the hosting's domain, one of its subdomains, or a
domain an operator allowed for it; with `any`, any domain but another tenant's. Another
customer's domain (one of its hostings or their subdomains) is refused in every mode, unless an
operator allowed it for this hosting."""

import email.utils
import re
from collections.abc import Iterable

from django.conf import settings
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting
from hosting.names import ServiceNameError, service_name_normalize
from mailqueue.models import Action, MailService
from mailqueue.state import Actor, MailServiceError, mail_service_setting_change

OWN_DOMAINS = "own-domains"
ANY = "any"


# ASCII letters, digits, hyphens and dots: whatever service_name_normalize makes of such a name
# (canonical, or refused), domain_of's answer is its lower case, without IDNA's cost at every door.
_ASCII_HOST_CHARACTERS = re.compile(r"[A-Za-z0-9.-]+")


def domain_of(address: str) -> str:
    """The canonical domain of an address ("" when it has none or none that is a host name)."""
    domain = address.strip().strip("<>").rpartition("@")[2]
    if not domain.endswith(".") and _ASCII_HOST_CHARACTERS.fullmatch(domain):
        return domain.lower()
    try:
        return service_name_normalize(domain) if domain else ""
    except ServiceNameError:
        return domain.lower()


def _within(domain: str, parent: str) -> bool:
    return domain == parent or domain.endswith("." + parent)


def _parents(domain: str) -> list[str]:
    labels = domain.split(".")
    return [".".join(labels[index:]) for index in range(len(labels) - 1)]


def header_domains(from_values: Iterable[str]) -> set[str]:
    """The domains of the From: header's addresses."""
    addresses = email.utils.getaddresses([str(value) for value in from_values])
    return {domain_of(address) for _name, address in addresses if "@" in address}


def sender_refusal(*, hosting: Hosting, domains: set[str]) -> str | None:
    """The first of `domains` this hosting may not send as, or None. No query when every domain
    is the hosting's own (the common case); one or two otherwise."""
    foreign = sorted(domain for domain in domains if domain and not _within(domain, hosting.service_name))
    if not foreign:
        return None
    allowed = MailService.objects.filter(hosting=hosting).values_list("allowed_sender_domains", flat=True).first()
    extra = set(allowed or [])
    candidates = {parent for domain in foreign for parent in _parents(domain)}
    others = (
        Hosting.objects.exclude(customer_id=hosting.customer_id)
        .filter(Q(service_name__in=candidates))
        .values_list("service_name", flat=True)
    )
    taken = set(others)
    for domain in foreign:
        if any(_within(domain, name) for name in taken) and domain not in extra:
            return domain  # another tenant's, whatever the policy
        if settings.SENDER_POLICY == OWN_DOMAINS and not any(_within(domain, name) for name in extra):
            return domain
    return None


def mail_service_sender_domains_set(*, hosting: Hosting, actor: Actor, domains: Iterable[str]) -> MailService:
    """The extra domains (and their subdomains) the hosting may send as; operators only. Each is
    a host name; another customer's hosting name is refused."""
    cleaned = []
    for domain in domains:
        domain = domain.strip()
        if not domain:
            continue
        try:
            cleaned.append(service_name_normalize(domain))
        except ServiceNameError as error:
            raise MailServiceError(error.message, code="invalid") from None
    others = Hosting.objects.exclude(customer_id=hosting.customer_id).filter(service_name__in=cleaned)
    if others.exists():
        raise MailServiceError(
            _("%(domain)s is another customer's hosting.") % {"domain": others.first().service_name}, code="invalid"
        )
    return mail_service_setting_change(
        hosting=hosting,
        actor=actor,
        action=Action.SET_SENDER_DOMAINS,
        field="allowed_sender_domains",
        value=sorted(set(cleaned)),
    )
