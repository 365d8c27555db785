#!/usr/bin/env bash
# scripts/bench.sh [MIB]: the performance benchmark (issue #8).
#
# Builds a corpus of about MIB MiB (default 1536; pass 6144 for the 4x run):
# three images whose layers are ~60% gzip'd tars of real files, ~30% plain
# tars and ~10% random bytes, plus app:2 (one image of three changed). Pushes
# them to a loopback registry, starts a private dockerd, and measures, with
# the contenders interleaved and their order rotated (A B C, B C A, C A B,
# ...), BENCH_RUNS times (default 3), each started on a quiet machine:
#   build-warm   bundler build (warm cache) | seeds: sha256sum + tar czf |
#                best: tar | zstd -3 -T0 with parallel openssl sha256 + sign
#   build-cold   bundler build (empty cache) | skopeo copy to oci: + tar | zstd
#   verify       installer verify | zstd -d, tar x, sha256sum -c
#   extract      installer install up to "verified" (streamed into staging) |
#                zstd -d | tar x, then parallel openssl sha256 | seeds: tar xzf + sha256sum -c
#   load         installer install's image loading | docker load of skopeo docker-archives
#   install      installer install, the whole of it | the hand-written script's
#                install: sha256sum -c of skopeo's docker-archives, docker
#                load of each, docker compose up -d
#   upgrade      installer install 2.0.0 over 1.0.0 (one image changed) | full install
#   build-delta  bundler build --have (the same upgrade as a delta bundle), once
# and peak RSS of every command. Prints a table (median, min, max, MB/s,
# ratios) and writes it as JSON to $BENCH_OUT (default target/bench-MIB.json).
#
# BENCH_ENGINE picks the engine: docker (default; a private dockerd,
# DOCKERD_VARIANT=20.10, 26, 26-containerd, testing or testing-containerd
# as scripts/dockerd.sh takes it; the last two are driven by their own CLI)
# or podman (the machine's podman with storage and containers.conf of its
# own: runc, cgroupfs; podman-compose), with `podman load` as the load
# baseline.
#
# BENCH_ONLY=ours runs only our commands (no baselines and none of their
# copies of the corpus): the 4x run needs about 50 GB of disk that way
# instead of about 100 GB.
#
# BENCH_LAYERS=zstd has the registry serve the images with their layers
# recompressed as zstd (skopeo --dest-compress-format zstd) instead of the
# corpus' gzip: the bundle and our loads carry zstd layers, the baselines'
# decompressed docker-archives are the same. MB/s still counts the gzip
# corpus' bytes.
#
# BENCH_GROUPS lists the groups to run (default: all of them), e.g.
# BENCH_GROUPS="load install" for the engine's part alone; the full install
# that gives the extract, load and install rows runs when any of them is
# asked for, and build-delta runs with upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

mib=${1:-1536}
runs=${BENCH_RUNS:-3}
case ${BENCH_ONLY:-all} in
  all) ours_only=0 ;;
  ours) ours_only=1 ;;
  *) echo "bench.sh: BENCH_ONLY must be 'all' or 'ours', not '$BENCH_ONLY'" >&2; exit 2 ;;
esac
groups=" ${BENCH_GROUPS:-build-warm build-cold verify extract load install upgrade} "
for g in $groups; do
  case $g in
  build-warm | build-cold | verify | extract | load | install | upgrade) ;;
  *) echo "bench.sh: unknown group '$g' in BENCH_GROUPS (build-warm build-cold verify extract load install upgrade)" >&2; exit 2 ;;
  esac
done
root=$PWD
out_json=${BENCH_OUT:-$root/target/bench-$mib.json}
work=${BENCH_DIR:-/tmp/bench}
mkdir -p "$work"
export LC_ALL=C

scripts/install-deps.sh >/dev/null
cargo build -q --release --locked -p bundler -p fixtures
# The installer measured is the one that ships: the static musl binary.
scripts/build-static.sh >/dev/null
B=$root/target/release/bundler
I=$root/target/x86_64-unknown-linux-musl/release-installer/installer
F=$root/target/release/fixtures

