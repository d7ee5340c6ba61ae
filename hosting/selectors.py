"""Reads of the hosting app. Every customer-facing query starts from `hostings_visible_to`."""

from django.db.models import QuerySet
from django.http import Http404

from hosting.models import Hosting


def hostings_visible_to(user) -> QuerySet[Hosting]:
    """The hostings of the customers `user` belongs to; nothing for anonymous users.

    `user` may also be an API caller acting for one customer (it has `api_customer_id`).
    """
    if not user.is_authenticated:
        return Hosting.objects.none()
    api_customer_id = getattr(user, "api_customer_id", None)
    if api_customer_id is not None:
        return Hosting.objects.filter(customer_id=api_customer_id)
    return Hosting.objects.filter(customer__memberships__user=user)


def hosting_get_for_user(*, user, service_name: str) -> Hosting:
    """The hosting `service_name` if `user` may see it; Http404 otherwise (no enumeration)."""
    try:
        return hostings_visible_to(user).select_related("customer").get(service_name=service_name)
    except Hosting.DoesNotExist:
        raise Http404("No such hosting") from None


def hosting_by_smtp_credentials(*, service_name: str, password: str) -> Hosting | None:
    """The hosting whose SMTP user and password match, or None."""
    from hosting.services import smtp_password_matches

    hosting = Hosting.objects.filter(service_name=service_name).first()
    if hosting is None or not smtp_password_matches(hosting=hosting, password=password):
        return None
    return hosting


def customers_of(user):
    """The customers `user` is a member of; for an API caller, the one customer it acts for."""
    from hosting.models import Customer

    if not user.is_authenticated:
        return Customer.objects.none()
    api_customer_id = getattr(user, "api_customer_id", None)
    if api_customer_id is not None:
        return Customer.objects.filter(pk=api_customer_id)
    return Customer.objects.filter(memberships__user=user).order_by("name")
