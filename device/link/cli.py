"""``senses link pair | phones | forget``: bonded phones, through the running daemon.

Each command talks to the daemon over its control socket (:mod:`device.link.control_socket`),
never to bluetoothd directly, so the daemon's pairing window and records stay the truth.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from device.config import Config, load_config
from device.link.control_socket import default_socket_path, request
from device.link.pairing import PairingError


def socket_path(config: Config) -> Path:
    """The socket the daemon running ``config`` listens on."""
    configured = config.link.control_socket
    return configured if configured is not None else default_socket_path(config.station.data_dir)


def _config(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config) if args.config else None)


def _when(ts: float | None) -> str:
    if ts is None:
        return "unknown"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _error(answer: dict[str, Any]) -> PairingError:
    return PairingError(str(answer.get("error") or "the daemon refused the request"))


def cmd_pair(args: argparse.Namespace) -> int:
    console = Console()
    path = socket_path(_config(args))
    message: dict[str, Any] = {"op": "pair"}
    if args.seconds is not None:
        message["seconds"] = args.seconds
    bonded = False
    for answer in request(path, message):
        if args.json:
            print(json.dumps(answer), flush=True)
        if "event" in answer:
            if not args.json:
                _show_event(console, answer)
            continue
        if not answer.get("ok") and "error" in answer:
            raise _error(answer)
        bonded = bool(answer.get("ok"))
    return 0 if bonded else 1


def _show_event(console: Console, event: dict[str, Any]) -> None:
    kind = event["event"]
    text = escape(str(event.get("message", "")))
    if kind == "passkey":
        console.print(f"\n  passkey  [bold reverse] {event['passkey']} [/]\n")
        console.print(text)
    elif kind == "bonded":
        console.print(f"[green]{text}[/]")
    elif kind in ("refused", "failed"):
        console.print(f"[yellow]{text}[/]")
    elif kind == "closed":
        console.print(f"[red]{text}[/]" if "still pairing" in text else text)
    else:
        console.print(text)


def cmd_phones(args: argparse.Namespace) -> int:
    path = socket_path(_config(args))
    answer = next(request(path, {"op": "phones"}, timeout_s=10.0))
    if not answer.get("ok"):
        raise _error(answer)
    phones = answer["phones"]
    if args.json:
        print(json.dumps(phones))
        return 0
    console = Console()
    if not phones:
        console.print("No phone is bonded. 'senses link pair' lets one pair.")
        return 0
    table = Table(title="Bonded phones")
    for column in ("name", "address", "bonded", "last seen"):
        table.add_column(column)
    for phone in phones:
        table.add_row(
            phone.get("name") or "",
            phone["address"],
            _when(phone.get("bonded_at")),
            _when(phone.get("last_seen")),
        )
    console.print(table)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    path = socket_path(_config(args))
    answer = next(request(path, {"op": "forget", "address": args.address}, timeout_s=15.0))
    if not answer.get("ok"):
        raise _error(answer)
    forgotten = answer["forgotten"]
    if args.json:
        print(json.dumps(forgotten))
    else:
        who = forgotten.get("name") or forgotten["address"]
        Console().print(
            f"Forgot {who} ({forgotten['address']}): it must pair again ('senses link pair') "
            "before the station accepts its changes."
        )
    return 0


def add_commands(commands: Any) -> None:
    """``senses link ...`` on the top-level subparsers."""
    link = commands.add_parser(
        "link", help="the BLE link's bonded phones: pair, list, forget"
    ).add_subparsers(dest="link_command", required=True)

    pair = link.add_parser(
        "pair",
        help="let one phone pair: prints the passkey to type into it, waits until it bonded "
        "or the window closed (exit 0 bonded, 1 not)",
    )
    pair.add_argument("--seconds", type=float, help="window length (default [link] pair_window_s)")
    pair.add_argument("--config", help="the TOML config the daemon runs with")
    pair.add_argument("--json", action="store_true", help="one JSON object a line")
    pair.set_defaults(handler=cmd_pair)

    phones = link.add_parser("phones", help="bonded phones: name, address, bonded, last seen")
    phones.add_argument("--config", help="the TOML config the daemon runs with")
    phones.add_argument("--json", action="store_true")
    phones.set_defaults(handler=cmd_phones)

    forget = link.add_parser("forget", help="remove a bonded phone's keys")
    forget.add_argument("address", help="its Bluetooth address, as 'senses link phones' lists")
    forget.add_argument("--config", help="the TOML config the daemon runs with")
    forget.add_argument("--json", action="store_true")
    forget.set_defaults(handler=cmd_forget)