state=$work/state
engine=${BENCH_ENGINE:-docker}
case $engine in
docker)
  cli=/usr/bin/docker
  case ${DOCKERD_VARIANT:-} in
  testing | testing-containerd) cli=${DOCKER_TESTING:-/opt/docker-testing}/usr/bin/docker ;;
  esac
  D() { "$cli" "$@"; }
  compose() { "$cli" compose "$@"; }
  engine_args=() ;;
podman)
  cli=podman
  D() { podman "$@"; }
  compose() { podman-compose "$@"; }
  engine_args=(--engine podman)
  export CONTAINERS_CONF=$work/pm/containers.conf CONTAINERS_STORAGE_CONF=$work/pm/storage.conf
  export PODMAN_IGNORE_CGROUPSV1_WARNING=1 ;;
*) echo "bench.sh: BENCH_ENGINE must be docker or podman, not '$engine'" >&2; exit 2 ;;
esac
cleanup() {
  for d in "$work"/opt*; do
    [ -d "$d" ] && (cd "$d" && compose -p bench down >/dev/null 2>&1) || true
  done
  if [ -d "$state/dk" ]; then
    scripts/dockerd.sh stop "$state/dk" || true
  fi
  if [ "$engine" = podman ] && [ -d "$work/pm" ]; then
    D rmi -af >/dev/null 2>&1 || true
    rm -rf "$work/pm"
  fi
  scripts/registry.sh stop "$state/registry" || true
  rm -rf "$state" "$work"/opt* "$work"/x.* "$work"/out.*
}
trap cleanup EXIT INT TERM
rm -rf "$state"; mkdir -p "$state"
say() { printf '== %s\n' "$*" >&2; }

corpus=$work/corpus-$mib
if [ ! -f "$corpus/index.json" ]; then
  say "building the corpus ($mib MiB) in $corpus"
  "$F" bench-corpus "$corpus.tmp" "$mib" >/dev/null
  rm -rf "$corpus"; mv "$corpus.tmp" "$corpus"
fi

say "registry and dockerd"
reg=127.0.0.1:$(free_port)
scripts/registry.sh start "$state/registry" "${reg#*:}" >/dev/null
case ${BENCH_LAYERS:-gzip} in
  gzip) push_as=(--preserve-digests) ;;
  zstd) push_as=(--dest-compress --dest-compress-format zstd) ;;
  *) echo "bench.sh: BENCH_LAYERS must be gzip or zstd, not '$BENCH_LAYERS'" >&2; exit 2 ;;
esac
for t in app-1 app-2 db-1 cache-1; do
  skopeo copy -q "${push_as[@]}" --dest-tls-verify=false "oci:$corpus:$t" "docker://$reg/bench/${t%-*}:${t##*-}"
done
if [ "$engine" = docker ]; then
  # Stopped by cleanup, by its pidfile, like the registry.
  scripts/dockerd.sh start "$state/dk" >/dev/null
  export DOCKER_HOST=unix://$state/dk/docker.sock INSTALLER_DOCKER=$cli
else
  rm -rf "$work/pm"; mkdir -p "$work/pm"
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n' >"$CONTAINERS_CONF"
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/root"\nrunroot = "%s/run"\n' "$work/pm" "$work/pm" >"$CONTAINERS_STORAGE_CONF"
fi
engine_name="$engine $(D version --format '{{.Server.Version}}' 2>/dev/null || D version --format '{{.Version}}')"
say "engine: $engine_name"

