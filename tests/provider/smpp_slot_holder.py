"""A process keeping one SMPP bind through the shared bind slots, for the slot tests.

Run as ``python -m tests.provider.smpp_slot_holder CONNINFO PORT SLOTS``; prints ``STATE bound`` or
``STATE waiting: <why>`` whenever its state changes; unbinds and exits on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

from notification.provider.smpp import SmppProvider, SmppSettings
from notification.provider.smpp_slots import PgBindSlots

PROVIDER = "smsc-slots"


def settings(port: int, slots: int) -> SmppSettings:
    return SmppSettings(
        host="127.0.0.1",
        port=port,
        system_id="esme",
        password="secret",
        binds=slots,
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
    )


async def main(conninfo: str, port: int, slots: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    provider = SmppProvider(PROVIDER, settings(port, slots), slots=PgBindSlots(conninfo, PROVIDER, slots))
    await provider.open()
    last = ""
    while not stop.is_set():
        state = "bound" if provider.bound else f"waiting: {provider.last_error}"
        if state != last:
            print(f"STATE {state}", flush=True)
            last = state
        await asyncio.sleep(0.01)
    await provider.aclose()
    print("STATE closed", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
