#!/usr/bin/env bash
# Build the pipeline's step images offline from a host-side wheelhouse.
#
#   images/build.sh                          # CPU image on the pinned public base
#   images/build.sh --local-base             # CPU image on a debootstrap'd base (no registry; CI here)
#   images/build.sh --variant all --prefix registry.example.com/ml --push
#
# Steps per variant: fill images/wheels/<variant> with exactly the lock's wheels
# (images/lock.py), stream a minimal context to `docker build`, tag
# <prefix>/qa-<variant>:<tag>, optionally push, and record the reference in
# the env file (default build/images.env) as QA_CPU_IMAGE= / QA_GPU_IMAGE=,
# which the pipeline compiler reads (CompileSettings.from_images_env). With --push the recorded reference is the
# registry digest (name@sha256:...), else the tag.
#
# Idempotent: present wheels are kept, the base image is reused, docker's
# layer cache skips unchanged steps. Needs root only for --local-base.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --variant cpu|cuda|all   which image(s) (default: cpu)
  --prefix PREFIX          image name prefix (default: $IMAGE_PREFIX or ghcr.io/kfp-squad-qa)
  --tag TAG                image tag (default: $IMAGE_TAG, else pyproject.toml's version, the
                           tag pipeline/settings.py names by default); "latest" is refused
  --base-image REF         BASE_IMAGE build arg (default: the Dockerfile's pinned digest)
  --local-base             build qa-base:bookworm with debootstrap and use it as BASE_IMAGE
  --rebuild-base           with --local-base: rebuild the base even if it exists
  --push                   docker push after building (needs a registry in --prefix)
  --env-file PATH          where to write the image references (default: build/images.env)
  --python PATH            Python 3.11 used to fetch wheels (default: .venv/bin/python, else python3)
  --verbose                show docker build output (by default shown only on failure)
  --print-refs             print the image references it would build, and exit (no docker)
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

variant=cpu
prefix=${IMAGE_PREFIX:-ghcr.io/kfp-squad-qa}
tag=${IMAGE_TAG:-}
base_image=
local_base=0
rebuild_base=0
push=0
env_file=build/images.env
python=
quiet=(--quiet)
print_refs=0
build_log=/dev/null  # with --quiet stdout is just the image id; failures still print
LOCAL_BASE=qa-base:bookworm

while (($#)); do
  case $1 in
    --variant) variant=$2; shift ;;
    --prefix) prefix=$2; shift ;;
    --tag) tag=$2; shift ;;
    --base-image) base_image=$2; shift ;;
    --local-base) local_base=1 ;;
    --rebuild-base) rebuild_base=1 ;;
    --push) push=1 ;;
    --env-file) env_file=$2; shift ;;
    --python) python=$2; shift ;;
    --verbose) quiet=(); build_log=/dev/stdout ;;
    --print-refs) print_refs=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

case $variant in
  cpu|cuda) variants=("$variant") ;;
  all) variants=(cpu cuda) ;;
  *) echo "build.sh: --variant must be cpu, cuda or all, got '$variant'" >&2; exit 2 ;;
esac
if [[ -z $python ]]; then
  if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi
