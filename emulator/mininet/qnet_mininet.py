#!/usr/bin/python3
"""qnet's Mininet driver: runs one emulated network described by a plan.

Usage: /usr/bin/python3 qnet_mininet.py OUT/plan.json
       /usr/bin/python3 qnet_mininet.py --probe TAG

`qnet run --backend mininet` writes the plan (emulator/qnet/mininet_backend.h
documents its fields) and runs this script as root. The driver

  * builds a Mininet network on Mininet's own API with no controller and no
    switch: one host (network namespace) per node and one direct veth link per
    topology link (there is no Open vSwitch kernel module here, and no netem:
    qnode holds frames for the link's classical delay itself);
  * gives each link end its address on the link's /30 subnet;
  * does both within the plan's start-up deadline (startup_timeout_s): a
    SIGALRM interrupts whatever Mininet is blocked on (typically reading the
    prompt of a host shell that never comes, on a machine that cannot run
    Mininet hosts); the driver then tears down what exists, prints one line
    naming what it was waiting for (also into the plan's
    startup_failure_file) and exits with status 3;
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

With --probe TAG the driver only checks that this machine can run a Mininet
host: it builds a network of one host named TAG + "n1" (TAG: 1 to 8 lower-case
letters and digits, unique among concurrent users, e.g. "p" and the caller's
pid), checks that the host's shell runs `true` in a network namespace of its
own, and tears it down, all within PROBE_TIMEOUT_S (a start-up deadline with
a one-line reason like a run's). `qnet run --backend mininet` and
the tests of the mininet label run it before anything else
(CheckMininetPrerequisites in emulator/qnet/mininet_backend.h).

Exit status: 0 when every process exited with status 0 (--probe: the host
ran); 1 on failure (reason on stderr, naming the process and its log); 2 on a
usage error; 3 when Mininet could not start the network (or the probe's host)
within the start-up deadline (STARTUP_FAILED); 128 + signal when interrupted.
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
# Building the network: 20 s plus 0.5 s per node and 0.25 s per link unless
# the plan says otherwise (mininet_backend.cc writes the same default).
STARTUP_BASE_S = 20.0
STARTUP_PER_NODE_S = 0.5
STARTUP_PER_LINK_S = 0.25
PROBE_TIMEOUT_S = 10.0
# Bound on net.stop(), so that teardown itself cannot hang on a shell that
# does not answer (the shells are then killed instead).
TEARDOWN_S = 20.0
STARTUP_FAILED = 3
CANNOT_RUN = "this machine cannot run Mininet hosts (use --backend local)"


class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RunFailed(Exception):
    pass


class StartupTimeout(Exception):
    """SIGALRM: building the network took longer than its deadline."""


class TeardownTimeout(Exception):
    """SIGALRM: net.stop() took longer than TEARDOWN_S."""


class Startup:
    """The start-up deadline of building the network and what the driver is
    waiting for at each moment (`stage`, named in the failure line). The
    deadline is a SIGALRM, so that it also interrupts a blocking read inside
    Mininet (a host shell that never prints its prompt). Every host object ever
    constructed is kept in `nodes`, also one whose constructor was interrupted
    (Mininet adds a host to the network only once its shell answered), so that
    teardown can kill its shell."""

    def __init__(self, seconds, what):
        self.seconds = seconds
        self.what = what  # "the network", "a host"
        self.stage = "Mininet's set-up"
        self.nodes = []
        self.done = False

    def arm(self):
        signal.signal(signal.SIGALRM, self._expired)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def _expired(self, _signum, _frame):
        raise StartupTimeout()

    def finish(self):
        """Start-up is over (or abandoned): no alarm after this returns."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)

    def reason(self):
        return "Mininet could not start %s within %g s: it was waiting for %s; %s" % (
            self.what, self.seconds, self.stage, CANNOT_RUN)


def host_class(startup):
    """Mininet's Host, recording itself in `startup` and naming its stages."""
    from mininet.node import Host

    class TrackedHost(Host):
        def __init__(self, name, **params):
            startup.nodes.append(self)
            startup.stage = "the shell of host %s (mnexec in a new network namespace)" % name
            super().__init__(name, **params)

        def configDefault(self, **params):
            startup.stage = "the default configuration of host %s (net.build(), through its shell)" % self.name
            return super().configDefault(**params)

    return TrackedHost


def startup_timeout(plan):
    try:
        seconds = float(plan.get("startup_timeout_s", 0))
    except (TypeError, ValueError):
        seconds = 0
    if seconds > 0:
        return seconds
    return (STARTUP_BASE_S + STARTUP_PER_NODE_S * len(plan.get("nodes", []))
            + STARTUP_PER_LINK_S * len(plan.get("links", [])))


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


def new_network(startup):
    from mininet.link import Link
    from mininet.net import Mininet

    startup.stage = "Mininet's set-up (Mininet.init: root check, system limits)"
    return Mininet(topo=None, controller=None, host=host_class(startup), link=Link, build=False,
                   autoSetMacs=False)


def build_network(plan, startup, holder):
    """Adds hosts and links; `holder` gets the network at once, so that
    teardown finds it even when the deadline interrupts this function."""
    net = holder["net"] = new_network(startup)
    hosts = {}
    for node in plan["nodes"]:
        hosts[node["name"]] = net.addHost(node["host"], ip=None)
    for link in plan["links"]:
        startup.stage = "the veth link %s (%s <-> %s, `ip link add` in the shell of host %s)" % (
            link["name"], link["a_intf"], link["b_intf"], hosts[link["a"]].name)
        net.addLink(hosts[link["a"]], hosts[link["b"]], intfName1=link["a_intf"], intfName2=link["b_intf"])
    startup.stage = "Mininet's net.build()"
    net.build()
    return net, hosts


