from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from hosting.selectors import hosting_get_for_user, hostings_visible_to


@login_required
def hosting_list(request):
    hostings = hostings_visible_to(request.user).select_related("customer", "mail_service").order_by("service_name")
    return render(request, "hosting/hosting_list.html", {"hostings": hostings})


@login_required
def hosting_detail(request, service_name):
    hosting = hosting_get_for_user(user=request.user, service_name=service_name)
    return render(request, "hosting/hosting_detail.html", {"hosting": hosting})
