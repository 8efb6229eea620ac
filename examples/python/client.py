#!/usr/bin/env python3
"""Example client of the sim.v1 gRPC API.

Logs in, submits a builtin proton simulation, watches its progress until it ends, and prints
a summary of its results: the estimators and pages, and the depth-dose maximum and R80.

The stubs are generated from proto/ by grpcio-tools (see `run`, which does it). Usage:

    SIM_PASSWORD=... python client.py --addr 127.0.0.1:50051 --user demo

Exit status 0 means the simulation completed and its results were read; on any failure it
prints one line, `error: <what failed>: <why> (<gRPC code>)`, and exits with 1.
"""

import argparse
import contextlib
import json
import os
import sys

import grpc

from sim.v1 import auth_pb2, auth_pb2_grpc, simulation_pb2, simulation_pb2_grpc


def r80(z, dose):
    """Depth beyond the maximum where the dose falls to 80% of it (linear interpolation)."""
    peak = max(range(len(dose)), key=dose.__getitem__)
    target = 0.8 * dose[peak]
    for i in range(peak + 1, len(dose)):
        if dose[i] < target:
            d0, d1 = dose[i - 1], dose[i]
            return z[i - 1] + (d0 - target) / (d0 - d1) * (z[i] - z[i - 1])
    return None


class Failed(Exception):
    """A step that failed, with what the server said; printed as one line."""


@contextlib.contextmanager
def step(what):
    """Turns a gRPC error inside the block into `Failed("<what>: <details> (<CODE>)")`."""
    try:
        yield
    except grpc.RpcError as e:
        raise Failed(f"{what}: {e.details()} ({e.code().name})") from None


def main():
    try:
        run()
    except Failed as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("error: interrupted")


def run():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--addr", default=os.environ.get("SIM_API_ADDR", "127.0.0.1:50051"),
                   help="host:port of sim-api")
    p.add_argument("--user", default=os.environ.get("SIM_USER", "demo"))
    p.add_argument("--energy", type=float, default=150.0, help="beam energy, MeV")
    p.add_argument("--ntasks", type=int, default=2)
    p.add_argument("--primaries", type=int, default=10000)
    args = p.parse_args()
    password = os.environ.get("SIM_PASSWORD")
    if not password:
        raise Failed("set SIM_PASSWORD to the user's password")
    addr = args.addr.removeprefix("http://")

    with grpc.insecure_channel(addr, compression=grpc.Compression.Gzip) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        sims = simulation_pb2_grpc.SimulationServiceStub(channel)
        with step("login failed"):
            tokens = auth.Login(auth_pb2.LoginRequest(username=args.user, password=password))
        md = [("authorization", f"Bearer {tokens.access_token}")]

        editor = {"beam": {"energy_mev": args.energy}, "scoring": {"z_bins": 400, "r_bins": 50}}
        with step("submit failed"):
            job_id = sims.Submit(simulation_pb2.SubmitRequest(
                title=f"{args.energy} MeV protons (python example)",
                sim_type=simulation_pb2.SIM_TYPE_BUILTIN,
                editor_json=json.dumps(editor),
                ntasks=args.ntasks,
                primaries=args.primaries,
            ), metadata=md).job_id
        print(f"submitted {job_id}")

        state = None
        with step(f"watching {job_id} failed"):
            for status in sims.Watch(simulation_pb2.WatchRequest(job_id=job_id), metadata=md):
                sim = status.simulation
                state = simulation_pb2.JobState.Name(sim.job_state)
                done = sum(t.state == simulation_pb2.TASK_STATE_COMPLETED for t in status.tasks)
                print(f"{state:<20} {sim.simulated_primaries:>8}/{sim.primaries} primaries, "
                      f"tasks done {done}/{len(status.tasks)}", flush=True)
        if state != "JOB_STATE_COMPLETED":
            raise Failed(f"the simulation ended {state}")

        with step("listing the estimators failed"):
            listing = sims.ListEstimators(simulation_pb2.ListEstimatorsRequest(job_id=job_id),
                                          metadata=md)
        for est in listing.estimators:
            for page in est.pages:
                print(f"  {est.name:<12} page {page.page_number}: {page.value_count} values, "
                      f"{page.value_name} [{page.value_unit}]")

        info, values = None, []
        with step("reading the results failed"):
            for chunk in sims.GetResults(simulation_pb2.GetResultsRequest(
                    job_id=job_id, estimators=["depth_dose"], pages="0"), metadata=md):
                if chunk.HasField("page"):
                    info = chunk.page
                values.extend(chunk.values)
        if info is None or not values:
            raise Failed("no depth_dose page in the results")
        axis = info.axes[0]
        width = (axis.max - axis.min) / axis.bins
        z = [axis.min + (i + 0.5) * width for i in range(len(values))]
        peak = max(range(len(values)), key=values.__getitem__)
        r = r80(z, values)
        print(f"depth-dose: {len(values)} bins, maximum {values[peak]:.4g} {info.value_unit} "
              f"at {z[peak]:.2f} {axis.unit}")
        print(f"R80 = {r:.2f} {axis.unit}" if r is not None else "R80: not reached")


if __name__ == "__main__":
    main()
