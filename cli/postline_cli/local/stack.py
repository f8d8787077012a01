"""The local stack: the AWS endpoint, the resources, the function runners, the SES event publisher and the HTTP
API, started together and stopped together."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from . import aws_endpoint, resources
from .clock import CLOCK_FILE, LocalClock
from .http_api import LocalHttpApi
from .runner import apply_faults
from .scheduler import LocalScheduler
from .ses_simulator import SesEventPublisher
from .smtp_receiver import DEFAULT_SMTP_PORT, start_unsubscribe_mail
from .smtp_relay import DEFAULT_SMTP_RELAY_PORT, RelaySetupError, relays_setting, smtp_streams, start_smtp_relay
from .worker import STOP_GRACE_SECONDS, WORKER_FUNCTIONS, load_function, log_batch, queues_of, start_pollers

DEFAULT_AWS_PORT = 4566
DEFAULT_API_PORT = 3000
HOST = "127.0.0.1"
WORKER_READY_SECONDS = 60  # a worker's cold start, on a slow machine starting four at once
RESTART_AT_MOST_EVERY_SECONDS = 1.0  # a worker that dies at once is not started anew in a tight loop
SAMPLE_TEMPLATES = Path(__file__).resolve().parents[3] / "templates"
INFRA_DIR = Path(__file__).resolve().parents[3] / "infra"
# The most batches at once the local stack runs on one queue, whatever the deploy config asks: a function's pollers
# are threads of one worker process, and every queue is served by one AWS endpoint process, so on a small machine more
# only contend. 4 is the default config's highest, so the defaults run as configured (docs/decisions.md).
LOCAL_MAX_POLLERS = 4
# Reads the deploy config with the CDK app's own loader (infra/stacks/config.py), in a process of its own: the loader
# imports aws_cdk, which starts a Node.js runtime that would otherwise live (and warn) as long as the stack.
_READ_DEPLOY_CONCURRENCY = """
import json, sys
sys.path.insert(0, sys.argv[1])
from stacks.config import ConfigError, config_path, load_config
from stacks.constants import CAMPAIGN_CONCURRENCY, SES_EVENTS_CONCURRENCY
file = config_path(sys.argv[2] or None)
try:
    config = load_config(file)
except ConfigError as error:
    print(json.dumps({"error": str(error)}))
    sys.exit(0)
print(json.dumps({"file": str(file), "render_concurrency": config.render_concurrency,
                  "send_concurrency": config.send_concurrency, "ses_events": SES_EVENTS_CONCURRENCY,
                  "campaign": CAMPAIGN_CONCURRENCY}))
