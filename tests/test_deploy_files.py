"""The Dockerfile, docker-compose.yml and .env.example, checked statically.

Docker cannot run on the test machines (no daemon, no compose plugin), so these
tests parse the files: a multi-stage slim build, a non-root user, a /healthz
health check, and in compose exactly the Procfile's commands, the very lines
``tests/stack.py`` runs outside containers in the e2e tests.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orders.config import Settings
from orders.environ import ConfigError
from orders.production import require_safe_start
from tests.stack import WORKERS, procfile

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("release", "web", *WORKERS, "autoscaler")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; comments dropped, continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, "dangling line continuation"
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def stages() -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = {}
    current = None
    for instruction, args in dockerfile():
        if instruction == "FROM":
            parts = args.split()
            assert len(parts) == 3 and parts[1].upper() == "AS", f"unnamed stage: {args}"
            current = parts[2]
            result[current] = []
        if current is not None:
            result[current].append((instruction, args))
    return result


def args_of(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    return [a for i, a in stage if i == instruction]


def test_dockerfile_is_multi_stage_on_slim_python_311():
    build_args = dict(a.split("=", 1) for i, a in dockerfile() if i == "ARG" and "=" in a)
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", build_args["PYTHON_IMAGE"])
    all_stages = stages()
    assert list(all_stages) == ["build", "runtime"]
    for stage in all_stages.values():
        assert args_of(stage, "FROM")[0].startswith("${PYTHON_IMAGE} AS")


INSTALL = "/opt/venv/bin/pip install --require-hashes --no-deps --only-binary :all: -r runtime.txt"


def test_dockerfile_installs_the_hashed_runtime_lock_and_nothing_else():
    build = stages()["build"]
    assert args_of(build, "COPY") == ["requirements/runtime.txt ."]
    (run,) = args_of(build, "RUN")
    commands = [c.strip() for c in run.split("&&")]
    assert commands == ["python -m venv /opt/venv", INSTALL, "/opt/venv/bin/pip check"]
    runtime_stage = stages()["runtime"]
    assert "--from=build /opt/venv /opt/venv" in args_of(runtime_stage, "COPY")
    assert not any("pip install" in a for a in args_of(runtime_stage, "RUN"))


@pytest.mark.e2e  # installs from the package index: a minute or two
def test_the_image_install_step_gives_a_runtime_that_starts(tmp_path):
    """The build stage's RUN, word for word, into a fresh virtualenv here (there is no
    Docker daemon): hashes required, and what it installs starts the web (gunicorn loads
    the app), the consumers and the Procfile runner, with no test or bench package."""
    (run,) = args_of(stages()["build"], "RUN")
    venv = tmp_path / "venv"
    (tmp_path / "runtime.txt").write_text((ROOT / "requirements" / "runtime.txt").read_text())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for name in ("PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    built = subprocess.run(
        ["/bin/sh", "-c", run.replace("/opt/venv", str(venv))],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]

    bin_dir = venv / "bin"
    shop_env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "DATA_DIR": str(tmp_path / "data"),
        "SHOP_ENV": "development",  # the probe starts the laptop configuration
    }
    probe = "import wsgi, tasks, orders.worker, orders.autoscale, orders.procfile; print('ok')"
    checks = [
        [str(bin_dir / "python"), "-c", probe],
        [str(bin_dir / "gunicorn"), "wsgi:app", "-c", "gunicorn.conf.py", "--check-config"],
        [str(bin_dir / "huey_consumer"), "--help"],
    ]
    for argv in checks:
        result = subprocess.run(
            argv, cwd=ROOT, env=shop_env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-2000:])
    listed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    names = {line.split("==")[0].lower() for line in listed.split()}
    assert {"gunicorn", "huey", "gevent", "psycopg-binary", "opentelemetry-sdk"} <= names
    assert not {"pytest", "honcho", "playwright", "matplotlib", "aiohttp", "ruff"} & names


def test_the_image_runs_as_a_non_root_user():
    runtime = stages()["runtime"]
    users = args_of(runtime, "USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    creates = " ".join(args_of(runtime, "RUN"))
    assert "useradd --system --uid 10001 --gid shop" in creates
    assert users[-1] == "shop"
    # the user comes after everything that needs root, before the command
    order = [i for i, _ in runtime]
    assert order.index("USER") > max(i for i, x in enumerate(order) if x in ("RUN", "COPY"))


def test_healthcheck_probes_healthz_on_the_web_port():
    (check,) = args_of(stages()["runtime"], "HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert "/healthz" in argv[2] and "PORT" in argv[2]
    compile(argv[2], "<healthcheck>", "exec")  # the probe is valid Python


def test_the_default_command_is_the_procfile_web_line():
    (cmd,) = args_of(stages()["runtime"], "CMD")
    assert json.loads(cmd) == shlex.split(procfile()["web"])
    assert not args_of(stages()["runtime"], "ENTRYPOINT")  # compose picks the command


def test_dockerignore_keeps_secrets_and_local_state_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".git", ".venv", "instance"} <= ignored


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_service(compose):
    monitoring = {"prometheus", "alertmanager", "blackbox", "grafana"}  # test_monitoring_files
    assert set(compose["services"]) == {"redis", "postgres", *APP_SERVICES, *monitoring}
    assert set(compose["volumes"]) == {
        "shop-data",
        "redis-data",
        "postgres-data",
        "prometheus-data",
        "alertmanager-data",
        "grafana-data",
    }


def test_every_app_command_is_a_procfile_line_the_tests_run(compose):
    """The e2e tests start these same lines (tests/stack.py reads the Procfile)."""
    lines = procfile()
    for name in APP_SERVICES:
        command = compose["services"][name]["command"]
        if name == "release":
            assert command == ["sh", "-c", lines["release"]]
        else:
            assert command == shlex.split(lines[name]), name
    assert set(lines) == set(APP_SERVICES)
    for test in ("test_scale_out_e2e", "test_autoscale_e2e", "test_pipeline_e2e"):
        assert (ROOT / "tests" / "e2e" / f"{test}.py").exists()
    started = (ROOT / "tests" / "e2e" / "test_autoscale_e2e.py").read_text()
    assert '"autoscaler"' in started  # the one line Stack.up() does not start by default


def test_the_consumers_yield_the_cpu_to_the_web(compose):
    """One host, one backlog: the checkout keeps its latency, the backlog waits. Every
    consumer line of the Procfile runs at nice 10 (honcho, the e2e tests and the bench
    start these lines as they are), the web at the default; in compose, where nice only
    ranks processes inside one container, the consumers' containers get a low CPU weight
    too."""
    lines = procfile()
    for name in (*WORKERS, "autoscaler"):
        assert shlex.split(lines[name])[:3] == ["nice", "-n", "10"], name
    for name in ("web", "release"):
        assert "nice" not in lines[name]
    services = compose["services"]
    assert "cpu_shares" not in services["web"]  # Docker's default weight, 1024
    for name in (*WORKERS, "autoscaler"):
        assert 0 < services[name]["cpu_shares"] <= 256, name  # nice 10 weighs ~1/10


def test_redis_keeps_an_append_only_file_on_a_volume(compose):
    redis = compose["services"]["redis"]
    assert "--appendonly yes --appendfsync everysec" in " ".join(redis["command"])
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_postgres_has_a_volume_and_a_healthcheck(compose):
    postgres = compose["services"]["postgres"]
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_dependencies_wait_for_health_and_the_release_step(compose):
    services = compose["services"]
    assert services["release"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["release"]["restart"] == "no"
    for name in ("web", *WORKERS, "autoscaler"):
        needs = services[name]["depends_on"]
        assert needs["release"] == {"condition": "service_completed_successfully"}, name
        assert needs["postgres"]["condition"] == needs["redis"]["condition"] == "service_healthy"
    # the consumers start before the web (a consumer drops task names it does not know)
    for worker in WORKERS:
        assert services["web"]["depends_on"][worker]["condition"] == "service_started"


def test_workers_stop_gracefully_and_the_scheduler_is_single(compose):
    services = compose["services"]
    for name in (*WORKERS, "autoscaler"):
        assert services[name]["stop_signal"] == "SIGTERM"
        assert int(services[name]["stop_grace_period"].rstrip("s")) > 30  # consumer -t 30
        assert services[name]["healthcheck"] == {"disable": True}  # no HTTP in a worker
    assert services["scheduler"]["deploy"]["replicas"] == 1
    assert services["autoscaler"]["profiles"] == ["autoscale"]


def test_environment_comes_from_env_example(compose):
    for name in ("postgres", *APP_SERVICES):
        files = compose["services"][name]["env_file"]
        assert files[0] == {"path": ".env.example", "required": True}
        assert files[1] == {"path": ".env", "required": False}


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(ln.split("=", 1) for ln in lines if ln.strip() and not ln.startswith("#"))


def test_env_example_names_only_real_settings_and_points_at_the_compose_services():
    env = env_example()
    known = "\n".join(
        (ROOT / f).read_text()
        for f in (
            "orders/config.py",
            "orders/environ.py",
            "orders/wiring.py",
            "gunicorn.conf.py",
            "orders/worker.py",
        )
    )
    computed = ("POSTGRES_", "ORDERS_CONCURRENCY", "PAYMENTS_", "NOTIFICATIONS_")
    unknown = [k for k in env if not k.startswith(computed) and f'"{k}"' not in known]
    assert unknown == []
    env = {**env, "SECRET_KEY": "a-real-secret"}
    assert env["DATABASE_URL"] == (
        f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{env['POSTGRES_DB']}"
    )
    settings = Settings.from_env(env)
    # the compose Redis requires REDIS_PASSWORD; the app's URL carries it
    assert settings.redis_url == f"redis://:{env['REDIS_PASSWORD']}@redis:6379/0"
    assert settings.is_production
    assert (
        settings.orders_concurrency,
        settings.payments_concurrency,
        settings.notifications_concurrency,
    ) == tuple(int(env[f"{q}_CONCURRENCY"]) for q in ("ORDERS", "PAYMENTS", "NOTIFICATIONS"))
    assert settings.autoscale_up_depth == 100 and settings.autoscale_down_depth == 10


def test_env_example_refuses_to_run_until_the_secret_and_gateway_are_set():
    settings = Settings.from_env(env_example())
    assert settings.is_production and settings.ops_password is None  # no shipped password
    with pytest.raises(ConfigError, match="SECRET_KEY") as refused:
        require_safe_start(settings)
    assert "GATEWAY_URL" in str(refused.value)
    secret = {"SECRET_KEY": "x" * 48}
    for gateway in ({"GATEWAY_URL": "https://g.example"}, {"SHOP_ALLOW_SIMULATED_GATEWAY": "1"}):
        require_safe_start(Settings.from_env({**env_example(), **secret, **gateway}))


def runtime_lock() -> set[str]:
    """The packages requirements/runtime.txt pins: all the image gets (``--no-deps``)."""
    from packaging.utils import canonicalize_name

    text = (ROOT / "requirements" / "runtime.txt").read_text()
    return {canonicalize_name(m) for m in re.findall(r"^([A-Za-z0-9._-]+)==", text, re.M)}


def test_the_image_has_every_package_the_app_imports():
    """Every third-party import outside tests/ is installed by the runtime lock."""
    import ast
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    sources = [ROOT / "app.py", ROOT / "tasks.py", ROOT / "wsgi.py", ROOT / "gunicorn.conf.py"]
    sources += (ROOT / "orders").rglob("*.py")
    modules: set[str] = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    local = {"orders", "app", "tasks", "wsgi"}
    third_party = modules - set(sys.stdlib_module_names) - local
    providers = packages_distributions()
    installed = runtime_lock()
    missing = {
        module: providers.get(module)
        for module in third_party
        if not {canonicalize_name(d) for d in providers.get(module, [])} & installed
    }
    assert third_party and missing == {}


def _compose_argv(argv: list[str]) -> list[str]:
    """What the container runs: compose turns ``$$`` into a literal ``$``."""
    return [arg.replace("$$", "$") for arg in argv]


def test_compose_redis_requires_the_password(compose, tmp_path):
    """The compose Redis command, run for real on a free port: it will not start
    without REDIS_PASSWORD, refuses clients without it, and the app's settings built
    from .env.example reach it with it. (Huey messages are pickles: whoever writes to
    this Redis runs code in the workers.)"""
    import subprocess
    import time

    import redis as redis_client

    from orders.wiring import redis_pool
    from tests.stack import free_port

    service = compose["services"]["redis"]
    assert "ports" not in service  # the compose network only
    assert service["env_file"][0] == {"path": ".env.example", "required": True}
    health = " ".join(service["healthcheck"]["test"])
    assert 'REDISCLI_AUTH="$$REDIS_PASSWORD"' in health and "grep -q PONG" in health
    argv = _compose_argv(service["command"])
    assert "requirepass" in argv[2] and "--requirepass" not in argv[2]  # not visible in ps
    port = free_port()
    extra = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""]
    base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "TMPDIR": str(tmp_path)}

    refused = subprocess.run(argv + extra, env=base_env, capture_output=True, timeout=20)
    assert refused.returncode != 0 and b"REDIS_PASSWORD" in refused.stderr

    password = env_example()["REDIS_PASSWORD"]
    server = subprocess.Popen(
        argv + extra,
        env={**base_env, "REDIS_PASSWORD": password},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        authed = redis_client.Redis(port=port, password=password, socket_timeout=2)
        for _ in range(200):  # until it listens (or exits: then the assert says so)
            assert server.poll() is None, "the compose Redis command exited"
            try:
                authed.ping()
                break
            except redis_client.ConnectionError:
                time.sleep(0.05)
        anonymous = redis_client.Redis(port=port, socket_timeout=2)
        with pytest.raises(redis_client.AuthenticationError):
            anonymous.set("shop:pickled-task", b"anything")
        settings = Settings.from_env({**env_example(), "SECRET_KEY": "x" * 40})
        assert settings.redis_url is not None
        url = settings.redis_url.replace("@redis:6379", f"@127.0.0.1:{port}")
        assert redis_client.Redis(connection_pool=redis_pool(url)).ping()
        authed.close()
        anonymous.close()
    finally:
        server.kill()
        server.wait(10)
