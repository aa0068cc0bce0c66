"""The listening socket of ``vaxcred serve``: what its accepted connections inherit."""

from __future__ import annotations

import asyncio
import socket

from vaxcred.service.server import bind


async def _accepted_nodelay(sock: socket.socket) -> int:
    """TCP_NODELAY of the server side of one connection accepted by asyncio on ``sock``."""
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    _reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
    try:
        return await asyncio.wait_for(seen, 10)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def test_accepted_connections_get_tcp_nodelay() -> None:
    """Regression: bind() made a proto-0 socket, so asyncio skipped TCP_NODELAY and every keep-alive answer
    (head and body written apart) waited ~40 ms for a delayed ACK: 100 answers/s instead of >1,000."""
    with bind("127.0.0.1", 0) as sock:
        assert asyncio.run(_accepted_nodelay(sock)) != 0
