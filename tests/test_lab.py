"""`make lab` the way a learner uses it: JupyterLab started with the Makefile's own command at the
repository root, its start page checked, notebooks/01-config.ipynb opened in headless Chromium
(a screenshot kept in build/lab/) and run cell by cell on the project's kernel through the
server's kernel API up to its Spark session (nbmake runs all of it), against a temporary lakehouse.
The server and its kernels are always stopped.

Needs Debian's `chromium` package (`make test` installs it, as root); without it this test fails, never skips."""

from __future__ import annotations

import html.parser
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat
import pytest

from sbit_lib.course.config import PROJECT_ROOT
from tests.conftest import listeners

NOTEBOOK = "notebooks/01-config.ipynb"           # what `make lab` opens (its default_url)
KERNEL = "sbit-lakehouse"
SCREENSHOT = PROJECT_ROOT / "build" / "lab" / "01-config.png"
CHROMIUM_INSTALL = "apt-get update && apt-get install -y --no-install-recommends chromium"
# Chromium's virtual time stands still while the page waits on the network, so a small budget
# already renders JupyterLab (2 s did on a loaded 2-core machine); a page still without the
# notebook is retried once with a larger one.
VIRTUAL_TIME_BUDGETS_MS = (30_000, 120_000)
SERVER_START_TIMEOUT_S = 180
CELL_TIMEOUT_S = 300                             # unless the notebook's execution.timeout says otherwise


# ---------------------------------------------------------------------------------------------
# the server


