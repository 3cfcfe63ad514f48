#!/usr/bin/env python3
"""Run the demo project: a Django admin with sample domain events in it, and a relay at work.

    python3 scripts/demo.py              # set up, then serve http://127.0.0.1:8000/admin/
    python3 scripts/demo.py --celery     # the same, with a Celery worker on the local Redis
    python3 scripts/demo.py --consumer   # and the accounting service, through the local RabbitMQ
    python3 scripts/demo.py --port 8001
    python3 scripts/demo.py --no-serve   # set up only (checks that the demo works)

Makes or reuses the virtualenv .venvs/demo, installs this package into it (pip's output goes to
.venvs/demo-install.log), migrates testproject/db.sqlite3, seeds an admin user and sample events
(the credentials are printed), then starts Django's development server and the relay
(`manage.py relay_events`), plus a Celery worker with --celery. With --consumer the shop sends
its PaymentSettled events to RabbitMQ, and the accounting service (consumerproject/, its own
database consumerproject/db.sqlite3) is migrated and served on the next port, with its
`manage.py consume_events`. Ctrl-C or SIGTERM stops every process it started. Stdlib only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import venvs

ROOT = venvs.ROOT
PROJECT = ROOT / "testproject"
CONSUMER_PROJECT = ROOT / "consumerproject"
VENV = venvs.VENVS / "demo"
INSTALL_LOG = venvs.VENVS / "demo-install.log"
REDIS = ("127.0.0.1", 6379)
BROKER_URL = f"redis://{REDIS[0]}:{REDIS[1]}/0"
# A queue of its own, so that no other worker on this Redis takes the demo's tasks.
DEMO_QUEUE = os.environ.get("DEMO_CELERY_QUEUE") or "shop-demo"
START_REDIS = """\
demo: --celery needs Redis on {host}:{port}, and nothing answers there. Start it with one of:
    redis-server --daemonize yes
    docker run -d -p 6379:6379 redis
then run the demo again."""
RABBITMQ = ("127.0.0.1", 5672)
# The accounting service's broker; set it to use a vhost of your own.
RABBITMQ_URL = os.environ.get("DEMO_BROKER_URL") or "amqp://guest:guest@127.0.0.1:5672//"
START_RABBITMQ = """\
demo: --consumer needs RabbitMQ on {host}:{port}, and nothing answers there. Start it with one of:
    service rabbitmq-server start
    docker run -d -p 5672:5672 rabbitmq
then run the demo again."""
# How long the processes get to stop after SIGTERM before they are killed.
STOP_TIMEOUT = 10.0


class Stop(Exception):
    """SIGTERM arrived: stop the processes, as for Ctrl-C."""


def manage_env(*, celery: bool, consumer: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    # The project's manage.py chooses its settings; one left over in the shell would override it.
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = os.pathsep.join([str(VENV / "bin"), env.get("PATH", "")])
    if celery:
        env["DOMAIN_EVENTS_DISPATCHER"] = "celery"
        env["DEMO_CELERY_BROKER_URL"] = BROKER_URL
        env["DEMO_CELERY_QUEUE"] = DEMO_QUEUE
    if consumer:
        env["DEMO_BROKER_URL"] = RABBITMQ_URL
        env["ACCOUNTING_BROKER_URL"] = RABBITMQ_URL
    return env


def manage(
    python: Path, *args: str, celery: bool, consumer: bool = False, project: Path = PROJECT
) -> None:
    """Run ``manage.py`` in ``project`` (testproject/) with the demo venv; exit if it fails."""
    print(f"$ cd {project.name} && python manage.py {shlex.join(args)}", flush=True)
    result = subprocess.run(
        [python, "manage.py", *args],
        cwd=project,
        env=manage_env(celery=celery, consumer=consumer),
    )
    if result.returncode != 0:
        sys.exit(f"demo: `manage.py {shlex.join(args)}` failed (exit status {result.returncode})")


def answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def commands(
    python: Path, port: int, *, celery: bool, consumer: bool = False
) -> list[tuple[str, list[str], Path]]:
    """What runs side by side, and where: the server, the relay, with ``celery`` a worker,
    and with ``consumer`` the accounting service's server and consumer."""
    serve = [str(python), "manage.py", "runserver", "--noreload"]
    run = []
    if consumer:
        # Started first: its queue is bound before the relay sends to it.
        consume = [str(python), "manage.py", "consume_events"]
        run.append(("accounting-consumer", consume, CONSUMER_PROJECT))
        run.append(("accounting-server", [*serve, f"127.0.0.1:{port + 1}"], CONSUMER_PROJECT))
    run.append(("server", [*serve, f"127.0.0.1:{port}"], PROJECT))
    run.append(("relay", [str(python), "manage.py", "relay_events"], PROJECT))
    if celery:
        # One process: SQLite takes one writer at a time.
        worker = ["-m", "celery", "-A", "testproject.celery", "worker", "--pool", "solo"]
        worker += ["--queues", DEMO_QUEUE]
        run.append(("worker", [str(python), *worker, "--loglevel", "INFO"], PROJECT))
    return run