say "vendor side: key, specs, warm cache"
# The manifest digest the registry serves for corpus tag $1 (app-1, ...).
digest() { echo "sha256:$(skopeo inspect --raw --tls-verify=false "docker://$reg/bench/${1%-*}:${1##*-}" | sha256sum | cut -d' ' -f1)"; }
"$B" keygen --unencrypted --secret-key "$state/v.key" --public-key "$state/v.pub" >/dev/null 2>&1
minisign -G -W -p "$state/m.pub" -s "$state/m.key" >/dev/null 2>&1 </dev/null
spec() { # spec DIR VERSION APPTAG
  mkdir -p "$1"
  cat >"$1/docker-compose.yml" <<EOF
services:
  app: {image: "bench/app:$3", restart: "no", stop_signal: SIGKILL}
  db: {image: "bench/db:1", restart: "no", stop_signal: SIGKILL}
  cache: {image: "bench/cache:1", restart: "no", stop_signal: SIGKILL}
EOF
  cat >"$1/bundle.yaml" <<EOF
name: bench
version: $2
images:
  - {ref: "$reg/bench/app:$3@$(digest "app-$3")", name: "bench/app:$3"}
  - {ref: "$reg/bench/db:1@$(digest db-1)", name: "bench/db:1"}
  - {ref: "$reg/bench/cache:1@$(digest cache-1)", name: "bench/cache:1"}
compose: {project: bench, files: [docker-compose.yml]}
files: [{src: docker-compose.yml, dest: docker-compose.yml}]
EOF
}
spec "$state/v1" 1.0.0 1
spec "$state/v2" 2.0.0 2
export BUNDLER_CACHE_DIR=$state/cache
build() { "$B" -q build "$1/bundle.yaml" --key "$state/v.key" -o "$2" --insecure-registry "$reg" "${@:3}"; }
build "$state/v1" "$state/v1.bundle"
build "$state/v2" "$state/v2.bundle"

# The baselines' input: the same three images as an OCI layout on disk.
lay=$state/layout
if ((!ours_only)) && { [[ $groups == *" build-warm "* ]] || [[ $groups == *" verify "* ]] || [[ $groups == *" extract "* ]]; }; then
for t in app-1 db-1 cache-1; do skopeo copy -q --preserve-digests --dest-oci-accept-uncompressed-layers "oci:$corpus:$t" "oci:$lay:$t"; done
(cd "$lay" && find . -type f -print0 | sort -z | xargs -0 sha256sum >"$state/SHA256SUMS")
tar czf "$state/seeds.tgz" -C "$lay" . && cp "$state/SHA256SUMS" "$state/seeds.sums"
tar cf - -C "$lay" . | zstd -q -3 -T0 -o "$state/best.tar.zst" -f
cp "$state/SHA256SUMS" "$state/best.sums"
fi
if ((!ours_only)) && { [[ $groups == *" load "* ]] || [[ $groups == *" install "* ]]; }; then
for t in app-1 db-1 cache-1; do
  skopeo copy -q "oci:$corpus:$t" "docker-archive:$state/$t.tar:bench/${t%-*}:${t##*-}"
done
(cd "$state" && sha256sum app-1.tar db-1.tar cache-1.tar >"$state/archives.sums")
fi

results=$state/results.tsv
: >"$results"
# record GROUP CONTENDER SECONDS RSS_KB
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$results"; }
# timed GROUP CONTENDER CMD...: wall time and peak RSS (largest process) of CMD
timed() {
  local g=$1 c=$2; shift 2
  sync; /usr/bin/time -f '%e %M' -o "$state/time" "$@" >/dev/null 2>"$state/err" || { cat "$state/err" >&2; die "$g/$c failed"; }
  read -r s k <"$state/time"; record "$g" "$c" "$s" "$k"
}
# settle PATH...: write back and drop the page cache, then read PATH... so
# every contender starts from the same state: its inputs in memory, the rest
# of memory free. (On these VMs a page cache full of earlier runs' files
# makes every new page cost a reclaim, and write speed drops from 2.3 GB/s
# to 0.3 GB/s; which contender pays for that would depend on the order.)
settle() {
  sync
  echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
  local p
  for p in "$@"; do
    if [ -d "$p" ]; then find "$p" -type f -exec cat {} + >/dev/null; else cat "$p" >/dev/null; fi
  done
  quiet
}
# quiet: wait (up to 30 s) until the CPUs are at least 95% idle over half a
# second, so that a daemon's leftover work (dockerd after a load or rmi, the
# kernel's writeback) is not charged to the next contender.
quiet() {
  local i a b
  for i in $(seq 1 60); do
    a=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8, $5}' /proc/stat)
    sleep 0.5
    b=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8, $5}' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[1] - x[1]; exit !(t > 0 && (y[2] - x[2]) / t >= 0.95) }' && return 0
  done
  say "the machine did not go quiet in 30 s; timing anyway"
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
fresh() { rm -rf "$work"/x.*; mktemp -d "$work/x.XXXXXX"; }
hash_tree() { (cd "$1" && find . -type f -print0 | xargs -0 -P2 -n 16 openssl dgst -sha256 -r >/dev/null); }
export -f hash_tree
engine_reset() {
  for d in "$work"/opt*; do
    [ -d "$d" ] && (cd "$d" && compose -p bench down >/dev/null 2>&1) || true
  done
  rm -rf "$work"/opt*
  D rmi -f $(D images -aq) >/dev/null 2>&1 || true
  sync
}
# installer_run GROUPPREFIX BUNDLE DIR [ARGS]: one install, stamped, and its phases
installer_run() {
  local tag=$1 bundle=$2 dir=$3; shift 3
  local t0 log=$state/install.log
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%e %M' -o "$state/time" "$I" install "$bundle" --dir "$dir" --yes "${engine_args[@]}" "$@" 2>&1 |
    while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done >"$log"
  grep -q "installed bench" "$log" || { cat "$log" >&2; die "install failed"; }
  read -r s k <"$state/time"
  local tv tl te
  tv=$(awk '/ verified bench/ {print $1; exit}' "$log")
  tl=$(awk '/ starting bench/ {print $1; exit}' "$log")
  te=$(awk '/ installed bench/ {print $1; exit}' "$log")
  echo "$tag $t0 $tv $tl $te $s $k"
}

