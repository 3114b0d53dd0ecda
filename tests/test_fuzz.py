"""Runs the atheris fuzz target (fuzz/fuzz_packets.py) for a bounded number of inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyrad import packet

from tests.support.packets import ACCESS_REQUEST, MA, attr, build, ma_attr, over_4096, sign

pytestmark = pytest.mark.engine_neutral   # packet checks under a fuzzer

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "fuzz" / "fuzz_packets.py"
FUZZ_SECRET = b"fuzz-secret"  # the target's secret: seeds that verify lead it past the authenticity checks
RUNS = 20000


def seeds(dictionary) -> dict[str, bytes]:
    """Valid requests of each kind the server takes, plus a few near misses."""
    auth = packet.AuthPacket(secret=FUZZ_SECRET, dict=dictionary, User_Name="ana")
    auth["Calling-Station-Id"] = "AA-BB-CC-00-00-01"
    auth["User-Password"] = auth.PwCrypt("anapass123")
    auth["Proxy-State"] = b"proxy"
    auth.add_message_authenticator()
    acct = packet.AcctPacket(secret=FUZZ_SECRET, dict=dictionary, User_Name="ana")
    acct["Acct-Status-Type"] = "Interim-Update"
    acct["Acct-Session-Id"] = "5f3a-0001"
    acct["Acct-Input-Octets"] = 123456
    acct["Acct-Input-Gigawords"] = 2
    acct["Framed-IP-Address"] = "10.0.0.9"
    acct["Class"] = b"conecta:42"
    acct["Acct-Terminate-Cause"] = "User-Request"
    status = packet.AcctPacket(code=packet.StatusServer, secret=FUZZ_SECRET, dict=dictionary)
    access = auth.RequestPacket()
    wispr = (14122).to_bytes(4, "big") + bytes([7, 6]) + (1_000_000).to_bytes(4, "big")  # WISPr-Bandwidth-Max-Up
    return {
        "access-request": access,
        "accounting-request": acct.RequestPacket(),
        "status-server": status.RequestPacket(),
        "padded": access + b"\x00" * 8,
        "vendor-specific": sign(build(ACCESS_REQUEST, [ma_attr(), attr(26, wispr), attr(1, b"ana")]), FUZZ_SECRET),
        "two-ma": sign(build(ACCESS_REQUEST, [ma_attr(), attr(MA, bytes(16))]), FUZZ_SECRET),
        "over-4096": over_4096(),
        "200-attributes": sign(build(ACCESS_REQUEST, [ma_attr(), *[attr(33, b"p")] * 199]), FUZZ_SECRET),
    }


def test_fuzz_target_runs_clean(tmp_path, dictionary):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in seeds(dictionary).items():
        (corpus / name).write_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, str(TARGET), f"-runs={RUNS}", "-max_len=5000", "-len_control=0", "-timeout=10", "-seed=1",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"Done {RUNS} runs" in run.stderr
    assert not list(tmp_path.glob("crash-*"))
