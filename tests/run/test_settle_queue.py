"""The settle queue's waiting room (runner/run/settle.py) by what its workers do: parked items
due together are taken by as many waiting workers at once (each wake passes the next on), work
pushed late reaches a waiting worker, and a stop ends every wait."""

from __future__ import annotations

import asyncio

from runner.items import Item
from runner.run.settle import Parked, SettleQueue


async def test_items_due_together_are_taken_by_as_many_waiting_workers_at_once() -> None:
    stopping = asyncio.Event()
    queue = SettleQueue(stopping)
    queue.open_feed()  # workers wait for pushes rather than end
    release = asyncio.Event()
    holding: list[object] = []

    async def worker() -> None:
        while (unit := await queue.take(iter(()))) is not None:
            holding.append(unit)
            await release.wait()  # each holds its item: the others must be taken by others

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    await asyncio.sleep(0.01)  # all four waiting
    due = asyncio.get_running_loop().time() + 0.05
    for n in range(4):
        queue.park(Item("vs_1", f"file-{n}"), None, due)
    for _ in range(200):
        if len(holding) == 4:
            break
        await asyncio.sleep(0.01)
    assert len(holding) == 4
    assert all(isinstance(unit, Parked) for unit in holding)
    queue.push("late")
    release.set()
    queue.close_feed()
    await asyncio.wait_for(asyncio.gather(*workers), 5)
    assert holding[-1] == "late"


async def test_a_stop_ends_every_waiting_worker() -> None:
    stopping = asyncio.Event()
    queue = SettleQueue(stopping)
    queue.open_feed()
    queue.park(Item("vs_1", "file-1"), None, asyncio.get_running_loop().time() + 3600)
    takes = [asyncio.create_task(queue.take(iter(()))) for _ in range(8)]
    await asyncio.sleep(0.01)
    queue.stop()
    assert await asyncio.wait_for(asyncio.gather(*takes), 5) == [None] * 8


async def test_reading_new_work_lets_the_sockets_in_between_long_reads() -> None:
    """Each unit of work here takes 3 ms of CPU to read (a batch of attributed rows), and an
    answer is waiting on a socket: it is read after the first unit, not after every worker
    has read its own (fails when the workers all read in one turn of the loop)."""
    import socket
    import time

    from runner.run.settle import READ_PER_TURN

    events: list[str] = []

    def work() -> object:
        for n in range(8):
            started = time.perf_counter()
            while time.perf_counter() - started < 1.5 * READ_PER_TURN:
                pass
            events.append("read")
            yield n

    queue = SettleQueue(asyncio.Event())
    units = work()
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    try:
        theirs.send(b"answer")
        loop.add_reader(ours, lambda: (events.append("answer"), loop.remove_reader(ours)))
        taken = await asyncio.gather(*(queue.take(units) for _ in range(4)))
    finally:
        loop.remove_reader(ours)
        ours.close()
        theirs.close()
    assert sorted(taken) == [0, 1, 2, 3]  # type: ignore[type-var]
    assert events.index("answer") <= 1, events
