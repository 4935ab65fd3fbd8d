#!/usr/bin/env python3
"""Start-up time of the release binary: from exec until both listeners
(SMTP 127.0.0.1:2525, HTTP 127.0.0.1:8080) accept connections.

Run from the repository: `cargo build --release && python3 benches/startup.py [RUNS]`.
Each run starts on an empty data folder (so the schema is created) and stops
with SIGTERM; the figure printed is milliseconds, median/min/max.
"""
import os, signal, socket, statistics, subprocess, sys, tempfile, time

BINARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "registrar")


def accepting(port):
    with socket.socket() as probe:
        probe.settimeout(0.05)
        try:
            probe.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as work:
            started = time.perf_counter()
            daemon = subprocess.Popen([BINARY], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = started + 10
                while not (accepting(2525) and accepting(8080)):
                    if time.perf_counter() > deadline or daemon.poll() is not None:
                        sys.exit("the daemon did not come up (is something else on 2525/8080?)")
                    time.sleep(0.0005)
                times.append((time.perf_counter() - started) * 1000)
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=30)
    print(f"start-up to both listeners bound, {runs} runs on a fresh data folder: "
          f"median {statistics.median(times):.1f} ms, min {min(times):.1f} ms, max {max(times):.1f} ms")


if __name__ == "__main__":
    main()
