#!/usr/bin/env python3
"""imgdl on a real Slurm cluster: a one-node cluster on 127.0.0.1 started for the test.

    slurm_test.py --imgdl PATH --server PATH SCENARIO

The test writes a slurm.conf into a fresh temporary directory (free ports, state, spool, logs and pid
files all in it; auth/none and cred/none, which are for tests only), starts slurmctld and slurmd without
systemd, runs the scenario, and stops both daemons by their pid files whatever happens. It needs Debian's
slurm-wlm (scripts/install-deps.sh slurm). As root the daemons run as root; otherwise as the current
user, and when they cannot start that way the test is skipped (exit 77) with the reason.

Scenarios:
    array_shards_merge_to_one_run   `sbatch --array=0-3` of `imgdl --shard auto`, then a merge job with
                                    --dependency=afterok: the merged report and the files equal a
                                    one-process run of the same list.
    requeued_task_fetches_nothing_twice
                                    an array task killed mid-run by `scontrol requeue` (SIGTERM) starts
                                    again from its run journal: what it had finished is not fetched
                                    again (the server's counters), nothing is lost, and the merge still
                                    equals a one-process run.
Standard library only.
"""

import argparse
import hashlib
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import testlib  # noqa: E402
from testlib import CheckFailed, check  # noqa: E402

SKIP = 77  # CTest's SKIP_RETURN_CODE for this test
ARGS = None


class Skip(Exception):
    pass