def configure_network(plan, hosts, startup):
    for link in plan["links"]:
        prefix = link["subnet"].split("/")[1]
        for side in ("a", "b"):
            host = hosts[link[side]]
            intf = link[side + "_intf"]
            startup.stage = "the addresses of host %s on link %s (%s %s/%s, through its shell)" % (
                host.name, link["name"], intf, link[side + "_ip"], prefix)
            host.setIP(link[side + "_ip"], prefixLen=int(prefix), intf=intf)
            host.cmd("ip link set dev %s up" % intf)
    for host in hosts.values():
        startup.stage = "the loopback interface of host %s (through its shell)" % host.name
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


def kill_shells(nodes):
    """Kills host shells without talking to them (they may never answer):
    the shell's session (mnexec -d made it a session leader), then the shell
    itself, and reaps it. A host's namespace, and the veth ends in it, go with
    its last process."""
    for node in nodes:
        shell = getattr(node, "shell", None)
        if shell is None:
            continue
        try:
            os.killpg(shell.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            shell.kill()
        except OSError:
            pass
    for node in nodes:
        shell = getattr(node, "shell", None)
        if shell is None:
            continue
        try:
            shell.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log("the shell of host %s (pid %d) did not die" % (node.name, shell.pid))
        node.shell = None


def expire_teardown(_signum, _frame):
    raise TeardownTimeout()


def stop_network(net, startup):
    """net.stop() once the network is built; before that (start-up failed or
    was interrupted, and shells may be mid-command or silent) the host shells
    are killed instead. net.stop() is bounded by TEARDOWN_S; past that the
    shells are killed too. clean_leftovers() follows in either case."""
    if net is None and not startup.nodes:
        return
    if net is not None and startup.done:
        signal.signal(signal.SIGALRM, expire_teardown)
        signal.setitimer(signal.ITIMER_REAL, TEARDOWN_S)
        try:
            net.stop()
            return
        except TeardownTimeout:
            log("net.stop() did not finish within %g s; killing the host shells" % TEARDOWN_S)
        except Exception as e:
            log("net.stop() failed: %s" % e)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
    kill_shells(startup.nodes)


def report_startup_failure(plan, startup):
    reason = startup.reason()
    log(reason)
    path = plan.get("startup_failure_file")
    if path:
        try:
            with open(path, "w") as f:
                f.write(reason + "\n")
        except OSError as e:
            log("cannot write %s: %s" % (path, e))


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
    holder = {"net": None}
    progress = Progress(plan)
    startup = Startup(startup_timeout(plan), "the network")
    try:
        startup.arm()
        net, hosts = build_network(plan, startup, holder)
        configure_network(plan, hosts, startup)
        startup.finish()
        startup.done = True
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
    except StartupTimeout:
        startup.finish()
        report_startup_failure(plan, startup)
        return STARTUP_FAILED
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
        startup.finish()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_processes(apps)
        write_app_failures(plan, apps)
        stop_processes(processes)
        stop_network(holder["net"], startup)
        clean_leftovers(plan["tag"])
        try:
            os.unlink(plan["socket_path"])
        except OSError:
            pass


def probe(tag):
    """--probe TAG: can this machine run a Mininet host? See the module doc."""
    holder = {"net": None}
    startup = Startup(PROBE_TIMEOUT_S, "a host")
    name = tag + "n1"
    try:
        startup.arm()
        net = holder["net"] = new_network(startup)
        host = net.addHost(name, ip=None)
        startup.stage = "the shell of host %s to run `true`" % name
        status = host.cmd("true; echo qnet-probe-status=$?")
        if "qnet-probe-status=0" not in status:
            raise RunFailed("the shell of host %s did not run `true` (it answered %r)" % (name, status.strip()))
        startup.stage = "the network namespace of host %s" % name
        if os.readlink("/proc/%d/ns/net" % host.pid) == os.readlink("/proc/self/ns/net"):
            raise RunFailed("host %s runs in the root network namespace" % name)
        startup.finish()
        startup.done = True
        return 0
    except StartupTimeout:
        startup.finish()
        log(startup.reason())
        return STARTUP_FAILED
    except Interrupted as e:
        log("interrupted by %s; tearing the probe's host down" % e)
        return 128 + e.signum
    except RunFailed as e:
        log("the Mininet probe failed: %s; %s" % (e, CANNOT_RUN))
        return 1
    except Exception as e:  # Mininet raises plain Exceptions
        log("the Mininet probe failed: %s: %s; %s" % (type(e).__name__, e, CANNOT_RUN))
        return 1
    finally:
        startup.finish()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_network(holder["net"], startup)
        clean_leftovers(tag)


def valid_tag(tag):
    return 1 <= len(tag) <= 8 and all(c in "abcdefghijklmnopqrstuvwxyz0123456789" for c in tag)


def main(argv):
    usage = ("usage: %s PLAN.json (written by `qnet run --backend mininet`)\n"
             "       %s --probe TAG (TAG: 1 to 8 lower-case letters and digits)\n" % (argv[0], argv[0]))
    if len(argv) == 3 and argv[1] == "--probe":
        if not valid_tag(argv[2]):
            sys.stderr.write(usage)
            return 2
        plan = None
    elif len(argv) == 2 and not argv[1].startswith("-"):
        try:
            with open(argv[1]) as f:
                plan = json.load(f)
        except (OSError, ValueError) as e:
            log("cannot read the plan %s: %s" % (argv[1], e))
            return 2
    else:
        sys.stderr.write(usage)
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
        return run(plan) if plan is not None else probe(argv[2])
    except Interrupted as e:  # arrived before run() or probe() set up their own handling
        return 128 + e.signum
    except StartupTimeout:  # the deadline passed while a failure was being reported
        return STARTUP_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
