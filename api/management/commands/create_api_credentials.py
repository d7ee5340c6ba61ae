"""Provision API credentials for a customer and print them (shown once)."""

from django.core.management.base import BaseCommand, CommandError

from api.services import api_credentials_create
from hosting.models import Customer


class Command(BaseCommand):
    help = "Create API credentials for a customer; prints application_key, application_secret, consumer_key, token."

    def add_arguments(self, parser):
        parser.add_argument("--customer", required=True, help="slug of the customer")
        parser.add_argument("--name", default="provisioned", help="a label for these credentials")

    def handle(self, *args, customer, name, **options):
        owner = Customer.objects.filter(slug=customer).first()
        if owner is None:
            raise CommandError(f"No customer with slug {customer!r}.")
        credentials = api_credentials_create(customer=owner, name=name)
        self.stdout.write(f"application_key={credentials.application_key}")
        self.stdout.write(f"application_secret={credentials.application_secret}")
        self.stdout.write(f"consumer_key={credentials.consumer_key}")
        self.stdout.write(f"token={credentials.token}")
