"""The deploy files, checked as far as this machine allows (no container engine or cluster
runs here): the YAML parses, Kubernetes manifests pass the API's schemas, systemd accepts the
units, every `techbridge` command they run parses with the CLI's own parser, the image
installs the way `make venv` does and copies every package, and the project installed as
the image installs it (not editable, from another folder) serves and answers its health
check."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from cli.main import build_parser
from tests.harness import ROOT, wait_until

DEPLOY = ROOT / "deploy"
K8S = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
# A `techbridge` command inside a shell line: up to the shell's next operator.
COMMAND = re.compile(r"(?:^|[\s;&|{(\"'])(?:/opt/techbridge/bin/)?techbridge\s+([^;&|}()\n]+)")


def commands_in_shell(line: str) -> list[list[str]]:
    """The argument lists of the `techbridge` commands in a shell line (substitutions such
    as "$(...)" and "$VAR" stand for a value)."""
    found = []
    for inner in re.findall(r"\$\$?\(([^)]*)\)", line):  # the commands inside substitutions too
        found += commands_in_shell(inner)
    line = re.sub(r"\$\$?\([^)]*\)", "VALUE", line).replace("%i", "tel-aviv")
    line = re.sub(r"\d*>&?\S*", "", line)  # redirections
    for m in COMMAND.finditer(line):
        found.append(shlex.split(m.group(1)))
    return found


def shell_parses(line: str) -> None:
    """One command line that `sh -n` reads without a syntax error."""
    assert "\n" not in line.strip(), f"a shell line split over lines runs as several commands: {line!r}"
    r = subprocess.run(["sh", "-n", "-c", line], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (line, r.stderr)


def parses(argv: list[str]) -> None:
    argv = [re.sub(r"\$\{?\w+\}?", "/var/lib/techbridge/site", a) for a in argv]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"`techbridge {' '.join(argv)}` does not parse") from exc


def compose() -> dict[str, object]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_every_yaml_file_parses() -> None:
    for path in [DEPLOY / "compose.yaml", DEPLOY / "prometheus.yml", *K8S]:
        assert list(yaml.safe_load_all(path.read_text())), path


def test_every_command_the_deploy_files_run_exists() -> None:
    argvs: list[list[str]] = []
    # compose: a service's command runs under the image's entrypoint (techbridge) unless it is a shell's.
    services = compose()["services"]
    assert isinstance(services, dict)
    for name, service in services.items():
        if service.get("image") == "postgres:15" or str(service.get("image", "")).startswith("prom/"):
            continue
        command = service.get("command")
        if service.get("entrypoint") == ["sh", "-c"]:
            for line in command:
                shell_parses(line.replace("$$", "$"))  # compose turns $$ into $
                argvs += commands_in_shell(line)
        elif command:
            argvs.append([str(a) for a in command])
        assert command, name
    # Kubernetes: containers' args (entrypoint techbridge) and shell commands.
    for path in K8S:
        for doc in yaml.safe_load_all(path.read_text()):
            spec = doc.get("spec", {}).get("template", {}).get("spec", {})
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                if "args" in container:
                    argvs.append([str(a) for a in container["args"]])
                for line in container.get("command", [])[2:]:
                    shell_parses(line)
                    argvs += commands_in_shell(line)
    # systemd: ExecStart and ExecStartPost.
    for unit in UNITS:
        for line in unit.read_text().splitlines():
            if line.startswith(("ExecStart=", "ExecStartPost=")):
                argvs += commands_in_shell(line.split("=", 1)[1])
    # The image's health check.
    health = re.search(r"HEALTHCHECK .*?CMD (\[.*?\])$", (DEPLOY / "Dockerfile").read_text(), re.S | re.M)
    assert health is not None
    argvs += commands_in_shell(json.loads(health.group(1))[-1])
    seen = {" ".join(a[:2]) for a in argvs}
    assert {"hub init", "hub replica", "hub serve", "hub invite", "node init", "node serve", "health --data"} <= seen
    for argv in argvs:
        parses(argv)


def test_the_image_installs_as_make_does_and_copies_every_package() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) == 2  # a build stage and a run stage
    for step in ("pip install --quiet -r requirements.lock", "pip install --quiet --no-deps"):
        assert step in dockerfile and step in makefile
    assert re.search(r"^USER techbridge$", dockerfile, re.M) and "useradd --system --uid 10001" in dockerfile
    assert re.search(r'^ENTRYPOINT \["techbridge"\]$', dockerfile, re.M)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    for package in packages:
        assert re.search(rf"^COPY {package} \./{package}$", dockerfile, re.M), package
    assert pyproject["project"]["scripts"]["techbridge"] == "cli.main:main"


def test_the_compose_network_has_what_an_operator_expects() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    hubs = [s for s in services.values() if s.get("command", [None])[:2] == ["hub", "serve"]]
    nodes = [s for s in services.values() if s.get("command", [None])[:2] == ["node", "serve"]]
    assert len(hubs) == 2 and len(nodes) == 2
    for service in hubs + nodes:
        assert "--metrics-listen" in service["command"]
    scraped = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {t for job in scraped["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert targets == {"hub-a:9100", "hub-b:9100", "tel-aviv:9100", "daejeon:9100"}


def test_the_kubernetes_manifests_pass_the_api_schemas() -> None:
    validate = Path(sys.executable).with_name("kubernetes-validate")
    r = subprocess.run(
        [str(validate), "--strict", "-k", "1.30.0", *map(str, K8S)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
    docs = [d for p in K8S for d in yaml.safe_load_all(p.read_text())]
    hub = next(d for d in docs if d["kind"] == "Deployment")
    assert hub["spec"]["replicas"] >= 2
    container = hub["spec"]["template"]["spec"]["containers"][0]
    for probe in ("livenessProbe", "readinessProbe"):
        assert "grpc" in container[probe]
    node = next(d for d in docs if d["kind"] == "StatefulSet")
    assert node["spec"]["replicas"] == 1 and node["spec"]["volumeClaimTemplates"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    """`systemd-analyze verify`, with the program where this checkout has it."""
    techbridge = Path(sys.executable).with_name("techbridge")
    for unit in UNITS:
        name = unit.name.replace("@.", "@tel-aviv.")
        text = unit.read_text().replace("/opt/techbridge/bin/techbridge", str(techbridge))
        (tmp_path / name).write_text(text)
        for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "User=techbridge", "ReadWritePaths="):
            assert setting in text, (unit.name, setting)
    r = subprocess.run(
        ["systemd-analyze", "verify", *map(str, sorted(tmp_path.glob("*.service")))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_the_project_installed_as_the_image_installs_it_serves(tmp_path: Path) -> None:
    """`pip install --no-deps .` (not editable) into a folder of its own, run from elsewhere:
    the templates, migrations and translations travel with the packages."""
    target, source = tmp_path / "installed", tmp_path / "source"
    # What the image's build stage copies, in a folder of its own (the build writes beside it).
    for name in re.findall(r"^COPY (?!--)(\S+) \./", (DEPLOY / "Dockerfile").read_text(), re.M):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("requirements.lock", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    build = subprocess.run(
        [*pip, "--target", str(target), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    check = subprocess.run(
        [sys.executable, "-c", "import console, sync.store.migrate as m; print(console.__file__, m.MIGRATIONS)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0 and str(target) in check.stdout and str(ROOT) not in check.stdout, check
    tb = [sys.executable, "-m", "cli.main"]
    init = subprocess.run(
        [*tb, "hub", "init", "--data", "hq", "--listen", "127.0.0.1:0"], cwd=elsewhere, env=env, capture_output=True
    )
    assert init.returncode == 0, init.stderr
    log = open(tmp_path / "hub.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([*tb, "hub", "serve", "--data", "hq"], cwd=elsewhere, env=env, stdout=log, stderr=log)
    try:
        assert wait_until(lambda: (elsewhere / "hq" / "run" / "address").exists() or proc.poll() is not None)
        health = subprocess.run(
            [*tb, "health", "--data", "hq"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=30
        )
        assert (health.returncode, health.stdout.strip()) == (0, "SERVING"), health.stderr
        web = (elsewhere / "hq" / "run" / "web_url").read_text().strip()
        import urllib.request

        with urllib.request.urlopen(f"{web}login", timeout=10) as page:  # a template and the translations
            assert page.status == 200 and b"<form" in page.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
