#!/usr/bin/env bash
# Side-by-side benchmark: Debian's Linux 6.19 and this kernel booted one
# after the other in the same QEMU, both running the same static program
# (tests/programs/bench/mmbench.c) as PID 1; prints the ratio table
# (this kernel's time / Linux's, per path) in Markdown.
#
#   scripts/bench-vs-linux.sh [--write] [--runs N] [--only 4k|64k] [--icount] [--report]
#   scripts/bench-vs-linux.sh --program NAME [--runs N] [--icount] [-- ARGS...]
#
#   --write     also replace the generated part of the section "Against
#               Linux 6.19 in the same QEMU" of docs/BENCHMARKS.md (one
#               part for wall-clock runs, one for --icount runs)
#   --runs N    boots per kernel and mode (median of N; default 3)
#   --only M    only the 4 KiB-page runs or only the 64 KiB-mTHP runs
#   --icount    add `-icount shift=0` for both: the guest's clocks count
#               executed instructions (1 ns each) instead of host time, so
#               the figures do not depend on the host's load (TCG runs a
#               `rep` string instruction as one instruction per element)
#   --report    boot nothing: the table of the last run's logs (of the
#               same --icount choice) again, e.g. with --write
#   --program NAME
#               instead of mmbench, boot both with tests/programs/bench/
#               NAME.c as init (ARGS after `--` its arguments; it must
#               print "NAME: done" last) and print what each boot printed,
#               side by side, with no table (threadbench, sigbench)
#
# What it does:
# 1. Fetches the newest linux-binary-6.19.*-amd64 package (Linux's image,
#    vmlinuz) of Debian's trixie-backports suite with `apt-get download`
#    through a private apt configuration under target/bench-vs-linux/apt
#    (its own sources list, lists and cache: the machine's apt sources and
#    state are neither read nor changed); falls back, saying so, to the
#    newest linux-image-* there if no 6.19 exists. Cached: a second run
#    downloads nothing.
# 2. Builds the program (musl-gcc -static -O2) and the runner and kernel
#    (cargo build --release -p boot).
# 3. Packs a newc initramfs for Linux: /init, /dev/console, /proc, /sys.
# 4. Boots both in identical QEMU settings, interleaved (Linux, this
#    kernel, Linux, ...): -accel tcg -cpu max,la57=off -m 1G -smp 1
#    -machine pc, serial on stdio, no display, -no-reboot, the
#    isa-debug-exit device; Linux with "console=ttyS0 quiet rdinit=/init
#    transparent_hugepage=never panic=-1", this kernel through its runner
#    (`cargo run --release -- --mem 1G --smp 1 --cpu max,la57=off --init
#    mmbench -- -machine pc`, the built runner called directly). Then the
#    same with "64k": the program turns on 64 KiB mTHP on both sides.
# 5. Prints the medians and ratios, the date, the QEMU version, the host's
#    load average, and the command.
#
# Needs: what scripts/setup.sh installs (it is run first: the toolchain,
# QEMU, musl-gcc), apt-get and dpkg-deb (any Debian or Ubuntu host), and
# the network for the first run. Logs of every boot: target/bench-vs-linux/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

WRITE=0
RUNS=3
MODES=(4k 64k)
ICOUNT=0
REPORT_ONLY=0
PROGRAM=
PROG_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --program) PROGRAM=$2; shift ;;
    --) shift; PROG_ARGS=("$@"); break ;;
    --write) WRITE=1 ;;
    --runs) RUNS=$2; shift ;;
    --only) MODES=("$2"); shift ;;
    --icount) ICOUNT=1 ;;
    --report) REPORT_ONLY=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-vs-linux: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
