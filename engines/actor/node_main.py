"""``python -m engines.actor.node_main --store FILE --traces FILE.jsonl --node-index I --nodes N``

One actor-engine node as its own OS process, sharing a SQLite file (WAL) with the other nodes. It
claims the groups ``g mod N == I``, watches the others' leases, and serves until SIGTERM/SIGINT;
SIGKILL it to test a takeover for real. Runs are inserted by a driver (``--trigger`` runs this
module as that driver once and exits).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from corpora.codec import decode
from corpora.model import Trace
from engines.actor.live import LIVE_CONFIG, serve_node, trigger_live

__all__ = ["main"]


def _traces(path: str) -> list[Trace]:
    with open(path, encoding="utf-8") as fh:
        return [decode(Trace, json.loads(line)) for line in fh if line.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.actor.node_main", description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="the shared SQLite file")
    p.add_argument("--traces", required=True, help="shadow-trace/1 JSON Lines the runs come from")
    p.add_argument("--node-index", type=int, default=0)
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--trigger", action="store_true", help="insert every run of the traces now and exit")
    args = p.parse_args(argv)
    traces = _traces(args.traces)
    if args.trigger:
        trigger_live(args.store, traces)
        return 0

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"node {args.node_index}/{args.nodes} serving {args.store}", flush=True)
        counters = await serve_node(args.store, traces, node_index=args.node_index, nodes=args.nodes,
                                    config=LIVE_CONFIG, stop=stop)  # fmt: skip
        print(json.dumps({k: counters[k] for k in sorted(counters)}), flush=True)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
