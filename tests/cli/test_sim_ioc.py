import select
import subprocess
import sys

import pytest

from xfusion_bluesky.cli.main import build_parser


def test_sim_ioc_verb_defaults_to_loopback():
    args = build_parser().parse_args(["sim-ioc", "--prefix", "XF:A:"])
    assert args.interfaces == ["127.0.0.1"]
    assert args.prefix == "XF:A:"


@pytest.mark.slow
@pytest.mark.epics
def test_sim_ioc_verb_serves_channel_access(ca_spare_port):
    from ophyd import EpicsSignal

    command = [
        sys.executable,
        "-m",
        "xfusion_bluesky",
        "sim-ioc",
        "--prefix",
        "XF:CLI:",
    ]
    ioc = subprocess.Popen(
        [*command, "--port", ca_spare_port],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        # It says when it serves: one line, with the prefix, the PVs and the port.
        ready, _, _ = select.select([ioc.stdout], [], [], 60)
        assert ready, "sim-ioc printed nothing within 60 s"
        line = ioc.stdout.readline()
        assert line.startswith("sim IOC XF:CLI: serves "), line
        count = int(line.split(" serves ")[1].split()[0])
        assert count > 50, line
        assert f"port {ca_spare_port}" in line
        rate = EpicsSignal("XF:CLI:UHS:cam1:AcquirePeriod_RBV", name="rate")
        rate.wait_for_connection(timeout=30)
        assert rate.get() == pytest.approx(1 / 1.2e6)  # the power-on default
        model = EpicsSignal("XF:CLI:UHS:cam1:Model_RBV", name="model", string=True)
        assert model.get(timeout=5) == "HPV-X2"
        rate.destroy()
        model.destroy()
    finally:
        ioc.terminate()
        ioc.wait(10)
        ioc.stdout.close()
