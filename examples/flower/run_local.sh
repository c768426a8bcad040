#!/usr/bin/env bash
# A real local Flower deployment on 127.0.0.1: one SuperLink, four SuperNodes, `flwr run`.
# Needs an environment with `pip install 'robustfl[flower]'` (flwr 1.42). Usage: bash run_local.sh [nodes]
set -euo pipefail
cd "$(dirname "$0")"
NODES=${1:-4}
WORK=$(mktemp -d)
export FLWR_HOME="$WORK/flwr-home"
mkdir -p "$FLWR_HOME"
cat > "$FLWR_HOME/config.toml" <<TOML
[superlink]
default = "local-deployment"

[superlink.local-deployment]
address = "127.0.0.1:8000"
insecure = true
TOML
pids=()
cleanup() {
  for p in "${pids[@]}"; do pkill -TERM -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
flower-superlink --insecure --disable-runtime-dependency-installation > "$WORK/superlink.log" 2>&1 &
pids+=($!)
sleep 5
for ((i = 0; i < NODES; i++)); do
  flower-supernode --insecure --superlink 127.0.0.1:8000 --port $((9094 + i)) \
    --node-config "partition-id=$i num-partitions=$NODES" > "$WORK/supernode-$i.log" 2>&1 &
  pids+=($!)
done
sleep 5
timeout "${TIMEOUT:-600}" flwr run . local-deployment --stream
