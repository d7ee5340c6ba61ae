import functools

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseNotAllowed
from django.shortcuts import render
from django.views.decorators.http import require_safe

from hosting.selectors import hosting_get_for_user, hostings_visible_to


def hosting_view(*methods: str):
    """A page of one hosting: login first, then the tenancy door, then the allowed methods.

    The view receives the hosting instead of its name. Another customer's hosting and an unknown
    one are the same 404 whatever the method, before anything else is looked at.
    """
    allowed = [method.upper() for method in methods or ("GET", "HEAD")]

    def decorator(view):
        @functools.wraps(view)
        @login_required
        def wrapper(request, service_name, **kwargs):
            hosting = hosting_get_for_user(user=request.user, service_name=service_name)
            if request.method not in allowed:
                return HttpResponseNotAllowed(allowed)
            return view(request, hosting, **kwargs)

        return wrapper

    return decorator


@login_required
@require_safe
def hosting_list(request):
    hostings = hostings_visible_to(request.user).select_related("customer", "mail_service").order_by("service_name")
    return render(request, "hosting/hosting_list.html", {"hostings": hostings})


@hosting_view("GET", "HEAD")
def hosting_detail(request, hosting):
    # The mail service's state, as the list shows it (every hosting has its service).
    return render(request, "hosting/hosting_detail.html", {"hosting": hosting, "mail_service": hosting.mail_service})