# One function per contender; each prepares its own start state.
bw_bundler() {
  settle "$state/cache"
  timed build-warm bundler "$B" -q build "$state/v1/bundle.yaml" --key "$state/v.key" -o "$work/out.b.bundle" --insecure-registry "$reg"
  rm -f "$work/out.b.bundle"
}
bw_seeds() {
  settle "$lay"
  timed build-warm seeds-sha256sum+tar-czf bash -c "cd '$lay' && find . -type f -print0 | sort -z | xargs -0 sha256sum >'$work/out.sums' && tar czf '$work/out.tgz' ."
  rm -f "$work/out.tgz"
}
bw_best() {
  settle "$lay"
  timed build-warm best-tar-zstd+openssl bash -c "(tar cf - -C '$lay' . | zstd -q -3 -T0 -o '$work/out.tar.zst' -f) & (hash_tree '$lay' >'$work/out.sums'); wait; minisign -S -s '$state/m.key' -m '$work/out.sums' >/dev/null </dev/null"
  rm -f "$work/out.tar.zst"
}
bc_bundler() {
  rm -rf "$state/cold"
  settle "$state/registry"
  timed build-cold bundler env BUNDLER_CACHE_DIR="$state/cold" "$B" -q build "$state/v1/bundle.yaml" --key "$state/v.key" -o "$work/out.c.bundle" --insecure-registry "$reg"
  rm -rf "$state/cold" "$work/out.c.bundle"
}
bc_skopeo() {
  rm -rf "$work/out.oci"
  settle "$state/registry"
  timed build-cold skopeo-copy+tar-zstd bash -c "for i in app:1 db:1 cache:1; do skopeo copy -q --src-tls-verify=false --dest-oci-accept-uncompressed-layers docker://$reg/bench/\$i oci:$work/out.oci:\${i/:/-}; done; tar cf - -C '$work/out.oci' . | zstd -q -3 -T0 -o '$work/out.tar.zst' -f"
  rm -rf "$work/out.oci" "$work/out.tar.zst"
}
v_installer() {
  settle "$state/v1.bundle"
  timed verify installer "$I" verify "$state/v1.bundle" --public-key "$state/v.pub"
}
v_two_pass() {
  local x; x=$(fresh)
  settle "$state/best.tar.zst"
  timed verify two-pass-zstd-d+tar-x+sha256sum-c bash -c "zstd -q -d '$state/best.tar.zst' -o '$x/t.tar' && mkdir '$x/d' && tar xf '$x/t.tar' -C '$x/d' && cd '$x/d' && sha256sum -c --quiet '$state/best.sums'"
  rm -rf "$x"
}
# A full install gives the extraction and loading phases and the upgrade's baseline.
i_installer() {
  local line t0 tv tl te s k
  engine_reset
  settle "$state/v1.bundle"
  line=$(installer_run full "$state/v1.bundle" "$work/opt1" --public-key "$state/v.pub")
  read -r _ t0 tv tl te s k <<<"$line"
  record extract installer "$(sub "$tv" "$t0")" "$k"
  record load installer "$(sub "$tl" "$tv")" "$k"
  record install installer "$s" "$k"
  record upgrade full-install-1.0.0 "$s" "$k"
  # The engine's copy of the images is as large as the corpus: drop it
  # before anything else needs the disk.
  engine_reset
}
i_best() {
  local x; x=$(fresh)
  settle "$state/best.tar.zst"
  timed extract zstd-d-tar-x+openssl bash -c "mkdir '$x/d' && zstd -q -d -c '$state/best.tar.zst' | tar xf - -C '$x/d' && hash_tree '$x/d'"
  rm -rf "$x"
}
i_seeds() {
  local x; x=$(fresh)
  settle "$state/seeds.tgz"
  timed extract seeds-tar-xzf+sha256sum-c bash -c "mkdir '$x/d' && tar xzf '$state/seeds.tgz' -C '$x/d' && cd '$x/d' && sha256sum -c --quiet '$state/seeds.sums'"
  rm -rf "$x"
}
i_docker_load() {
  engine_reset
  settle "$state/app-1.tar" "$state/db-1.tar" "$state/cache-1.tar"
  timed load "$engine-load-skopeo-archive" bash -c "for t in app-1 db-1 cache-1; do $cli load -q -i \"$state/\$t.tar\"; done"
  engine_reset
}
# The install a `docker save` script does, on its most favourable input (the
# archives decompressed already): check, load, start.
i_script() {
  engine_reset
  mkdir -p "$work/opt-script"
  cp "$state/v1/docker-compose.yml" "$work/opt-script/"
  settle "$state/app-1.tar" "$state/db-1.tar" "$state/cache-1.tar"
  local up="$cli compose"
  [ "$engine" = podman ] && up=podman-compose
  timed install "script-sha256sum+$engine-load+compose-up" bash -c "cd '$state' && sha256sum -c --quiet archives.sums && for t in app-1 db-1 cache-1; do $cli load -q -i \$t.tar; done && cd '$work/opt-script' && $up -p bench up -d"
  engine_reset
}
# upgrade: 2.0.0 over 1.0.0 changes one image of three
u_installer() {
  local line t0 tv tl te s k
  engine_reset
  installer_run setup "$state/v1.bundle" "$work/opt2" --public-key "$state/v.pub" >/dev/null
  "$I" inventory --dir "$work/opt2" "${engine_args[@]}" -o "$state/have.json" 2>/dev/null
  settle "$state/v2.bundle"
  line=$(installer_run upgrade "$state/v2.bundle" "$work/opt2")
  read -r _ t0 tv tl te s k <<<"$line"
  record upgrade installer-upgrade-2.0.0 "$s" "$k"
  record load installer-upgrade-load "$(sub "$tl" "$tv")" "$k"
  engine_reset
}
# rotate RUN F...: runs every F, run r starting at the r-th, so that over
# the runs each contender takes each place in the order (whatever the
# previous step left behind, a large delete or a busy engine, does not
# always fall on the same contender).
rotate() {
  local r=$1; shift
  local n=$# i
  for ((i = 0; i < n; i++)); do
    local k=$(((r - 1 + i) % n + 1))
    "${!k}"
  done
}