def make_lab_command() -> list[str]:
    """The command `make lab` runs, as make itself expands it (without remaking `setup`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    dry = subprocess.run(["make", "--no-print-directory", "-n", "-o", "setup", "lab"], cwd=PROJECT_ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, f"`make -n lab` failed:\n{dry.stdout}{dry.stderr}"
    commands = []
    for line in dry.stdout.replace("\\\n", " ").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            words = shlex.split(line)
            if len(words) > 1 and Path(words[0]).name == "jupyter" and words[1] == "lab":
                commands.append(words)
    assert len(commands) == 1, f"expected one `jupyter lab` command in the Makefile's lab target:\n{dry.stdout}"
    return commands[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class Lab:
    process: subprocess.Popen
    port: int
    token: str
    log_path: Path
    home: Path
    started_s: float = field(default=0.0)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, last: int = 60) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-last:])

    def request(self, method: str, path: str, body=None, *, auth=True, redirect=True, timeout=60):
        """(status, headers, parsed JSON or text) of one request to the server."""
        headers = {"Authorization": f"token {self.token}"} if auth else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        opener = urllib.request.build_opener(*(() if redirect else (_NoRedirect,)))
        try:
            with opener.open(req, timeout=timeout) as response:
                status, head, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, head, raw = error.code, error.headers, error.read()
        text = raw.decode(errors="replace")
        try:
            return status, head, json.loads(text)
        except ValueError:
            return status, head, text

    def api(self, method: str, path: str, body=None, timeout=60):
        status, _, payload = self.request(method, path, body, timeout=timeout)
        assert 200 <= status < 300, f"{method} {path} answered {status}: {payload}\n--- server log ---\n{self.log()}"
        return payload


def start_lab(workdir: Path) -> Lab:
    """JupyterLab as `make lab` starts it (on loopback), headless: a free port, a random token."""
    home = workdir / "lakehouse"
    settings = workdir / "lab-settings"
    # A fresh learner's JupyterLab (no saved workspace or settings of whoever runs the test), but
    # without autosave: the kernel's metadata marks the open notebook changed, and Chromium's
    # virtual time can pass the 2-minute autosave, which would rewrite the committed notebook and,
    # through jupytext, its script. And no "get notified about Jupyter news?" over the screenshot.
    for plugin, values in (("docmanager-extension/plugin", {"autosave": False}),
                           ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False})):
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ,
           "SBIT_HOME": str(home),                 # the kernel inherits the server's environment
           "SBIT_SPARK_UI": "true",                # as a learner has it: its listener is checked
           "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "lab-workspaces"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    for name in ("SBIT_ENV", "SBIT_MODE", "SBIT_DATA_ZONE", "SBIT_CHECKPOINT_ZONE"):
        env.pop(name, None)
    command = make_lab_command()
    for attempt in range(3):                       # a port taken between free_port() and the bind
        port, token = free_port(), secrets.token_urlsafe(24)
        log_path = workdir / f"jupyter-lab-{attempt}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [*command, "--no-browser", f"--port={port}", "--port-retries=0",
                 f"--IdentityProvider.token={token}"],
                cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        lab = Lab(process, port, token, log_path, home)
        start = time.monotonic()
        while time.monotonic() - start < SERVER_START_TIMEOUT_S:
            if process.poll() is not None:
                break
            try:
                status, _, payload = lab.request("GET", "/api/status", timeout=10)
                if status == 200 and "started" in payload:
                    lab.started_s = time.monotonic() - start
                    return lab
            except OSError:
                pass
            time.sleep(0.5)
        if process.poll() is not None and "already in use" in lab.log():
            continue
        stop_lab(lab)
        pytest.fail(f"`make lab`'s JupyterLab did not answer /api/status within {SERVER_START_TIMEOUT_S} s "
                    f"(exit code {process.returncode}):\n{' '.join(command)}\n--- server log ---\n{lab.log()}")
    pytest.fail(f"no free port for JupyterLab after 3 tries:\n{lab.log()}")


def stop_lab(lab: Lab) -> None:
    """Stop the server and every process under it: its kernels run in sessions of their own,
    so a signal to the server's process group would miss them (and their Spark JVMs)."""
    import psutil

    try:
        below = psutil.Process(lab.process.pid).children(recursive=True)
    except psutil.Error:
        below = []
    if lab.process.poll() is None:
        try:                                       # shuts its kernels down cleanly
            lab.request("POST", "/api/shutdown", timeout=30)
        except OSError:
            pass
        try:
            lab.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(lab.process.pid, signal.SIGTERM)
            try:
                lab.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(lab.process.pid, signal.SIGKILL)
                lab.process.wait(timeout=30)
    _, alive = psutil.wait_procs(below, timeout=30)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=30)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    # Opening a notebook makes JupyterLab save a first checkpoint of it (gitignored): remove
    # the ones this test made, keep a learner's own.
    checkpoints = PROJECT_ROOT / Path(NOTEBOOK).parent / ".ipynb_checkpoints"
    had = set(checkpoints.iterdir()) if checkpoints.is_dir() else None
    server = start_lab(tmp_path_factory.mktemp("lab"))
    try:
        yield server
    finally:
        stop_lab(server)
        if checkpoints.is_dir():
            for made in set(checkpoints.iterdir()) - (had or set()):
                made.unlink(missing_ok=True)
            if had is None and not any(checkpoints.iterdir()):
                checkpoints.rmdir()


# ---------------------------------------------------------------------------------------------
# what the learner sees


def test_make_lab_opens_the_first_notebook_with_the_projects_kernel_and_library_at_hand(lab):
    status, headers, _ = lab.request("GET", "/", auth=False, redirect=False)
    assert status in (301, 302, 303, 307), f"/ answered {status}, not a redirect"
    assert urllib.parse.urlsplit(headers["Location"]).path == f"/lab/tree/{NOTEBOOK}"
    status, _, page = lab.request("GET", f"/lab/tree/{NOTEBOOK}")
    assert status == 200 and "jupyter-config-data" in page

    specs = lab.api("GET", "/api/kernelspecs")["kernelspecs"]
    assert KERNEL in specs, f"kernel {KERNEL!r} not registered (run `make setup`); found {sorted(specs)}"
    notebook_kernel = nbformat.read(PROJECT_ROOT / NOTEBOOK, as_version=4).metadata.kernelspec
    assert notebook_kernel.name == KERNEL
    assert specs[KERNEL]["spec"]["display_name"] == notebook_kernel.display_name

    # the file browser's root is the repository: the notebooks and the library side by side
    root = {item["name"]: item["type"] for item in lab.api("GET", "/api/contents")["content"]}
    assert root.get("notebooks") == "directory" and root.get("sbit_lib") == "directory", sorted(root)
    library = lab.api("GET", "/api/contents/sbit_lib")
    assert library["type"] == "directory"
    assert "__init__.py" in {item["name"] for item in library["content"]}


