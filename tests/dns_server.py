"""A small authoritative DNS server on loopback for the tests: zones written as zone-file text, served over UDP and
TCP with dnspython's own message parsing, so the code under test resolves through a real resolver and real packets.

    with DnsServer() as server:
        server.add_zone("example.com", '''
            @      MX  10 mail.example.com.
            mail   A   192.0.2.1
        ''')
        resolver = server.resolver()

It answers as an authoritative server does: the records of the name and type asked, a CNAME in their place (with
its target's records when the zone holds them), NOERROR with an empty answer for a name with other types, NXDOMAIN
for a name that does not exist, REFUSED for a name outside its zones. ``queries`` counts what was asked (name and
type), so a test can count lookups; ``silence(name)`` drops every query for a name, as a server that times out.
"""
from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections import Counter

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import dns.zone


class DnsServer:
    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.zones: dict[dns.name.Name, dns.zone.Zone] = {}
        self.queries: Counter[tuple[str, str]] = Counter()
        self.silenced: set[dns.name.Name] = set()
        self._lock = threading.Lock()
        handler = self._handler_classes()
        self._udp = socketserver.ThreadingUDPServer((host, 0), handler[0])
        self._udp.daemon_threads = True
        self.port = self._udp.server_address[1]
        self._tcp = _ReusableTcpServer((host, self.port), handler[1])
        self._threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True)
                         for s in (self._udp, self._tcp)]

    # ------------------------------------------------------------------ setup
    def add_zone(self, origin: str, text: str, ttl: int = 300) -> None:
        """Serve ``text`` (zone-file records, names relative to ``origin`` unless they end in a dot). An SOA and NS
        are added when the text has none."""
        name = dns.name.from_text(origin)
        body = "\n".join(line.strip() for line in text.strip().splitlines())
        head = f"$TTL {ttl}\n"
        if " SOA " not in f" {body} ":
            head += f"@ SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 {ttl}\n"
        if " NS " not in f" {body} ":
            head += f"@ NS ns.{origin}.\n"
        zone = dns.zone.from_text(head + body, origin=name, relativize=False, check_origin=False)
        with self._lock:
            self.zones[name] = zone

    def silence(self, name: str) -> None:
        """Answer nothing for ``name`` (any type): the resolver asking it times out."""
        self.silenced.add(dns.name.from_text(name))

    def resolver(self, timeout: float = 1.0) -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port = [self.host], self.port
        resolver.timeout = resolver.lifetime = timeout
        return resolver

    def count(self, name: str, kind: str | None = None) -> int:
        name = name.rstrip(".").lower() + "."
        return sum(n for (asked, asked_kind), n in self.queries.items()
                   if asked == name and (kind is None or asked_kind == kind))

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> DnsServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self._udp, self._tcp):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()

    # ------------------------------------------------------------------ answering
    def answer(self, wire: bytes) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        self.queries[(question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype))] += 1
        if any(question.name == s or question.name.is_subdomain(s) for s in self.silenced):
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        zone = self._zone_of(question.name)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        name, rdtype = question.name, question.rdtype
        for _ in range(8):  # follow CNAMEs inside the zone, as an authoritative server does
            node = zone.get_node(name)
            if node is None:
                if name == question.name:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                    response.authority.append(self._soa(zone))
                return response.to_wire()
            found = node.get_rdataset(dns.rdataclass.IN, rdtype)
            if found is not None:
                response.answer.append(_rrset(name, found))
                return response.to_wire()
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None or rdtype == dns.rdatatype.CNAME:
                if not response.answer:
                    response.authority.append(self._soa(zone))
                return response.to_wire()
            response.answer.append(_rrset(name, cname))
            name = cname[0].target
            if not name.is_subdomain(zone.origin):
                return response.to_wire()  # the resolver follows it elsewhere
        return response.to_wire()

    def _zone_of(self, name: dns.name.Name) -> dns.zone.Zone | None:
        with self._lock:
            matches = [origin for origin in self.zones if name.is_subdomain(origin)]
            return self.zones[max(matches, key=len)] if matches else None

    @staticmethod
    def _soa(zone: dns.zone.Zone) -> dns.rrset.RRset:
        return _rrset(zone.origin, zone.find_rdataset(zone.origin, dns.rdatatype.SOA))

    def _handler_classes(self):
        server = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = server.answer(data)
                if reply is not None:
                    if len(reply) > 512:  # too big for UDP: truncated, the resolver asks again over TCP
                        truncated = dns.message.make_response(dns.message.from_wire(data))
                        truncated.flags |= dns.flags.TC
                        reply = truncated.to_wire()
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = _read_exactly(self.request, 2)
                if head is None:
                    return
                data = _read_exactly(self.request, struct.unpack("!H", head)[0])
                reply = server.answer(data) if data else None
                if reply is not None:
                    self.request.sendall(struct.pack("!H", len(reply)) + reply)

        return Udp, Tcp


def _rrset(name: dns.name.Name, rdataset) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
    rrset.update(rdataset)
    return rrset


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class _ReusableTcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

