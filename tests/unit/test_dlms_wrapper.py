"""The TCP wrapper over a real loopback socket: reassembly, refusals, clean close."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from dlms import (
    MANAGEMENT_LOGICAL_DEVICE,
    UTILITY_SETTINGS_CLIENT,
    FrameError,
    WrapperFrame,
    read_frame,
    write_frame,
)

DISCONNECT = bytes.fromhex("C3 01 C1 00 46 00 00 60 03 0A FF 01 01 0F 00")
DEADLINE_S = 5.0

Outcome = WrapperFrame | None | FrameError
Sender = Callable[[asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def loopback(
    max_apdu_size: int,
) -> AsyncIterator[tuple[asyncio.StreamWriter, "asyncio.Queue[Outcome]"]]:
    """A server on 127.0.0.1 that reads frames into a queue, and a client connected to it."""
    outcomes: asyncio.Queue[Outcome] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                frame = await read_frame(reader, max_apdu_size=max_apdu_size)
                await outcomes.put(frame)
                if frame is None:
                    break
        except FrameError as exc:
            await outcomes.put(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, client = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield client, outcomes
    finally:
        client.close()
        server.close()
        await server.wait_closed()


async def next_outcome(outcomes: "asyncio.Queue[Outcome]") -> Outcome:
    return await asyncio.wait_for(outcomes.get(), DEADLINE_S)


async def test_a_frame_written_whole_arrives_whole() -> None:
    frame = WrapperFrame(UTILITY_SETTINGS_CLIENT, MANAGEMENT_LOGICAL_DEVICE, DISCONNECT)
    async with loopback(max_apdu_size=64) as (client, outcomes):
        await write_frame(client, frame)
        await write_frame(client, frame)
        assert await next_outcome(outcomes) == frame
        assert await next_outcome(outcomes) == frame


async def test_a_frame_split_across_writes_is_reassembled() -> None:
    frame = WrapperFrame(UTILITY_SETTINGS_CLIENT, MANAGEMENT_LOGICAL_DEVICE, DISCONNECT)
    raw = frame.to_bytes()
    async with loopback(max_apdu_size=64) as (client, outcomes):
        # Split inside the header and inside the APDU, draining so each piece is its own send.
        for piece in (raw[:3], raw[3:8], raw[8:12], raw[12:]):
            client.write(piece)
            await client.drain()
            await asyncio.sleep(0)  # a yield, not a wait: lets the server read this piece
        assert await next_outcome(outcomes) == frame


async def test_read_frame_waits_for_every_piece_before_returning() -> None:
    frame = WrapperFrame(UTILITY_SETTINGS_CLIENT, MANAGEMENT_LOGICAL_DEVICE, DISCONNECT)
    raw = frame.to_bytes()
    reader = asyncio.StreamReader()
    reading = asyncio.create_task(read_frame(reader, max_apdu_size=64), name="read-frame")
    for piece in (raw[:5], raw[5:9], raw[9:-1]):
        reader.feed_data(piece)
        for _ in range(3):
            await asyncio.sleep(0)  # let the reader consume what it has
        assert not reading.done()
    reader.feed_data(raw[-1:])
    assert await asyncio.wait_for(reading, DEADLINE_S) == frame


async def test_an_oversized_length_is_refused_without_reading_the_body() -> None:
    async with loopback(max_apdu_size=15) as (client, outcomes):
        client.write(bytes.fromhex("00 01 00 30 00 01 00 10"))  # 16 > 15, body never sent
        await client.drain()
        outcome = await next_outcome(outcomes)
    assert isinstance(outcome, FrameError)
    assert "16 bytes exceeds the bound of 15" in outcome.reason


async def test_a_wrong_version_is_refused() -> None:
    async with loopback(max_apdu_size=64) as (client, outcomes):
        client.write(bytes.fromhex("00 02 00 30 00 01 00 0F") + DISCONNECT)
        await client.drain()
        outcome = await next_outcome(outcomes)
    assert isinstance(outcome, FrameError)
    assert "version 0x0002" in outcome.reason


async def test_a_clean_close_between_frames_reads_as_none() -> None:
    async with loopback(max_apdu_size=64) as (client, outcomes):
        client.close()
        assert await next_outcome(outcomes) is None


async def test_a_close_inside_a_frame_is_a_frame_error() -> None:
    raw = WrapperFrame(UTILITY_SETTINGS_CLIENT, MANAGEMENT_LOGICAL_DEVICE, DISCONNECT).to_bytes()
    async with loopback(max_apdu_size=64) as (client, outcomes):
        client.write(raw[:-1])
        await client.drain()
        client.close()
        outcome = await next_outcome(outcomes)
    assert isinstance(outcome, FrameError)
    assert "14 of 15 APDU bytes" in outcome.reason


def test_an_apdu_beyond_the_16_bit_length_cannot_be_framed() -> None:
    with pytest.raises(ValueError):
        WrapperFrame(UTILITY_SETTINGS_CLIENT, MANAGEMENT_LOGICAL_DEVICE, bytes(0x10000)).to_bytes()
