#!/usr/bin/env bash
# Batch rebalance of separately managed accounts: seed, then 1 worker, 2 workers, Ray (2 CPUs).
# Usage: bench/accounts/run.sh [N] [NAMES] [DIR]   (defaults 10000 500 /tmp/kbench)
# Prints `uptime` before each run; the JSON summaries and orders CSVs land in DIR.
set -euo pipefail
N=${1:-10000}; NAMES=${2:-500}; DIR=${3:-/tmp/kbench}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH=$ROOT/src
URL=sqlite:///$DIR/big.db
mkdir -p "$DIR"
if [ ! -f "$DIR/big.db" ]; then
  uptime; /usr/bin/time -f "seed wall %e s" python3 -m keel accounts seed --n "$N" --names "$NAMES" --url "$URL"
fi
for run in "1 local" "2 local" "2 ray"; do
  set -- $run
  flag=""; [ "$2" = ray ] && flag="--ray"
  echo "== workers=$1 backend=$2"; uptime
  /usr/bin/time -f "wall %e s" python3 -m keel accounts rebalance --names "$NAMES" --url "$URL" \
    --workers "$1" $flag --format json --orders-out "$DIR/orders_$1_$2.csv" > "$DIR/summary_$1_$2.json"
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print({k: s[k] for k in ('accounts','accounts_trading','orders','blocks','shares','seconds','timings','paths')})" "$DIR/summary_$1_$2.json"
done
cmp "$DIR/orders_1_local.csv" "$DIR/orders_2_local.csv" && echo "1 vs 2 workers: identical orders"
cmp "$DIR/orders_2_local.csv" "$DIR/orders_2_ray.csv" && echo "local vs Ray: identical orders"
