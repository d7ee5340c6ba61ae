"""Messages per second accepted through the SMTP door, beside Postfix and a bare aiosmtpd.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/10 \\
        .venv/bin/python bench/submission.py --database bench_submission
    DATABASE_URL=postgres://…/<a migrated database> .venv/bin/python bench/submission.py --clients 4 16 --sizes 1.6 100

Every cell (N clients × one message size) runs three servers in turn, each in its own process(es),
with the same client code and the same message bytes: N client processes each open one connection
and send M messages over it with smtplib (MAIL, RCPT, DATA, no pipelining).

1. The SMTP door (`runsmtpd --processes N`, one process per CPU unless --door-processes says
   otherwise; its CPU is the sum of its processes'): the clients AUTH as the bench's own hosting (`provision_hosting`);
   afterwards every accepted message must be found stored.
2. Postfix (Debian's `postfix`): a private instance of its own (configuration, queue and data
   directories in a temporary directory, smtpd on a free loopback port, deliveries deferred),
   started and stopped here and removed at the end; what a hosting platform would run instead.
   The clients do not AUTH (it has no SASL; 127.0.0.0/8 may relay). Afterwards every accepted
   message must be found in its queue. Skipped, with a line saying so, when Postfix is not installed
   or the bench does not run as root.
3. A bare aiosmtpd (AUTH accepted, DATA answered 250, nothing stored), on the door's event loop
   (SMTP_EVENT_LOOP): the protocol stack's limit.

The goal figure is door / Postfix (≥ 1.0). Without --database, DATABASE_URL names a migrated
database (as bench/run.py gives it); with --database NAME, that database is created on DATABASE_URL's
server, migrated and dropped at the end. The bench's hosting is deleted with its messages at the
end; the delivery tasks the door enqueues go to a throwaway queue, purged. Like `make bench`,
DEBUG=false and LOG_LEVEL=WARNING unless set; VAR_DIR (the servers' logs, any filesystem broker) is
a temporary directory unless set.
"""

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
GOAL = 1.0  # door / Postfix
LINE = b"A line of a typical small notification e-mail sent by a hosted script.\r\n"
# As a hosted script writes it; the sender is the bench hosting's own domain (SENDER_POLICY own-domains).
HEAD = b"From: Bench <bench@BENCH_DOMAIN>\r\nTo: someone@example.org\r\nSubject: bench message\r\n\r\n"
MESSAGE = HEAD + LINE * 20  # bench/bounces.py's submissions

BARE_SERVER = """
import asyncio, os, sys
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

if os.environ["SMTP_EVENT_LOOP"] == "uvloop":  # the door's loop (SMTP_EVENT_LOOP), like for like
    import uvloop
    uvloop.run(main(0))
else:
    asyncio.run(main(0))
"""


