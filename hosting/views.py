from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from hosting.selectors import hostings_visible_to


@login_required
def hosting_list(request):
    hostings = hostings_visible_to(request.user).select_related("customer", "mail_service").order_by("service_name")
    return render(request, "hosting/hosting_list.html", {"hostings": hostings})
