"""Tornado's hello world: the ceiling of one Tornado process on this machine, measured in the same run."""

import asyncio
import sys

import tornado.web


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


async def main(port: int) -> None:
    tornado.web.Application([(r"/", Hello)]).listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
