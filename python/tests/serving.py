"""A `hoist serve` child process for the attach tests: started with --json
on a fresh Unix socket (short path under /tmp, as sockets need) and an
HTTP port picked by the server, its events read from stdout, /v1/status
read over loopback, stopped and reaped by the test."""

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request


class Server:
    def __init__(self, cli, pipeline, *args, wait_ready=True, timeout=60):
        self.dir = tempfile.mkdtemp(prefix="hoist-py-", dir="/tmp")
        self.sock = os.path.join(self.dir, "s.sock")
        self.token = None
        if "--token-file" in args:
            i = args.index("--token-file")
            with open(args[i + 1], encoding="utf-8") as f:
                self.token = f.readline().strip()
        cmd = [str(cli), "serve", "--json", "--unix", self.sock, "--listen", "127.0.0.1:0",
               *map(str, args), str(pipeline)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buf = b""
        self.events = []
        listening = self.event("listening", 20)
        if listening is None:
            self.kill()
            raise RuntimeError(f"hoist serve did not start: {self.stderr()}")
        self.port = int(listening["http"].rsplit(":", 1)[1])
        if wait_ready and self.event("ready", timeout) is None:
            self.kill()
            raise RuntimeError(f"hoist serve did not get ready: {self.stderr()}")

    def event(self, name, timeout):
        """The next event called name (others are kept in self.events)."""
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                ev = json.loads(line)
                self.events.append(ev)
                if ev.get("event") == name:
                    return ev
            left = max(0.0, end - time.monotonic())
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self._buf += chunk

    def status(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/status", timeout=10) as r:
            return json.load(r)

    def clients(self):
        return self.status()["clients"]["attached"]

    def wait_clients(self, want, timeout=10):
        end = time.monotonic() + timeout
        while self.clients() != want:
            if time.monotonic() > end:
                raise AssertionError(f"server has {self.clients()} clients, want {want}")
            time.sleep(0.02)

    def post(self, path):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method="POST",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends sig and returns the exit code (-N for a signal)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
