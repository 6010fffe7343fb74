#!/usr/bin/env bash
# scripts/quickstart.sh — the README's first command: install what NexusCore
# needs from Debian, build it, start nexusd on its embedded defaults (loopback,
# tenant "default", no token), feed it a demo workload and print summaries.
# nexusd keeps running afterwards (its PID and log are printed) so you can
# query it with curl or the nexus CLI; scripts/demo.sh --stop stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
make -s -j"$(nproc)" VARIANT=release build/release/bin/nexusd build/release/bin/nexus
exec bash scripts/demo.sh "$@"