def find_program(name):
    """`name` on PATH or in the sbin directories, which a non-root PATH often lacks."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if not found:
        raise Skip(f"{name} not found: install Slurm with scripts/install-deps.sh slurm")
    return found


def free_ports(count):
    """`count` distinct loopback ports nothing listens on now (all held open while they are picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise CheckFailed(f"timed out after {timeout} s waiting for {what}")


class Cluster:
    """slurmctld and slurmd for one node, configured in `root`; stop() ends them by their pid files."""

    NODE = "imgdl-node"

    def __init__(self, root):
        self.root = root
        self.slurmctld = find_program("slurmctld")
        self.slurmd = find_program("slurmd")
        for tool in ("sbatch", "squeue", "sinfo", "scontrol"):
            find_program(tool)
        self.conf = os.path.join(root, "slurm.conf")
        self.pid_files = [os.path.join(root, "slurmctld.pid"), os.path.join(root, "slurmd.pid")]
        self.logs = [os.path.join(root, "log", "slurmctld.log"), os.path.join(root, "log", "slurmd.log")]
        for d in ("state", "spool", "log"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        user = pwd.getpwuid(os.geteuid()).pw_name
        ctld_port, slurmd_port = free_ports(2)
        # CPUs is more than the machine may have (config_overrides trusts it): four array tasks at once.
        settings = {
            "ClusterName": "imgdltest",
            "SlurmctldHost": "localhost(127.0.0.1)",
            "SlurmctldPort": ctld_port,
            "SlurmdPort": slurmd_port,
            "SlurmUser": user,
            "SlurmdUser": user,
            "AuthType": "auth/none",
            "CredType": "cred/none",
            # A requeued job waits out its old credential's life before it starts again: 120 s by default.
            "AuthInfo": "cred_expire=5",  # slurmd refuses 2
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "MpiDefault": "none",
            "SlurmdParameters": "config_overrides",
            "SchedulerType": "sched/builtin",
            "SchedulerParameters": "sched_interval=1,sched_min_interval=100000",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core",
            "StateSaveLocation": os.path.join(root, "state"),
            "SlurmdSpoolDir": os.path.join(root, "spool"),
            "SlurmctldPidFile": self.pid_files[0],
            "SlurmdPidFile": self.pid_files[1],
            "SlurmctldLogFile": self.logs[0],
            "SlurmdLogFile": self.logs[1],
            "MaxArraySize": 100001,
            "ReturnToService": 2,
            "JobCompType": "jobcomp/none",
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none",
        }
        with open(self.conf, "w") as f:
            for key, value in settings.items():
                f.write(f"{key}={value}\n")
            f.write(f"NodeName={self.NODE} NodeAddr=127.0.0.1 CPUs=8 RealMemory=1000 State=UNKNOWN\n")
            f.write(f"PartitionName=test Nodes={self.NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES\n")
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        for name in list(self.env):
            if name.startswith("SLURM_") and name != "SLURM_CONF":
                del self.env[name]  # a test run inside a Slurm job must not pass its own job's variables on

    def start(self):
        for cmd in ([self.slurmctld, "-f", self.conf, "-i"], [self.slurmd, "-f", self.conf, "-N", self.NODE]):
            proc = subprocess.run(cmd, env=self.env, capture_output=True, timeout=30)
            if proc.returncode != 0:
                self.fail_to_start(f"{os.path.basename(cmd[0])} exited {proc.returncode}: "
                                   + proc.stderr.decode(errors="replace"))
        try:
            wait_for(lambda: self.run(["sinfo", "-h", "-o", "%T"], check_exit=False).strip() == "idle", 20,
                     "the node to be idle")
        except CheckFailed as e:
            self.fail_to_start(str(e))

    def fail_to_start(self, reason):
        message = f"the Slurm daemons did not start: {reason}\n{self.log_tail()}"
        if os.geteuid() != 0:
            raise Skip(message + "\n(not root: slurmd may need root on this machine)")
        raise CheckFailed(message)

    def log_tail(self):
        text = ""
        for log in self.logs:
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    text += f"--- {log}\n" + "".join(f.readlines()[-25:])
        return text

    def run(self, args, check_exit=True):
        proc = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        if check_exit and proc.returncode != 0:
            raise CheckFailed(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc.stdout

    def sbatch(self, *args):
        return self.run(["sbatch", "--parsable", *args]).strip().split(";")[0]

    def wait_for_jobs(self, job_ids, timeout):
        """Polls squeue (sbatch --wait is slow) until none of `job_ids` is queued or running."""
        ids = ",".join(job_ids)
        wait_for(lambda: self.run(["squeue", "-h", "-j", ids], check_exit=False).strip() == "", timeout,
                 f"jobs {ids} to end\n{self.log_tail()}")

    def stop(self):
        pids = []
        for pid_file in self.pid_files:
            try:
                with open(pid_file) as f:
                    pid = int(f.read().strip())
                os.kill(pid, signal.SIGTERM)
                pids.append(pid)
            except (OSError, ValueError):
                pass  # never started, or already gone

        def gone(pid):
            try:
                os.kill(pid, 0)
                return False
            except OSError:
                return True

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(gone(p) for p in pids):
            time.sleep(0.05)
        for pid in pids:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def comparable(report):
    """A report without what differs between runs of one list: timings, the results' order, and what a
    rerun took from its journal (marked earlier_run: not downloaded by that run, so not in its bytes)."""
    results = [{k: v for k, v in r.items() if k not in ("elapsed_s", "earlier_run")}
               for r in sorted(report["results"], key=lambda r: r["index"])]
    totals = {k: v for k, v in report["totals"].items()
              if k not in ("elapsed_s", "bytes_per_s", "bytes", "earlier_run")}
    return {"results": results, "invalid_lines": report["invalid_lines"], "totals": totals,
            "interrupted": report["interrupted"], "exit_code": report["exit_code"]}


def files_of(directory):
    """Each file of an output directory (not the run journal's .imgdl) with its SHA-256."""
    return {name: sha256_of(os.path.join(directory, name)) for name in sorted(os.listdir(directory))
            if name != ".imgdl"}


def scenario_array_shards_merge_to_one_run(tmp):
    with testlib.Server(ARGS.server, tmp) as server:
        # 30 URLs (28 images, a 404 and a 410: distinct names, as shards name files independently), an
        # invalid line and a comment: blocks of 4 URLs over 4 shards.
        lines = [server.url(f"/img/pic{i:02d}.jpg?size={1000 + 37 * i}") for i in range(30)]
        lines[7] = server.url("/status/404")
        lines[21] = server.url("/status/410")
        lines.insert(12, "not a url")
        lines.insert(3, "# a comment")
        list_text = "".join(line + "\n" for line in lines)
        one, many = os.path.join(tmp, "one"), os.path.join(tmp, "many")
        for d in (one, many):
            os.makedirs(d)
            with open(os.path.join(d, "list.txt"), "w") as f:
                f.write(list_text)
        common = ["-i", "list.txt", "-o", "out", "-q", "--retries", "0"]
        single = subprocess.run([ARGS.imgdl, *common, "--report", "report.json"], cwd=one, capture_output=True,
                                text=True, timeout=60)
        check(single.returncode == 1, f"the one-process run exited {single.returncode}, expected 1 (a 404 and a 410)",
              single.stderr)

        cluster = Cluster(os.path.join(tmp, "slurm"))
        try:
            start = time.monotonic()
            cluster.start()
            started = time.monotonic() - start
            os.makedirs(os.path.join(many, "reports"))
            os.makedirs(os.path.join(many, "logs"))
            # Exit status 1 is "some URLs failed": the task did its work, so it counts as done for
            # afterok. 2 (usage) and 130 (interrupted) fail the task.
            imgdl = shlex.quote(ARGS.imgdl)
            task = os.path.join(many, "task.sh")
            with open(task, "w") as f:
                f.write("#!/bin/sh\n"
                        f"{imgdl} {' '.join(common)} --shard auto --shard-block 4 "
                        "--report reports/shard-$SLURM_ARRAY_TASK_ID.json\n"
                        "rc=$?\n[ $rc -le 1 ] || exit $rc\n")
            array = cluster.sbatch("--array=0-3", "-D", many, "-o", os.path.join(many, "logs", "%A_%a.out"), task)
            reports = " ".join(f"reports/shard-{k}.json" for k in range(4))
            merge = cluster.sbatch(f"--dependency=afterok:{array}", "-D", many,
                                   "-o", os.path.join(many, "logs", "merge.out"),
                                   "--wrap", f"{imgdl} merge {reports} --report report.json; echo $? > merge.rc")
            cluster.wait_for_jobs([array, merge], timeout=60)
            ran = time.monotonic() - start
        finally:
            cluster.stop()

    logs = ""
    for name in sorted(os.listdir(os.path.join(many, "logs"))):
        with open(os.path.join(many, "logs", name), errors="replace") as f:
            logs += f"--- {name}\n{f.read()}"
    check(os.path.exists(os.path.join(many, "merge.rc")), "the merge job did not run", logs)
    with open(os.path.join(many, "merge.rc")) as f:
        check(int(f.read()) == 1, "imgdl merge's exit status is not the one-process run's (1)", logs)
    shards = []
    for k in range(4):
        with open(os.path.join(many, "reports", f"shard-{k}.json")) as f:
            shards.append(json.load(f)["shard"])
    check(sorted(s["index"] for s in shards) == [0, 1, 2, 3] and all(s["count"] == 4 for s in shards),
          "each array task did not take its own shard of 4", shards)
    with open(os.path.join(one, "report.json")) as f:
        expected = comparable(json.load(f))
    with open(os.path.join(many, "report.json")) as f:
        merged = comparable(json.load(f))
    check(merged == expected, "the merged report differs from the one-process run's",
          json.dumps(merged, indent=1)[:3000], json.dumps(expected, indent=1)[:3000])
    check(expected["totals"]["ok"] == 28 and expected["totals"]["invalid_lines"] == 1, "the list's totals",
          expected["totals"])
    check(files_of(os.path.join(many, "out")) == files_of(os.path.join(one, "out")),
          "the shards' files differ from the one-process run's (names or sha256)",
          sorted(os.listdir(os.path.join(many, "out"))), sorted(os.listdir(os.path.join(one, "out"))))
    print(f"cluster up in {started:.2f} s; array and merge done {ran:.2f} s after the start")


def server_hits(server):
    """The test server's requests per path so far."""
    with urllib.request.urlopen(server.url("/hits"), timeout=10) as response:
        hits = json.loads(response.read().decode(errors="replace"))
    hits.pop("/hits", None)
    return hits


def scenario_requeued_task_fetches_nothing_twice(tmp):
    with testlib.Server(ARGS.server, tmp) as server:
        # 24 images of 0.4 s each, 2 array tasks of 12 (blocks of 4), 2 transfers at a time: ~2.4 s a task.
        paths = [f"/img/r{i:02d}.jpg" for i in range(24)]
        lines = [server.url(p + "?size=3000&latency_ms=400") for p in paths]
        one, many = os.path.join(tmp, "one"), os.path.join(tmp, "many")
        for d in (one, many):
            os.makedirs(d)
            with open(os.path.join(d, "list.txt"), "w") as f:
                f.write("".join(line + "\n" for line in lines))
        common = ["-i", "list.txt", "-o", "out", "-q", "-j", "2"]
        single = subprocess.run([ARGS.imgdl, *common[:-2], "-j", "8", "--no-journal", "--report", "report.json"],
                                cwd=one,
                                capture_output=True, text=True, timeout=60)
        check(single.returncode == 0, f"the one-process run exited {single.returncode}", single.stderr)
        before = server_hits(server)
        shard0 = [p for i, p in enumerate(paths) if (i // 4) % 2 == 0]

        cluster = Cluster(os.path.join(tmp, "slurm"))
        try:
            cluster.start()
            os.makedirs(os.path.join(many, "reports"))
            os.makedirs(os.path.join(many, "logs"))
            imgdl = shlex.quote(ARGS.imgdl)
            task = os.path.join(many, "task.sh")
            with open(task, "w") as f:  # each start of a task writes its own report
                f.write("#!/bin/sh\n"
                        f"{imgdl} {' '.join(common)} --shard auto --shard-block 4 "
                        "--report reports/shard-$SLURM_ARRAY_TASK_ID-run-${SLURM_RESTART_COUNT:-0}.json\n"
                        "rc=$?\n[ $rc -le 1 ] || exit $rc\n")
            array = cluster.sbatch("--array=0-1", "--requeue", "-D", many,
                                   "-o", os.path.join(many, "logs", "%A_%a.out"), task)
            merge = cluster.sbatch(f"--dependency=afterok:{array}", "-D", many,
                                   "-o", os.path.join(many, "logs", "merge.out"), "--wrap",
                                   f"{imgdl} merge reports/shard-0-run-1.json reports/shard-1-run-0.json "
                                   "--report report.json; echo $? > merge.rc")

            # Task 0 is killed (SIGTERM, then requeued) once a few of its URLs have been asked for.
            def fetched(hits):
                return sum(hits.get(p, 0) - before.get(p, 0) for p in shard0)
            wait_for(lambda: fetched(server_hits(server)) >= 5, 30, "task 0 to be under way")
            cluster.run(["scontrol", "requeue", f"{array}_0"])
            cluster.wait_for_jobs([array, merge], timeout=90)
        finally:
            cluster.stop()
        hits = server_hits(server)

    logs = ""
    for name in sorted(os.listdir(os.path.join(many, "logs"))):
        with open(os.path.join(many, "logs", name), errors="replace") as f:
            logs += f"--- {name}\n{f.read()}"
    reports = sorted(os.listdir(os.path.join(many, "reports")))
    check(reports == ["shard-0-run-0.json", "shard-0-run-1.json", "shard-1-run-0.json"],
          "task 0 did not run twice (killed, then requeued) and task 1 once", reports, logs)
    with open(os.path.join(many, "reports", "shard-0-run-0.json")) as f:
        killed = json.load(f)
    check(killed["interrupted"] is True and killed["exit_code"] == 143, "the killed run's report", killed, logs)
    finished = {r["url"] for r in killed["results"] if r["status"] == "ok"}
    check(0 < len(finished) < 12, f"task 0 was killed with {len(finished)} of its 12 URLs done: not mid-run",
          killed["results"])
    for r in killed["results"]:
        path = r["url"].split("//", 1)[1].split("/", 1)[1].split("?")[0]
        if r["url"] in finished:
            check(hits["/" + path] - before.get("/" + path, 0) == 1, f"/{path} finished before the kill and was "
                  "fetched again", hits)
    with open(os.path.join(many, "reports", "shard-0-run-1.json")) as f:
        rerun = json.load(f)
    check({r["url"] for r in rerun["results"] if r.get("earlier_run")} == finished and
          len(rerun["results"]) == 12 and all(r["status"] == "ok" for r in rerun["results"]),
          "the requeued run did not take what was done from its journal and fetch the rest", rerun["results"])
    check(all(hits.get(p, 0) - before.get(p, 0) >= 1 for p in paths), "a URL was never fetched", hits)
    with open(os.path.join(many, "merge.rc")) as f:
        check(int(f.read()) == 0, "imgdl merge's exit status is not the one-process run's (0)", logs)
    with open(os.path.join(one, "report.json")) as f:
        expected = comparable(json.load(f))
    with open(os.path.join(many, "report.json")) as f:
        merged = comparable(json.load(f))
    check(merged == expected, "the merged report differs from the one-process run's",
          json.dumps(merged, indent=1)[:3000], json.dumps(expected, indent=1)[:3000])
    check(files_of(os.path.join(many, "out")) == files_of(os.path.join(one, "out")),
          "the files differ from the one-process run's (names or sha256)",
          sorted(os.listdir(os.path.join(many, "out"))), sorted(os.listdir(os.path.join(one, "out"))))
    print(f"task 0 killed with {len(finished)} of 12 done; "
          f"{fetched_again(hits, before, shard0)} of its URLs fetched twice (in flight at the kill)")


def fetched_again(hits, before, paths):
    return sum(1 for p in paths if hits.get(p, 0) - before.get(p, 0) > 1)


SCENARIOS = {
    "array_shards_merge_to_one_run": scenario_array_shards_merge_to_one_run,
    "requeued_task_fetches_nothing_twice": scenario_requeued_task_fetches_nothing_twice,
}


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgdl", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    ARGS = parser.parse_args()
    ARGS.imgdl = os.path.abspath(ARGS.imgdl)
    ARGS.server = os.path.abspath(ARGS.server)
    tmp = tempfile.mkdtemp(prefix=f"imgdl-slurm-{ARGS.scenario}-")
    os.chmod(tmp, 0o755)  # slurmd's job steps may run as another user than this process's
    passed = False
    try:
        SCENARIOS[ARGS.scenario](tmp)
        passed = True
        print(f"PASS {ARGS.scenario}")
    except Skip as e:
        print(f"SKIP {ARGS.scenario}: {e}")
        shutil.rmtree(tmp, ignore_errors=True)
        return SKIP
    except CheckFailed as e:
        print(f"FAIL {ARGS.scenario}: {e}\n(work dir kept: {tmp})")
    finally:
        if passed and not ARGS.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