"""


class LocalStackError(RuntimeError):
    pass


@dataclass
class LocalPaths:
    state_dir: Path
    outbox: Path

    @classmethod
    def default(cls) -> LocalPaths:
        return cls(
            Path(os.environ.get("POSTLINE_LOCAL_DIR", ".postline")).resolve(),
            Path(os.environ.get("POSTLINE_OUTBOX", "outbox")).resolve(),
        )

    @property
    def send_log(self) -> Path:
        return self.state_dir / "ses-send-log.jsonl"

    @property
    def refusal_log(self) -> Path:  # the sends the local SES refused (throttled), beside the send log
        return self.state_dir / aws_endpoint.REFUSAL_LOG

    @property
    def pause_log(self) -> Path:  # the endpoint's own garbage-collection stops (the rate benchmark reads them)
        return self.state_dir / aws_endpoint.PAUSE_LOG

    @property
    def clock_file(self) -> Path:  # the offset of the stack's clock from real time (``postline local clock``)
        return self.state_dir / CLOCK_FILE

    @property
    def state_file(self) -> Path:
        return self.state_dir / "local.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "local.log"


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((HOST, port)) == 0


def check_ports_free(ports: dict[str, int]) -> None:
    """A LocalStackError for the first port (by the option that sets it) that something already listens on."""
    for option, port in ports.items():
        if port_open(port):
            raise LocalStackError(
                f"port {port} is in use by another process: stop it, or choose another port with {option}"
            )


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise LocalStackError(f"timed out waiting for {what}")


def ses_limits(rate: float | None = None, quota: int | None = None) -> tuple[float, int]:
    """The local SES's sending rate and 24-hour quota: those given, else ``POSTLINE_LOCAL_SES_RATE`` and
    ``POSTLINE_LOCAL_SES_QUOTA``, else a new production account's (14/s, 50,000); a LocalStackError naming the
    variable whose value is not one."""
    from_environment = aws_endpoint.ses_limit_from_environment
    try:  # the rate's parser gives a float, the quota's an int
        return (
            cast(float, from_environment(aws_endpoint.SES_RATE_VARIABLE)) if rate is None else rate,
            cast(int, from_environment(aws_endpoint.SES_QUOTA_VARIABLE)) if quota is None else quota,
        )
    except ValueError as error:
        raise LocalStackError(str(error)) from None


def deploy_pollers(config_file: str | None = None) -> tuple[dict[str, dict[str, int]], str]:
    """Each worker function's concurrent batches per queue (by function, then queue name), as the deploy config gives
    its event source mappings in AWS, at most LOCAL_MAX_POLLERS; and a note naming what that ceiling lowered ("" if
    nothing). Without ``config_file``, the file ``cdk deploy`` reads: postline.config.json, else the example. A
    LocalStackError, on one line, for a file that is missing or invalid."""
    chosen = str(Path(config_file).resolve()) if config_file else ""
    result = subprocess.run(
        [sys.executable, "-c", _READ_DEPLOY_CONCURRENCY, str(INFRA_DIR), chosen], capture_output=True, text=True
    )
    last_words = (result.stderr.strip().splitlines() or ["it printed nothing"])[-1]
    if result.returncode != 0:
        raise LocalStackError(f"cannot read the deploy config (infra/stacks/config.py): {last_words}")
    read = json.loads(result.stdout)
    if "error" in read:
        heading, *problems = read["error"].split("\n  - ")
        raise LocalStackError(" ".join([heading, "; ".join(problems)]).strip())
    asked = [
        ("render", resources.INBOUND_QUEUES[s], f"render_concurrency.{s}", n)
        for s, n in read["render_concurrency"].items()
    ]
    asked += [
        ("send", resources.SEND_QUEUES[s], f"send_concurrency.{s}", n) for s, n in read["send_concurrency"].items()
    ]
    asked += [("ses_events", queue, "ses_events", read["ses_events"]) for queue in queues_of("ses_events")]
    asked += [("campaign", queue, "campaign", read["campaign"]) for queue in queues_of("campaign")]
    pollers: dict[str, dict[str, int]] = {}
    for function, queue, _, number in asked:
        pollers.setdefault(function, {})[queue] = min(number, LOCAL_MAX_POLLERS)
    lowered = [f"{key} {number}" for _, _, key, number in asked if number > LOCAL_MAX_POLLERS]
    note = ""
    if lowered:
        note = (
            f"the local stack runs at most {LOCAL_MAX_POLLERS} batches at once per queue: "
            f"{' and '.join(lowered)} (in {read['file']}) {'is' if len(lowered) == 1 else 'are'} lowered to "
            f"{LOCAL_MAX_POLLERS} here; a deployment gets the config's"
        )
    return pollers, note


def local_smtp_streams() -> tuple[str, ...]:
    """The streams ``POSTLINE_LOCAL_SMTP_STREAMS`` sends through the local relay; a LocalStackError if it names
    something else."""
    try:
        return smtp_streams()
    except RelaySetupError as error:
        raise LocalStackError(str(error)) from None


def read_state(paths: LocalPaths) -> dict | None:
    try:
        return json.loads(paths.state_file.read_text())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def write_state(paths: LocalPaths, state: dict) -> None:
    """Replace the state file whole, so a reader (``postline local workers``) never sees half of it."""
    partial = paths.state_file.with_name(paths.state_file.name + ".new")
    partial.write_text(json.dumps(state, indent=2))
    os.replace(partial, paths.state_file)


def running_state(paths: LocalPaths) -> dict | None:
    """The state of a local stack that is up and answering, or None."""
    state = read_state(paths)
    if not state or not state.get("ready") or not pid_alive(state["pid"]):
        return None
    try:
        urllib.request.urlopen(state["endpoint"] + "/moto-api/", timeout=1)  # noqa: S310 - the stack's own http:// endpoint
    except OSError:
        return None
    return state


@dataclass
class WorkerProcess:
    """One function's worker process (worker.py), and how often the stack has started it anew."""

    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0

    def start(self, ready_fd: int | None = None) -> None:
        told = ["--ready-fd", str(ready_fd)] if ready_fd is not None else []
        self.process = subprocess.Popen(
            [*self.command, *told], stdin=subprocess.DEVNULL, pass_fds=() if ready_fd is None else (ready_fd,)
        )
        self.started_at = time.monotonic()


