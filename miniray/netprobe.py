# @4+
"""Ask a node about its network: which interface reaches an address; and hold a port.

    python -m miniray.netprobe --route-to 10.0.0.1
    MINIRAY_PROBE {"hostname": "node1", "route_to": "10.0.0.1", "source": "10.0.0.2",
                   "ifname": "eth0", "peer": "10.0.0.9"}

`Cluster.distributed_configs` runs this on every node, the way it starts the node's
server (ssh, or a local shell), because only the node itself knows its routes. A guess
from the coordinator is how the original design ended up with gloo talking on the wrong
interface.

* ``source``/``ifname``: the kernel picks the source address for a connection to the
  address (a UDP ``connect`` sends nothing); the interface holding that address is the
  one NCCL and gloo should use (``*_SOCKET_IFNAME``).
* ``peer``: the coordinator's address as this node sees it (from ``$SSH_CONNECTION``).

The rendezvous port is not probed but held (`reserve_port`): by the node's server for as
long as it runs (``Cluster.distributed_configs``), by ``miniray run``'s supervisor for an
attempt. A port only found free is free for the seconds rank 0 takes to start its store.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import socket
import struct
import sys

PROBE_PREFIX = "MINIRAY_PROBE "
_SIOCGIFADDR = 0x8915  # Linux ioctl: the IPv4 address of an interface


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: print one ``MINIRAY_PROBE {json}`` line."""
    parser = argparse.ArgumentParser(
        prog="python -m miniray.netprobe", description="Report the route to an address."
    )
    parser.add_argument("--route-to", metavar="ADDRESS", help="report the interface to it")
    args = parser.parse_args(argv)
    report: dict[str, object] = {"hostname": socket.gethostname(), "peer": ssh_peer()}
    if args.route_to:
        source, ifname, problem = route_to(args.route_to)
        report.update(route_to=args.route_to, source=source, ifname=ifname, problem=problem)
    print(PROBE_PREFIX + json.dumps(report), flush=True)
    return 0


def route_to(address: str) -> tuple[str | None, str | None, str | None]:
    """``(source address, interface, problem)`` for reaching ``address`` from here."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.connect((address, 9))  # no packet is sent: this only asks for a route
            source: str = udp.getsockname()[0]
    except OSError as e:
        return None, None, f"no route from {socket.gethostname()} to {address}: {e.strerror}"
    ifname = interface_with_address(source)
    problem = None if ifname else f"no interface holds {source} (the route's source)"
    return source, ifname, problem


def interface_with_address(address: str) -> str | None:
    """The name of the interface whose (first) IPv4 address is ``address``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address, or the interface is down
            if socket.inet_ntoa(answer[20:24]) == address:
                return name
    return None


def reserve_port() -> socket.socket:
    """A socket bound to a free TCP port on every interface, not listening, with
    ``SO_REUSEADDR``. While it is open the kernel hands the port to no one else (no bind to
    port 0 gets it, no outgoing connection takes it as its own), yet rank 0's store, which
    binds with ``SO_REUSEADDR`` too, can listen on it: torchrun holds its port the same way,
    by hosting the store in its agent. A port only found free is free for the seconds rank 0
    spends importing torch; on a busy machine someone else then takes it, rank 0 fails with
    EADDRINUSE and the other ranks talk to a stranger."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", 0))
    return sock


def ssh_peer() -> str | None:
    """The address this node's ssh connection came from: the coordinator, seen from here."""
    connection = os.environ.get("SSH_CONNECTION", "").split()  # client port server port
    return connection[0] if len(connection) == 4 else None


if __name__ == "__main__":
    sys.exit(main())
