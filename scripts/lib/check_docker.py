"""Checks that docker/compose.yaml (normalized by `docker-compose config`, on stdin) and
docker/Dockerfile are true to the binaries' flags.

Usage: docker-compose config | python3 check_docker.py BIN_DIR DOCKERFILE
Exit code 1 with one line per problem when anything is off.
"""
import json
import os
import re
import subprocess
import sys

import yaml


def help_text(bin_dir, argv):
    """The --help of `argv` (a binary and its subcommands), or None when it fails."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("DB_") or k == "DATABASE_URL")}
    path = os.path.join(bin_dir, argv[0])
    run = subprocess.run([path, *argv[1:], "--help"], capture_output=True, text=True,
                         env=env, check=False)
    return run.stdout if run.returncode == 0 else None


def seconds(text):
    """Seconds of a compose duration such as `30s`, `1m30s` or `500ms`."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text))


def main():
    bin_dir, dockerfile = sys.argv[1], sys.argv[2]
    if not os.path.exists(os.path.join(bin_dir, "admin-cli")):
        print(f"check-docker: no binaries in {bin_dir}: build them first (cargo build -p "
              "admin-cli -p sim-api -p worker), or set SIM_BIN_DIR to their folder",
              file=sys.stderr)
        sys.exit(1)
    compose = yaml.safe_load(sys.stdin)
    problems = []
    text = open(dockerfile, encoding="utf-8").read()

    entrypoint = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, re.M)
    image_entrypoint = json.loads(entrypoint.group(1)) if entrypoint else []
    copied = set()
    for m in re.finditer(r"^COPY --from=build (.+) /usr/local/bin/\s*$", text, re.M):
        copied.update(os.path.basename(p) for p in m.group(1).split())
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    if not users or users[-1] in ("root", "0"):
        problems.append(f"{dockerfile}: the image must end with a non-root USER")
    built = set(re.findall(r"-p ([\w-]+)", "".join(re.findall(r"cargo build.*", text))))
    for name in sorted(copied):
        if not os.path.exists(os.path.join(bin_dir, name)):
            problems.append(f"{dockerfile}: copies {name}, which the workspace does not build")
        if name not in built:
            problems.append(f"{dockerfile}: copies {name} but does not build it (-p {name})")

    helps = {}
    for name, service in sorted(compose.get("services", {}).items()):
        if "build" not in service:
            continue
        argv = list(service.get("entrypoint") or image_entrypoint)
        argv += list(service.get("command") or [])
        where = f"compose service {name}"
        if not argv or argv[0] not in copied:
            problems.append(f"{where}: runs {argv[:1]}, which the image does not hold")
            continue
        helps[name] = help_text(bin_dir, argv)
        if helps[name] is None:
            problems.append(f"{where}: `{' '.join(argv)} --help` fails: not a valid command")
            continue
        for var in sorted(service.get("environment") or {}):
            if f"env: {var}" not in helps[name]:
                problems.append(f"{where}: {var} is not an environment variable of "
                                f"`{' '.join(argv)}`")
        if argv[0] == "worker" and len(argv) == 1:
            # Docker's SIGKILL must come after the worker's grace period and its hand-back.
            grace = seconds(str((service.get("environment") or {}).get("WORKER_GRACE", "10s")))
            stop = seconds(str(service.get("stop_grace_period", "10s")))
            if stop < grace + 5:
                problems.append(f"{where}: stop_grace_period {stop:g} s leaves no time after "
                                f"WORKER_GRACE {grace:g} s to hand tasks back")
        if argv[0] in ("sim-api", "worker"):
            test = (service.get("healthcheck") or {}).get("test") or []
            if len(test) < 2 or test[0] != "CMD" or test[1] not in copied:
                problems.append(f"{where}: needs a healthcheck that runs one of our binaries")
            elif help_text(bin_dir, test[1:]) is None:
                problems.append(f"{where}: healthcheck `{' '.join(test[1:])}` is not a valid "
                                "command")

    for var in re.findall(r"^ENV\s+(\w+)=", text, re.M):
        if not any(h and f"env: {var}" in h for h in helps.values()):
            problems.append(f"{dockerfile}: ENV {var} is read by none of the services")

    for p in problems:
        print(f"check-docker: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"check-docker: {len(helps)} services true to the binaries' flags")


if __name__ == "__main__":
    main()
