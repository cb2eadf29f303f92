#!/usr/bin/env bash
# Train on a lent GPU machine within the device tool's limits: each call runs at most 10 minutes
# and a machine goes back 30 s after a call, so the run lives in a detached process (setsid)
# that outlasts the call, and every call ends by copying the latest exported weights (in 15 MiB
# parts: at most 16 MiB per file come back) and the logs to $OUT. See docs/training-on-gpu.md.
#
#   bash scripts/gpu/device_train.sh start SECONDS TRAIN_ARGS...  start `napari-vos train TRAIN_ARGS`, follow it
#   bash scripts/gpu/device_train.sh follow SECONDS                follow the running run, then collect
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

follow() {  # until the run ends or $1 seconds pass
  local until=$(( $(date +%s) + $1 ))
  while running && [ "$(date +%s)" -lt "$until" ]; do sleep 5; done
}

collect() {
  [ -f "$RUN/log.jsonl" ] && cp "$RUN/log.jsonl" "$OUT/log.jsonl"
  [ -f "$RUN/train.log" ] && tail -c 200000 "$RUN/train.log" > "$OUT/train.log"
  if [ -f "$RUN/weights.safetensors" ]; then
    cp "$RUN/weights.safetensors" "$RUN/snapshot.safetensors"  # written atomically: this copy is whole
    sha256sum "$RUN/snapshot.safetensors" | cut -d' ' -f1 > "$OUT/weights.sha256"
    split -b 15m -d -a 1 "$RUN/snapshot.safetensors" "$OUT/weights.part-"
  fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv \
    > "$OUT/gpu.csv" 2>/dev/null
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
