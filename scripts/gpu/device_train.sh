#!/usr/bin/env bash
# Train on a lent GPU machine within the device tool's limits: each call runs at most 10 minutes
# and a machine goes back 30 s after a call, so the run lives in a detached process (setsid)
# that outlasts the call, and every call ends by copying the latest exported weights (in 15 MiB
# parts: at most 16 MiB per file come back) and the logs to $OUT. See docs/training-on-gpu.md.
#
#   bash scripts/gpu/device_train.sh start SECONDS TRAIN_ARGS...  start `napari-vos train TRAIN_ARGS`, follow it
#   bash scripts/gpu/device_train.sh follow SECONDS                follow the running run (collecting every minute), then collect
#   bash scripts/gpu/device_train.sh stop                          end the run (it saves and exports), collect
#
# The run folder is $VOS_RUN (default /tmp/vos-run, outside the working tree); --out, --export
# and --resume are added to TRAIN_ARGS. PYTHON picks the interpreter (default python3, the one
# with PyTorch on the lent machines).
set -u
RUN=${VOS_RUN:-/tmp/vos-run}
: "${OUT:?OUT must name the folder whose files come back}"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

same_run() {  # the arguments that make a run what it is: all but --steps, --max-minutes and --workers
  echo "$1" | sed -E 's/--(steps|max-minutes|workers)[ =][^ ]+//g; s/  +/ /g; s/^ //; s/ $//'
}

running() { [ -f "$RUN/pid" ] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null; }

follow() {  # until the run ends or $1 seconds pass, collecting every $VOS_COLLECT_EVERY s (default 60):
  # a call the tool cuts off at its limit (less device time left than asked) returns what $OUT holds then
  local until=$(( $(date +%s) + $1 )) every=${VOS_COLLECT_EVERY:-60}
  local next=$(( $(date +%s) + every ))
  while running && [ "$(date +%s)" -lt "$until" ]; do
    sleep "$(( every < 5 ? 1 : 5 ))"
    if [ "$(date +%s)" -ge "$next" ]; then collect > /dev/null; next=$(( $(date +%s) + every )); fi
  done
}

# what the device tool returns from $OUT: at most 8 files, each at most 16 MiB, 64 MiB together
OUT_FILES=8 OUT_BYTES=$((64 * 1024 * 1024)) PART_BYTES=$((15 * 1024 * 1024))

collect() {  # the weights first (whole, in parts), then the logs in the room left, gpu.csv if a file is left
  local weights=0 parts=0 room
  if [ -f "$RUN/weights.safetensors" ] && [ -f "$OUT/weights.sha256" ] && \
     ! [ "$RUN/weights.safetensors" -nt "$RUN/snapshot.safetensors" ]; then
    weights=$(stat -c %s "$RUN/snapshot.safetensors")  # the export in $OUT is the latest: left as it is
  elif [ -f "$RUN/weights.safetensors" ]; then
    cp "$RUN/weights.safetensors" "$RUN/snapshot.safetensors"  # written atomically: this copy is whole
    weights=$(stat -c %s "$RUN/snapshot.safetensors")
    parts=$(( (weights + PART_BYTES - 1) / PART_BYTES ))
    if [ $(( parts + 1 )) -gt "$OUT_FILES" ] || [ "$weights" -gt $(( OUT_BYTES - 65536 )) ]; then
      echo "warning: the weights ($(( weights / 1048576 )) MiB, $parts parts) cannot come back from \$OUT" \
        "(at most $OUT_FILES files, 64 MiB in all): they stay in $RUN/weights.safetensors"
      weights=0
    else
      rm -f "$OUT"/weights.part-*
      sha256sum "$RUN/snapshot.safetensors" | cut -d' ' -f1 > "$OUT/weights.sha256"
      split -b "$PART_BYTES" -d -a 1 "$RUN/snapshot.safetensors" "$OUT/weights.part-"
    fi
  fi
  room=$(( OUT_BYTES - weights - 65536 ))  # 64 kB for weights.sha256 and gpu.csv
  [ "$room" -gt "$PART_BYTES" ] && room=$PART_BYTES
  if [ -f "$RUN/train.log" ] && [ "$room" -gt 0 ]; then
    tail -c "$(( room / 4 < 200000 ? room / 4 : 200000 ))" "$RUN/train.log" > "$OUT/train.log"
    room=$(( room - $(stat -c %s "$OUT/train.log") ))
  fi
  if [ -f "$RUN/log.jsonl" ] && [ "$room" -gt 0 ]; then
    if [ "$(stat -c %s "$RUN/log.jsonl")" -le "$room" ]; then cp "$RUN/log.jsonl" "$OUT/log.jsonl"
    else  # the latest steps, whole lines; the run folder keeps them all
      tail -c "$room" "$RUN/log.jsonl" | tail -n +2 > "$OUT/log.jsonl"
      echo "log.jsonl: its last $(wc -l < "$OUT/log.jsonl") lines come back (the weights take the room)"
    fi
  fi
  if command -v nvidia-smi >/dev/null; then
    local gpu
    gpu=$(nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv 2>/dev/null)
    if [ "$(ls -A "$OUT" | wc -l)" -lt "$OUT_FILES" ]; then echo "$gpu" > "$OUT/gpu.csv"
    else echo "gpu (no room for gpu.csv among the $OUT_FILES files): $(echo "$gpu" | tail -n +2)"; fi
  fi
  if running; then echo "run $(cat "$RUN/pid") still running"; else echo "no run in progress"; fi
  [ -f "$RUN/log.jsonl" ] && tail -n 3 "$RUN/log.jsonl"
  grep -E "Error|error:|Traceback" "$RUN/train.log" 2>/dev/null | tail -n 5
  return 0
}

case "${1:-}" in
  start)
    seconds=${2:?start SECONDS TRAIN_ARGS...}; shift 2
    if running; then echo "a run is already in progress in $RUN"; exit 2; fi
    # --resume continues the run in $RUN: only a run of the same arguments may (another stage or --init
    # would resume, or be refused by, the run already there); --steps, --max-minutes and --workers may change
    if [ -f "$RUN/last.pt" ] && [ "$(same_run "$(cat "$RUN/args" 2>/dev/null)")" != "$(same_run "$*")" ]; then
      echo "$RUN holds another run ($(cat "$RUN/args" 2>/dev/null || echo 'its arguments unknown')):"
      echo "repeat its arguments to continue it (--steps may grow), or start a new one elsewhere:"
      echo "VOS_RUN=/tmp/vos-run2 bash $0 start ..."
      exit 2
    fi
    mkdir -p "$RUN"
    printf '%s' "$*" > "$RUN/args"
    setsid "$PY" -m napari_vos.cli train "$@" --out "$RUN" --export "$RUN/weights.safetensors" --resume \
      > "$RUN/train.log" 2>&1 < /dev/null &
    echo $! > "$RUN/pid"
    echo "started run $(cat "$RUN/pid") in $RUN"
    # RGMP, S2S and RVOS batches cross to --workers through shared memory: a 64 MiB /dev/shm kills them
    df -h /dev/shm 2>/dev/null | tail -n 1 | sed 's/^/shared memory: /'
    follow "$seconds"; collect ;;
  follow)
    follow "${2:?follow SECONDS}"; collect ;;
  stop)
    if running; then kill -TERM "$(cat "$RUN/pid")"; follow 120; fi
    collect ;;
  *)
    sed -n '2,15p' "$0"; exit 2 ;;
esac