def _how_it_ended(code: int) -> str:
    if code < 0:
        return f"was killed ({signal.Signals(-code).name})"
    return f"exited with code {code}"


@dataclass
class LocalStack:
    paths: LocalPaths
    aws_port: int = DEFAULT_AWS_PORT
    api_port: int = DEFAULT_API_PORT
    faults: str = ""
    ses_route: str = "sns"  # how SES's events reach the events queue (resources.SES_EVENT_ROUTES)
    # Concurrent batches per queue, by function then queue (Lambda scales a mapping's concurrency with the backlog, up
    # to its ceiling): None takes the deploy config's (deploy_pollers). render_pollers, send_pollers and
    # campaign_pollers, when given, set every queue of their function, above the config (bench/).
    queue_pollers: dict[str, dict[str, int]] | None = None
    render_pollers: int | None = None
    send_pollers: int | None = None
    campaign_pollers: int | None = None
    log_batches: bool = True
    ses_rate: float | None = None  # the local SES's limits; None: from the environment (``ses_limits``)
    ses_quota: int | None = None
    smtp_port: int = DEFAULT_SMTP_PORT  # the unsubscribe subdomain's MX (smtp_receiver)
    smtp_relay_port: int = DEFAULT_SMTP_RELAY_PORT  # the relay the streams in POSTLINE_LOCAL_SMTP_STREAMS send through
    # Each function in its own worker process, as in a Lambda container (False: as threads of this process, for
    # bench/rate.py, which reads the send function's limiter).
    function_processes: bool = True
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: dict[str, WorkerProcess] = field(default_factory=dict)
    _state: dict = field(default_factory=dict)  # what the state file says, once the stack is ready
    _state_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.aws_port}"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    def run(self, on_ready=None) -> None:
        """Start everything, call ``on_ready(queue_urls)``, and block until SIGINT/SIGTERM."""
        ses_rate, ses_quota = ses_limits(self.ses_rate, self.ses_quota)
        relayed_streams = local_smtp_streams()
        try:
            apply_faults(self.faults, {})
        except ValueError as error:
            raise LocalStackError(f"--fault: {error}") from None
        check_ports_free(
            {
                "--aws-port": self.aws_port,
                "--api-port": self.api_port,
                "--smtp-port": self.smtp_port,
                "--smtp-relay-port": self.smtp_relay_port,
            }
        )
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        for old in self.paths.outbox.glob("*.eml"):  # each run starts with an empty outbox
            old.unlink()
        self.paths.send_log.unlink(missing_ok=True)
        self.paths.refusal_log.unlink(missing_ok=True)
        self.paths.pause_log.unlink(missing_ok=True)
        self.paths.clock_file.unlink(missing_ok=True)  # each run starts at real time
        clock = LocalClock(self.paths.clock_file)
        endpoint_process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "postline_cli.local.aws_endpoint",
                "--host",
                HOST,
                "--port",
                str(self.aws_port),
                "--outbox",
                str(self.paths.outbox),
                "--send-log",
                str(self.paths.send_log),
                "--ses-rate",
                repr(ses_rate),
                "--ses-quota",
                str(ses_quota),
                "--clock-file",
                str(self.paths.clock_file),
            ]
        )
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        api = mail_receiver = relay = supervisor = None
        try:
            _wait_for(lambda: port_open(self.aws_port) or endpoint_process.poll() is not None, 30, "the AWS endpoint")
            if endpoint_process.poll() is not None:
                raise LocalStackError("the local AWS endpoint exited at start")
            os.environ.update(resources.function_environment(self.endpoint, self.api_url))
            os.environ["POSTLINE_SMTP_RELAYS"] = relays_setting(relayed_streams, self.smtp_relay_port)
            if self.function_processes:  # their cold starts run while the resources are created
                ready_pipes = self._start_workers()
            import boto3

            session = boto3.session.Session()
            resources.create_resources(session, self.endpoint, self.api_url, str(self.paths.state_dir), self.ses_route)
            publish_samples()
            # Up before the send function's first email, with its secret in place.
            relay = start_smtp_relay(
                session.client("secretsmanager"), HOST, self.smtp_relay_port, self.paths.outbox, clock
            )
            if self.function_processes:
                self._wait_for_workers(ready_pipes)
                supervisor = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)
                supervisor.start()
            else:
                self._start_pollers(
                    session, {name: load_function(name, clock, self.faults) for name in WORKER_FUNCTIONS}
                )
            SesEventPublisher(
                self.ses_route,
                session.client("sns"),
                session.client("events"),
                str(self.paths.send_log),
                self._stop,
                session.client("sesv2"),
            ).start()
            LocalScheduler(
                session.client("scheduler"), session.client("sqs"), resources.SCHEDULE_GROUP, self._stop, clock
            ).start()
            api = LocalHttpApi(HOST, self.api_port, clock)
            api.start()
            mail_receiver = start_unsubscribe_mail(
                session, self.endpoint, HOST, self.smtp_port, clock, self._stop, log_batch if self.log_batches else None
            )
            queue_urls = {name: resources.queue_url(self.endpoint, name) for name in resources.all_queue_names()}
            self._state = {
                "pid": os.getpid(),
                "endpoint_pid": endpoint_process.pid,
                "endpoint": self.endpoint,
                "api_url": self.api_url,
                "outbox": str(self.paths.outbox),
                "queues": queue_urls,
                "ready": True,
                "smtp_port": self.smtp_port,
                "smtp_relay_port": self.smtp_relay_port,
                "smtp_streams": list(relayed_streams),
            }
            self._write_state()
            if on_ready:
                on_ready(queue_urls)
            self._stop.wait()
        finally:
            self._stop.set()
            if api:
                api.stop()
            if mail_receiver:
                mail_receiver.stop()
            if relay:
                relay.stop()
            if supervisor:
                supervisor.join()
            self._stop_workers()
            endpoint_process.terminate()
            try:
                endpoint_process.wait(10)
            except subprocess.TimeoutExpired:
                endpoint_process.kill()
            state = read_state(self.paths)
            if state and state.get("pid") == os.getpid():
                self.paths.state_file.unlink(missing_ok=True)
                self.paths.clock_file.unlink(missing_ok=True)

    def _pollers(self) -> dict[str, dict[str, int]]:
        """Concurrent batches per queue, by function: the deploy config's unless given (``queue_pollers``), with the
        overrides given for a whole function."""
        if self.queue_pollers is None:
            self.queue_pollers, note = deploy_pollers()
            if note:
                print(f"note: {note}", file=sys.stderr, flush=True)
        overrides = {"render": self.render_pollers, "send": self.send_pollers, "campaign": self.campaign_pollers}
        return {
            function: dict.fromkeys(queues, overrides[function]) if overrides.get(function) else dict(queues)
            for function, queues in self.queue_pollers.items()
        }

    def _start_pollers(self, session, modules) -> None:
        """The functions' pollers as threads of this process (``function_processes=False``)."""
        on_batch = log_batch if self.log_batches else None
        for name, module in modules.items():
            start_pollers(
                session.client("sqs"), self.endpoint, name, module.handler, self._pollers()[name], self._stop, on_batch
            )

    def _start_workers(self) -> dict[str, int]:
        """One worker process per function, all starting at once; the pipe each says it is ready on, by name."""
        ready_pipes = {}
        for name, pollers in self._pollers().items():
            command = [
                sys.executable,
                "-m",
                "postline_cli.local.worker",
                name,
                "--endpoint",
                self.endpoint,
                "--clock-file",
                str(self.paths.clock_file),
                "--pollers",
                json.dumps(pollers),
            ]
            command += ["--faults", self.faults] if self.faults else []
            command += [] if self.log_batches else ["--quiet"]
            worker = self._workers[name] = WorkerProcess(name, command)
            read_end, write_end = os.pipe()
            worker.start(write_end)
            os.close(write_end)
            ready_pipes[name] = read_end
        return ready_pipes

    def _wait_for_workers(self, ready_pipes: dict[str, int]) -> None:
        """Return once each worker runs its pollers; a LocalStackError naming the first that did not."""
        deadline = time.monotonic() + WORKER_READY_SECONDS
        for name, read_end in ready_pipes.items():
            with os.fdopen(read_end, "rb") as pipe:
                answered, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
                said = pipe.readline() if answered else b""  # EOF: the worker exited
            if said != b"ready\n":
                code = self._workers[name].process.poll()
                ended = f"{_how_it_ended(code)} at start" if code is not None else "was not ready in time"
                raise LocalStackError(f"the {name} function's worker {ended}: see the stack's output above")

    def _supervise(self) -> None:
        """Start anew a worker that died, as Lambda starts a new container; its queues kept what it had not done."""
        while not self._stop.wait(0.2):
            for worker in self._workers.values():
                code = worker.process.poll()
                if code is None or time.monotonic() - worker.started_at < RESTART_AT_MOST_EVERY_SECONDS:
                    continue
                if self._stop.is_set():
                    return
                dead = worker.process.pid
                worker.start()
                worker.restarts += 1
                print(
                    f"[workers] the {worker.name} worker (pid {dead}) {_how_it_ended(code)}: started anew as pid "
                    f"{worker.process.pid}",
                    file=sys.stderr,
                    flush=True,
                )
                self._write_state()

    def _write_state(self) -> None:
        with self._state_lock:
            if self._state:  # written once the stack is ready
                pollers = self._pollers()
                workers = {
                    name: {"pid": worker.process.pid, "restarts": worker.restarts, "pollers": pollers[name]}
                    for name, worker in self._workers.items()
                }
                write_state(self.paths, {**self._state, "workers": workers})

    def _stop_workers(self) -> None:
        """SIGTERM every worker; one still busy after the grace is killed (what it leaves is redelivered)."""
        running = [w.process for w in self._workers.values() if w.process and w.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS + 2
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def publish_samples() -> None:
    """The sample templates shipped in ``templates/``, so a fresh local stack can send at once."""
    from ..publish import load_template_dir, prepare, publish

    for folder in sorted(SAMPLE_TEMPLATES.iterdir()):
        if (folder / "template.json").exists():
            publish(prepare(load_template_dir(folder), "postline-samples"))


def start_detached(paths: LocalPaths, args: list[str], timeout: float = 90) -> dict:
    """Start ``postline local up`` in the background (its output in the state folder's local.log) and wait
    until it is ready."""
    ses_limits()  # a bad limit in the environment is told here, not in the log of a stack that did not start
    local_smtp_streams()
    try:
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        paths.state_file.unlink(missing_ok=True)
        log = open(paths.log_file, "ab")
    except OSError as error:
        raise LocalStackError(
            f"cannot write the local stack's state folder {paths.state_dir}: {error.strerror} "
            "(POSTLINE_LOCAL_DIR moves it)"
        ) from None
    with log:
        started_at = log.tell()  # the log is appended to: this start's output begins here
        process = subprocess.Popen(
            [sys.executable, "-m", "postline_cli.main", "local", "up", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "POSTLINE_LOCAL_DIR": str(paths.state_dir), "POSTLINE_OUTBOX": str(paths.outbox)},
        )

    def ready() -> bool:
        if process.poll() is not None:
            raise LocalStackError(_why_it_exited(paths.log_file, started_at))
        state = read_state(paths)
        return bool(state and state.get("pid") == process.pid and state.get("ready"))

    try:
        _wait_for(ready, timeout, "the local stack")
    except LocalStackError:
        if process.poll() is not None:
            raise
        os.killpg(process.pid, signal.SIGTERM)  # timed out: a stack that is not ready is not left running unseen
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        raise LocalStackError(
            f"the local stack was not ready within {timeout:.0f} s and was stopped; its log: {paths.log_file}"
        ) from None
    return read_state(paths)


def _why_it_exited(log_file: Path, start: int) -> str:
    """The reason a detached stack gave for exiting at start: the CLI's one-line error it wrote to the log (all of
    it when the cause is a port), else the last line it wrote."""
    try:
        with open(log_file, "rb") as log:
            log.seek(start)
            lines = [line.strip() for line in log.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    reasons = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    if reasons and reasons[-1].startswith("port "):
        return reasons[-1]
    said = reasons[-1] if reasons else lines[-1] if lines else "it wrote nothing"
    return f"the local stack exited at start: {said} (its log: {log_file})"


def stop(paths: LocalPaths, timeout: float = 20) -> bool:
    """Stop a running local stack; True if one was running."""
    state = read_state(paths)
    if not state:
        return False
    pids = [state["pid"], state.get("endpoint_pid")]
    was_running = pid_alive(state["pid"])
    for pid in filter(None, pids):
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    # The stack stops its workers itself; they are waited for, and killed with the rest if it could not.
    pids += [worker["pid"] for name, worker in state.get("workers", {}).items() if worker_running(worker["pid"], name)]
    deadline = time.time() + timeout
    while time.time() < deadline and any(pid_alive(p) for p in filter(None, pids)):
        time.sleep(0.1)
    for pid in filter(None, pids):
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    paths.state_file.unlink(missing_ok=True)
    return was_running


def worker_running(pid: int, name: str) -> bool:
    """Whether ``pid`` is the local stack's worker for ``name``, alive (where /proc tells a process's command line:
    a pid the system gave to another process since, or a worker dead and not yet reaped, is not)."""
    if not Path("/proc/self").exists():  # no /proc here (macOS): the pid alone
        return pid_alive(pid)
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"postline_cli.local.worker" in command and name.encode() in command


def workers(state: dict) -> list[dict]:
    """The stack's worker processes: name, pid, alive, how often the stack started each anew, and its concurrent
    batches per queue."""
    return [
        {
            "name": name,
            "pid": worker["pid"],
            "alive": worker_running(worker["pid"], name),
            "restarts": worker["restarts"],
            "pollers": worker.get("pollers", {}),
        }
        for name, worker in state.get("workers", {}).items()
    ]


def kill_worker(state: dict, name: str) -> int:
    """SIGKILL ``name``'s worker, as a Lambda container dies; its pid. A LocalStackError if it is not running."""
    worker = state.get("workers", {}).get(name)
    if worker is None:
        raise LocalStackError(f"this local stack runs no {name} worker (it runs its functions in its own process)")
    if not worker_running(worker["pid"], name):
        raise LocalStackError(
            f"the {name} worker (pid {worker['pid']}) is not running: the stack is starting a "
            "new one (postline local workers shows it)"
        )
    os.kill(worker["pid"], signal.SIGKILL)
    return worker["pid"]
