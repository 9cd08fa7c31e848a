"""The driver relays every protocol line of a Ray job exactly once, even where Ray's log tail ended
before the job did (ray-project/ray#60665: it is followed again) or before the log did (#46413,
#48701: the whole log, read once the job is over, supplies the missing lines). The tail here is cut
by hand; the multi-node job tests run the same relay on a real cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from worker.cluster.channel import PROGRESS_PREFIX
from worker.cluster.driver import _Relay
from worker.supervisor import Action, UnreadableLine, Watch, Watcher
from worker.training.progress import Message, TrainerEvent, to_line


def protocol_lines(n: int) -> list[str]:
    return [PROGRESS_PREFIX + to_line(Message(f"line {i}")) for i in range(n)]


class Collected:
    def __init__(self) -> None:
        self.events: list[TrainerEvent | UnreadableLine] = []
        carry_on = Watch(decide=lambda: Action.CONTINUE, interval=60)
        self.watcher = Watcher(carry_on, stop=lambda: None, kill=lambda: None, what="test")

    def relay(self, job_log_path: Path) -> _Relay:
        return _Relay(self.events.append, job_log_path.open("a", encoding="utf-8"), self.watcher)

    def messages(self) -> list[str]:
        return [event.message for event in self.events if isinstance(event, Message)]


class CutTail:
    """A log tail that delivers `text` in `size`-character chunks and stops at `upto`."""

    def __init__(self, text: str, size: int, upto: int) -> None:
        self.text, self.size, self.upto = text, size, upto

    async def tail_job_logs(self, submission_id: str) -> AsyncIterator[str]:
        for start in range(0, self.upto, self.size):
            yield self.text[start : min(start + self.size, self.upto)]


@pytest.mark.parametrize("upto", [0, 1, 57, 1000, 4321, None])
def test_a_tail_cut_anywhere_then_the_whole_log_relays_each_line_once_in_order(
    upto: int | None, tmp_path: Path
) -> None:
    lines = ["ray says hello", *protocol_lines(60), "a last word without a newline"]
    whole = "\n".join(lines)
    collected = Collected()
    relay = collected.relay(tmp_path / "trainer.log")

    asyncio.run(relay.follow(CutTail(whole, 13, len(whole) if upto is None else upto), "sub"))
    relay.catch_up(whole)

    assert collected.messages() == [f"line {i}" for i in range(60)]
    relay.job_log.close()
    assert (tmp_path / "trainer.log").read_text().splitlines() == [lines[0], lines[-1]]


@pytest.mark.parametrize("first", [0, 40, 1000, 2500])
def test_a_tail_followed_again_after_it_ended_early_relays_only_what_is_new(
    first: int, tmp_path: Path
) -> None:
    whole = "\n".join(protocol_lines(60)) + "\n"
    collected = Collected()
    relay = collected.relay(tmp_path / "trainer.log")

    asyncio.run(relay.follow(CutTail(whole, 29, first), "sub"))
    asyncio.run(relay.follow(CutTail(whole, 17, len(whole) - 700), "sub"))
    relay.catch_up(whole)

    assert collected.messages() == [f"line {i}" for i in range(60)]