# pyproject.toml's version: the default tag, which pipeline/settings.py (VERSION) names too
version=$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
tag=${tag:-$version}
if [[ $tag == latest || ! $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "build.sh: tag '$tag' is not allowed: give a version or commit (not 'latest'), [A-Za-z0-9_.-]" >&2
  exit 2
fi
if ((push)) && [[ $prefix != */* || ${prefix%%/*} != *[.:]* && ${prefix%%/*} != localhost ]]; then
  echo "build.sh: --push needs a registry host in --prefix (e.g. registry.example.com/ml), got '$prefix'" >&2
  exit 2
fi
if ((print_refs)); then
  for v in "${variants[@]}"; do echo "$prefix/qa-$v:$tag"; done
  exit 0
fi
if ! docker info >/dev/null 2>&1; then
  echo "build.sh: the docker daemon is not reachable; run images/ci-setup.sh (as root) first" >&2
  exit 1
fi
# Without buildx only the legacy builder exists (DOCKER_BUILDKIT=1 would fail); the
# Dockerfile works with both.
if ! docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=0; fi

build_local_base() {
  if ((!rebuild_base)) && docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    echo "base: reusing $LOCAL_BASE"
    return
  fi
  if [[ $EUID -ne 0 ]] || ! command -v debootstrap >/dev/null; then
    echo "build.sh: --local-base needs root and debootstrap (images/ci-setup.sh installs it)" >&2
    exit 1
  fi
  local dir=images/base/bookworm start=$SECONDS
  rm -rf "$dir" && mkdir -p "$dir"
  echo "base: debootstrap bookworm into $dir"
  # Debian's default mirror unless DEBIAN_MIRROR is set.
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$dir" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >images/base/debootstrap.log 2>&1 || {
      tail -n 30 images/base/debootstrap.log >&2; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/*
  tar -C "$dir" -c . | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
    - "$LOCAL_BASE" >/dev/null
  rm -rf "$dir"
  echo "base: $LOCAL_BASE built in $((SECONDS - start))s"
}

# The CLI's legacy-builder notice is noise in CI logs; the rest of stderr passes through.
drop_legacy_notice() {
  grep -v -e '^DEPRECATED: The legacy builder' -e '^ *BuildKit is currently disabled' \
    -e '^ *environment-variable\.$' -e '^$' >&2 || true
}

# Replace (or add) KEY=VALUE in the env file, keeping the other variant's line.
record() {
  local key=$1 value=$2
  mkdir -p "$(dirname "$env_file")"
  touch "$env_file"
  { grep -v "^$key=" "$env_file" || true; echo "$key=$value"; } >"$env_file.tmp"
  sort -o "$env_file" "$env_file.tmp" && rm -f "$env_file.tmp"
}

if ((local_base)); then
  build_local_base
  base_image=$LOCAL_BASE
fi
revision=$(git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)

for v in "${variants[@]}"; do
  start=$SECONDS
  image=$prefix/qa-$v:$tag
  "$python" images/lock.py wheels --variant "$v"
  # The context is an explicit list, so the build never sees .venv, .git or data.
  src=()
  for p in pyproject.toml README.md components pipeline; do [[ -e $p ]] && src+=("$p"); done
  build_args=(--build-arg "VARIANT=$v" --build-arg "VERSION=$version" --build-arg "REVISION=$revision")
  [[ -n $base_image ]] && build_args+=(--build-arg "BASE_IMAGE=$base_image")
  echo "build: $image"
  errors=build/docker-build-$v.log  # stderr; with --quiet it holds the whole log on failure
  mkdir -p build
  if ! tar -c --sort=name --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
         --transform='s,^\(pyproject\.toml\|README\.md\|components\|pipeline\),src/\1,' \
         images/Dockerfile "images/requirements-$v.lock" "images/wheels/$v" "${src[@]}" |
       docker build "${quiet[@]}" -f images/Dockerfile "${build_args[@]}" -t "$image" - \
         >"$build_log" 2>"$errors"; then
    drop_legacy_notice <"$errors"
    echo "build.sh: docker build of $image failed (log: $errors)" >&2
    exit 1
  fi
  drop_legacy_notice <"$errors"
  ref=$image
  if ((push)); then
    docker push --quiet "$image" >/dev/null
    ref=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$image" |
          grep -m1 "^$prefix/qa-$v@") || { echo "build.sh: no registry digest for $image after push" >&2; exit 1; }
  fi
  size=$(docker image inspect --format '{{.Size}}' "$image")
  echo "built: $ref ($((size / 1000000)) MB, $((SECONDS - start))s)"
  # Keys pipeline/settings.py (CompileSettings.from_images_env) reads.
  if [[ $v == cpu ]]; then record QA_CPU_IMAGE "$ref"; else record QA_GPU_IMAGE "$ref"; fi
done
echo "image references: $env_file"
cat "$env_file"