def stop(processes: dict[str, subprocess.Popen[bytes]], group: int) -> None:
    """SIGTERM the process group (so grandchildren stop too), wait, then SIGKILL what is left."""
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    for process in processes.values():
        process.wait()


def run_together(to_run: list[tuple[str, list[str], Path]], env: dict[str, str]) -> int:
    """Start ``to_run`` in one new process group; stop them all on Ctrl-C, SIGTERM or when one
    exits. Returns the exit status to leave with."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise Stop

    signal.signal(signal.SIGTERM, on_sigterm)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    group = 0
    try:
        for name, args, cwd in to_run:
            print(f"$ cd {cwd.name} && {shlex.join(['python', *args[1:]])}", flush=True)
            # Their own group: Ctrl-C reaches this script alone, which stops them in order.
            process = subprocess.Popen(args, cwd=cwd, env=env, process_group=group)
            group = group or process.pid
            processes[name] = process
            print(f"demo: started the {name} (pid {process.pid})", flush=True)
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"demo: the {name} exited with status {process.returncode}; stopping")
                    return 1
            time.sleep(0.2)
    except (KeyboardInterrupt, Stop):
        print("\ndemo: stopping", flush=True)
        return 0
    finally:
        # A second Ctrl-C must not cut the stopping short: stop() kills what does not stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if processes:
            stop(processes, group)
        print("demo: stopped " + ", ".join(f"the {name}" for name in processes), flush=True)


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python3 scripts/demo.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--port", type=int, default=8000, help="port to serve on (default 8000)")
    parser.add_argument(
        "--celery",
        action="store_true",
        help=f"dispatch through Celery: a worker on Redis at {BROKER_URL} runs the deliveries",
    )
    parser.add_argument(
        "--consumer",
        action="store_true",
        help=(
            f"send PaymentSettled through RabbitMQ at {RABBITMQ_URL} to the accounting service "
            "(consumerproject/), served on the next port with its consumer"
        ),
    )
    parser.add_argument(
        "--no-serve", action="store_true", help="set everything up, but start no process"
    )
    parser.add_argument(
        "--python",
        type=Path,
        help="use this interpreter, which has the package installed, instead of .venvs/demo",
    )
    args = parser.parse_args(argv)

    if not (PROJECT / "manage.py").exists():
        sys.exit(f"demo: {PROJECT / 'manage.py'} is missing; the demo needs testproject/.")
    if args.celery and not answers(REDIS):
        sys.exit(START_REDIS.format(host=REDIS[0], port=REDIS[1]))
    if args.consumer and not answers(RABBITMQ):
        sys.exit(START_RABBITMQ.format(host=RABBITMQ[0], port=RABBITMQ[1]))
    if args.python is not None:
        python = args.python.absolute()
    else:
        # The celery extra always: switching to --celery must not reinstall.
        pip_args = ["-e", ".[celery]"]
        try:
            python = venvs.ensure(VENV, sys.executable, pip_args, log_path=INSTALL_LOG)
        except venvs.VenvError as exc:
            sys.exit(f"demo: could not set up {VENV}: {exc}; pip's output is in {INSTALL_LOG}")

    both = {"celery": args.celery, "consumer": args.consumer}
    manage(python, "migrate", "--noinput", "-v", "0", **both)
    # With --celery, what the seeding publishes after its catch-up pass waits in Redis for the
    # worker: those deliveries, their retries, a dead letter and an ordered line run there.
    # With --consumer, its PaymentSettled events wait in the outbox for the relay to send.
    manage(python, "seed_demo", **both)
    if args.consumer:
        accounting = {**both, "project": CONSUMER_PROJECT}
        manage(python, "migrate", "--noinput", "-v", "0", **accounting)
        manage(python, "demo_admin", **accounting)
    if args.no_serve:
        print("Demo is set up; run without --no-serve to start the server.")
        return

    print(f"\nOpen http://127.0.0.1:{args.port}/admin/ and sign in with the credentials above.")
    if args.consumer:
        print(
            f"The accounting service is at http://127.0.0.1:{args.port + 1}/admin/: its "
            "Consumed messages and Ledger entries fill as the relay sends PaymentSettled."
        )
    print("The relay retries what failed once its retry is due; the dashboard shows it.")
    print("Press Ctrl-C to stop.\n", flush=True)
    env = manage_env(**both)
    sys.exit(run_together(commands(python, args.port, **both), env))


if __name__ == "__main__":
    main(sys.argv[1:])
