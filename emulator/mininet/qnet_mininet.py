#!/usr/bin/python3
"""qnet's Mininet driver: runs one emulated network described by a plan.

Usage: /usr/bin/python3 qnet_mininet.py OUT/plan.json

`qnet run --backend mininet` writes the plan (emulator/qnet/mininet_backend.h
documents its fields) and runs this script as root. The driver

  * builds a Mininet network on Mininet's own API with no controller and no
    switch: one host (network namespace) per node and one direct veth link per
    topology link (there is no Open vSwitch kernel module here, and no netem:
    qnode holds frames for the link's classical delay itself);
  * gives each link end its address on the link's /30 subnet;
  * starts qworld in the root namespace (its Unix socket lives in the file
    system, which network namespaces do not isolate) and one qnode per host;
  * prints progress about once a second (emulated time, pairs per link, read
    from OUT/progress.json, which qworld keeps up to date);
  * waits for every process to exit, and stops them all as soon as one fails,
    the wall timeout passes, or SIGINT/SIGTERM arrives;
  * prints where SAEs fetch QKD keys (`mnexec -a PID curl ...` in the node's
    host) and, with the plan's serve_keys, keeps the apps that still run (the
    KMEs) serving after the run until SIGINT/SIGTERM (then exit status 0);
  * always tears down in `finally`: processes, `net.stop()`, then anything left
    with this run's names (interfaces and host shells starting with the plan's
    tag). Mininet's own `mn -c` is not used: it kills processes by broad name
    patterns (every "mininet:" shell, every controller), which would reach other
    runs on the same machine.

Exit status: 0 when every process exited with status 0; 1 on failure (reason
on stderr, naming the process and its log); 128 + signal when interrupted.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
SOCKET_WAIT_S = 10.0
STOP_GRACE_S = 2.0


class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RunFailed(Exception):
    pass


def log(message):
    sys.stderr.write("qnet_mininet: %s\n" % message)
    sys.stderr.flush()


def on_signal(signum, _frame):
    raise Interrupted(signum)


def die_with_parent(sig):
    """preexec_fn: the process gets `sig` when this driver dies."""
    def set_death_signal():
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    return set_death_signal


def tail_of(path, lines=5):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = text.rstrip("\n").split("\n")[-lines:]
    return "\n".join(kept) + "\n" if kept and kept != [""] else ""


class Process:
    """One daemon of the run: its Popen, name and log."""

    def __init__(self, name, popen, log_path, log_file):
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.log_file = log_file

    def describe_exit(self):
        code = self.popen.returncode
        if code is None:
            return "is still running"
        if code < 0:
            return "was killed by signal %d (%s)" % (-code, signal.Signals(-code).name)
        return "exited with status %d" % code


class Progress:
    """Emulated time reached and pairs per link (at the link's a end), from the
    small file qworld keeps up to date (OUT/progress.json, specs/topology.md
    RES-1b)."""

    def __init__(self, plan):
        self.duration = float(plan.get("duration_s", 0))
        self.path = os.path.join(plan["out_dir"], "progress.json")
        self.links = [link["name"] for link in plan["links"]]
        self.oks = {name: 0 for name in self.links}
        self.max_ns = 0
        self.tty = sys.stdout.isatty()
        self.pending_newline = False

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                progress = json.loads(f.read())
            self.max_ns = int(progress.get("emulatedNs", self.max_ns))
            for entry in progress.get("linkPairs", []):
                if entry.get("name") in self.oks:
                    self.oks[entry["name"]] = int(entry.get("count", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # not written yet, or mid-write: the last reading stays

    def line(self):
        t = self.max_ns * 1e-9
        pct = int(min(1.0, t / self.duration) * 100) if self.duration > 0 else 0
        text = "[mininet] %.1f/%.1f s emulated (%d%%)" % (t, self.duration, pct)
        for name in self.links:
            rate = self.oks[name] / t if t > 0 else 0.0
            text += "  %s %d pairs %.1f Hz" % (name, self.oks[name], rate)
        return text

    def show(self):
        self.poll()
        if self.tty:
            sys.stdout.write("\r" + self.line() + "\x1b[K")
            self.pending_newline = True
        else:
            sys.stdout.write(self.line() + "\n")
        sys.stdout.flush()

    def finish(self):
        if self.pending_newline:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.pending_newline = False


def build_network(plan):
    from mininet.link import Link
    from mininet.net import Mininet

    net = Mininet(topo=None, controller=None, link=Link, build=False, autoSetMacs=False)
    hosts = {}
    for node in plan["nodes"]:
        hosts[node["name"]] = net.addHost(node["host"], ip=None)
    for link in plan["links"]:
        net.addLink(hosts[link["a"]], hosts[link["b"]], intfName1=link["a_intf"], intfName2=link["b_intf"])
    return net, hosts


def configure_network(plan, hosts):
    for link in plan["links"]:
        prefix = link["subnet"].split("/")[1]
        for side in ("a", "b"):
            host = hosts[link[side]]
            intf = link[side + "_intf"]
            host.setIP(link[side + "_ip"], prefixLen=int(prefix), intf=intf)
            host.cmd("ip link set dev %s up" % intf)
    for host in hosts.values():
        host.cmd("ip link set dev lo up")


def open_log(path):
    return open(path, "wb")


def start_qworld(plan):
    spec = plan["qworld"]
    log_file = open_log(spec["log"])
    popen = subprocess.Popen(spec["argv"], stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                             start_new_session=True, preexec_fn=die_with_parent(signal.SIGKILL))
    return Process("qworld", popen, spec["log"], log_file)


def wait_for_socket(plan, qworld):
    path = plan["socket_path"]
    give_up = time.monotonic() + SOCKET_WAIT_S
    while not os.path.exists(path):
        if qworld.popen.poll() is not None:
            raise RunFailed("qworld %s before it opened its socket; its log is %s, ending:\n%s"
                            % (qworld.describe_exit(), qworld.log_path, tail_of(qworld.log_path)))
        if time.monotonic() > give_up:
            raise RunFailed("qworld did not create its socket %s within %.0f s; its log is %s"
                            % (path, SOCKET_WAIT_S, qworld.log_path))
        time.sleep(0.02)


def start_qnode(node, host):
    log_file = open_log(node["log"])
    popen = host.popen(node["argv"], stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                       preexec_fn=die_with_parent(signal.SIGKILL))
    return Process("qnode " + node["name"], popen, node["log"], log_file)


def start_app(app, host):
    log_file = open_log(app["log"])
    popen = host.popen(app["argv"], stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                       preexec_fn=die_with_parent(signal.SIGKILL))
    return Process("app " + app["name"], popen, app["log"], log_file)


def write_app_failures(plan, apps):
    """An app that left no result file gets one saying why (the summary reads it)."""
    for app, process in zip(plan.get("apps", []), apps):
        if os.path.exists(app["result"]):
            continue
        why = "%s %s without a result; its log is %s" % (process.name, process.describe_exit(), process.log_path)
        try:
            with open(app["result"], "w") as f:
                json.dump({"app": app["kind"], "role": app["role"], "ok": False, "error": why}, f)
                f.write("\n")
        except OSError as e:
            log("cannot write %s: %s" % (app["result"], e))


def wait_all(plan, processes, progress):
    deadline = time.monotonic() + float(plan["wall_timeout_s"])
    next_tick = time.monotonic() + 1.0
    while True:
        running = [p for p in processes if p.popen.poll() is None]
        failed = [p for p in processes if p.popen.returncode not in (None, 0)]
        if failed:
            p = failed[0]
            raise RunFailed("%s %s (the other processes were stopped); its log is %s, ending:\n%s"
                            % (p.name, p.describe_exit(), p.log_path, tail_of(p.log_path)))
        if not running:
            return
        now = time.monotonic()
        if now >= deadline:
            raise RunFailed("the run did not finish within its wall-time limit of %.0f s; stopped: %s"
                            % (float(plan["wall_timeout_s"]),
                               ", ".join("%s (log %s)" % (p.name, p.log_path) for p in running)))
        if now >= next_tick:
            progress.show()
            next_tick = now + 1.0
        time.sleep(0.05)


def stop_processes(processes):
    for p in processes:
        if p.popen.poll() is None:
            try:
                p.popen.terminate()
            except OSError:
                pass
    give_up = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < give_up and any(p.popen.poll() is None for p in processes):
        time.sleep(0.02)
    for p in processes:
        if p.popen.poll() is None:
            try:
                p.popen.kill()
            except OSError:
                pass
        try:
            p.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log("%s (pid %d) did not die" % (p.name, p.popen.pid))
        p.log_file.close()


def leftover_shells(tag):
    """Pids of Mininet host shells ("bash ... mininet:<host>") of this run."""
    pids = []
    prefix = ("mininet:%sn" % tag).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(arg.startswith(prefix) for arg in args):
            pids.append(int(entry))
    return pids


def leftover_interfaces(tag):
    out = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         check=False).stdout.decode()
    names = []
    for line in out.splitlines():
        fields = line.split(":", 2)
        if len(fields) < 2:
            continue
        name = fields[1].strip().split("@")[0]
        if name.startswith(tag + "n"):
            names.append(name)
    return names


def clean_leftovers(tag):
    for name in leftover_interfaces(tag):
        subprocess.run(["ip", "link", "del", "dev", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
    # net.stop() hangs up the host shells; wait for them to go, then kill any
    # that stayed (zombies have an empty command line and are not listed).
    deadline = time.monotonic() + 2 * STOP_GRACE_S
    killed = False
    while time.monotonic() < deadline:
        shells = leftover_shells(tag)
        if not shells:
            return
        if not killed and time.monotonic() >= deadline - STOP_GRACE_S:
            for pid in shells:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            killed = True
        time.sleep(0.02)
    log("host shells still running after teardown: %s" % leftover_shells(tag))


def print_key_fetch(plan, hosts, heading):
    """The KMEs' curl commands, run inside the node's host (its namespace)."""
    fetch = plan.get("qkd_fetch", [])
    if not fetch:
        return
    lines = [heading]
    for item in fetch:
        node = item.get("node", "")
        prefix = "mnexec -a %d " % hosts[node].pid if node in hosts else ""
        lines.append("  " + prefix + item["command"])
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def serve_keys(apps):
    """--serve-keys: the apps still running (qkd KMEs) serve until a signal."""
    try:
        while any(a.popen.poll() is None for a in apps):
            time.sleep(0.2)
    except Interrupted:
        pass


def run(plan):
    processes = []
    apps = []
    net = None
    progress = Progress(plan)
    try:
        net, hosts = build_network(plan)
        net.build()
        configure_network(plan, hosts)
        try:
            os.unlink(plan["socket_path"])
        except FileNotFoundError:
            pass
        qworld = start_qworld(plan)
        processes.append(qworld)
        wait_for_socket(plan, qworld)
        for node in plan["nodes"]:
            processes.append(start_qnode(node, hosts[node["name"]]))
        if plan.get("apps"):
            os.makedirs(os.path.join(plan["out_dir"], "apps"), exist_ok=True)
        for app in plan.get("apps", []):
            apps.append(start_app(app, hosts[app["node"]]))
        print_key_fetch(plan, hosts, "qkd: once keys are made, SAEs fetch them from the KMEs "
                        "(inside the node's host) with")
        wait_all(plan, processes, progress)
        # The nodes are gone: apps still running lost their socket and finish
        # on their own, or (qkd) write their results and keep serving their
        # KMEs; give them a moment (stop_processes below ends the rest).
        give_up = time.monotonic() + 3.0
        while (time.monotonic() < give_up
               and not all(os.path.exists(a["result"]) for a in plan.get("apps", []))
               and any(a.popen.poll() is None for a in apps)):
            time.sleep(0.05)
        progress.show()
        progress.finish()
        if plan.get("serve_keys") and any(a.popen.poll() is None for a in apps):
            print_key_fetch(plan, hosts, "qkd: serving keys (qworld and the nodes have stopped); "
                            "Ctrl-C to stop. Fetch keys with")
            serve_keys(apps)
        return 0
    except Interrupted as e:
        progress.finish()
        log("interrupted by %s; tearing the network down" % e)
        return 128 + e.signum
    except RunFailed as e:
        progress.finish()
        log(str(e))
        return 1
    except Exception as e:  # Mininet raises plain Exceptions
        progress.finish()
        log("the Mininet run failed: %s: %s" % (type(e).__name__, e))
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_processes(apps)
        write_app_failures(plan, apps)
        stop_processes(processes)
        if net is not None:
            try:
                net.stop()
            except Exception as e:
                log("net.stop() failed: %s" % e)
        clean_leftovers(plan["tag"])
        try:
            os.unlink(plan["socket_path"])
        except OSError:
            pass


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s PLAN.json (written by `qnet run --backend mininet`)\n" % argv[0])
        return 2
    try:
        with open(argv[1]) as f:
            plan = json.load(f)
    except (OSError, ValueError) as e:
        log("cannot read the plan %s: %s" % (argv[1], e))
        return 2
    if os.geteuid() != 0:
        log("Mininet needs root")
        return 1
    try:
        from mininet.log import setLogLevel
    except ImportError as e:
        log("cannot import mininet under %s: %s (install the Debian package mininet)" % (sys.executable, e))
        return 1
    setLogLevel("warning")
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        return run(plan)
    except Interrupted as e:  # arrived before run() set up its own handling
        return 128 + e.signum


if __name__ == "__main__":
    sys.exit(main(sys.argv))
