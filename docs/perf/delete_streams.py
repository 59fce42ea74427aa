"""Deletes the JetStream streams whose names contain the given namespace (a bench run's)."""

import asyncio
import sys

import nats


async def main(namespace: str, url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    deleted = 0
    for stream in await js.streams_info():
        if namespace.upper() in stream.config.name.upper():
            await js.delete_stream(stream.config.name)
            deleted += 1
    await nc.close()
    print(f"deleted {deleted} streams of {namespace}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "nats://127.0.0.1:4222"))
