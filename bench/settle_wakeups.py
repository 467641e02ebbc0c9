"""The settle queue's cost of a push (runner/run/settle.py): workers wait for work pushed late
(sync's replaces, fed as their new versions land), and each push is one unit of work. CPU
seconds (time.process_time) for 1,000 pushes, 0.5 ms apart, to 64 and 256 waiting workers;
every unit taken once.

    python bench/settle_wakeups.py [--pushes 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from runner.run.settle import SettleQueue


async def pushes_cpu(workers: int, pushes: int) -> tuple[float, int]:
    queue = SettleQueue(asyncio.Event())
    queue.open_feed()
    taken = 0

    async def worker() -> None:
        nonlocal taken
        while await queue.take(iter(())) is not None:
            taken += 1
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await asyncio.sleep(0.05)  # every worker waiting
    started = time.process_time()
    for n in range(pushes):
        queue.push(n)
        await asyncio.sleep(0.0005)
    queue.close_feed()
    await asyncio.gather(*tasks)
    return time.process_time() - started, taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=1000)
    args = parser.parse_args()
    for workers in (64, 256):
        cpu, taken = asyncio.run(pushes_cpu(workers, args.pushes))
        assert taken == args.pushes, (taken, args.pushes)
        print(f"{workers:4d} workers: {args.pushes} pushes, {cpu:.2f} s CPU "
              f"({cpu / args.pushes * 1e3:.2f} ms a push)")


if __name__ == "__main__":
    main()
