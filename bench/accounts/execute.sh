#!/usr/bin/env bash
# Execute and book a batch: seed N accounts over NAMES names, then
# `keel accounts rebalance --execute` (paper venue at the last close, one booking transaction),
# then the same command again (the same batch id: refused, nothing booked twice).
# Usage: bench/accounts/execute.sh [N] [NAMES] [URL]   (defaults 2000 500 sqlite:////tmp/kexec/x.db)
set -euo pipefail
N=${1:-2000}; NAMES=${2:-500}; URL=${3:-sqlite:////tmp/kexec/x.db}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH=$ROOT/src
mkdir -p /tmp/kexec
uptime; /usr/bin/time -f "seed wall %e s" python3 -m keel accounts seed --n "$N" --names "$NAMES" --url "$URL" --replace
for run in first again; do
  echo "== execute ($run)"; uptime
  /usr/bin/time -f "wall %e s" python3 -m keel accounts rebalance --names "$NAMES" --url "$URL" \
    --workers 1 --format json --execute > /tmp/kexec/summary_$run.json
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print({k: s[k] for k in ('accounts','accounts_trading','orders','blocks','shares','timings')}); print(s['execution'])" /tmp/kexec/summary_$run.json
  uptime
done
