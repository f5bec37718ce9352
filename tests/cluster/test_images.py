"""Static checks of images/ (Dockerfile, locks, scripts) and a smoke run of the built CPU image.

    python -m pytest tests/cluster/test_images.py -q
    python -m pytest tests/cluster/test_images.py -q -m docker   # after images/build.sh --local-base
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
DOCKERFILES = sorted(IMAGES.glob("Dockerfile*"))
LOCKS = {v: IMAGES / f"requirements-{v}.lock" for v in ("cpu", "cuda")}
IMAGES_ENV = REPO / "build" / "images.env"

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
EXACT_TAG = re.compile(r":v?\d+\.\d+\.\d+[A-Za-z0-9_.-]*$")  # 3.11.9-slim, 12.8.1-runtime-ubuntu22.04
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*$")


def load_lock_tool():
    spec = importlib.util.spec_from_file_location("images_lock", IMAGES / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def pinned(ref: str) -> bool:
    return bool(DIGEST.search(ref) or EXACT_TAG.search(ref))


def lock_pins(variant: str) -> dict[str, str]:
    lines = [l.strip() for l in LOCKS[variant].read_text().splitlines()]
    return {canonicalize_name(l.split("==")[0]): l.split("==")[1]
            for l in lines if l and not l.startswith("#")}


# --- Dockerfile ---------------------------------------------------------------

FAKE_DOCKER = """#!{python}
import pathlib, sys
args = sys.argv[1:]
if args[0] == "build":  # keep the streamed context, named by its VARIANT build arg
    variant = next(a.split("=", 1)[1] for a in args if a.startswith("VARIANT="))
    pathlib.Path({out!r}, f"context-{{variant}}.tar").write_bytes(sys.stdin.buffer.read())
elif args[0] == "image":
    print(0)  # the image size build.sh reports
