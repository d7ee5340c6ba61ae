"""Run every benchmark of bench/ at one scale and write docs/BENCHMARKS.md (`make bench`).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/run.py
    … bench/run.py --scale large            # the 1,000,000-message scale (long)
    … bench/run.py --only purge expiry      # some of them (the report then lists only those)

Each script runs as it would standalone, in a subprocess, on a database of its own on the server of
DATABASE_URL (PostgreSQL only): delivery, admin, pages and bounces create theirs; submission, purge and
expiry share one created and migrated here, then dropped. Their output streams as progress; each
writes its figures with --json, gathered here beside their baselines, ratios and goals.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"

# Arguments of each script per scale; "small" runs in a few minutes on a 2-CPU machine.
SCALES = {
    "small": {
        # Best of 3: the door and Postfix run one after the other, and this machine's speed varies.
        "submission": ["--clients", "4", "16", "--messages", "200", "--runs", "3"],
        "delivery": ["--messages", "2000"],
        "purge": ["--messages", "100000"],
        "expiry": ["--messages", "100000"],
        "admin": ["--messages", "100000", "--hostings", "1000"],
        "pages": ["--messages", "100000", "--errors", "10000", "--hostings", "1000"],
        "bounces": ["--clients", "4", "--messages", "200", "--rows", "100000"],
    },
    "large": {
        "submission": ["--clients", "8", "--messages", "2000"],
        "delivery": ["--messages", "100000"],
        # Fewer runs than the default 3: each one fills 1,000,000 rows first (about 40 s).
        "purge": ["--messages", "1000000", "--runs", "1"],
        "expiry": ["--messages", "1000000", "--runs", "2"],
        "admin": ["--messages", "1000000", "--hostings", "10000"],
        "pages": ["--messages", "1000000", "--errors", "100000", "--hostings", "10000"],
        "bounces": ["--clients", "8", "--messages", "2000", "--rows", "1000000"],
    },
}
BENCHMARKS = list(SCALES["small"])
# Which database each script is given: "own" (it creates its own from the server's URL), "shared"
# (the migrated database made here) or "server" (admin's --server option).
DATABASE_USE = {
    "submission": "shared",
    "delivery": "own",
    "purge": "shared",
    "expiry": "shared",
    "admin": "server",
    "pages": "own",
    "bounces": "own",
}


def database_url(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def displayed_url(url: str) -> str:
    """The URL without its password, for the report."""
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)


def run_sql(server_url: str, statement: str):
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        cursor = connection.execute(statement)
        return cursor.fetchone() if statement.startswith(("SELECT", "SHOW")) else None


def machine() -> dict:
    model = "unknown"
    memory_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "model": model,
        "memory": f"{memory_kb / 1024 / 1024:.1f} GiB" if memory_kb else "unknown",
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def command_line(args) -> str:
    """How this run was started, to be repeated."""
    environment = " ".join(
        f"{name}={displayed_url(os.environ[name])}" for name in ("DATABASE_URL", "REDIS_URL") if os.environ.get(name)
    )
    if os.environ.get("MAKELEVEL"):
        extra = os.environ.get("BENCH_ARGS", "")
        command = "make bench" + (f" BENCH_ARGS={shlex.quote(extra)}" if extra else "")
    else:
        command = shlex.join([".venv/bin/python", "bench/run.py", *sys.argv[1:]])
    return f"{environment} {command}".strip()


def run_one(name: str, arguments: list[str], env: dict, json_path: Path, index: int, total: int) -> list[dict]:
    command = [sys.executable, str(BASE_DIR / "bench" / f"{name}.py"), *arguments, "--json", str(json_path)]
    print(f"\n[{index}/{total}] {name}: {shlex.join(command[1:])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, cwd=BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for line in process.stdout:
        print(f"    {line}", end="", flush=True)
    process.wait()
    elapsed = time.monotonic() - started
    if process.returncode != 0 or not json_path.exists():
        print(f"[{index}/{total}] {name}: FAILED (exit {process.returncode}) after {elapsed:.0f} s", flush=True)
        return [{"benchmark": name, "figure": f"failed (exit {process.returncode})", "unit": "", "value": None}]
    print(f"[{index}/{total}] {name}: done in {elapsed:.0f} s", flush=True)
    figures = json.loads(json_path.read_text())
    for figure in figures:
        figure["seconds"] = elapsed
    return figures


def number(value) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def verdict(figure: dict) -> str:
    met = figure.get("met")
    if figure.get("value") is None:
        return "**failed**"
    if met is None:
        return ""
    return "met" if met else "**short**"


def report(*, figures: list[dict], scale: str, arguments: dict, info: dict) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Default scale: [BENCHMARKS.md](BENCHMARKS.md); 1,000,000 messages: [BENCHMARKS-large.md](BENCHMARKS-large.md)",
        '(`make bench BENCH_ARGS="--scale large --output docs/BENCHMARKS-large.md"`).',
        "",
        "Written by `make bench` (`bench/run.py`, see [bench/README.md](../bench/README.md)); every figure",
        "beside its baseline, their ratio and the goal. Times are medians or best-of as each script says;",
        "the machine is shared, so figures vary from run to run by 10–30 %.",
        "",
        f"- Scale: **{scale}**",
        f"- Date: {info['date']}",
        f"- Machine: {info['machine']['cpus']} CPUs ({info['machine']['model']}), {info['machine']['memory']} "
        f"memory, {info['machine']['system']}, Python {info['machine']['python']}",
        f"- PostgreSQL: {info['postgres']}; broker: {info['broker']}",
        f"- Command: `{info['command']}`",
        f"- Duration: {info['duration']:.0f} s",
        "",
        "| benchmark | figure | unit | value | baseline | ratio | goal | |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for figure in figures:
        baseline = number(figure.get("baseline"))
        if figure.get("baseline_label"):
            baseline += f" ({figure['baseline_label']})"
        ratio = "—" if figure.get("ratio") is None else f"{figure['ratio']:.2f}"
        lines.append(
            f"| {figure['benchmark']} | {figure['figure']} | {figure.get('unit', '')} | {number(figure.get('value'))} "
            f"| {baseline} | {ratio} | {figure.get('goal', '')} | {verdict(figure)} |"
        )
    pages = [figure for figure in figures if figure["benchmark"] == "pages" and "queries" in figure]
    if pages:
        lines += ["", "Query counts of `pages` (at scale / baseline):", ""]
        lines += [f"- {figure['figure']}: {figure['queries']} / {figure['baseline_queries']}" for figure in pages]
    admin = [figure for figure in figures if figure["benchmark"] == "admin" and "one_page_ms" in figure]
    if admin:
        lines += ["", "`admin` beside its second baseline, one page of rows (100 messages among 100 hostings):", ""]
        lines += [
            f"- {figure['figure']}: {number(figure['one_page_ms'])} ms, ratio {figure['one_page_ratio']:.2f}"
            for figure in admin
        ]
    bounces = [
        figure
        for figure in figures
        if figure["benchmark"] == "bounces" and ("recorded" in figure or "blocked" in figure)
    ]
    if bounces:
        lines += [
            "",
            "`bounces`: the intake's check (one DeliveryError of kind dsn per report) and what abuse_check() blocked:",
            "",
        ]
        lines += [
            f"- {figure['figure']}: {figure['recorded']}/{figure['expected']} reports recorded, "
            f"{figure['unattributed']} unattributed"
            if "recorded" in figure
            else f"- {figure['figure']}: blocked {', '.join(figure['blocked']) or 'nothing'}"
            for figure in bounces
        ]
    short = [f"{figure['benchmark']}: {figure['figure']}" for figure in figures if verdict(figure) not in ("", "met")]
    lines += ["", "Short of their goals: " + ("; ".join(short) if short else "none") + "."]
    lines += ["", "Arguments per script at this scale:", ""]
    lines += [f"- `bench/{name}.py {shlex.join(arguments[name])}`" for name in arguments]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=list(SCALES), default="small")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--output", default=str(BASE_DIR / "docs" / "BENCHMARKS.md"), help="the report written")
    args = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    if not server_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        sys.exit("bench/run.py measures PostgreSQL: set DATABASE_URL=postgres://… (any database of the server)")
    names = args.only or BENCHMARKS
    arguments = {name: SCALES[args.scale][name] for name in names}
    started = time.monotonic()
    postgres = run_sql(server_url, "SHOW server_version")[0]
    shared_name = f"bench_run_{uuid.uuid4().hex[:8]}"
    shared_url = database_url(server_url, shared_name)
    work_dir = Path(tempfile.mkdtemp(prefix="bench-run-"))
    base_env = {
        **os.environ,
        "VAR_DIR": str(work_dir / "var"),  # logs, filesystem broker: never the tree's var/
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    # The scripts purge their throwaway queue; a separate delivery queue would escape it.
    base_env.pop("CELERY_DELIVERY_QUEUE", None)
    print(f"bench: {len(names)} benchmarks at scale {args.scale}, PostgreSQL {postgres}", flush=True)
    figures = []
    if any(DATABASE_USE[name] == "shared" for name in names):
        run_sql(server_url, f"CREATE DATABASE {shared_name}")
    try:
        if any(DATABASE_USE[name] == "shared" for name in names):
            print(f"migrating {shared_name}…", flush=True)
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                env={**base_env, "DATABASE_URL": shared_url},
                cwd=BASE_DIR,
                check=True,
            )
        for index, name in enumerate(names, 1):
            env = dict(base_env)
            script_arguments = list(arguments[name])
            if DATABASE_USE[name] == "shared":
                env["DATABASE_URL"] = shared_url
            elif DATABASE_USE[name] == "server":
                script_arguments += ["--server", server_url]
            else:
                env["DATABASE_URL"] = server_url
                if name in ("pages", "bounces"):
                    script_arguments += ["--database", f"bench_{name}_{uuid.uuid4().hex[:8]}"]
            figures += run_one(name, script_arguments, env, work_dir / f"{name}.json", index, len(names))
            if name in ("pages", "bounces"):  # pages.py leaves its database behind; bounces.py if killed
                run_sql(server_url, f"DROP DATABASE IF EXISTS {script_arguments[-1]} WITH (FORCE)")
    finally:
        run_sql(server_url, f"DROP DATABASE IF EXISTS {shared_name} WITH (FORCE)")
        shutil.rmtree(work_dir, ignore_errors=True)

    info = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "postgres": postgres,
        "broker": "Redis" if os.environ.get("REDIS_URL") else "kombu filesystem (no REDIS_URL)",
        "command": command_line(args),
        "duration": time.monotonic() - started,
    }
    text = report(figures=figures, scale=args.scale, arguments=arguments, info=info)
    Path(args.output).write_text(text)
    print(f"\nwrote {args.output}\n\n{text}", flush=True)
    return 1 if any(figure.get("value") is None for figure in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