# base F...: the baselines' contenders, none with BENCH_ONLY=ours.
base() { ((ours_only)) || echo "$@"; }
# want GROUP...: whether any of the groups was asked for.
want() { local g; for g; do [[ $groups == *" $g "* ]] && return 0; done; return 1; }
# only GROUP F...: F... when GROUP was asked for.
only() { want "$1" && echo "${@:2}"; true; }
installs="$(only extract i_installer)"
[ -z "$installs" ] && installs=$(only load i_installer)
[ -z "$installs" ] && installs=$(only install i_installer)

for run in $(seq 1 "$runs"); do
  say "run $run of $runs"
  want build-warm && rotate "$run" bw_bundler $(base bw_seeds bw_best)
  want build-cold && rotate "$run" bc_bundler $(base bc_skopeo)
  want verify && rotate "$run" v_installer $(base v_two_pass)
  set -- $installs $(base $(only extract i_best i_seeds) $(only load i_docker_load) $(only install i_script))
  (($#)) && rotate "$run" "$@"
  want upgrade && u_installer
done

delta_bytes=0
if want upgrade; then
  # The delta for the same upgrade, from what 1.0.0 had installed.
  timed build-delta bundler "$B" -q build "$state/v2/bundle.yaml" --key "$state/v.key" -o "$state/v2-delta.bundle" --insecure-registry "$reg" --have "$state/have.json"
  delta_bytes=$(stat -c %s "$state/v2-delta.bundle")
fi
engine_reset

python3 - "$results" "$ours_only" "$mib" "$out_json" \
  "$(stat -c %s "$state/v1.bundle")" "$(stat -c %s "$state/v2.bundle")" "$delta_bytes" "$corpus" "$engine_name ${DOCKERD_VARIANT:-}" "${BENCH_LAYERS:-gzip}" <<'EOF'
import json, statistics, sys, platform, os
path, ours_only, mib, out, full1, full2, delta, corpus, engine, layers = sys.argv[1:11]
def blobs_of(tag):
    idx = json.load(open(f"{corpus}/index.json"))
    d = [m for m in idx["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag][0]["digest"]
    m = json.load(open(f"{corpus}/blobs/sha256/{d.split(':')[1]}"))
    return {d: os.path.getsize(f"{corpus}/blobs/sha256/{d.split(':')[1]}")} | {x["digest"]: x["size"] for x in [m["config"]] + m["layers"]}
old_b, new_b = blobs_of("app-1"), blobs_of("app-2")
# The payload: every blob of the three 1.0.0 images, counted once.
nbytes = sum((blobs_of("app-1") | blobs_of("db-1") | blobs_of("cache-1")).values())
changed = sum(v for k, v in new_b.items() if k not in old_b)
rows = {}
for line in open(path):
    g, c, s, k = line.rstrip("\n").split("\t")
    rows.setdefault((g, c), []).append((float(s), int(k)))
baseline_of = {"build-warm": None, "build-cold": None, "verify": None, "extract": None, "load": None, "install": None, "upgrade": None, "build-delta": None}
table = []
for (g, c), v in rows.items():
    secs = [x[0] for x in v]
    med = statistics.median(secs)
    table.append({"group": g, "contender": c, "runs": len(secs), "median_s": med, "min_s": min(secs), "max_s": max(secs),
                  "mb_per_s": nbytes / 1e6 / med if med > 0 and g != "build-delta" else None, "peak_rss_mib": max(x[1] for x in v) / 1024})
for g in baseline_of:
    ours = [t for t in table if t["group"] == g and t["contender"] in ("bundler", "installer", "installer-upgrade-2.0.0")]
    for t in table:
        if t["group"] == g and ours and t is not ours[0]:
            t["ratio_ours_vs_this"] = t["median_s"] / ours[0]["median_s"] if ours[0]["median_s"] > 0 else None
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
res = {"corpus_mib": int(mib), "layers": layers, "engine": engine.strip(), "payload_bytes": nbytes, "baselines": ours_only == "0", "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()},
       "bundle_bytes": {"full_1.0.0": int(full1), "full_2.0.0": int(full2), "delta_2.0.0_from_1.0.0": int(delta), "changed_blobs": changed},
       "results": table}
json.dump(res, open(out, "w"), indent=2)
print(f"corpus {mib} MiB, payload {nbytes/1e6:.0f} MB, {engine.strip()}, {cpu}, {os.cpu_count()} cores" + (", our commands only" if ours_only == "1" else ""))
print(f"{'group':<11} {'contender':<38} {'median s':>9} {'min':>7} {'max':>7} {'MB/s':>7} {'ours x':>7} {'RSS MiB':>8}")
for t in sorted(table, key=lambda t: (list(baseline_of).index(t["group"]), t["contender"])):
    r = t.get("ratio_ours_vs_this")
    print(f"{t['group']:<11} {t['contender']:<38} {t['median_s']:>9.2f} {t['min_s']:>7.2f} {t['max_s']:>7.2f} {('%.0f' % t['mb_per_s']) if t['mb_per_s'] else '':>7} {('%.2f' % r) if r else '':>7} {t['peak_rss_mib']:>8.1f}")
if int(delta):
    print(f"bundles: full 1.0.0 {int(full1)/1e6:.1f} MB, full 2.0.0 {int(full2)/1e6:.1f} MB, delta 2.0.0 from 1.0.0 {int(delta)/1e6:.1f} MB = {int(delta)/changed:.4f} x the changed blobs ({changed/1e6:.1f} MB)")
print(f"wrote {out}")
EOF