"""
FAKE_PYTHON = """#!/bin/sh
# images/lock.py fills the wheelhouse from the network: one empty wheel stands in for it
if [ "$1" = images/lock.py ]; then mkdir -p "images/wheels/$4" && touch "images/wheels/$4/x.whl"; exit; fi
exec {python} "$@"
"""


def test_dockerfile_builds_either_variant_from_the_context_build_sh_streams(tmp_path):
    """One Dockerfile, two variants: for cpu and cuda alike, each COPY source is in the context
    images/build.sh streams to `docker build` (a fake docker keeps it), the context holds nothing
    else (no .venv, data or tests), and its src/ holds every package pyproject.toml installs."""
    import fnmatch
    import tarfile

    repo, fake = tmp_path / "repo", tmp_path / "bin"
    ignore = shutil.ignore_patterns("__pycache__", "wheels", "base")
    for path in ("images", "components", "pipeline", "tests/cluster", "data"):
        shutil.copytree(REPO / path, repo / path, ignore=ignore)
    for path in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / path, repo / path)
    fake.mkdir()
    (fake / "docker").write_text(FAKE_DOCKER.format(python=sys.executable, out=str(tmp_path)))
    (fake / "python").write_text(FAKE_PYTHON.format(python=sys.executable))
    for tool in fake.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", "images/build.sh", "--variant", "all", "--python", str(fake / "python")],
                         cwd=repo, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr

    steps = instructions(IMAGES / "Dockerfile")
    assert [a for w, a in steps if w == "ARG" and a.startswith("VARIANT")] == ["VARIANT=cpu"] * 2
    sources = [a.split()[-2] for w, a in steps if w == "COPY" and not a.startswith("--from")]
    installed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    for variant in LOCKS:
        names = tarfile.open(tmp_path / f"context-{variant}.tar").getnames()
        copied = [s.replace("${VARIANT}", variant).rstrip("/") for s in sources]
        assert copied == [f"images/requirements-{variant}.lock", f"images/wheels/{variant}", "src"]

        def under(name, roots):
            return any(name == root or name.startswith(root + "/") for root in roots)

        for source in copied:
            assert any(under(name, [source]) for name in names), (variant, source)
        assert [n for n in names if not under(n, [*copied, "images/Dockerfile"])] == []
        src = {name.split("/")[1] for name in names if name.startswith("src/")}
        assert src == {"pyproject.toml", "README.md", "components", "pipeline"}
        assert all(any(fnmatch.fnmatch(top, pattern) for top in src) for pattern in installed)
        assert "src/components/qa/features.py" in names and not any(".pyc" in n for n in names)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_base_is_pinned_and_none_is_latest(dockerfile):
    steps = instructions(dockerfile)
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    stages: set[str] = set()
    froms = [a for w, a in steps if w == "FROM"]
    assert froms, f"{dockerfile.name}: no FROM"
    for args_ in froms:
        parts = args_.split()
        ref = parts[0]
        if ref.startswith("--platform"):
            ref = parts[1]
        if ref in stages:
            continue  # FROM an earlier stage
        var = re.fullmatch(r"\$\{?(\w+)\}?", ref)
        if var:
            assert var[1] in args, f"{dockerfile.name}: FROM {ref} has no ARG default"
            ref = args[var[1]]
        assert pinned(ref), f"{dockerfile.name}: base {ref!r} is not pinned by digest or exact version"
        if " AS " in f" {args_.upper()} ":
            stages.add(parts[-1])
    for word, args_ in steps:
        assert ":latest" not in args_, f"{dockerfile.name}: {word} {args_}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_runs_as_a_non_root_user(dockerfile):
    users = [a for w, a in instructions(dockerfile) if w == "USER"]
    assert users, f"{dockerfile.name}: no USER (would run as root)"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root"), f"{dockerfile.name}: last USER is {users[-1]}"
    # numeric, so kubelet can enforce runAsNonRoot without reading /etc/passwd
    assert user.isdigit() and int(user) == 1000


def test_dockerfile_installs_offline_and_deps_before_code():
    steps = instructions(IMAGES / "Dockerfile")
    text = " ".join(a for _, a in steps)
    assert "--no-index" in text and "pip download" not in text
    copies = [a for w, a in steps if w == "COPY"]
    venv = next(i for i, a in enumerate(copies) if "/opt/venv" in a)
    code = next(i for i, a in enumerate(copies) if a.startswith("src/"))
    assert venv < code, "the deps layer must come before the code layer"
    envs = " ".join(a for w, a in steps if w == "ENV")
    assert "PATH=/opt/venv/bin:" in envs and "HF_HOME=" in envs
    assert "/etc/profile.d/" in text


# --- locks ---------------------------------------------------------------------

@pytest.mark.parametrize("variant", LOCKS)
def test_lock_is_fully_pinned(variant):
    seen = set()
    for n, line in enumerate(LOCKS[variant].read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert PIN.match(line), f"{LOCKS[variant].name}:{n}: {line!r} is not name==version"
        name = canonicalize_name(line.split("==")[0])
        assert name not in seen, f"{LOCKS[variant].name}:{n}: {name} pinned twice"
        seen.add(name)
    assert seen


@pytest.mark.parametrize("variant", LOCKS)
def test_lock_satisfies_pyproject(variant):
    pins = lock_pins(variant)
    tool = load_lock_tool()
    for req in tool.root_requirements(REPO / "pyproject.toml"):
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} ({req}) missing from {LOCKS[variant].name}: run images/lock.py generate"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{LOCKS[variant].name} pins {name}=={pins[name]} but pyproject.toml wants {req}"
    assert pins["torch"] == "2.13.0"


def test_lock_covers_the_installed_closure():
    """Every package the venv's closure needs is in the CPU lock (names; versions may drift)."""
    tool = load_lock_tool()
    try:
        closure = tool.installed_closure(tool.root_requirements(REPO / "pyproject.toml"))
    except SystemExit as e:
        pytest.skip(f"project dependencies not installed here: {e}")
    missing = sorted(set(closure) - set(lock_pins("cpu")))
    assert not missing, f"{missing} not in requirements-cpu.lock: run .venv/bin/python images/lock.py generate"


def test_cuda_lock_is_cpu_lock_plus_cuda_runtime():
    cpu, cuda = lock_pins("cpu"), lock_pins("cuda")
    assert {k: v for k, v in cuda.items() if k in cpu} == cpu
    extra = set(cuda) - set(cpu)
    assert "triton" in extra and any(n.startswith("nvidia-") for n in extra)
    assert all(n.startswith(("nvidia-", "cuda-")) or n == "triton" for n in extra), extra


def test_read_lock_rejects_a_loose_pin(tmp_path):
    tool = load_lock_tool()
    lock = tmp_path / "x.lock"
    lock.write_text("# comment\nfoo==1.0\nbar>=2\n")
    with pytest.raises(ValueError, match=r"x.lock:3: 'bar>=2' is not an exact"):
        tool.read_lock(lock)