def first_heading(script: Path) -> str:
    """The first markdown heading of a notebook's paired script, as the page renders it."""
    for cell in jupytext.read(script).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if match := re.match(r"#{1,6}\s+(.+)", line):
                    return re.sub(r"[`*_]", "", match.group(1)).strip()
    raise AssertionError(f"{script} has no markdown heading")


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(dom: str) -> str:
    parser = _Text()
    parser.feed(dom)
    return " ".join(" ".join(parser.parts).split())


def chromium(executable: str, profile: Path, budget_ms: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [executable, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
         f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *args],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_chromium_shows_the_notebook_rendered_by_jupyterlab_and_a_screenshot_is_kept(lab, tmp_path):
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("headless Chromium is needed to open `make lab` as a learner does: install Debian's "
                    f"`chromium` package ({CHROMIUM_INSTALL}; `make browser` does this)", pytrace=False)
    url = f"{lab.base}/lab/tree/{NOTEBOOK}?token={lab.token}"
    heading = first_heading(PROJECT_ROOT / NOTEBOOK.replace(".ipynb", ".py"))
    display_name = nbformat.read(PROJECT_ROOT / NOTEBOOK, as_version=4).metadata.kernelspec.display_name

    for budget in VIRTUAL_TIME_BUDGETS_MS:
        dump = chromium(executable, tmp_path / "profile", budget, "--dump-dom", url)
        text = visible_text(dump.stdout)
        if heading in text and display_name in text:
            break
    assert heading in text, (f"JupyterLab did not render {NOTEBOOK} (heading {heading!r} not in the page) "
                             f"with --virtual-time-budget={budget}; page text: {text[:1500]!r}\n"
                             f"chromium stderr:\n{dump.stderr[-3000:]}")
    assert display_name in text, f"the kernel {display_name!r} is not shown; page text: {text[:1500]!r}"

    # opening the notebook started a session on the project's kernel, as it does for a learner
    sessions = lab.api("GET", "/api/sessions")
    assert any(s["path"] == NOTEBOOK and s["kernel"]["name"] == KERNEL for s in sessions), sessions

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    shot = chromium(executable, tmp_path / "profile", budget, f"--screenshot={SCREENSHOT}", url)
    assert shot.returncode == 0 and SCREENSHOT.is_file(), f"no screenshot:\n{shot.stderr[-3000:]}"
    png = SCREENSHOT.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1400, 900)
    assert len(png) > 50_000, f"a {len(png)}-byte screenshot is too small to show a rendered notebook"


# ---------------------------------------------------------------------------------------------
# the notebook, run on the server's kernel


ANSI = re.compile(r"\x1b\[[0-9;]*m")


class KernelChannels:
    """The kernel's websocket, as JupyterLab uses it (legacy JSON messages with a channel field)."""

    def __init__(self, lab: Lab, kernel_id: str, session_id: str):
        import websocket

        self.session = session_id
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{lab.port}/api/kernels/{kernel_id}/channels?session_id={session_id}",
            header=[f"Authorization: token {lab.token}"], timeout=60)

    def send(self, msg_type: str, content: dict, channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "session": self.session, "username": "test_lab",
                       "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "parent_header": {}, "metadata": {}, "content": content, "channel": channel, "buffers": []}))
        return msg_id

    def reply(self, msg_id: str, reply_type: str, timeout_s: float, *, outputs=False) -> tuple[dict, list[str]]:
        """The reply to `msg_id`, and with `outputs` the text its request printed (streams, results,
        errors): all of it once the kernel is idle again, as the reply (shell channel) can come
        before the last outputs (iopub channel)."""
        import websocket

        deadline, printed, reply, idle = time.monotonic() + timeout_s, [], None, not outputs
        while reply is None or not idle:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {reply_type}{'' if reply is None else ' and idle status'} within "
                                   f"{timeout_s} s; printed so far:\n{''.join(printed)}")
            self.ws.settimeout(left)
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if not isinstance(raw, str):
                continue
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                printed.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                printed.append(ANSI.sub("", "\n".join(content["traceback"])) + "\n")
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == reply_type:
                reply = content
        return reply, printed

    def close(self):
        self.ws.close()


