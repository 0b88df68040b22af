# bench/lib.sh: helpers shared by the rpfs benchmarks. Source it, don't run it.
#
# Conventions every benchmark keeps:
# - all tools run on the same data, in one run, under the same conditions;
# - the page cache is NOT dropped (that is not reliably possible without
#   root and a quiet machine): every timed run is warm-page-cache, inputs are
#   read once before each timed command and `sync` runs before it, so no tool
#   pays for another one's writeback;
# - each figure is the median of BENCH_RUNS runs and is shown next to a ratio;
# - a tool that fails, or rpfs output that does not verify, stops the
#   benchmark with a non-zero status: no figures for wrong output.
#
# Environment: BENCH_DIR (work dir, default /var/tmp/rpfs-bench),
# BENCH_RUNS (default 3), RPFS (the binary, default build/cli/rpfs),
# BENCH_REBUILD=1 (rebuild the cached data set).

set -euo pipefail
export LC_ALL=C

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RPFS_ROOT=$(dirname "$BENCH_SRC")
BENCH_DIR=${BENCH_DIR:-/var/tmp/rpfs-bench}
BENCH_RUNS=${BENCH_RUNS:-3}
RPFS=${RPFS:-$RPFS_ROOT/build/cli/rpfs}
BENCH_DATASET_VERSION=1
MIB=1048576
GIB=1073741824

case $BENCH_RUNS in ''|*[!0-9]*|0) echo "bench: BENCH_RUNS must be a positive integer" >&2; exit 2;; esac

bench_log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
bench_die() { printf 'bench: error: %s\n' "$*" >&2; exit 2; }