@pytest.mark.parametrize("wheel, variant, wrong", [
    ("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "cpu", False),
    ("torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl", "cpu", True),
    ("torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl", "cuda", False),
    ("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "cuda", True),
    ("numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl", "cpu", False),
])
def test_torch_build_matches_variant(wheel, variant, wrong):
    assert load_lock_tool().wrong_torch_build(variant, Path(wheel)) is wrong


# --- scripts ---------------------------------------------------------------------

@pytest.mark.parametrize("script", ["build.sh", "ci-setup.sh"])
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", str(IMAGES / script)], check=True)


@pytest.mark.parametrize("args, message", [
    (["--tag", "latest"], "not allowed"),
    (["--variant", "tpu"], "--variant must be"),
    (["--push", "--prefix", "qa"], "needs a registry host"),
])
def test_build_refuses_bad_options_before_touching_docker(args, message):
    out = subprocess.run(["bash", str(IMAGES / "build.sh"), *args], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_images_env_keys_are_the_ones_the_compiler_reads(tmp_path):
    script = (IMAGES / "build.sh").read_text()
    assert "record QA_CPU_IMAGE" in script and "record QA_GPU_IMAGE" in script
    settings = pytest.importorskip("pipeline.settings")
    env = tmp_path / "images.env"
    env.write_text("QA_CPU_IMAGE=reg.example/qa-cpu:abc\nQA_GPU_IMAGE=reg.example/qa-cuda@sha256:" + "0" * 64 + "\n")
    got = settings.CompileSettings.from_images_env(env)
    assert got.cpu_image == "reg.example/qa-cpu:abc" and got.gpu_image.startswith("reg.example/qa-cuda@")


def test_build_tags_by_default_the_images_the_pipeline_names(tmp_path):
    """One version: images/build.sh's default tags are the compiled pipeline's default images."""
    settings = pytest.importorskip("pipeline.settings")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert settings.VERSION == version
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE_TAG", "IMAGE_PREFIX")}
    out = subprocess.run(["bash", str(IMAGES / "build.sh"), "--variant", "all", "--print-refs",
                          "--python", sys.executable],
                         capture_output=True, text=True, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr
    defaults = settings.CompileSettings()
    assert out.stdout.split() == [defaults.cpu_image, defaults.gpu_image]
    tagged = subprocess.run(["bash", str(IMAGES / "build.sh"), "--print-refs", "--tag", "1.2.3",
                             "--prefix", "reg.example/ml"], capture_output=True, text=True, cwd=REPO, env=env)
    assert tagged.stdout.split() == ["reg.example/ml/qa-cpu:1.2.3"]


def test_image_pull_secrets_reach_every_task_and_the_trainjob_nodes(tmp_path):
    import yaml
    from kfp import compiler

    from pipeline.qa_pipeline import build_pipeline
    from pipeline.settings import CompileSettings

    settings = CompileSettings(image_pull_secrets=("regcred", "mirror-cred"), num_nodes=2, pvc_name="qa-hf-cache")
    compiler.Compiler().compile(build_pipeline(settings), str(tmp_path / "p.yaml"))
    spec, platform = yaml.safe_load_all((tmp_path / "p.yaml").read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"])  # every task
    for name, config in executors.items():
        assert [s["secretName"] for s in config["imagePullSecret"]] == ["regcred", "mirror-cred"], name
    trainjob = spec["root"]["dag"]["tasks"]["fine-tune"]["inputs"]["parameters"]["trainjob"]
    assert trainjob["runtimeValue"]["constant"]["image_pull_secrets"] == ["regcred", "mirror-cred"]


def test_makefile_images_target_calls_build_script():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^images:", makefile, re.M) and "images/build.sh" in makefile


# --- the built image ---------------------------------------------------------------

def built_cpu_image() -> str:
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed (images/ci-setup.sh installs it)")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("docker daemon not reachable (images/ci-setup.sh starts it)")
    if not IMAGES_ENV.exists():
        pytest.skip(f"{IMAGES_ENV.relative_to(REPO)} missing: build with images/build.sh --local-base")
    refs = dict(l.split("=", 1) for l in IMAGES_ENV.read_text().split() if "=" in l)
    image = refs.get("QA_CPU_IMAGE")
    if not image or subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        pytest.skip(f"CPU image {image!r} from {IMAGES_ENV.name} is not built here: images/build.sh --local-base")
    return image


def docker_run(image: str, *cmd: str) -> str:
    out = subprocess.run(["docker", "run", "--rm", "--network", "none", image, *cmd],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{' '.join(cmd)} in {image} failed:\n{out.stderr[-3000:]}"
    return out.stdout.strip()


@pytest.mark.docker
def test_cpu_image_imports_the_stack_as_non_root():
    image = built_cpu_image()
    assert docker_run(image, "python", "-c",
                      "import components, torch, transformers, kfp, kubeflow.trainer, model_registry;"
                      "assert not torch.cuda.is_available(); print('ok')") == "ok"
    assert docker_run(image, "id", "-u") == "1000"
    assert docker_run(image, "whoami") != "root"


@pytest.mark.docker
def test_cpu_image_login_shell_finds_the_venv_and_cache_is_writable():
    image = built_cpu_image()
    assert docker_run(image, "bash", "-lc", "command -v python") == "/opt/venv/bin/python"
    assert docker_run(image, "sh", "-c", 'touch "$HF_HOME/probe" && echo "$HF_HOME"').startswith("/var/cache/qa")