def message_make(domain: str, size: int) -> bytes:
    """The bench message from `domain`, at least `size` bytes: its lines repeated (72 octets each)."""
    head = HEAD.replace(b"BENCH_DOMAIN", domain.encode())
    return head + LINE * max(1, -(-(size - len(head)) // len(LINE)))


def client_run(
    port: int, user: str, password: str, messages: int, start_at: float, message: bytes | None = None, login=True
) -> int:
    """One client: one connection, AUTH as `user` unless not `login`, `messages` times `message`
    (by default MESSAGE from `user`'s domain) from bench@`user`."""
    message = MESSAGE.replace(b"BENCH_DOMAIN", user.encode()) if message is None else message
    while time.time() < start_at:
        time.sleep(0.001)
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        if login:
            client.login(user, password)
        for _ in range(messages):
            refused = client.sendmail(f"bench@{user}", ["someone@example.org"], message)
            if refused:
                raise RuntimeError(f"refused: {refused}")
    return messages


def clients_measure(
    *,
    port: int,
    user: str,
    password: str,
    clients: int,
    messages: int,
    message: bytes | None = None,
    login: bool = True,
) -> float:
    """Messages per second for `clients` processes sending `messages` each; wall clock from a common start.
    Every message was answered 250 (a refusal raises)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(clients) as pool:
        start_at = time.time() + 1.5 + 0.1 * clients  # every process is up before the clock starts
        arguments = (port, user, password, messages, start_at, message, login)
        results = [pool.apply_async(client_run, arguments) for _ in range(clients)]
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


def database_commits() -> int:
    """Transactions committed so far in the door's database (PostgreSQL's statistics; 0 elsewhere),
    once the other backends of that database have ended (up to 10 s)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if not cursor.fetchone()[0]:
                break
            time.sleep(0.05)
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of process `pid` and its living children, theirs and so
    on (the door's worker processes; Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:  # ended meanwhile
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(process_cpu_seconds(int(child)) for child in children)


def door_profile_start(directory: str | None, pid: int, name: str) -> subprocess.Popen | None:
    """py-spy sampling process `pid` (idle time left out) until door_profile_stop, when `directory` is set."""
    if not directory:
        return None
    Path(directory).mkdir(parents=True, exist_ok=True)
    output = Path(directory) / f"{name}.txt"
    command = [
        "py-spy",
        "record",
        "--pid",
        str(pid),
        "--rate",
        "250",
        "--gil",
        "--subprocesses",
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.Popen([py_spy or "py-spy", *command[1:]], stdout=subprocess.DEVNULL)


def door_profile_stop(profiler: subprocess.Popen | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        profiler.wait(timeout=60)


def server_stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- Postfix, a private instance --------------------------------------------------------------------

POSTFIX_MAIN_CF = """\
# A private Postfix for bench/submission.py: smtpd on one loopback port, the queue on disk, nothing delivered.
compatibility_level = 3.6
config_directory = {root}/etc
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = bench-postfix.localhost
mydestination =
relayhost =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
default_transport = smtp
relay_transport = smtp
# Accepted into the queue, then deferred: qmgr never hands the mail to a delivery agent.
defer_transports = smtp
biff = no
"""

# Debian's master.cf without chroot (the private queue has no copy of /etc) nor the services unused here.
POSTFIX_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

POSTFIX_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")  # where a message's queue file is


def postfix_command() -> str | None:
    return shutil.which("postfix", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def postfix_unavailable() -> str | None:
    """Why the Postfix baseline cannot run here, or None."""
    if postfix_command() is None:
        return "Postfix is not installed (see bench/README.md: apt-get install postfix)"
    if os.geteuid() != 0:
        return "Postfix's master must start as root"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def filesystem_of(path: Path) -> str:
    """The type of the file system holding `path` (from /proc/mounts), e.g. ext4 or tmpfs."""
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            _device, mount, fstype, *_rest = line.split()
            if str(path.resolve()).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
                best, kind = mount, fstype
    return kind


class Postfix:
    """Debian's Postfix run as a private instance in `root` (`postfix -c root/etc start`)."""

    def __init__(self, root: Path):
        self.root = root
        self.config = root / "etc"
        self.queue = root / "queue"
        self.port = 0
        self.running = False

    def _postfix(self, *arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [postfix_command(), "-c", str(self.config), *arguments], capture_output=True, text=True, timeout=120
        )

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.root / "maillog").read_text(errors="replace").splitlines()[-lines:])
        return "(no maillog)"

    def start(self) -> int:
        """Write the configuration, start the instance; the port its smtpd listens on."""
        self.root.chmod(0o755)  # the daemons run as the postfix user: they must reach the queue
        self.config.mkdir()
        self.queue.mkdir()
        (self.root / "data").mkdir()
        shutil.chown(self.root / "data", user="postfix")
        self.port = free_port()
        (self.config / "main.cf").write_text(POSTFIX_MAIN_CF.format(root=self.root))
        (self.config / "master.cf").write_text(POSTFIX_MASTER_CF.format(port=self.port))
        result = self._postfix("start")  # creates the queue's directories (post-install create-missing)
        self.running = True
        if result.returncode != 0:
            raise RuntimeError(f"postfix start failed: {result.stderr.strip()}\n{self.log_tail()}")
        deadline = time.monotonic() + 10
        while True:  # master -w returned once it listens; checked anyway
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as probe:
                    if probe.recv(512).startswith(b"220"):
                        return self.port
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Postfix does not answer on port {self.port}\n{self.log_tail()}") from None
                time.sleep(0.1)

    def _pids(self) -> list[int]:
        """The instance's processes: the master and its daemons work in its queue directory."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if Path(os.readlink(entry / "cwd")) == self.queue:
                        pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        """`postfix stop`, then wait for every process of the instance to be gone (killed after 30 s)."""
        if not self.running:
            return
        self.running = False
        self._postfix("stop")
        deadline = time.monotonic() + 30
        while (pids := self._pids()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def queued(self) -> int:
        """Messages in the queue (once stopped: no queue file moves any more)."""
        return sum(1 for name in POSTFIX_QUEUES for path in (self.queue / name).rglob("*") if path.is_file())


@contextlib.contextmanager
def postfix_instance():
    """A started private Postfix, stopped and its directory removed on leaving, even on failure."""
    instance = Postfix(Path(tempfile.mkdtemp(prefix="bench-postfix-")))
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(instance.root, ignore_errors=True)


def postfix_version() -> str:
    postconf = shutil.which("postconf", path=str(Path(postfix_command()).parent))
    if postconf is None:
        return "?"
    result = subprocess.run([postconf, "-h", "-d", "mail_version"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "?"


# --- the cells ----------------------------------------------------------------------------------------


def cell_run(*, clients: int, size: int, args, hosting, password: str, env: dict, log_dir: Path) -> dict:
    """Door, Postfix and bare aiosmtpd one after the other, `args.runs` times, for `clients` ×
    `args.messages` messages of `size` bytes: the best rate of each, and what was stored and queued."""
    from mailqueue.models import Message

    service_name = hosting.service_name
    message = message_make(service_name, size)
    common = {"user": service_name, "password": password, "clients": clients, "messages": args.messages}
    cell = {"clients": clients, "bytes": len(message), "expected": clients * args.messages * args.runs}
    cell["processes"] = args.door_processes
    cell.update(door=0.0, stored=0, postfix=None, queued=None, bare=0.0, door_cpu_ms=None, commits_per_message=None)
    label = f"[{clients} clients x {args.messages} messages of {len(message):,} bytes]"
    door_command = [sys.executable, "manage.py", "runsmtpd", "--addr", "127.0.0.1:0"]
    door_command += ["--db-threads", str(args.db_threads), "--processes", str(args.door_processes)]
    for run in range(1, args.runs + 1):
        step = f"{label}{f' run {run}/{args.runs}' if args.runs > 1 else ''}"
        print(f"{step} SMTP door…", flush=True)
        before = Message.objects.filter(hosting=hosting).count()
        door, port = server_start(door_command, env, log_dir / f"bench-smtpd-{clients}x{size}-{run}.log")
        try:
            commits_before = database_commits()
            cpu_before = process_cpu_seconds(door.pid)
            profiler = door_profile_start(args.door_profile, door.pid, f"door-{clients}x{size}-{run}")
            rate = clients_measure(port=port, message=message, **common)
            door_profile_stop(profiler)
            cpu_ms = 1000 * (process_cpu_seconds(door.pid) - cpu_before) / (clients * args.messages)
        finally:
            server_stop(door)
        # Read once the door's connections have ended: a backend reports its commits to the
        # statistics at most once a second while it runs, and at its end.
        commits = (database_commits() - commits_before) / (clients * args.messages)
        if rate > cell["door"]:
            cell.update(door=rate, door_cpu_ms=cpu_ms, commits_per_message=commits)
        cell["stored"] += Message.objects.filter(hosting=hosting).count() - before

        if args.postfix_unavailable is None:
            print(f"{step} Postfix…", flush=True)
            with postfix_instance() as postfix:
                rate = clients_measure(port=postfix.port, message=message, login=False, **common)
                postfix.stop()
                cell["postfix"] = max(cell["postfix"] or 0.0, rate)
                cell["queued"] = (cell["queued"] or 0) + postfix.queued()

        print(f"{step} bare aiosmtpd…", flush=True)
        bare, port = server_start([sys.executable, "-c", BARE_SERVER], env, log_dir / "bench-bare.log")
        try:
            cell["bare"] = max(cell["bare"], clients_measure(port=port, message=message, **common))
        finally:
            server_stop(bare)
    return cell


def cells_print(cells: list[dict], *, messages: int, runs: int) -> None:
    header = (
        f"{'clients':>7} {'bytes':>8} {'door msg/s':>11} {'Postfix msg/s':>14} {'bare msg/s':>11} "
        f"{'door/Postfix':>13} {'door/bare':>10} {'door CPU ms/msg':>16} {'commits/msg':>12} {'stored (door)':>14} "
        f"{'queued (Postfix)':>17}"
    )
    print(header)
    for cell in cells:
        postfix = "skipped" if cell["postfix"] is None else f"{cell['postfix']:.0f}"
        ratio = "—" if cell["postfix"] is None else f"{cell['door'] / cell['postfix']:.2f}"
        queued = "—" if cell["queued"] is None else f"{cell['queued']}/{cell['expected']}"
        print(
            f"{cell['clients']:>7} {cell['bytes']:>8,} {cell['door']:>11.0f} {postfix:>14} {cell['bare']:>11.0f} "
            f"{ratio:>13} {cell['door'] / cell['bare']:>10.2f} {cell['door_cpu_ms']:>16.2f} "
            f"{cell['commits_per_message']:>12.2f} "
            f"{str(cell['stored']) + '/' + str(cell['expected']):>14} "
            f"{queued:>17}"
        )
    best = f", best of {runs} runs" if runs > 1 else ""
    processes = f"the door in {door_processes(cells[0])}, " if cells else ""
    print(f"goal: door / Postfix >= {GOAL} ({processes}{messages} messages per client, one connection each{best})")
    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{load:.2f}' for load in os.getloadavg())}")


def figures_of(cells: list[dict], *, messages: int, runs: int, postfix_label: str) -> list[dict]:
    best = f", best of {runs}" if runs > 1 else ""
    figures = []
    for cell in cells:
        has_postfix = cell["postfix"] is not None
        stored_ok = cell["stored"] == cell["expected"]
        figure = {
            "benchmark": "submission",
            "figure": f"SMTP door ({door_processes(cell)}), {cell['clients']} clients x {messages} messages "
            f"of {cell['bytes']:,} bytes{best} "
            f"(stored {cell['stored']}/{cell['expected']}; bare aiosmtpd {cell['bare']:,.0f} msg/s)",
            "unit": "msg/s",
            "value": cell["door"],
            "baseline": cell["postfix"] if has_postfix else None,
            "baseline_label": postfix_label if has_postfix else "Postfix not installed",
            "ratio": cell["door"] / cell["postfix"] if has_postfix else None,
            "goal": f"door / Postfix >= {GOAL}",
            "met": (cell["door"] / cell["postfix"] >= GOAL and stored_ok)
            if has_postfix
            else (None if stored_ok else False),
            "clients": cell["clients"],
            "bytes": cell["bytes"],
            "stored": cell["stored"],
            "expected": cell["expected"],
            "postfix_queued": cell["queued"],
            "bare": cell["bare"],
            "ratio_bare": cell["door"] / cell["bare"],
            "door_cpu_ms_per_message": cell["door_cpu_ms"],
            "commits_per_message": cell["commits_per_message"],
        }
        figures.append(figure)
    return figures


def door_processes(cell: dict) -> str:
    return "1 process" if cell["processes"] == 1 else f"{cell['processes']} processes"


def server_sql(server_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(statement)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[4, 16], help="client processes, one cell each")
    parser.add_argument(
        "--sizes", type=float, nargs="+", default=[1.6, 100], help="message sizes in KB (1,000 bytes), one cell each"
    )
    parser.add_argument("--messages", type=int, default=200, help="messages per client")
    parser.add_argument("--runs", type=int, default=1, help="runs of each cell; the best rate of each server is kept")
    parser.add_argument("--db-threads", type=int, default=8, help="the door's database threads, per process")
    parser.add_argument(
        "--door-processes",
        type=int,
        default=os.cpu_count() or 1,
        help="the door's processes (runsmtpd --processes; default: one per CPU, as deployed)",
    )
    parser.add_argument(
        "--database", help="create, migrate and drop this database (bench_sub…) on DATABASE_URL's server"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures there (bench/run.py)")
    parser.add_argument(
        "--door-profile",
        metavar="DIR",
        help="record the door with py-spy (pip install py-spy) into DIR/door-CLIENTSxBYTES-RUN.txt (collapsed stacks)",
    )
    args = parser.parse_args()
    if min(*args.clients, args.messages, args.runs, args.db_threads, args.door_processes) < 1 or min(args.sizes) <= 0:
        parser.error("--clients, --messages, --runs, --db-threads, --door-processes and --sizes must be positive")
    if args.database is not None and not re.fullmatch(r"bench_sub\w*", args.database):
        parser.error("--database must be a name starting with bench_sub (letters, digits, _)")
    server_url = os.environ.get("DATABASE_URL", "")
    if args.database and not server_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        parser.error("--database needs DATABASE_URL=postgres://… (any database of the server)")

    run_id = uuid.uuid4().hex[:8]
    work_dir = Path(tempfile.mkdtemp(prefix="bench-submission-"))
    sys.path.insert(0, str(BASE_DIR))
    if args.database:
        os.environ["DATABASE_URL"] = urlunsplit(urlsplit(server_url)._replace(path=f"/{args.database}"))
    os.environ.pop("CELERY_DELIVERY_QUEUE", None)  # a separate delivery queue would escape the purge
    own_var_dir = "VAR_DIR" not in os.environ
    os.environ.setdefault("VAR_DIR", str(work_dir / "var"))
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    args.postfix_unavailable = postfix_unavailable()

    if args.database:
        print(f"bench/submission.py: database {args.database} on {urlsplit(server_url).hostname}", flush=True)
        server_sql(server_url, f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
        server_sql(server_url, f"CREATE DATABASE {args.database}")
    cells, finished = [], False
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection, connections

        from hosting.models import Customer, Hosting
        from portal.celery import app as celery_app

        if args.database:
            print(f"migrating {args.database}…", flush=True)
            call_command("migrate", "--noinput", verbosity=0)
        log_dir = Path(settings.VAR_DIR)
        log_dir.mkdir(parents=True, exist_ok=True)
        customer, _ = Customer.objects.get_or_create(
            slug="bench", defaults={"name": "Bench", "contact_email": "bench@example.net"}
        )
        service_name = f"bench-{run_id}.example"
        output = io.StringIO()
        call_command("provision_hosting", service_name, customer=customer.slug, stdout=output)
        password = dict(line.split("=", 1) for line in output.getvalue().split())["smtp_password"]
        hosting = Hosting.objects.get(service_name=service_name)
        queue_prefix = f"bench-{run_id}-"
        env = {**os.environ, "CELERY_QUEUE_PREFIX": queue_prefix, "SMTP_EVENT_LOOP": settings.SMTP_EVENT_LOOP}

        broker = celery_app.conf.broker_url.split(":", 1)[0]
        print(
            f"database: {connection.vendor}, broker: {broker}, event loop: {settings.SMTP_EVENT_LOOP} "
            f"(door and bare aiosmtpd), load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if args.postfix_unavailable:
            print(f"Postfix baseline skipped: {args.postfix_unavailable}", flush=True)
            postfix_label = ""
        else:
            queue_fs = filesystem_of(Path(tempfile.gettempdir()))
            postfix_label = f"Postfix {postfix_version()}, queue on disk ({queue_fs}), deliveries deferred"
            print(f"baseline: {postfix_label}", flush=True)
        try:
            for size in args.sizes:
                for clients in args.clients:
                    cells.append(
                        cell_run(
                            clients=clients,
                            size=round(size * 1000),
                            args=args,
                            hosting=hosting,
                            password=password,
                            env=env,
                            log_dir=log_dir,
                        )
                    )
        finally:
            Hosting.objects.filter(service_name=service_name).delete()
            with celery_app.connection_for_write() as broker_connection:
                channel = broker_connection.default_channel
                queue = queue_prefix + "portal"
                with contextlib.suppress(Exception):  # the queue may never have been declared
                    channel.queue_purge(queue)
                    if hasattr(channel, "keyprefix_binding_permanent"):  # Redis: the queue's bindings too
                        channel.client.delete(
                            channel.keyprefix_queue % queue, channel.keyprefix_binding_permanent % queue
                        )
            connections.close_all()
        finished = True
    finally:
        if args.database:
            server_sql(server_url, f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
            print(f"dropped {args.database}", flush=True)
        if finished or not own_var_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"kept the servers' logs in {os.environ['VAR_DIR']}", flush=True)

    print()
    cells_print(cells, messages=args.messages, runs=args.runs)
    if args.json:
        figures = figures_of(cells, messages=args.messages, runs=args.runs, postfix_label=postfix_label)
        Path(args.json).write_text(json.dumps(figures, indent=2))
    problems = [
        f"{cell['clients']} clients, {cell['bytes']} bytes: "
        + ", ".join(
            text
            for text, wrong in (
                (f"door stored {cell['stored']}/{cell['expected']}", cell["stored"] != cell["expected"]),
                (f"Postfix queued {cell['queued']}/{cell['expected']}", cell["queued"] not in (None, cell["expected"])),
            )
            if wrong
        )
        for cell in cells
        if cell["stored"] != cell["expected"] or cell["queued"] not in (None, cell["expected"])
    ]
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
