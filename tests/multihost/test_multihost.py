#!/usr/bin/env python3
"""`pgkm quantize` across two hosts over TCP, and what happens when one host is lost.

The two hosts are network namespaces on this machine, each with its own host name (a UTS
namespace) and a veth link into a bridge in the root namespace, where mpirun runs. An rsh
agent (written per run) enters a host's namespace, so Open MPI starts its daemons there
as it would over ssh, and the ranks talk over TCP on a private subnet only
(`--mca btl self,tcp`, `btl_tcp_if_include`, `oob_tcp_if_include`).

  Hosts      a sharded job (every layer split over both hosts) and a layer-parallel job
             write archives identical, layer by layer, to a one-process run.
  LostHost   cutting one host's link mid-run (a sharded and a layer-parallel job) ends
             every process of the job on both sides of the cut within 60 s, with a
             message naming the lost host (Open MPI's, with its keepalive set);
             --resume then finishes with the identical archive. A rank whose daemon is
             killed while its host is cut off ends itself (dist/orphan_watchdog.h).
  CommTimeout  without the keepalive settings, pgkm's deadline on every collective
             (--comm-timeout 10) ends the ranks on both sides, naming the lost host.

Needs root and `ip` (iproute2); exits 77 (skipped) with the reason printed otherwise.
Every namespace, link and process it makes is named per run and removed at the end, even
on failure. Environment: PGKM_BIN, MPIEXEC, PGKM_SOURCE_DIR.
"""
import atexit
import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

try:
    import h5py  # noqa: F401  (used by the layer comparison)
    import numpy as np  # noqa: F401
except ImportError as e:  # pragma: no cover
    print(f"skipping: {e}")
    sys.exit(77)

SOURCE = os.environ.get("PGKM_SOURCE_DIR", ".")
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "mpi"))
import make_models as mm  # noqa: E402
from test_mpi_quantize import assert_same_layers  # noqa: E402

PGKM = os.path.abspath(os.environ.get("PGKM_BIN", "build/launch/pgkm"))
MPIEXEC = os.environ.get("MPIEXEC", "mpirun")

# Open MPI's out-of-band channel (mpirun <-> daemons) probes an idle TCP connection after
# KEEPALIVE_TIME s, every KEEPALIVE_INTVL s, and declares the peer lost after
# KEEPALIVE_PROBES unanswered probes: a cut link is noticed by both sides within about
# 5 + 2 * 3 s. Open MPI's defaults (300, 20, 9) take 8 minutes.
KEEPALIVE = {"oob_tcp_keepalive_time": "5", "oob_tcp_keepalive_intvl": "2",
             "oob_tcp_keepalive_probes": "3"}
LOST_HOST_LIMIT_S = 60


def sh(*cmd, check=True):
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