COMMAND="scripts/bench-vs-linux.sh"
[ "$RUNS" = 3 ] || COMMAND+=" --runs $RUNS"
[ ${#MODES[@]} = 2 ] || COMMAND+=" --only ${MODES[0]}"
[ "$ICOUNT" = 0 ] || COMMAND+=" --icount"
[ "$WRITE" = 0 ] || COMMAND+=" --write"
[ -z "$PROGRAM" ] || COMMAND+=" --program $PROGRAM${PROG_ARGS[*]:+ -- ${PROG_ARGS[*]}}"
if [ -n "$PROGRAM" ]; then
    [ "$WRITE$REPORT_ONLY" = 00 ] || { echo "bench-vs-linux: --program prints only" >&2; exit 2; }
    MODES=(plain)
fi
BENCH=${PROGRAM:-mmbench}

WORK=$ROOT/target/bench-vs-linux
LOGS=$WORK/logs
[ "$ICOUNT" = 0 ] || LOGS=$WORK/logs-icount
[ -z "$PROGRAM" ] || LOGS=$LOGS-$PROGRAM
mkdir -p "$WORK" "$LOGS"
say() { printf 'bench-vs-linux: %s\n' "$*" >&2; }

# The QEMU settings both kernels get (the runner adds -serial stdio
# -display none -no-reboot and the isa-debug-exit device itself).
MEM=1G
SMP=1
CPU=max,la57=off
MACHINE=pc
TIMEOUT=1200 # seconds per boot
EXTRA=()     # more QEMU arguments, for both
[ "$ICOUNT" = 0 ] || EXTRA=(-icount shift=0)

# --- 1. Linux's image, through a private apt configuration ---------------

APT=$WORK/apt
apt_opts=(
    -o "Dir::Etc::sourcelist=$APT/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State=$APT/state"
    -o "Dir::Cache=$APT/cache"
    -o "APT::Sandbox::User=root"
    -q
)

fetch_linux() {
    local img
    img=$(ls "$WORK"/linux/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$img" ]; then
        echo "$img"
        return
    fi
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
        say "needs apt-get and dpkg-deb to fetch Debian's kernel"
        exit 1
    }
    mkdir -p "$APT/state/lists/partial" "$APT/cache/archives/partial"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -f "$keyring" ] || {
        say "$keyring is missing (apt-get install debian-archive-keyring)"
        exit 1
    }
    echo "deb [signed-by=$keyring] http://deb.debian.org/debian trixie-backports main" \
        >"$APT/sources.list"
    say "apt-get update (private lists in $APT)"
    apt-get "${apt_opts[@]}" update >&2
    local pkg
    pkg=$(apt-cache "${apt_opts[@]}" search --names-only '^linux-binary-6\.19\.[0-9]+\+[a-z0-9]+-amd64$' |
        awk '{print $1}' | sort -V | tail -n 1)
    if [ -z "$pkg" ]; then
        # From 6.19 the image is in linux-binary-*, before in linux-image-*.
        pkg=$(apt-cache "${apt_opts[@]}" search --names-only '^linux-binary-[0-9.]+\+[a-z0-9]+-amd64$' |
            awk '{print $1}' | sort -V | tail -n 1)
        [ -n "$pkg" ] || pkg=$(apt-cache "${apt_opts[@]}" search --names-only '^linux-image-[0-9.]+\+[a-z0-9]+-amd64$' |
            awk '{print $1}' | sort -V | tail -n 1)
        say "NO Linux 6.19 in trixie-backports: falling back to the newest there, $pkg"
    fi
    [ -n "$pkg" ] || { say "no Linux kernel package found"; exit 1; }
    say "apt-get download $pkg"
    rm -rf "$WORK/deb" && mkdir -p "$WORK/deb"
    (cd "$WORK/deb" && apt-get "${apt_opts[@]}" download "$pkg" >&2)
    rm -rf "$WORK/linux"
    dpkg-deb -x "$WORK"/deb/*.deb "$WORK/linux"
    img=$(ls "$WORK"/linux/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$img" ] || { say "$pkg holds no /boot/vmlinuz-*"; exit 1; }
    echo "$pkg $(dpkg-deb -f "$WORK"/deb/*.deb Version)" >"$WORK/linux/PACKAGE"
    echo "$img"
}

# --- 3. A newc initramfs (Documentation/driver-api/early-userspace/
#        buffer-format.rst), written with printf: no cpio needed ---------

pad4() {
    local r=$(($1 % 4))
    [ $r -eq 0 ] || head -c $((4 - r)) /dev/zero
}

# cpio_entry INO MODE NAME [FILE [RDEVMAJOR RDEVMINOR]]
cpio_entry() {
    local ino=$1 mode=$2 name=$3 file=${4:-} rmaj=${5:-0} rmin=${6:-0} size=0
    [ -z "$file" ] || size=$(stat -c %s "$file")
    local nlink=1
    [ $((mode & 0040000)) -eq 0 ] || nlink=2
    printf '070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x' \
        "$ino" "$mode" 0 0 "$nlink" 0 "$size" 0 0 "$rmaj" "$rmin" $((${#name} + 1)) 0
    printf '%s\0' "$name"
    pad4 $((110 + ${#name} + 1))
    if [ -n "$file" ]; then
        cat "$file"
        pad4 "$size"
    fi
}

make_initramfs() { # PROGRAM OUT
    {
        cpio_entry 1 $((0040755)) dev
        cpio_entry 2 $((0020600)) dev/console "" 5 1
        cpio_entry 3 $((0040755)) proc
        cpio_entry 4 $((0040755)) sys
        cpio_entry 5 $((0100755)) init "$1"
        cpio_entry 0 0 'TRAILER!!!'
    } >"$2"
}

# --- 4. Boots ---------------------------------------------------------------

# Runs "$@" with every output line stamped with the host's clock (seconds)
# into LOG, whose first line is the start time. Returns the command's status.
stamped() {
    local log=$1
    shift
    echo "start $EPOCHREALTIME" >"$log"
    set +e
    timeout "$TIMEOUT" "$@" 2>&1 </dev/null | while IFS= read -r line; do
        printf '%s %s\n' "$EPOCHREALTIME" "${line//$'\r'/}"
    done >>"$log"
    local st=${PIPESTATUS[0]}
    set -e
    return "$st"
}

boot_linux() { # MODE LOG
    local args=""
    [ "$1" = 64k ] && args=" -- 64k"
    [ ${#PROG_ARGS[@]} = 0 ] || args=" -- ${PROG_ARGS[*]}"
    stamped "$2" qemu-system-x86_64 -kernel "$VMLINUZ" -initrd "$WORK/linux-initramfs.cpio" \
        -append "console=ttyS0 quiet rdinit=/init transparent_hugepage=never panic=-1$args" \
        -serial stdio -display none -no-reboot \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
        -accel tcg -cpu "$CPU" -m "$MEM" -smp "$SMP" -machine "$MACHINE" "${EXTRA[@]}"
}

boot_ours() { # MODE LOG
    local args=()
    [ "$1" = 64k ] && args=(64k)
    [ ${#PROG_ARGS[@]} = 0 ] || args=("${PROG_ARGS[@]}")
    stamped "$2" "$RUNNER" --mem "$MEM" --smp "$SMP" --cpu "$CPU" --timeout "$TIMEOUT" \
        --init "$WORK/$BENCH" "${args[@]}" -- -machine "$MACHINE" "${EXTRA[@]}"
}

# --- main -------------------------------------------------------------------

if [ "$REPORT_ONLY" = 1 ]; then
    # shellcheck source=/dev/null
    . "$LOGS/meta" || { say "no earlier run in $LOGS"; exit 1; }
    COMMAND=$RUN_COMMAND
else
    # The toolchain, QEMU and musl-gcc (idempotent; quick when present).
    scripts/setup.sh >&2
    VMLINUZ=$(fetch_linux)
    LINUX_PKG=$(cat "$WORK/linux/PACKAGE" 2>/dev/null || basename "$VMLINUZ")
    say "Linux: $VMLINUZ ($LINUX_PKG)"

    say "building tests/programs/bench/$BENCH.c and the release runner"
    musl-gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/$BENCH" "tests/programs/bench/$BENCH.c"
    cargo build --release -q -p boot
    RUNNER=$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/boot
    [ -x "$RUNNER" ] || { say "no runner at $RUNNER"; exit 1; }
    make_initramfs "$WORK/$BENCH" "$WORK/linux-initramfs.cpio"

    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    rm -f "$LOGS"/*.log
    for mode in "${MODES[@]}"; do
        for run in $(seq 1 "$RUNS"); do
            for kernel in linux ours; do
                log=$LOGS/$kernel-$mode-$run.log
                say "run $run/$RUNS, $mode: $kernel (load $(cut -d' ' -f1 /proc/loadavg))"
                st=0
                "boot_$kernel" "$mode" "$log" || st=$?
                if [ $st -ne 0 ] || ! grep -q "$BENCH: done" "$log"; then
                    say "$kernel $mode run $run failed (status $st); log: $log"
                    tail -n 20 "$log" >&2
                    exit 1
                fi
            done
        done
    done
    LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
    RUN_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
    RUN_COMMAND=$COMMAND
    declare -p LINUX_PKG LOAD_BEFORE LOAD_AFTER RUN_DATE RUN_COMMAND RUNS MODES >"$LOGS/meta"
fi

# --program: what each boot printed, from the program's first line to its
# last, with the host's time stamps dropped.
if [ -n "$PROGRAM" ]; then
    echo
    echo "Run on $RUN_DATE with \`$COMMAND\`: $(qemu-system-x86_64 --version | head -n 1),"
    echo "\`-accel tcg -cpu $CPU -m $MEM -smp $SMP -machine $MACHINE${EXTRA[*]:+ ${EXTRA[*]}}\` for both;"
    echo "Linux is Debian's \`$LINUX_PKG\`. Host load average: $LOAD_BEFORE before, $LOAD_AFTER after."
    for kernel in linux ours; do
        for f in "$LOGS/$kernel"-plain-*.log; do
            echo
            echo "$kernel, boot $(basename "$f" .log | sed 's/.*-//'):"
            awk -v p="$BENCH:" '$2 == p { on = 1 } on { $1 = ""; sub(/^ /, ""); print } $2 == p && $3 == "done" { on = 0 }' "$f"
        done
    done
    exit 0
fi

# --- 5. The table -----------------------------------------------------------

# "kernel mode name value unit run" for every bench line of every log,
# plus boot_host: the host's time from starting QEMU (or the runner) to
# the program's first line.
collect() {
    local f kernel mode run
    for f in "$LOGS"/*.log; do
        IFS=- read -r kernel mode run <<<"$(basename "$f" .log)"
        awk -v k="$kernel" -v m="$mode" -v r="$run" '
            NR == 1 { t0 = $2 }
            $2 == "mmbench:" && $3 == "start" && !s { s = 1; printf "%s %s boot_host %.1f ms %s\n", k, m, ($1 - t0) * 1000, r }
            $2 == "bench" { print k, m, $3, $4, $5, r }' "$f"
    done
}

# Medians per (kernel, mode, name), then one Markdown row per path; the
# range after a ratio is that of the ratios of the boots paired in order
# (this kernel's run i / Linux's run i).
table() {
    collect | sort -k1,1 -k2,2 -k3,3 -k4,4g | awk -v modes="${MODES[*]}" '
    {
        key = $1 SUBSEP $2 SUBSEP $3
        v[key, ++n[key]] = $4
        run[key, $6] = $4
        runs[$6] = 1
        unit[$3] = $5
        if (!($3 in seen)) { seen[$3] = 1; order[++names] = $3 }
    }
    function range(mode, name,   r, lo, hi, x, l, o) {
        lo = ""
        for (r in runs) {
            l = run["linux" SUBSEP mode SUBSEP name, r]
            o = run["ours" SUBSEP mode SUBSEP name, r]
            if (l == "" || o == "" || l <= 0) continue
            x = o / l
            if (lo == "" || x < lo) lo = x
            if (hi == "" || x > hi) hi = x
        }
        return lo == "" || length(runs) < 2 ? "" : " (" ratio(lo) "-" ratio(hi) ")"
    }
    function median(key,   c) {
        c = n[key]
        if (!c) return ""
        return c % 2 ? v[key, (c + 1) / 2] : (v[key, c / 2] + v[key, c / 2 + 1]) / 2
    }
    function ratio(x) { return sprintf(x < 0.1 ? "%.3f" : "%.2f", x) }
    function fmt(x) { return x == "" ? "-" : (x >= 100 ? sprintf("%.0f", x) : sprintf("%.1f", x)) }
    BEGIN {
        split("boot_host boot_to_init fault_first fault_retouch madv_dontneed munmap fork cow_child reuse_parent ptreclaim_1 ptreclaim_512 ptreclaim_1_vmpte ptreclaim_512_vmpte mmap_munmap mprotect", want, " ")
        desc["boot_host"] = "boot to init, host clock (QEMU start to the first line)"
        desc["boot_to_init"] = "boot to init, guest CLOCK_MONOTONIC"
        desc["fault_first"] = "first-touch anonymous fault, 256 MiB page by page"
        desc["fault_retouch"] = "re-touch after MADV_DONTNEED"
        desc["madv_dontneed"] = "MADV_DONTNEED of 256 MiB populated"
        desc["munmap"] = "munmap of 256 MiB populated"
        desc["fork"] = "fork with 64 MiB populated (to the return in the parent)"
        desc["cow_child"] = "child'"'"'s CoW write fault"
        desc["reuse_parent"] = "parent'"'"'s write fault reusing its page after the child exited"
        desc["ptreclaim_1"] = "PT-reclaim loop, 1 page touched per 2 MiB chunk then MADV_DONTNEED (25600 chunks)"
        desc["ptreclaim_512"] = "same loop, 512 pages per chunk (512 chunks)"
        desc["ptreclaim_1_vmpte"] = "VmPTE after the 1-page loop"
        desc["ptreclaim_512_vmpte"] = "VmPTE after the 512-page loop"
        desc["mmap_munmap"] = "VMA churn: mmap + munmap of one page"
        desc["mprotect"] = "VMA churn: mprotect splitting a VMA in 3 and merging it back"
    }
    END {
        nm = split(modes, m, " ")
        head = "| path | unit |"; line = "|---|---|"
        for (i = 1; i <= nm; i++) {
            sz = m[i] == "64k" ? "64 KiB mTHP" : "4 KiB pages"
            head = head " Linux, " sz " | this kernel | ratio |"
            line = line "---:|---:|---:|"
        }
        print head; print line
        for (w = 1; w <= length(want); w++) {
            name = want[w]
            if (!(name in seen)) continue
            row = "| " desc[name] " | " unit[name] " |"
            for (i = 1; i <= nm; i++) {
                l = median("linux" SUBSEP m[i] SUBSEP name)
                o = median("ours" SUBSEP m[i] SUBSEP name)
                r = (l != "" && o != "" && l > 0) ? ("**" ratio(o / l) "x**" range(m[i], name)) : "-"
                row = row " " fmt(l) " | " fmt(o) " | " r " |"
            }
            print row
        }
    }'
}

# Sanity lines (fault counts, the mTHP setting) from the first run of each.
infos() {
    local f
    for f in "$LOGS"/linux-*-1.log "$LOGS"/ours-*-1.log; do
        [ -f "$f" ] || continue
        awk -v f="$(basename "$f" -1.log)" '$2 == "info" { $1 = ""; $2 = ""; sub(/^ +/, ""); print f ": " $0 }' "$f"
    done
}

QEMU_VERSION=$(qemu-system-x86_64 --version | head -n 1)
if [ "$ICOUNT" = 1 ]; then
    CLOCK="\`-icount shift=0\`: the guest's clocks count executed instructions, 1 ns each, whatever the host's load"
else
    CLOCK="the guest's clocks follow the host's, so the host's load shows in the figures"
fi
REPORT=$(
    cat <<EOF
Run on $RUN_DATE with \`$COMMAND\`: $QEMU_VERSION,
\`-accel tcg -cpu $CPU -m $MEM -smp $SMP -machine $MACHINE${EXTRA[*]:+ ${EXTRA[*]}}\` for both;
$CLOCK. Linux is Debian's \`$LINUX_PKG\` with \`transparent_hugepage=never\`,
this kernel the release build. Medians of $RUNS boots each, interleaved;
the ratio is this kernel's figure / Linux's (below 1: this kernel is
faster or smaller), in brackets the range of the ratios of the boots
paired in order. Host load average (1, 5, 15 min): $LOAD_BEFORE before,
$LOAD_AFTER after ($(nproc) CPUs).

$(table)

Sanity figures of the first boots (page faults counted by \`ru_minflt\`;
the 64 KiB setting as read back from sysfs):

\`\`\`text
$(infos)
\`\`\`
EOF
)
echo
echo "$REPORT"

# --write: the generated block of this variant (wall clock or icount)
# between its markers; a missing block goes at the end of the section, a
# missing section before the second level-2 heading (after Summary).
if [ "$WRITE" = 1 ]; then
    DOC=docs/BENCHMARKS.md
    SECTION='## Against Linux 6.19 in the same QEMU'
    VARIANT=$([ "$ICOUNT" = 1 ] && echo "icount" || echo "wall clock")
    BEGIN="<!-- bench-vs-linux ($VARIANT): begin, generated by scripts/bench-vs-linux.sh --write -->"
    END="<!-- bench-vs-linux ($VARIANT): end -->"
    body=$(mktemp)
    printf '%s\n%s\n%s\n' "$BEGIN" "$REPORT" "$END" >"$body"
    if grep -qF "$BEGIN" "$DOC"; then
        awk -v b="$BEGIN" -v e="$END" -v f="$body" '
            $0 == b { while ((getline l < f) > 0) print l; skip = 1; next }
            $0 == e { skip = 0; next }
            !skip' "$DOC" >"$DOC.new"
    elif grep -qxF "$SECTION" "$DOC"; then
        awk -v s="$SECTION" -v f="$body" '
            function put() { while ((getline l < f) > 0) print l; print ""; done = 1 }
            in_s && /^## / && !done { put() }
            $0 == s { in_s = 1 }
            { print }
            END { if (in_s && !done) { print ""; put() } }' "$DOC" >"$DOC.new"
    else
        awk -v s="$SECTION" -v f="$body" '
            /^## / && ++h == 2 {
                print s "\n"
                print "```sh\nscripts/bench-vs-linux.sh --write\nscripts/bench-vs-linux.sh --write --icount\n```\n"
                while ((getline l < f) > 0) print l
                print ""
            }
            { print }' "$DOC" >"$DOC.new"
    fi
    mv "$DOC.new" "$DOC"
    rm -f "$body"
    say "wrote the table into $DOC"
fi
