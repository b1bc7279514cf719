"""--web.systemd-socket and sd_notify, with this test playing systemd.

Usage: systemd_e2e.py manager|tool|units AGENT_BINARY SOURCE_DIR

manager: the test does what systemd does for a Type=notify service with a .socket unit
  and WatchdogSec=: it binds and listens on 127.0.0.1 (port 0), passes the socket as fd 3
  with LISTEN_FDS=1 and LISTEN_PID=<the agent's pid>, and reads the agent's sd_notify
  datagrams on a unix socket named by NOTIFY_SOCKET, with WATCHDOG_USEC set. It checks
  READY=1 (after the first snapshot), that /metrics is served on the passed socket (the
  test's own copy closed: nobody else listens there), that one fd of the agent holds it
  (fd 3 closed once moved), close-on-exec and non-blocking, WATCHDOG=1 pings, RELOADING=1 then READY=1 on SIGHUP,
  STOPPING=1 on SIGTERM and exit 0; and that a missing, IPv6 or non-listening socket is
  a clear error.
tool: systemd's own systemd-socket-activate listens, waits for the first connection and
  execs the agent with the socket: that first request is answered.
units: deploy/systemd's service is Type=notify with a watchdog, and the example socket
  unit listens on IPv4 and passes systemd-analyze verify together with the service.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

FAILURES = []
O_CLOEXEC = 0o2000000


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print("FAIL: " + message, file=sys.stderr)
    return condition


def agent_args(agent, source_dir):
    fixture = os.path.join(source_dir, "tests/fixtures/hosts/intel-xeon-vmx-nested")
    return [agent, "--config.file=" + os.path.join(fixture, "virtcaps.yaml"),
            "--path.rootfs=" + fixture, "--web.systemd-socket"]


def spawn(args, listener, notify_path, extra_env, log):
    """fork + exec with the listener as fd 3 and LISTEN_PID the child's own pid."""
    pid = os.fork()
    if pid == 0:
        try:
            env = {key: value for key, value in os.environ.items()
                   if not key.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_"))}
            if listener is not None:
                os.dup2(listener.fileno(), 3)
                os.set_inheritable(3, True)
                env["LISTEN_FDS"] = "1"
                env["LISTEN_PID"] = str(os.getpid())
            if notify_path:
                env["NOTIFY_SOCKET"] = notify_path
            env.update(extra_env)
            os.dup2(log.fileno(), 2)
            os.closerange(4, 1024)
            os.execve(args[0], args, env)
        finally:
            os._exit(127)
    return pid


def messages(notify, deadline):
    """Datagrams from the agent until the deadline, each as a dict of its fields."""
    received = []
    while time.monotonic() < deadline:
        notify.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = notify.recv(4096).decode()
        except socket.timeout:
            break
        received.append(dict(line.split("=", 1) for line in data.split("\n") if "=" in line))
        yield received[-1]


def wait_for(notify, key, seconds, seen):
    for message in messages(notify, time.monotonic() + seconds):
        seen.append(message)
        if key in message:
            return message
    return None


def server_connections_closed(port, seconds):
    """True once no TCP socket bound to `port` is ESTABLISHED or in CLOSE_WAIT (the
    agent's ends of connections), from /proc/net/tcp; False after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        held = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as handle:
                    rows = handle.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                fields = row.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                held += local_port == port and fields[3] in ("01", "08")
        if held == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def listening_fds(pid, port):
    """{fd: fdinfo flags} of the agent's fds that are the listening socket on `port`."""
    inodes = set()
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                inodes.add(inode)
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                for line in info:
                    if line.startswith("flags:"):
                        found[int(fd)] = int(line.split()[1], 8)
    return found


def run_refused(args, listener, expected, work, name):
    with open(os.path.join(work, name + ".log"), "w+") as log:
        pid = spawn(args, listener, None, {}, log)
        _, status = os.waitpid(pid, 0)
        log.seek(0)
        text = log.read()
    check(os.waitstatus_to_exitcode(status) == 1,
          f"{name}: exit {os.waitstatus_to_exitcode(status)}, expected 1: {text}")
    check(expected in text, f"{name}: no {expected!r} in: {text}")
    print(f"systemd: {name}: refused as expected")


def manager(agent, source_dir):
    work = tempfile.mkdtemp(prefix="virtcaps-systemd-")
    notify_path = os.path.join(work, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    log = open(os.path.join(work, "agent.log"), "w+")
    pid = spawn(agent_args(agent, source_dir), listener, notify_path,
                {"WATCHDOG_USEC": "400000"}, log)
    listener.close()  # only the agent holds the socket now
    seen = []
    try:
        ready = wait_for(notify, "READY", 60, seen)
        check(ready is not None and ready.get("READY") == "1", f"no READY=1 (got {seen})")
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        check(status == 200 and "virtcaps_build_info" in body,
              f"/metrics on the passed socket: {status} {body[:200]}")
        status, _ = get(f"http://127.0.0.1:{port}/healthz")
        check(status == 200, f"/healthz: {status}")
        print(f"systemd: READY=1 and /metrics served on the passed socket 127.0.0.1:{port}")
        log.flush()
        log.seek(0)
        text = log.read()
        check(f"address=127.0.0.1:{port}" in text, f"the log does not name 127.0.0.1:{port}: "
              f"{text[:400]}")
        # The per-client limit (web.max_connections_per_client, 8 by default) guards the
        # passed socket as it does a bound one: idle connections past it are closed at once.
        limit = 8
        # The requests above closed their connections, but the agent may not have closed
        # its ends yet (a worker sees the EOF when it next reads): still open, they count.
        check(server_connections_closed(port, 10),
              f"the agent still holds connections on 127.0.0.1:{port} after 10 s")
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5)
                for _ in range(limit + 2)]
        closed = 0
        for connection in idle:
            connection.settimeout(1.0)
            try:
                closed += connection.recv(1) == b""
            except (socket.timeout, ConnectionResetError):
                closed += isinstance(sys.exc_info()[1], ConnectionResetError)
        for connection in idle:
            connection.close()
        check(closed == 2, f"{closed} of {limit + 2} idle connections closed, expected 2 "
              f"(the limit of {limit} per client)")
        print(f"systemd: per-client limit on the passed socket: {closed} of {limit + 2} closed")
        # One fd holds the passed socket (fd 3 itself was closed once it was moved), and
        # it is close-on-exec and non-blocking.
        fds = listening_fds(pid, port)
        check(len(fds) == 1, f"the agent holds the listening socket on fds {sorted(fds)}, "
              "expected one")
        for fd, flags in fds.items():
            check(flags & O_CLOEXEC, f"the listening socket (fd {fd}) is not close-on-exec")
            check(flags & os.O_NONBLOCK, f"the listening socket (fd {fd}) is blocking")
        pings = 0
        for message in messages(notify, time.monotonic() + 1.5):
            pings += message.get("WATCHDOG") == "1"
        check(pings >= 2, f"{pings} WATCHDOG=1 in 1.5 s with WATCHDOG_USEC=0.4 s")
        print(f"systemd: {pings} WATCHDOG=1 pings in 1.5 s")

        os.kill(pid, signal.SIGHUP)
        seen = []
        reloading = wait_for(notify, "RELOADING", 10, seen)
        check(reloading is not None and reloading.get("RELOADING") == "1",
              f"no RELOADING=1 after SIGHUP (got {seen})")
        check(reloading is not None and reloading.get("MONOTONIC_USEC", "").isdigit(),
              f"RELOADING=1 without MONOTONIC_USEC: {reloading}")
        again = wait_for(notify, "READY", 10, seen)
        check(again is not None, f"no READY=1 after the reload (got {seen})")
        print("systemd: SIGHUP: RELOADING=1 then READY=1")

        os.kill(pid, signal.SIGTERM)
        seen = []
        stopping = wait_for(notify, "STOPPING", 10, seen)
        check(stopping is not None and stopping.get("STOPPING") == "1",
              f"no STOPPING=1 after SIGTERM (got {seen})")
        _, status = os.waitpid(pid, 0)
        pid = 0
        check(os.waitstatus_to_exitcode(status) == 0,
              f"exit {os.waitstatus_to_exitcode(status)} after SIGTERM")
        print("systemd: SIGTERM: STOPPING=1, exit 0")
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    args = agent_args(agent, source_dir)
    run_refused(args, None, "no socket passed by systemd", work, "no-socket")
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    v6.bind(("::1", 0))
    v6.listen(1)
    run_refused(args, v6, "not IPv4: use ListenStream=0.0.0.0:PORT", work, "ipv6-socket")
    v6.close()
    unbound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    run_refused(args, unbound, "is not a listening stream socket", work, "not-listening")
    unbound.close()


