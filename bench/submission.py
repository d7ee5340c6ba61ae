"""Messages per second accepted through the SMTP door, beside a bare aiosmtpd that stores nothing.

    DATABASE_URL=... .venv/bin/python bench/submission.py --clients 8 --messages 200

N client processes each open one connection, AUTH, and send M messages over it with smtplib.
The same clients then run against a bare aiosmtpd server (AUTH accepted, DATA answered 250,
nothing stored): that is the limit of the protocol stack on this machine. Both servers run in
their own process. The bench provisions its own hosting (`provision_hosting`) and deletes it,
with its messages, at the end; the delivery tasks the door enqueues go to a throwaway queue.
"""

import argparse
import io
import json
import multiprocessing
import os
import smtplib
import subprocess
import sys
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# As a hosted script writes it; the sender is the bench hosting's own domain (SENDER_POLICY own-domains).
MESSAGE = (
    b"From: Bench <bench@BENCH_DOMAIN>\r\nTo: someone@example.org\r\nSubject: bench message\r\n\r\n"
    + b"A line of a typical small notification e-mail sent by a hosted script.\r\n" * 20
)

BARE_SERVER = """
import asyncio, sys
from aiosmtpd.smtp import SMTP, AuthResult

class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Ok: queued"

def accept_all(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=True)

async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), authenticator=accept_all, auth_require_tls=False, auth_required=True),
        "127.0.0.1", port)
    print("listening on", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main(0))
"""


def client_run(port: int, user: str, password: str, messages: int, start_at: float) -> int:
    while time.time() < start_at:
        time.sleep(0.001)
    message = MESSAGE.replace(b"BENCH_DOMAIN", user.encode())
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.login(user, password)
        for _ in range(messages):
            refused = client.sendmail(f"bench@{user}", ["someone@example.org"], message)
            if refused:
                raise RuntimeError(f"refused: {refused}")
    return messages


def clients_measure(*, port: int, user: str, password: str, clients: int, messages: int) -> float:
    """Messages per second for `clients` processes sending `messages` each; wall clock from a common start."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(clients) as pool:
        start_at = time.time() + 1.5  # every process is up before the clock starts
        results = [pool.apply_async(client_run, (port, user, password, messages, start_at)) for _ in range(clients)]
        sent = sum(result.get(timeout=600) for result in results)
        elapsed = time.time() - start_at
    return sent / elapsed


def server_start(command: list[str], env: dict, log_path: Path) -> tuple[subprocess.Popen, int]:
    with open(log_path, "w") as log:  # the door logs every message: kept out of the bench's output
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log, text=True, cwd=BASE_DIR)
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}, see {log_path}")
    address = line.split("listening on", 1)[1].split()[0]
    return process, int(address.rsplit(":", 1)[-1])


def server_stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--messages", type=int, default=200, help="messages per client")
    parser.add_argument("--db-threads", type=int, default=8, help="the door's database threads")
    parser.add_argument("--json", metavar="PATH", help="also write the figures there (bench/run.py)")
    args = parser.parse_args()

    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from hosting.models import Customer, Hosting
    from portal.celery import app as celery_app

    run_id = uuid.uuid4().hex[:8]
    log_dir = Path(settings.VAR_DIR)
    customer, _ = Customer.objects.get_or_create(
        slug="bench", defaults={"name": "Bench", "contact_email": "bench@example.net"}
    )
    service_name = f"bench-{run_id}.example"
    output = io.StringIO()
    call_command("provision_hosting", service_name, customer=customer.slug, stdout=output)
    password = dict(line.split("=", 1) for line in output.getvalue().split())["smtp_password"]

    queue_prefix = f"bench-{run_id}-"
    env = {**os.environ, "CELERY_QUEUE_PREFIX": queue_prefix}
    door_command = [sys.executable, "manage.py", "runsmtpd", "--addr", "127.0.0.1:0"]
    door_command += ["--db-threads", str(args.db_threads)]
    try:
        door, door_port = server_start(door_command, env, log_dir / "bench-smtpd.log")
        try:
            door_rate = clients_measure(
                port=door_port, user=service_name, password=password, clients=args.clients, messages=args.messages
            )
        finally:
            server_stop(door)
        stored = Hosting.objects.get(service_name=service_name).messages.count()

        bare, bare_port = server_start([sys.executable, "-c", BARE_SERVER], env, log_dir / "bench-bare.log")
        try:
            bare_rate = clients_measure(
                port=bare_port, user="anyone", password="any", clients=args.clients, messages=args.messages
            )
        finally:
            server_stop(bare)
    finally:
        Hosting.objects.filter(service_name=service_name).delete()
        with celery_app.connection_for_write() as broker:
            broker.default_channel.queue_purge(queue_prefix + "portal")

    expected = args.clients * args.messages
    print(f"database: {connection.vendor}, broker: {celery_app.conf.broker_url.split(':', 1)[0]}")
    print(f"{args.clients} clients x {args.messages} messages, {len(MESSAGE)} bytes each")
    print(f"{'server':<34}{'messages/s':>12}")
    print(f"{'SMTP door (stored, ' + str(stored) + '/' + str(expected) + ')':<34}{door_rate:>12.0f}")
    print(f"{'bare aiosmtpd (stores nothing)':<34}{bare_rate:>12.0f}")
    print(f"{'ratio door / bare':<34}{door_rate / bare_rate:>12.2f}   (goal >= 0.5)")
    if args.json:
        figure = {
            "benchmark": "submission",
            "figure": f"SMTP door, {args.clients} clients x {args.messages} messages (stored {stored}/{expected})",
            "unit": "msg/s",
            "value": door_rate,
            "baseline": bare_rate,
            "baseline_label": "bare aiosmtpd, stores nothing",
            "ratio": door_rate / bare_rate,
            "goal": "ratio >= 0.5",
            "met": door_rate / bare_rate >= 0.5 and stored == expected,
        }
        Path(args.json).write_text(json.dumps([figure], indent=2))


if __name__ == "__main__":
    main()
