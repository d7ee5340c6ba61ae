"""Create a hosting (or rotate its SMTP password) and print its SMTP credentials."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models.functions import Lower

from hosting.models import Customer, Hosting, Plan
from hosting.names import ServiceNameError, service_name_normalize
from hosting.services import hosting_smtp_password_rotate
from mailqueue.provisioning import hosting_provision


class Command(BaseCommand):
    help = "Create a hosting with its mail service and print smtp_user=… and smtp_password=…"

    def add_arguments(self, parser):
        parser.add_argument("service_name")
        parser.add_argument("--customer", required=True, help="slug of the owning customer")
        parser.add_argument("--plan", choices=Plan.values, default=Plan.PERSO)

    def handle(self, *args, service_name, customer, plan, **options):
        if plan not in Plan.values:  # call_command() with keyword options skips argparse's choices
            raise CommandError(f"Unknown plan {plan!r}; choose one of {', '.join(Plan.values)}.")
        owner = Customer.objects.filter(slug=customer).first()
        if owner is None:
            raise CommandError(f"No customer with slug {customer!r}.")
        try:
            service_name = service_name_normalize(service_name)  # "ACME-SHOP.FR." is acme-shop.fr
        except ServiceNameError as error:
            raise CommandError(str(error.message)) from None
        with transaction.atomic():
            hosting = (
                Hosting.objects.select_for_update()
                .alias(name_lower=Lower("service_name"))
                .filter(name_lower=service_name)
                .first()
            )
            if hosting is None:
                hosting, password = hosting_provision(service_name=service_name, customer=owner, plan=plan)
            elif hosting.customer_id != owner.pk:
                raise CommandError(f"{hosting.service_name} belongs to another customer.")
            else:
                password = hosting_smtp_password_rotate(hosting=hosting)
        self.stdout.write(f"smtp_user={hosting.service_name}")
        self.stdout.write(f"smtp_password={password}")