def tool(agent, source_dir):
    activate = "/usr/bin/systemd-socket-activate"
    if not os.access(activate, os.X_OK):
        print("systemd: systemd-socket-activate is not installed (Debian's systemd)")
        return 77
    # A free port for the tool to bind: taken from the kernel, then released.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    work = tempfile.mkdtemp(prefix="virtcaps-activate-")
    with open(os.path.join(work, "activate.log"), "w+") as log:
        process = subprocess.Popen([activate, "-l", f"127.0.0.1:{port}"] +
                                   agent_args(agent, source_dir),
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            status, body = None, ""
            while time.monotonic() < deadline:
                try:
                    # The first connection starts the agent; it waits in the backlog and
                    # is answered once the agent serves (503 until the first snapshot).
                    status, body = get(f"http://127.0.0.1:{port}/metrics", timeout=30)
                    if status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            log.seek(0)
            text = log.read()
            check(status == 200 and "virtcaps_build_info" in body,
                  f"systemd-socket-activate: /metrics {status}: {text[-800:]}")
            check("Execing" in text, f"systemd-socket-activate did not exec the agent: {text}")
            print(f"systemd: systemd-socket-activate on 127.0.0.1:{port}: /metrics {status}")
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            check(code == 0, f"the activated agent exited {code} after SIGTERM")
    return 0


def units(agent, source_dir):
    """deploy/systemd: Type=notify with a watchdog, and a socket unit systemd accepts."""
    analyze = "/usr/bin/systemd-analyze"
    if not os.access(analyze, os.X_OK):
        print("systemd: systemd-analyze is not installed (Debian's systemd)")
        return 77
    deploy = os.path.join(source_dir, "deploy", "systemd")
    service = open(os.path.join(deploy, "virtcaps-agent.service"), encoding="utf-8").read()
    socket_unit = open(os.path.join(deploy, "virtcaps-agent.socket"), encoding="utf-8").read()
    lines = [line.strip() for line in service.splitlines()]
    for wanted in ("Type=notify", "NotifyAccess=main"):
        check(wanted in lines, f"virtcaps-agent.service has no {wanted}")
    check(any(line.startswith("WatchdogSec=") for line in lines),
          "virtcaps-agent.service has no WatchdogSec=")
    listens = [line.split("=", 1)[1] for line in socket_unit.splitlines()
               if line.startswith("ListenStream=")]
    check(bool(listens), "virtcaps-agent.socket has no ListenStream=")
    for address in listens:
        host = address.rpartition(":")[0]
        check(host.count(".") == 3, f"virtcaps-agent.socket: ListenStream={address} is not an "
              "IPv4 address:port (the agent refuses IPv6 sockets)")
    check("--web.systemd-socket" in socket_unit,
          "virtcaps-agent.socket does not say to pass --web.systemd-socket")
    work = tempfile.mkdtemp(prefix="virtcaps-units-")
    with open(os.path.join(work, "virtcaps-agent.service"), "w", encoding="utf-8") as out:
        out.write(service.replace("/usr/bin/virtcaps-agent", os.path.abspath(agent)))
    with open(os.path.join(work, "virtcaps-agent.socket"), "w", encoding="utf-8") as out:
        out.write(socket_unit)
    result = subprocess.run([analyze, "verify", os.path.join(work, "virtcaps-agent.socket"),
                             os.path.join(work, "virtcaps-agent.service")],
                            capture_output=True, text=True, check=False)
    check(result.returncode == 0, f"systemd-analyze verify: {result.stdout}{result.stderr}")
    print(f"systemd: units: Type=notify, watchdog, socket on {listens}: verify exit "
          f"{result.returncode}")
    return 0


def main():
    mode, agent, source_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    result = {"manager": manager, "tool": tool, "units": units}[mode](agent, source_dir)
    if FAILURES:
        return 1
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
