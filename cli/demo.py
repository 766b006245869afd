"""`make demo`: a hub and four centre nodes on loopback, end to end.

Runs only the public command-line tool, as separate processes, exactly as a
user would: init the hub, serve it, invite each centre, enrol and serve its
node, add the sample listings (deploy/samples/<centre>/*.json) at their
centres, sync every node twice (push, then pick up the others' listings), and
print HQ's aggregated view, the link health, a Tel Aviv listing as Daejeon
sees it, the figures, and the staff console's addresses with a one-time code for
an account at HQ and at Daejeon. Data is left in ./demo-data for exploring; the servers stop
at the end (pass --keep to leave them running).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "deploy" / "samples"
TB = [sys.executable, "-m", "cli.main"]
# Every server started, so that none outlives the demo whatever fails.
STARTED: list[subprocess.Popen[bytes]] = []


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def run(*args: str, show: bool = True) -> str:
    shown = "techbridge " + " ".join(a if " " not in a and len(a) < 60 else repr(a[:57] + "...") for a in args)
    if show:
        print(f"$ {shown}", flush=True)
    proc = subprocess.run([*TB, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if show:
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        if not show:
            sys.stderr.write(proc.stderr)
        raise SystemExit(f"demo: `{shown}` failed with exit code {proc.returncode}")
    return proc.stdout


def serve(role: str, data: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    addr = data / "run" / "address"
    addr.unlink(missing_ok=True)
    with open(log, "wb") as f:
        proc = subprocess.Popen([*TB, role, "serve", "--data", str(data), *extra], cwd=ROOT, stdout=f, stderr=f)
    STARTED.append(proc)
    deadline = time.monotonic() + 30
    while not addr.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"demo: {role} in {data} did not start; see {log}")
        time.sleep(0.1)
    shown = log.relative_to(ROOT) if log.is_relative_to(ROOT) else log
    print(f"   {role} {data.name} serving on {addr.read_text().strip()} (log: {shown})")
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default=str(ROOT / "demo-data"), help="where to put the sites (wiped first)")
    ap.add_argument("--keep", action="store_true", help="leave the servers running at the end")
    a = ap.parse_args()
    base = Path(a.dir).resolve()
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        step("HQ: create and start the hub")
        hub = base / "hq"
        run("hub", "init", "--data", str(hub), "--listen", "127.0.0.1:0")
        procs.append(serve("hub", hub, base / "hq.log"))
        hub_addr = (hub / "run" / "address").read_text().strip()

        centres = json.loads((SAMPLES / "centres.json").read_text())
        for c in centres:
            step(f"{c['name']}: invite, enrol and start the node")
            token = (
                run(
                    "hub",
                    "invite",
                    "--data",
                    str(hub),
                    "--centre",
                    c["id"],
                    "--name",
                    c["name"],
                    "--country",
                    c["country"],
                )
                .strip()
                .splitlines()[-1]
            )
            run("node", "init", "--data", str(base / c["id"]), "--hub", hub_addr, "--token", token)
            # Toledo's link stays down for the demo: it syncs only when told (sync now).
            extra = ("--sync-every", "0", "--no-live") if c["id"] == "toledo" else ("--sync-every", "30s")
            procs.append(serve("node", base / c["id"], base / f"{c['id']}.log", *extra))

        step("Centres add their listings (each signed by its centre's key)")
        for c in centres:
            for f in sorted((SAMPLES / c["id"]).glob("*.json")):
                run("listing", "add", "--data", str(base / c["id"]), "--file", str(f.relative_to(ROOT)))

        step("Every node syncs with the hub (round 1 pushes, round 2 brings the others' listings)")
        for _ in range(2):
            for c in centres:
                run("sync", "now", "--data", str(base / c["id"]))

        step("HQ validates and features Tel Aviv's listings; Tel Aviv publishes one")
        ta_ids = [
            d["id"]
            for d in json.loads(
                run("listing", "list", "--data", str(hub), "--centre", "tel-aviv", "--json", show=False)
            )
        ]
        for rid in ta_ids:
            run("listing", "validate", "--data", str(hub), rid, "--json", show=False)
        run(
            "listing",
            "edit",
            "--data",
            str(hub),
            ta_ids[0],
            "--set",
            "tags=agritech,water",
            "--set",
            "featured=true",
            "--json",
            show=False,
        )
        print(f"   validated {len(ta_ids)} listings and featured {ta_ids[0]} at HQ")
        run("sync", "now", "--data", str(base / "tel-aviv"))
        run("listing", "publish", "--data", str(base / "tel-aviv"), ta_ids[0], "--json", show=False)
        print(f"   Tel Aviv published {ta_ids[0]}")

        step("Toledo's link is down: it withdraws a listing that HQ publishes; both changes meet at its next sync")
        to_id = json.loads(run("listing", "list", "--data", str(hub), "--centre", "toledo", "--json", show=False))[0][
            "id"
        ]
        run("listing", "validate", "--data", str(hub), to_id, "--json", show=False)
        run("sync", "now", "--data", str(base / "toledo"), show=False)
        run("listing", "withdraw", "--data", str(base / "toledo"), to_id, "--json", show=False)
        run("listing", "publish", "--data", str(hub), to_id, "--json", show=False)
        print(f"   Toledo withdrew {to_id}; HQ published it")
        for c in centres:
            run("sync", "now", "--data", str(base / c["id"]), show=False)
        run("conflicts", "list", "--data", str(hub))

        step("Daejeon's offer is anonymous: its client stays at Daejeon. HQ validates it, Daejeon publishes it")
        offer = next(
            d["id"]
            for d in json.loads(run("listing", "list", "--data", str(hub), "--centre", "daejeon", "--json", show=False))
            if d["title"].startswith("Edge AI chip")
        )
        run("listing", "validate", "--data", str(hub), offer, "--json", show=False)
        run("sync", "now", "--data", str(base / "daejeon"), show=False)
        run("listing", "publish", "--data", str(base / "daejeon"), offer, "--json", show=False)
        print(f"   offer {offer} published by Daejeon")

        step("HQ registers a Shenzhen firm; the firm sends a request through Brussels, addressed to Daejeon")
        key = base / "shenzhen-robotics.key"
        run(
            "firm",
            "register",
            "--data",
            str(hub),
            "--name",
            "Shenzhen Robotics Ltd",
            "--country",
            "CN",
            "--size",
            "medium",
            "--sectors",
            "manufacturing",
            "--contact",
            "Li Wei, bd@shenzhen-robotics.example",
            "--out",
            str(key),
        )
        for c in centres:
            run("sync", "now", "--data", str(base / c["id"]), show=False)
        brussels = (base / "brussels" / "run" / "enrol_address").read_text().strip()
        request_file = SAMPLES / "requests" / "machine-vision-partner.json"
        rid = (
            run(
                "request",
                "submit",
                "--node",
                brussels,
                "--firm-key",
                str(key),
                "--file",
                str(request_file.relative_to(ROOT)),
            )
            .strip()
            .splitlines()[-1]
        )

        step("The firm expresses interest in Daejeon's offer, through Brussels; it is routed to Daejeon")
        interest = (
            run(
                "interest",
                "send",
                "--node",
                brussels,
                "--firm-key",
                str(key),
                "--to",
                offer,
                "--message",
                "We would like to license the chip for seam tracking",
                "--consent",
            )
            .strip()
            .splitlines()[-1]
        )
        for c in ("brussels", "daejeon", "brussels"):
            run("sync", "now", "--data", str(base / c), show=False)
        run("interest", "list", "--data", str(base / "daejeon"))
        run("request", "show", "--data", str(base / "daejeon"), rid)

        step("Daejeon accepts the interest and introduces its client; the firm sees who it is")
        run("interest", "accept", "--data", str(base / "daejeon"), interest, "--json", show=False)
        run("interest", "introduce", "--data", str(base / "daejeon"), interest, "--json", show=False)
        print(f"   interest {interest}: accepted, introduced")
        for c in ("daejeon", "brussels"):
            run("sync", "now", "--data", str(base / c), show=False)
        run("interest", "show", "--node", brussels, "--firm-key", str(key), interest)

        step("HQ's aggregated view of the whole network")
        run("listing", "list", "--data", str(hub))
        run("sync", "status", "--data", str(hub))

        step("Daejeon holds Tel Aviv's listings, verified against Tel Aviv's key")
        listings = json.loads(
            run("listing", "list", "--data", str(base / "daejeon"), "--centre", "tel-aviv", "--json", show=False)
        )
        run("listing", "show", "--data", str(base / "daejeon"), listings[0]["id"])

        step("The network's figures for this year at HQ: counted from signed records, against HQ's targets")
        today = time.strftime("%Y-%m-%d", time.gmtime())
        year = today[:4]
        run(
            "target",
            "set",
            "--data",
            str(hub),
            "--centre",
            "daejeon",
            "--year",
            year,
            "--offers-published",
            "10",
            "--agreements",
            "2",
            "--events",
            "4",
            "--json",
            show=False,
        )
        run(
            "event",
            "add",
            "--data",
            str(base / "daejeon"),
            "--title",
            "Daejeon edge-AI matchmaking day",
            "--type",
            "matchmaking",
            "--date",
            today,
            "--firm-count",
            "14",
            "--json",
            show=False,
        )
        # Two rounds: Daejeon pushes its event, then pulls HQ's target.
        for _ in range(2):
            run("sync", "now", "--data", str(base / "daejeon"), show=False)
        run("report", "--data", str(hub), "--period", year)

        step("The staff console: every site serves one; HQ's curator reads Chinese, Daejeon's staff English")
        accounts = [(hub, "li.wei", "curator", "zh"), (base / "daejeon", "kim", "staff", "en")]
        for data, name, role, language in accounts:
            code = run(
                "staff", "add", "--data", str(data), "--name", name, "--role", role, "--language", language
            ).splitlines()[-1]
            url = (data / "run" / "web_url").read_text().strip()
            print(f"   {data.name}: open {url}welcome, set {name}'s password with the code {code}, then sign in")

        step("Done")
        print(f"The sites' data folders are in {base}.")
        if a.keep:
            print("Servers keep running; stop them with: pkill -f 'cli.main (hub|node) serve'")
            procs.clear()
        else:
            print("Start a site again with e.g.: .venv/bin/techbridge hub serve --data demo-data/hq")
    finally:
        if not a.keep:
            procs = list(STARTED)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "160")
    main()