def run_cells(lab: Lab, path: str, sources: list[str], timeout_s: float) -> list[str]:
    """Execute `sources` in order on the notebook's session kernel; fail on the first error.
    Returns what each cell printed."""
    session = lab.api("POST", "/api/sessions", {"path": path, "type": "notebook", "name": Path(path).name,
                                                "kernel": {"name": KERNEL}})
    assert session["kernel"]["name"] == KERNEL, session
    channels = KernelChannels(lab, session["kernel"]["id"], uuid.uuid4().hex)
    try:
        info, _ = channels.reply(channels.send("kernel_info_request", {}), "kernel_info_reply", 180)
        assert info["status"] == "ok", info
        printed = []
        for index, source in enumerate(sources):
            msg_id = channels.send("execute_request", {
                "code": source, "silent": False, "store_history": True, "user_expressions": {},
                "allow_stdin": False, "stop_on_error": True})
            try:
                reply, output = channels.reply(msg_id, "execute_reply", timeout_s, outputs=True)
            except TimeoutError as error:
                pytest.fail(f"{path}, code cell {index + 1} of {len(sources)}: {error}\n--- cell ---\n{source}",
                            pytrace=False)
            if reply["status"] != "ok":
                shown, trace = "".join(output), ANSI.sub("", "\n".join(reply.get("traceback", []))).strip()
                if trace and trace not in shown:
                    shown += f"\n--- traceback ---\n{trace}"
                pytest.fail(f"{path}, code cell {index + 1} of {len(sources)}: {reply.get('ename')}: "
                            f"{reply.get('evalue')}\n--- cell ---\n{source}\n--- output ---\n{shown}", pytrace=False)
            printed.append("".join(output))
        return printed
    finally:
        channels.close()


def test_the_notebook_runs_cell_by_cell_on_the_servers_kernel_against_a_temporary_lakehouse(lab):
    # nbmake runs the whole notebook, Spark included: here its cells up to the Spark session run on
    # the kernel the server started, which is what this test adds (the server's environment reaches
    # the learner's kernel) without starting a second JVM for the same cells.
    notebook = nbformat.read(PROJECT_ROOT / NOTEBOOK, as_version=4)
    sources = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert sources, f"{NOTEBOOK} has no code cells"
    spark_cell = next((i for i, source in enumerate(sources) if "get_spark(" in source), None)
    assert spark_cell, f"{NOTEBOOK}: no cell starts the Spark session with get_spark(...)"
    timeout_s = notebook.metadata.get("execution", {}).get("timeout", CELL_TIMEOUT_S)
    probe = "import os\nprint(os.environ['SBIT_HOME'])\nprint(config.home)\nprint(spark.sparkContext.uiWebUrl)"
    printed = run_cells(lab, NOTEBOOK, [*sources[:spark_cell + 1], probe], timeout_s)
    # the kernel ran with the server's environment: the temporary lakehouse, not ./lakehouse
    home, config_home, ui = printed[-1].split()
    assert [home, config_home] == [str(lab.home), str(lab.home)], printed[-1]
    # Local by default: JupyterLab, the kernel, and the kernel's Spark (its UI, driver and block
    # manager) listen on loopback only, and the notebook says where its UI is.
    assert ui.startswith("http://127.0.0.1:"), ui
    assert f"Spark UI: {ui}" in printed[spark_cell], printed[spark_cell]
    listening = listeners(lab.process.pid)
    ports = {port for _, _, _, port, _ in listening}
    assert {lab.port, int(ui.rsplit(":", 1)[1])} <= ports, listening
    assert sum(name == "java" for name, *_ in listening) >= 3, listening     # UI, driver, block manager
    beyond = [entry for entry in listening if not entry[4]]
    assert not beyond, f"listening beyond loopback: {beyond}"
