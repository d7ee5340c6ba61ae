"""Shared fixtures: real database, real broker (filesystem or Redis), real worker."""

import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection

from portal.celery import app as celery_app
from tests.factories import CustomerFactory, HostingFactory, MembershipFactory, UserFactory

requires_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL)")


@pytest.fixture(scope="session", autouse=True)
def _isolated_celery_queue():
    """Each test session gets its own queue, so a running `make run` worker never steals tasks."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    celery_app.conf.task_default_queue = queue
    yield queue


@pytest.fixture
def celery_worker_live(transactional_db, _isolated_celery_queue):
    """A real Celery worker (threads) consuming the configured broker, for transaction=True tests."""
    with start_worker(
        celery_app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
        queues=[_isolated_celery_queue],
    ) as worker:
        yield worker


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def customer_user():
    """A user who belongs to one customer owning one hosting: (user, customer, hosting)."""
    membership = MembershipFactory()
    hosting = HostingFactory(customer=membership.customer)
    return membership.user, membership.customer, hosting


@pytest.fixture
def make_user():
    return UserFactory


@pytest.fixture
def make_customer():
    return CustomerFactory
