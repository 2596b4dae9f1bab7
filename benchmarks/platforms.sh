#!/usr/bin/env bash
# npdeeplab where no LiteRT wheel exists: 32-bit Arm (armhf), Debian 13 (trixie), Python 3.13.
# Not run in CI.
#
#   sudo bash benchmarks/platforms.sh [--root DIR] [--rebuild] [--image PNG]
#
# What it does, on an x86_64 Debian/Ubuntu host, as root:
#   1. builds (once) an armhf trixie root with mmdebstrap, emulated by qemu-user-static, holding
#      Debian's python3, python3-numpy, python3-pil, python3-tqdm, python3-threadpoolctl and
#      python3-flatbuffers; it is cached in --root (env NPDEEPLAB_PLATFORMS_ROOT, default
#      ~/.cache/npdeeplab-platforms/armhf-trixie) and reused by later runs;
#   2. builds npdeeplab's wheel from this checkout (a copy of it: nothing is written into the tree),
#      downloads `tflite` (pure Python) from PyPI, and installs both into a venv inside the root with
#      --system-site-packages, offline (--no-index), so every other dependency must come from Debian
#      and nothing can be built there (numba is left out by its platform_machine marker);
#   3. segments the image (default ../shared/images/astronaut.png) inside the root, segments it again
#      on the host with the host venv's NumPy backend, and compares the two masks pixel by pixel:
#      exit 1 if fewer than 99.9% of pixels agree;
#   4. prints the emulated run's wall time and the versions and `uname -m` seen inside the root.
#
# How long (2 cores): the first run 3.5-6 min, 3-5 of them building the root (dpkg runs emulated);
# later runs ~30 s, of which the emulated segment run is ~10-12 s.
#
# Emulation: the kernel must run armhf binaries through binfmt_misc and qemu-arm. If it cannot yet,
# the script mounts binfmt_misc and registers Debian's qemu-arm entry itself (root, or
# CAP_SYS_ADMIN in a container), and undoes both when it exits. Without binfmt_misc
# it stops: Debian's PRoot (5.1.0, in bookworm and trixie) with `-q qemu-arm-static` does not
# translate paths of statx(2), which trixie's 32-bit glibc (64-bit time_t) uses for every stat, so
# dpkg and ls fail there with "No such file or directory".
#
# Environment: NPDEEPLAB_PLATFORMS_ROOT (root folder), NPDEEPLAB_MODELS (models folder, default
# ../shared/models), NPDEEPLAB_HOST_VENV (host venv with npdeeplab, default ./.venv),
# DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=${NPDEEPLAB_PLATFORMS_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/npdeeplab-platforms/armhf-trixie}
models=${NPDEEPLAB_MODELS:-$repo/../shared/models}
image=$repo/../shared/images/astronaut.png
host_venv=${NPDEEPLAB_HOST_VENV:-$repo/.venv}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rebuild=0
min_agreement=0.999
debian_packages=python3,python3-venv,python3-numpy,python3-pil,python3-tqdm,python3-threadpoolctl,python3-flatbuffers

while (($#)); do
    case $1 in
        --root) root=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        --rebuild) rebuild=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
