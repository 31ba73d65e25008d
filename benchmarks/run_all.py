"""Run every benchmark in this folder; each prints its table and saves JSON under results/.

A benchmark against a peer tool is skipped, with a message, where the peer is not installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# benchmark -> the peer package it compares against
PEERS = {"bench_peer.py": "spikingjelly", "bench_peer_seeds.py": "spikingjelly"}

for script in sorted(HERE.glob("bench_*.py")):
    peer = PEERS.get(script.name)
    if peer is not None and importlib.util.find_spec(peer) is None:
        print(f"== {script.name}: skipped, {peer} is not installed ('make peer-bench' installs it)", flush=True)
        continue
    print(f"== {script.name}", flush=True)
    subprocess.run([sys.executable, str(script)], check=True)