# ------------------------------------------------------------------ cleanup
#
# One exit path for every benchmark. bench_setup installs an EXIT trap and
# turns SIGINT, SIGTERM and SIGHUP into exits (130, 143, 129), so the same
# cleanup runs whether the script ends, dies in bench_die or a failed step,
# fails under `set -e`, or is interrupted. It runs with errexit off (one
# step that fails never skips the others) and a second signal ignored:
#   1. every mount of bench_track_mount MNT [PID] still mounted is unmounted
#      (fusermount3 -u, lazily if busy) and its daemon PID stopped (SIGTERM,
#      SIGKILL after 5 s); bench_unmount forgets a mount it unmounted;
#   2. every bench_at_exit CMD, the last registered first (bench_azurite_start
#      registers bench_azurite_stop; a script registers removing its work dir
#      before it starts anything, so that goes last).
# A script that sets its own EXIT trap replaces this one.
declare -a _BENCH_AT_EXIT=()
declare -A _BENCH_MOUNTS=()
bench_at_exit() { _BENCH_AT_EXIT+=("$1"); }
bench_track_mount() { _BENCH_MOUNTS[$1]=${2:-}; }
# bench_alive PID: running (a zombie is not)
bench_alive() {
	local s
	s=$(sed -E 's/^.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $s && $s != Z ]]
}
# bench_stop_pid PID: SIGTERM, SIGKILL after 5 s, reap it if it is our child
bench_stop_pid() {
	local i
	[[ -n ${1:-} ]] || return 0
	if bench_alive "$1"; then
		kill -TERM "$1" 2>/dev/null
		for ((i = 0; i < 50; i++)); do
			bench_alive "$1" || break
			sleep 0.1
		done
		bench_alive "$1" && kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
	return 0
}
_bench_exit() {
	local rc=$? m i pid
	trap - EXIT
	trap '' INT TERM HUP
	set +e
	for m in "${!_BENCH_MOUNTS[@]}"; do
		if findmnt -rn -M "$m" >/dev/null 2>&1; then
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
		fi
		pid=${_BENCH_MOUNTS[$m]}
		for ((i = 0; i < 50; i++)); do
			[[ -n $pid ]] && bench_alive "$pid" || break
			sleep 0.1
		done
		bench_stop_pid "$pid"
	done
	_BENCH_MOUNTS=()
	for ((i = ${#_BENCH_AT_EXIT[@]} - 1; i >= 0; i--)); do
		eval "${_BENCH_AT_EXIT[i]}"
	done
	_BENCH_AT_EXIT=()
	exit "$rc"
}
_bench_cleanup_init() {
	trap _bench_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
}

# bench_setup NAME: make the work dir and a log dir; refuse a work dir
# inside the source tree (benchmarks leave no data in the repository).
bench_setup() {
	BENCH_NAME=$1
	_bench_cleanup_init
	mkdir -p "$BENCH_DIR"
	BENCH_DIR=$(cd "$BENCH_DIR" && pwd -P)
	case "$BENCH_DIR/" in
	"$(cd "$RPFS_ROOT" && pwd -P)/"*) bench_die "BENCH_DIR=$BENCH_DIR is inside the source tree; pick another";;
	esac
	BENCH_LOAD0=$(bench_load)
	BENCH_LOGS=$BENCH_DIR/logs/$BENCH_NAME
	rm -rf "$BENCH_LOGS"
	mkdir -p "$BENCH_LOGS"
}

# bench_need CMD:PACKAGE ...: apt-get install the packages whose command is
# missing (a CMD starting with / is checked as a path).
_bench_have() { if [[ $1 == /* ]]; then [[ -x $1 ]]; else command -v "$1" >/dev/null 2>&1; fi; }
bench_need() {
	local want=() spec sudo=
	for spec in "$@"; do
		_bench_have "${spec%%:*}" && continue
		[[ " ${want[*]-} " == *" ${spec#*:} "* ]] || want+=("${spec#*:}")
	done
	((${#want[@]})) || return 0
	[[ $(id -u) == 0 ]] || sudo=sudo
	bench_log "installing missing packages: ${want[*]}"
	{ $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${want[@]}"; } \
		>"$BENCH_LOGS/apt.log" 2>&1 || { tail -20 "$BENCH_LOGS/apt.log" >&2; bench_die "could not install ${want[*]}"; }
	for spec in "$@"; do
		_bench_have "${spec%%:*}" || bench_die "${spec%%:*} still missing after installing ${spec#*:}"
	done
}

# bench_space GIB: refuse to start with less than GIB GiB free in BENCH_DIR.
bench_space() {
	local need=$1 avail
	avail=$(df -P -B1 "$BENCH_DIR" | awk 'NR==2 {print $4}')
	if ((avail < need * GIB)); then
		bench_die "$(printf 'only %.1f GiB free in %s, this benchmark needs %d GiB; set BENCH_DIR to a roomier place' \
			"$(bench_div "$avail" $GIB)" "$BENCH_DIR" "$need")"
	fi
}

# bench_machine [FILE]: the host's facts (CPU model and vector units, cores,
# kernel, virtualization), the floors of reading and hashing FILE (default
# the data set's v2.img) measured now (bench-floors: read, pread+XXH3,
# mmap+XXH3 on one thread), and one line on the conditions. A figure from
# another machine is read against these.
bench_machine() {
	local cpu mem vec virt floors file=${1:-$BENCH_DIR/data/v2.img}
	cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
	mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
	vec=$(grep -m1 -o -w -E 'sse4_2|avx|avx2|avx512f|avx512bw|avx512vl|sha_ni|vaes' /proc/cpuinfo 2>/dev/null | sort -u | tr '\n' ' ')
	[[ -n $vec ]] || vec=$(grep -m1 -i '^Features' /proc/cpuinfo | cut -d: -f2)
	virt=$(systemd-detect-virt 2>/dev/null || echo none)
	printf 'machine: %s CPUs (nproc), %s, %s RAM, Linux %s, BENCH_DIR on %s\n' \
		"$(nproc)" "${cpu:-unknown CPU}" "$mem" "$(uname -r)" \
		"$(findmnt -no FSTYPE -T "$BENCH_DIR" 2>/dev/null || echo '?')"
	printf 'host: vector units: %s; virtualization: %s\n' "${vec:-?}" "$virt"
	if [[ -x $RPFS_ROOT/build/bench/bench-floors && -f $file ]]; then
		floors=$("$RPFS_ROOT/build/bench/bench-floors" "$file" 2>&1) || floors="floors: bench-floors failed: $floors"
		printf '%s\n' "$floors"
	else
		printf 'floors: not measured (build/bench/bench-floors or %s missing)\n' "$file"
	fi
	printf 'runs: BENCH_RUNS=%s, figures are medians; all runs warm-page-cache (inputs read before each timed command, sync before it; cache not dropped)\n' \
		"$BENCH_RUNS"
	local other
	other=$(awk -v o="${BENCH_OTHER_SUM:-0}" -v w="${BENCH_WALL_SUM:-0}" -v n="$(nproc)" \
		'BEGIN {printf "%.0f", (w > 0 ? 100 * o / (w * n) : 0)}')
	printf 'interference: other processes used %s%% of the machine'"'"'s CPU during the timed commands; load average %s before the run' \
		"$other" "$BENCH_LOAD0"
	if ((other >= 10)); then
		printf '\n  -- the machine was busy: wall times are noisy and can favour the tools that use fewer cores; CPU times are steadier'
	fi
	printf '\n'
}
# FUSE mounts of the benchmarks (bench/mount, bench/failback)
# bench_proc_cpu PID: user + system CPU ticks of a process (0 if gone)
bench_proc_cpu() {
	[[ -n ${1:-} && -r /proc/$1/stat ]] || { echo 0; return; }
	sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
bench_is_mounted() { findmnt -rn -M "$1" >/dev/null 2>&1; }
bench_wait_mounted() {  # MNT WHAT: up to 60 s
	local i
	for ((i = 0; i < 600; i++)); do
		bench_is_mounted "$1" && return 0
		sleep 0.1
	done
	bench_die "$2: $1 not mounted after 60 s"
}
bench_unmount() {  # MNT [PID]: unmount, wait for the server to exit
	local i
	for ((i = 0; i < 50; i++)); do
		bench_is_mounted "$1" || break
		fusermount3 -u "$1" 2>/dev/null || umount "$1" 2>/dev/null || sleep 0.2
	done
	bench_is_mounted "$1" && bench_die "could not unmount $1"
	if [[ -n ${2:-} ]]; then
		for ((i = 0; i < 300; i++)); do
			kill -0 "$2" 2>/dev/null || break
			[[ $(sed -E 's/^.*\) (.).*/\1/' "/proc/$2/stat" 2>/dev/null) == Z ]] && break
			sleep 0.1
		done
		wait "$2" 2>/dev/null || true
	fi
	unset '_BENCH_MOUNTS[$1]'
}

bench_load() { awk '{print $1}' /proc/loadavg; }
# busy CPU ticks of the whole machine (USER_HZ = 100)
_bench_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# bench_warm PATH...: read files (or every file under directories) once, so
# every tool starts from the same warm page cache.
bench_warm() {
	local p
	for p in "$@"; do
		if [[ -d $p ]]; then find "$p" -type f -print0 | xargs -0 -r cat >/dev/null
		else cat "$p" >/dev/null; fi
	done
}

# bench_time LOGNAME CMD...: run CMD (output to the log), after a sync.
# Sets BT_S (wall seconds, ms resolution), BT_CPU (user + system CPU
# seconds, less disturbed than wall time by other work on the machine) and
# BT_KIB (peak RSS, KiB, from /usr/bin/time %M: the largest resident set of
# the process or any child it waited for). A failing command stops the
# benchmark.
# shellcheck disable=SC2034 # BT_* are read by the callers
bench_time() {
	local log=$BENCH_LOGS/$1.log tf=$BENCH_LOGS/.time t0 t1 c0 c1 rc=0
	shift
	sync
	printf '$ %s\n' "$*" >>"$log"
	c0=$(_bench_busy)
	t0=$EPOCHREALTIME
	/usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >>"$log" 2>&1 || rc=$?
	t1=$EPOCHREALTIME
	c1=$(_bench_busy)
	if ((rc != 0)); then
		printf 'bench: error: "%s" failed (status %d); last lines of %s:\n' "$*" "$rc" "$log" >&2
		tail -15 "$log" >&2
		exit 3
	fi
	BT_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
	BT_KIB=$(awk '{v=$2} END {print v}' "$tf")
	BT_CPU=$(awk '{v=$3 + $4} END {printf "%.2f", v}' "$tf")
	# CPU the rest of the machine used meanwhile (interference)
	BENCH_WALL_SUM=$(awk -v a="${BENCH_WALL_SUM:-0}" -v b="$BT_S" 'BEGIN {print a + b}')
	BENCH_OTHER_SUM=$(awk -v a="${BENCH_OTHER_SUM:-0}" -v c0="$c0" -v c1="$c1" -v t="$BT_CPU" \
		'BEGIN {o = (c1 - c0) / 100 - t; print a + (o > 0 ? o : 0)}')
}

# bench_run LOGNAME CMD...: run an untimed step, output to the log.
bench_run() {
	local log=$BENCH_LOGS/$1.log
	shift
	printf '$ %s\n' "$*" >>"$log"
	"$@" >>"$log" 2>&1 || {
		printf 'bench: error: "%s" failed; last lines of %s:\n' "$*" "$log" >&2
		tail -15 "$log" >&2
		exit 3
	}
}

# bench_median NUMBER...: the median (mean of the middle two for an even count).
bench_median() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {
		if (NR == 0) exit 1
		if (NR % 2) printf "%.15g\n", v[(NR + 1) / 2]
		else printf "%.15g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bench_div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.6g\n", (b == 0 ? 0 : a / b)}'; }
bench_min() { printf '%s\n' "$@" | sort -g | head -1; }
bench_max() { printf '%s\n' "$@" | sort -g | tail -1; }
# bench_mib BYTES: "123.4 MiB"; bench_kib_mib KIB: the same from KiB
bench_mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
bench_kib_mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
# bench_du DIR: bytes stored under DIR (apparent sizes)
bench_du() { du -sb "$1" | awk '{print $1}'; }
# bench_cmp LE|LT VALUE LIMIT: PASS or MISS
bench_goal() {
	awk -v op="$1" -v v="$2" -v l="$3" 'BEGIN {
		ok = (op == "LE") ? (v <= l) : (v < l); print (ok ? "PASS" : "MISS") }'
}

# ------------------------------------------------------------------ data set
#
# bench_dataset: build (or reuse) the shared data set in $BENCH_DIR/data:
#   tree-v1/   ~1.35 GiB of real files sampled from /usr
#   v1.img     a 2 GiB ext4 image of tree-v1 (mkfs.ext4 -d, no root needed)
#   v2.img     v1.img with ~1-2% of its 64 KiB blocks changed by content
#              edits made inside the image (debugfs, in-place block writes)
#   tree-v2/   tree-v1 with exactly the same edits (checked against v2.img)
#   changes.tsv, blockdiff: what changed
# Sets DS (the folder) and DS_* facts. Rebuilt when BENCH_REBUILD=1 or when
# the generator version changes.
bench_dataset() {
	DS=$BENCH_DIR/data
	local stamp=$DS/.complete
	if [[ -f $stamp && $(cat "$stamp") == "$BENCH_DATASET_VERSION" && -z ${BENCH_REBUILD:-} ]]; then
		bench_log "reusing the data set in $DS (BENCH_REBUILD=1 rebuilds it)"
	else
		bench_space 12
		bench_log "building the data set in $DS"
		rm -rf "$DS"
		mkdir -p "$DS"
		_bench_build_dataset
		echo "$BENCH_DATASET_VERSION" >"$stamp"
	fi
	read -r DS_BLOCKS DS_DIFF DS_NONZERO <"$DS/blockdiff"
	DS_IMG_BYTES=$(stat -c %s "$DS/v1.img")
	DS_TREE_FILES=$(find "$DS/tree-v1" -type f | wc -l)
	DS_TREE_BYTES=$(find "$DS/tree-v1" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
	DS_CHANGES=$(awk -F'\t' '{n[$1]++; b[$1]+=$4} END {
		printf "%d files overwritten in place (%.1f MiB), %d rewritten with data appended (+%.1f MiB), %d new (%.1f MiB), %d deleted",
		n["overwrite"], b["overwrite"]/1048576, n["append"], b["append"]/1048576, n["new"], b["new"]/1048576, n["delete"] }' "$DS/changes.tsv")
}

_bench_build_dataset() {
	local target=$((1400 * MIB)) n size
	# 1. tree-v1: a deterministic sample of real files from /usr
	read -r n size < <(python3 "$BENCH_SRC/mkdata.py" select --target $target \
		--out "$DS/files.list" --rest "$DS/rest.list" /usr)
	bench_log "tree-v1: $n files, $(bench_mib "$size") sampled from /usr"
	mkdir "$DS/tree-v1"
	tar -C / --null -T "$DS/files.list" -cf - 2>"$BENCH_LOGS/tar.log" | tar -C "$DS/tree-v1" -xf -
	size=$(find "$DS/tree-v1" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
	# a small system: add compressed archives of what is there (real data,
	# different bytes) until the tree is big enough
	local i=0
	while ((size < 1200 * MIB)); do
		((i < 8)) || bench_die "could not gather 1.2 GiB of files (have $(bench_mib "$size"))"
		mkdir -p "$DS/tree-v1/extra"
		bench_log "tree-v1 is only $(bench_mib "$size"); adding a compressed copy"
		tar -C "$DS/tree-v1" --exclude=extra -cf - . | gzip -$((i + 1)) >"$DS/tree-v1/extra/copy-$i.tar.gz"
		size=$(find "$DS/tree-v1" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
		i=$((i + 1))
	done
	# 2. v1.img, with fixed UUID, hash seed and time so the image repeats
	local uuid=5eb0c0de-2026-4122-8000-000000000001
	E2FSPROGS_FAKE_TIME=1795340700 bench_run dataset mkfs.ext4 -q -F -U $uuid -E hash_seed=$uuid \
		-L rpfs-bench -d "$DS/tree-v1" "$DS/v1.img" 2G
	bench_run dataset e2fsck -fn "$DS/v1.img"
	# 3. v2: the same edits inside a copy of the image and of the tree
	cp --sparse=always "$DS/v1.img" "$DS/v2.img"
	cp -a "$DS/tree-v1" "$DS/tree-v2"
	bench_run dataset python3 "$BENCH_SRC/mkdata.py" mutate --img "$DS/v2.img" --tree "$DS/tree-v2" \
		--rest "$DS/rest.list" --log "$DS/changes.tsv"
	bench_run dataset e2fsck -fn "$DS/v2.img"
	# 4. prove that tree-v2 is exactly what v2.img holds
	rm -rf "$DS/check"
	mkdir "$DS/check"
	DEBUGFS_PAGER=__none__ bench_run dataset debugfs -R "rdump / $DS/check" "$DS/v2.img"
	rm -rf "$DS/check/lost+found"
	diff -r -q "$DS/tree-v2" "$DS/check" >"$BENCH_LOGS/dataset-diff.log" 2>&1 || {
		head "$BENCH_LOGS/dataset-diff.log" >&2
		bench_die "tree-v2 does not match v2.img"
	}
	rm -rf "$DS/check"
	python3 "$BENCH_SRC/mkdata.py" blockdiff "$DS/v1.img" "$DS/v2.img" >"$DS/blockdiff"
	sha256sum "$DS/v1.img" | awk '{print $1}' >"$DS/v1.img.sha256"
	sha256sum "$DS/v2.img" | awk '{print $1}' >"$DS/v2.img.sha256"
}

# bench_dataset_summary: the data-set lines of a report.
bench_dataset_summary() {
	printf 'data: file tree %s in %d files (sampled from /usr); ext4 image %s, %s in non-zero 64 KiB blocks\n' \
		"$(bench_mib "$DS_TREE_BYTES")" "$DS_TREE_FILES" "$(bench_mib "$DS_IMG_BYTES")" \
		"$(bench_mib $((DS_NONZERO * 65536)))"
	printf 'v2:   %s;\n      image blocks changed: %d of %d 64 KiB blocks (%.2f%%), %.2f%% of the non-zero ones\n' \
		"$DS_CHANGES" "$DS_DIFF" "$DS_BLOCKS" "$(bench_div $((DS_DIFF * 100)) "$DS_BLOCKS")" \
		"$(bench_div $((DS_DIFF * 100)) "$DS_NONZERO")"
}

# ------------------------------------------------------------------ Azurite
#
# The Azure Blob emulator of the tests: tests/run.sh installs it from npm,
# pinned, into tests/.azurite (git-ignored); the benchmarks reuse that
# install and make it the same way when it is missing.
#
# bench_azurite_install: sets AZURITE_BIN (and AZURITE_VERSION).
# bench_azurite_start DIR [PORT [ARG...]]: start it on PORT (default a free
#   127.0.0.1 port; "" for that too) with its data in DIR (--disableTelemetry
#   --silent and the ARGs, e.g. --debug FILE; log in DIR/azurite.log) and wait
#   until it answers; sets AZURITE_PID, AZURITE_EP (endpoint) and AZURITE_CS
#   (a connection string for the emulator's public development account). The
#   benchmark's exit (any exit, see bench_at_exit) stops it; so does the
#   kernel when the benchmark's shell dies unhandled (setpriv --pdeathsig
#   TERM, where util-linux has it: a SIGKILLed run leaves no Azurite behind,
#   also not inside bench/azure-net's network namespace).
# bench_azurite_stop: stop it by PID (SIGTERM, SIGKILL after 5 s); safe to
#   call twice.
AZURITE_PID=
_BENCH_AZ_HOOKED=0
bench_azurite_install() {
	local dir=$RPFS_ROOT/tests/.azurite have
	AZURITE_VERSION=$(sed -n 's/^AZURITE_VERSION=//p' "$RPFS_ROOT/tests/run.sh" | head -1)
	[[ -n $AZURITE_VERSION ]] || bench_die "no AZURITE_VERSION in tests/run.sh"
	AZURITE_BIN=$dir/node_modules/.bin/azurite-blob
	have=$(node -p "require('$dir/node_modules/azurite/package.json').version" 2>/dev/null) || have=
	[[ -x $AZURITE_BIN && $have == "$AZURITE_VERSION" ]] && return 0
	bench_need npm:npm node:nodejs
	bench_log "installing azurite $AZURITE_VERSION into $dir (npm)"
	mkdir -p "$dir"
	npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" \
		>>"$BENCH_LOGS/npm.log" 2>&1 || { tail -20 "$BENCH_LOGS/npm.log" >&2; bench_die "could not install azurite"; }
	[[ -x $AZURITE_BIN ]] || bench_die "azurite installed, but $AZURITE_BIN is missing"
}
bench_azurite_start() {
	local dir=$1 port=${2:-} i pdeath=()
	shift $(($# < 2 ? $# : 2))
	mkdir -p "$dir"
	[[ -n $port ]] || port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	((_BENCH_AZ_HOOKED)) || { bench_at_exit bench_azurite_stop; _BENCH_AZ_HOOKED=1; }
	setpriv --pdeathsig TERM true 2>/dev/null && pdeath=(setpriv --pdeathsig TERM)
	"${pdeath[@]}" "$AZURITE_BIN" --blobHost 127.0.0.1 --blobPort "$port" --location "$dir" \
		--disableTelemetry --silent "$@" >"$dir/azurite.log" 2>&1 &
	AZURITE_PID=$!
	AZURITE_EP=http://127.0.0.1:$port/devstoreaccount1
	# the emulator's well-known development account (public, documented by Microsoft)
	# shellcheck disable=SC2034 # read by the benchmarks
	AZURITE_CS="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=$AZURITE_EP;"
	for ((i = 0; i < 150; i++)); do
		curl -s -o /dev/null --max-time 2 "$AZURITE_EP?comp=list" && return 0
		kill -0 "$AZURITE_PID" 2>/dev/null || break
		sleep 0.2
	done
	tail -5 "$dir/azurite.log" >&2
	bench_azurite_stop
	bench_die "azurite did not start"
}
# bench_azurite_container NAME: create container NAME in the running
# Azurite (Create Container with Shared Key, tests/integration/azure_helper.py).
# bench_azurite_sas CONTAINER PERMISSIONS: a container SAS token for it.
_BENCH_AZ_HELPER=$RPFS_ROOT/tests/integration/azure_helper.py
bench_azurite_container() {
	RPFS_AZURITE_CONNECTION_STRING=$AZURITE_CS python3 -c '
import sys
sys.path.insert(0, sys.argv[1])
import azure_helper
azure_helper.request("PUT", sys.argv[2], query={"restype": "container"},
                     headers={"Content-Type": "application/octet-stream"})' "$(dirname "$_BENCH_AZ_HELPER")" "$1" \
		2>>"$BENCH_LOGS/sas.log" || bench_die "could not create container $1 in Azurite"
}
bench_azurite_sas() {
	RPFS_AZURITE_CONNECTION_STRING=$AZURITE_CS python3 "$_BENCH_AZ_HELPER" sas "$1" "$2" 2>>"$BENCH_LOGS/sas.log"
}
bench_azurite_stop() {
	local i
	[[ -n ${AZURITE_PID:-} ]] || return 0
	kill -TERM "$AZURITE_PID" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$AZURITE_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$AZURITE_PID" 2>/dev/null || true
	wait "$AZURITE_PID" 2>/dev/null || true
	AZURITE_PID=
	return 0
}