class Cluster:
    """Two hosts (network + UTS namespaces) on a bridge; names unique to this run."""

    def __init__(self, workdir):
        tag = f"{os.getpid() % 100000:05d}{random.randrange(16 ** 2):02x}"
        self.prefix = "pk" + tag  # interface names stay within 15 bytes
        self.bridge = self.prefix + "br"
        net = 100 + random.randrange(150)
        self.subnet = f"10.213.{net}.0/24"
        self.hosts = []  # (namespace, ip, root-side veth)
        for i in (1, 2):
            self.hosts.append((f"{self.prefix}h{i}", f"10.213.{net}.{10 + i}",
                               f"{self.prefix}v{i}"))
        self.workdir = workdir
        self.agent = os.path.join(workdir, "rsh-agent.sh")
        self.hostfile = os.path.join(workdir, "hostfile")
        self.made_links = []
        self.made_namespaces = []

    def up(self):
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.made_links.append(self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        gateway = self.subnet.replace(".0/24", ".1/24")
        sh("ip", "addr", "add", gateway, "dev", self.bridge)
        for ns, ip, veth in self.hosts:
            sh("ip", "netns", "add", ns)
            self.made_namespaces.append(ns)
            inner = veth + "i"
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", inner)
            self.made_links.append(veth)
            sh("ip", "link", "set", inner, "netns", ns)
            sh("ip", "link", "set", veth, "master", self.bridge)
            sh("ip", "link", "set", veth, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", ip + "/24", "dev", inner)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        # The agent gets the host (an IP from the hostfile) and the command line, like
        # ssh: it runs the command in that host's namespaces, under the host's own name.
        # The command is a shell line ("PATH=... ; export PATH ; ... orted ..." when
        # mpirun is called by its full path), so it runs as one, not through exec.
        cases = "\n".join(f'  {ip}) ns={ns} ;;' for ns, ip, _ in self.hosts)
        with open(self.agent, "w") as f:
            f.write(f"""#!/bin/sh
host=$1; shift
case "$host" in
{cases}
  *) echo "rsh-agent: unknown host $host" >&2; exit 255 ;;
esac
exec ip netns exec "$ns" unshare --uts sh -c "hostname $ns && $*"
""")
        os.chmod(self.agent, 0o755)
        with open(self.hostfile, "w") as f:
            f.writelines(f"{ip} slots=1\n" for _, ip, _ in self.hosts)

    def down(self):
        """Removes everything up() made; never raises (runs on every exit path)."""
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for ns in self.made_namespaces:
            sh("ip", "netns", "del", ns, check=False)
        for link in self.made_links:  # a veth's root end may outlive its namespace
            sh("ip", "link", "del", link, check=False)
        self.made_namespaces, self.made_links = [], []

    def mpirun(self, *args, keepalive=True):
        cmd = [MPIEXEC, "-n", "2", "--hostfile", self.hostfile, "--bind-to", "none",
               "--mca", "plm_rsh_agent", self.agent, "--mca", "plm_rsh_no_tree_spawn", "1",
               "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", self.subnet,
               "--mca", "oob_tcp_if_include", self.subnet]
        for k, v in (KEEPALIVE.items() if keepalive else ()):
            cmd += ["--mca", k, v]
        return cmd + [PGKM, *args]

    def processes(self):
        """Pids of this run's processes: mpirun, the daemons (their command lines name the
        agent) and the ranks (theirs name the work directory)."""
        found = []
        marker = os.fsencode(self.workdir)
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker in f.read():
                        found.append(int(pid))
            except OSError:
                continue
        return found

    def in_host(self, pids, ns):
        """The pids among `pids` that run in host `ns`'s network namespace."""
        inode = os.stat(f"/run/netns/{ns}").st_ino
        found = []
        for pid in pids:
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == inode:
                    found.append(pid)
            except OSError:
                continue
        return found

    def cmdline(self, pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read().split(b"\0")
        except OSError:
            return []

    def describe(self, pids):
        out = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    line = f.read().replace(b"\0", b" ")[:160].decode(errors="replace")
                out.append(f"{pid}: {line}")
            except OSError:
                pass
        return "\n".join(out)


ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMP_NUM_THREADS="1")


def skip_reason():
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if shutil.which("unshare") is None:
        return "no `unshare` command (util-linux)"
    probe = f"pkprobe{os.getpid() % 100000}"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"cannot make a network namespace here: {r.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


class Base(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="pgkm-multihost-")
        self.dir = self._tmp.name
        self.cluster = Cluster(self.dir)
        atexit.register(self.cluster.down)  # also when the test process is interrupted
        self.addCleanup(self._tmp.cleanup)
        self.addCleanup(self.cluster.down)
        self.cluster.up()

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, tensors, config):
        mm.write_safetensors(self.path(name + ".safetensors"), tensors)
        with open(self.path(name + ".yaml"), "w") as f:
            f.write(config)
        return self.path(name + ".safetensors"), self.path(name + ".yaml")

    def one_process(self, *args):
        r = subprocess.run([PGKM, *args], env=ENV, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)

    def across_hosts(self, *args, timeout=300):
        r = subprocess.run(self.cluster.mpirun(*args), env=ENV, capture_output=True, text=True,
                           timeout=timeout)
        self.assertEqual(r.returncode, 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        self.assertIn("on 2 ranks", r.stdout)
        return r

    def start_job(self, common, out, keepalive=True):
        """Starts the job and returns once rank 0 has checkpointed its first layer (the
        job is then mid-run, with every process up)."""
        proc = subprocess.Popen(self.cluster.mpirun(*common, "--out", out, keepalive=keepalive),
                                env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 120
        while not glob.glob(out + ".parts/*.h5"):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                self.fail(f"no layer finished while the job ran: {proc.communicate()}")
            time.sleep(0.02)
        # mpirun, a daemon per host and a rank per host.
        self.assertGreaterEqual(len(self.cluster.processes()), 5,
                                sh("ps", "-eo", "pid,ppid,args").stdout)
        return proc


class Hosts(Base):
    def test_sharded_and_layer_parallel_jobs_equal_one_process(self):
        model, config = self.write("small", mm.small_model(), mm.SMALL_CONFIG)
        common = ["quantize", model, "--config", config, "--iters", "4", "--threads", "1"]
        ref = self.path("ref.h5")
        self.one_process(*common, "--out", ref)
        # 0: every layer is split over both hosts (all-reduces over TCP); 10: whole layers
        # per host, streamed to rank 0 over TCP.
        for threshold in ("0", "10"):
            out = self.path(f"t{threshold}.h5")
            self.across_hosts(*common, "--out", out, "--shard-threshold", threshold)
            assert_same_layers(self, ref, out, f"two hosts, --shard-threshold {threshold}")


def wait_gone(cluster, pids, limit_s):
    """Seconds until none of `pids` (all of the run's processes when None) is left, or
    None when some still run after `limit_s`."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        alive = cluster.processes()
        if pids is not None:
            alive = [p for p in alive if p in pids]
        if not alive:
            return time.monotonic() - start
        time.sleep(0.1)
    return None


class LostHost(Base):
    def test_rank_whose_daemon_is_gone_ends(self):
        model, config = self.write("big", mm.big_model(n_layers=8, rows=512, cols=256),
                                   mm.BIG_CONFIG)
        common = ["quantize", model, "--config", config, "--iters", "300", "--threads", "1",
                  "--shard-threshold", "0"]
        out = self.path("out.h5")
        proc = self.start_job(common, out)
        lost_ns, _, lost_veth = self.cluster.hosts[1]
        there = self.cluster.in_host(self.cluster.processes(), lost_ns)
        daemons = [p for p in there if any(b"orted" in a for a in self.cluster.cmdline(p))]
        ranks = [p for p in there if self.cluster.cmdline(p)[:1] == [os.fsencode(PGKM)]]
        self.assertEqual((len(daemons), len(ranks)), (1, 1), self.cluster.describe(there))
        # The host is cut off and its daemon dies with it: nothing can reach the rank
        # there any more, and nothing will ever collect it but its own watchdog.
        sh("ip", "link", "set", lost_veth, "down")
        os.kill(daemons[0], signal.SIGKILL)
        gone_s = wait_gone(self.cluster, ranks, 10)
        self.assertIsNotNone(gone_s, "the rank whose daemon is gone still runs 10 s later:\n" +
                             self.cluster.describe(ranks))
        print(f"rank on {lost_ns} gone {gone_s:.1f} s after its daemon was killed")
        all_gone = wait_gone(self.cluster, None, LOST_HOST_LIMIT_S)
        self.assertIsNotNone(all_gone, self.cluster.describe(self.cluster.processes()))
        _, stderr = proc.communicate(timeout=10)
        self.assertNotEqual(proc.returncode, 0)
        self.assertFalse(os.path.exists(out), "archive finalised after a lost host")

    def cut_then_resume(self, threshold):
        model, config = self.write("big", mm.big_model(n_layers=8, rows=512, cols=256),
                                   mm.BIG_CONFIG)
        common = ["quantize", model, "--config", config, "--iters", "300", "--threads", "1",
                  "--shard-threshold", threshold]
        ref = self.path("ref.h5")
        self.one_process(*common, "--out", ref)

        out = self.path("out.h5")
        proc = self.start_job(common, out)
        lost_ns, lost_ip, lost_veth = self.cluster.hosts[1]
        sh("ip", "link", "set", lost_veth, "down")
        gone_s = wait_gone(self.cluster, None, LOST_HOST_LIMIT_S)
        remaining = self.cluster.processes()
        self.assertIsNotNone(gone_s, f"still running {LOST_HOST_LIMIT_S} s after the cut:\n" +
                             self.cluster.describe(remaining))
        print(f"--shard-threshold {threshold}: link of {lost_ns} ({lost_ip}) cut: every "
              f"process of the job gone after {gone_s:.1f} s")
        stdout, stderr = proc.communicate(timeout=10)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(lost_ip, stderr, f"the lost host is not named:\n{stderr}")
        print("\n".join(l for l in stderr.splitlines() if "daemon" in l or "error" in l))
        self.assertFalse(os.path.exists(out), "archive finalised after a lost host")

        sh("ip", "link", "set", lost_veth, "up")
        r = self.across_hosts(*common, "--out", out, "--resume")
        self.assertIn("(resumed)", r.stdout)
        assert_same_layers(self, ref, out, "resumed after a lost host")

    def test_cut_link_in_a_sharded_job_then_resume(self):
        # Threshold 0: every layer is shared, both hosts are in an all-reduce at every
        # iteration, so the cut always falls inside a collective.
        self.cut_then_resume("0")

    def test_cut_link_in_a_layer_parallel_job_then_resume(self):
        # Threshold 10: whole layers per host; rank 0 waits for the other's layers.
        self.cut_then_resume("10")


class CommTimeout(Base):
    def test_without_keepalive_the_comm_timeout_ends_both_ranks(self):
        """Open MPI's default keepalive (300 s idle) leaves mpirun and its daemons unaware
        of the cut for minutes; pgkm's own deadline on every collective (--comm-timeout)
        still ends the ranks on both sides, each naming the rank and host it waited for."""
        model, config = self.write("big", mm.big_model(n_layers=8, rows=512, cols=256),
                                   mm.BIG_CONFIG)
        common = ["quantize", model, "--config", config, "--iters", "300", "--threads", "1",
                  "--shard-threshold", "0", "--comm-timeout", "10"]
        out = self.path("out.h5")
        proc = self.start_job(common, out, keepalive=False)
        ranks = [p for p in self.cluster.processes()
                 if self.cluster.cmdline(p)[:1] == [os.fsencode(PGKM)]]
        self.assertEqual(len(ranks), 2, self.cluster.describe(ranks))
        lost_ns, lost_ip, lost_veth = self.cluster.hosts[1]
        sh("ip", "link", "set", lost_veth, "down")
        gone_s = wait_gone(self.cluster, ranks, LOST_HOST_LIMIT_S)
        self.assertIsNotNone(gone_s, "pgkm ranks still running after the cut:\n" +
                             self.cluster.describe(self.cluster.processes()))
        print(f"link of {lost_ns} cut, no keepalive, --comm-timeout 10: both ranks gone after "
              f"{gone_s:.1f} s; still running: {len(self.cluster.processes())} (Open MPI's)")
        all_gone = wait_gone(self.cluster, None, 5)
        print("every process gone:", "after a further %.1f s" % all_gone
              if all_gone is not None else
              f"no, 5 s later:\n{self.cluster.describe(self.cluster.processes())}")
        self.cluster.down()  # whatever Open MPI left
        _, stderr = proc.communicate(timeout=10)
        print("\n".join(l for l in stderr.splitlines() if l.startswith("pgkm: error")))
        self.assertIn(f"rank 1 on {lost_ns}", stderr, stderr)
        self.assertIn("--comm-timeout", stderr, stderr)
        self.assertFalse(os.path.exists(out), "archive finalised after a lost host")


if __name__ == "__main__":
    reason = skip_reason()
    if reason:
        print(f"skipping: {reason}")
        sys.exit(77)
    unittest.main()