root=$(realpath -m "$root")
image=$(realpath "$image")
models=$(realpath "$models")
[[ -x $host_venv/bin/npdeeplab ]] || { echo "no npdeeplab in $host_venv (set NPDEEPLAB_HOST_VENV)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "run as root: binfmt_misc, mmdebstrap --mode=unshare and chroot need it" >&2; exit 2; }

step() { printf '\n== %s\n' "$*"; }
seconds_since() { echo "$(( $(date +%s) - $1 ))"; }

# --- tools -------------------------------------------------------------------------------------
needed=()
for tool in mmdebstrap:mmdebstrap qemu-arm-static:qemu-user-static arch-test:arch-test; do
    command -v "${tool%%:*}" >/dev/null || needed+=("${tool##*:}")
done
if ((${#needed[@]})); then
    step "installing ${needed[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${needed[@]}"
fi

# --- emulation: can this kernel run armhf binaries? ----------------------------------------------
binfmt=/proc/sys/fs/binfmt_misc
registered_here=0
mounted_here=0
unregister() {  # leave binfmt_misc as we found it
    if ((registered_here)) && [[ -e $binfmt/qemu-arm ]]; then
        echo -1 >"$binfmt/qemu-arm" && echo "(removed the qemu-arm binfmt_misc entry this script registered)"
    fi
    if ((mounted_here)); then umount "$binfmt"; fi
}
trap unregister EXIT
enable_binfmt() {
    if [[ ! -e $binfmt/register ]]; then
        mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || return 1
        mounted_here=1
    fi
    [[ -e $binfmt/qemu-arm ]] && return 0
    # Debian's qemu-user-static ships the entry (magic, mask, interpreter, flags "OPF": F opens
    # the interpreter now, so it also works inside chroots that do not contain it).
    grep -v '^#' /usr/lib/binfmt.d/qemu-arm.conf >"$binfmt/register" 2>/dev/null || return 1
    registered_here=1
}
if ! arch-test armhf >/dev/null 2>&1 && ! { enable_binfmt && arch-test armhf >/dev/null 2>&1; }; then
    echo "this kernel cannot run armhf binaries, and binfmt_misc could not be mounted or written" >&2
    echo "(on the container's host: mount binfmt_misc and register /usr/lib/binfmt.d/qemu-arm.conf)" >&2
    exit 1
fi
how="already registered"
if ((registered_here)); then how="registered for this run"; fi
echo "emulation: binfmt_misc, qemu-arm entry $how; $(qemu-arm-static --version | head -1)"

# Run a command inside the root: as root, clean environment, /proc /sys /dev mounted in a private
# mount namespace (the mounts vanish with the command).
in_root() {
    unshare --mount --propagation private --fork bash -euc '
        r=$1; shift
        mount -t proc proc "$r/proc"; mount --rbind /sys "$r/sys"; mount --rbind /dev "$r/dev"
        exec chroot "$r" "$@"' _ "$root" \
        env -i HOME=/root LANG=C.UTF-8 PATH=/opt/npdeeplab/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# --- 1. the root ---------------------------------------------------------------------------------
build_seconds=cached
if ((rebuild)) || [[ ! -e $root/.npdeeplab-root-complete ]]; then
    step "building the armhf trixie root in $root"
    start=$(date +%s)
    partial=$root.partial
    rm -rf --one-file-system "$partial" "$root"
    mkdir -p "$(dirname "$root")"
    slim=(--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
          --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright')
    mmdebstrap --mode=unshare --variant=apt --arch=armhf "${slim[@]}" --include="$debian_packages" \
        trixie "$partial" "$mirror"
    root=$partial in_root python3 -m venv --system-site-packages /opt/npdeeplab/venv
    touch "$partial/.npdeeplab-root-complete"
    mv "$partial" "$root"
    build_seconds=$(seconds_since "$start")
    echo "root built in ${build_seconds} s ($(du -sh "$root" | cut -f1))"
fi

# --- 2. npdeeplab's wheel on the host, installed in the root --------------------------------------
step "building npdeeplab's wheel from $repo"
work=$(mktemp -d)
trap 'rm -rf "$work"; unregister' EXIT
mkdir "$work/src" "$work/wheels"
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then  # tracked and new files, as they are now
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$work/src"
else
    cp -a "$repo/." "$work/src/" && rm -rf "$work/src/.venv"
fi
"$host_venv/bin/python" -m pip wheel -q --no-deps -w "$work/wheels" "$work/src" >"$work/wheel.log" 2>&1 ||
    { cat "$work/wheel.log"; exit 1; }
wheel=$(basename "$work"/wheels/npdeeplab-*.whl)
"$host_venv/bin/python" -m pip download -q --no-deps --only-binary=:all: -d "$work/wheels" "tflite>=2.10"
ls "$work/wheels"

step "installing into the root's venv (offline: Debian's packages for everything but tflite)"
opt=$root/opt/npdeeplab
rm -rf "$opt/wheels" "$opt/run"
mkdir -p "$opt/wheels" "$opt/run" "$opt/models"
cp "$work/wheels"/*.whl "$opt/wheels/"
cp "$repo/benchmarks/platform_check.py" "$opt/"
cp -u "$models"/*.tflite "$opt/models/"
cp "$image" "$opt/run/"
# --no-index: pip can only use the two wheels and what Debian installed; a dependency it would
# have to fetch or build (numba, llvmlite, a newer NumPy) makes this step fail instead.
in_root pip uninstall -q -y npdeeplab 2>/dev/null || true
in_root pip install --no-index --find-links /opt/npdeeplab/wheels --only-binary=:all: "/opt/npdeeplab/wheels/$wheel" tflite
in_root pip check
echo "in the venv itself (the rest is Debian's): $(in_root pip list --local --format=freeze | tr '\n' ' ')"

# --- 3. segment inside the root, and on the host ---------------------------------------------------
name=$(basename "$image")
step "segmenting $name inside the armhf root (emulated; backend auto)"
start=$EPOCHREALTIME
in_root env NPDEEPLAB_MODELS=/opt/npdeeplab/models NPDEEPLAB_CACHE=/opt/npdeeplab/cache \
    npdeeplab segment "/opt/npdeeplab/run/$name" -o /opt/npdeeplab/run/armhf_mask.png
emulated_seconds=$(awk "BEGIN { print $EPOCHREALTIME - $start }")

step "segmenting $name on the host ($("$host_venv/bin/python" -c 'import platform; print(platform.machine())'), backend numpy)"
start=$EPOCHREALTIME
NPDEEPLAB_MODELS=$models "$host_venv/bin/npdeeplab" segment "$image" -o "$opt/run/host_mask.png" --backend numpy
host_seconds=$(awk "BEGIN { print $EPOCHREALTIME - $start }")

step "comparing the masks"
status=0
"$host_venv/bin/python" "$repo/benchmarks/platform_check.py" compare "$opt/run/host_mask.png" \
    "$opt/run/armhf_mask.png" --min-agreement "$min_agreement" || status=$?

# --- 4. what ran where ---------------------------------------------------------------------------
step "inside the root"
echo "uname -m  $(in_root uname -m)"
in_root python /opt/npdeeplab/platform_check.py versions
echo "libblas   $(in_root readlink -f /usr/lib/arm-linux-gnueabihf/libblas.so.3)"
echo
echo "root build:            ${build_seconds}$([[ $build_seconds == cached ]] || echo ' s') ($root)"
printf 'segment, armhf (qemu): %.1f s wall, process start to PNG\n' "$emulated_seconds"
printf 'segment, host:         %.1f s wall\n' "$host_seconds"
echo "masks:                 $opt/run/armhf_mask.png, $opt/run/host_mask.png"
exit "$status"
