"""The benchmark's WeChat stand-in: the test suite's fake (tests/harness/fakewechat.py) served alone.

`python bench/standin.py PORT [LATENCY_SECONDS]`: every answer waits LATENCY first (0.05 plays a
server in China talking to WeChat).
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.fakewechat import FakeWeChat


async def main(port: int, latency: float) -> None:
    fake = FakeWeChat(port=port, latency=latency)
    fake.calls = _Discard()  # a benchmark does not keep a request log
    await fake.start()
    await asyncio.Event().wait()


class _Discard(list):
    def append(self, item: object) -> None:
        pass


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
