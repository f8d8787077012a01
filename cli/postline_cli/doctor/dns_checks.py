"""The DNS half of the doctor: SPF, DKIM, DMARC and the MAIL FROM MX of a sending domain, read through a real
resolver (dnspython, ``postline.domains.make_resolver``: any nameserver and port, so tests use a loopback one).

Each check returns ``Check`` rows; what SES says of the identity (its DKIM tokens and status, its MAIL FROM domain
and status) comes in an ``Identity``, read by ``ses_checks.identity_of``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import dns.exception
import dns.resolver

from postline.domains import closest

from .report import FAIL, PASS, WARN, Check

SPF_LOOKUP_LIMIT = 10  # RFC 7208 4.6.4: more DNS-querying terms than this is a permanent error
SPF_FOR_SES = "v=spf1 include:amazonses.com ~all"
DNS_TTL = 1800
# Tags RFC 7489 (and DMARCbis) define: anything else is most likely a misspelling, which receivers ignore.
DMARC_TAGS = ("v", "p", "sp", "np", "rua", "ruf", "adkim", "aspf", "pct", "fo", "rf", "ri", "psd", "t")
DMARC_POLICIES = ("none", "quarantine", "reject")
# Public suffixes of two labels that senders commonly use; a domain under one keeps three labels as its
# organisational domain. (The full Public Suffix List is not shipped: docs/doctor.md.)
TWO_LABEL_SUFFIXES = frozenset(
    {
        "co.uk",
        "org.uk",
        "ac.uk",
        "gov.uk",
        "me.uk",
        "com.au",
        "net.au",
        "org.au",
        "co.nz",
        "co.jp",
        "ne.jp",
        "or.jp",
        "com.br",
        "com.mx",
        "com.ar",
        "co.za",
        "co.in",
        "com.sg",
        "com.hk",
        "com.tr",
        "co.kr",
        "com.cn",
    }
)


class DnsTrouble(Exception):
    """The DNS could not answer (a timeout, no server answering): not the same as an answer saying nothing."""


@dataclass(frozen=True)
class Identity:
    """What SES says of the sending domain."""

    domain: str
    region: str
    dkim_tokens: tuple[str, ...] = ()
    dkim_status: str | None = None  # SES's DkimAttributes.Status: SUCCESS, PENDING, FAILED, ...
    mail_from_domain: str | None = None
    mail_from_status: str | None = None  # SES's MailFromAttributes.MailFromDomainStatus
    from_domain: str | None = None  # the From address's domain, when it differs from the identity's

    @property
    def author_domain(self) -> str:
        return self.from_domain or self.domain


@dataclass
class Lookup:
    """TXT, CNAME and MX answers through one resolver; None for a name or type that does not exist."""

    resolver: dns.resolver.Resolver

    def _resolve(self, name: str, kind: str):
        try:
            return self.resolver.resolve(name, kind, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return None
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoResolverConfiguration) as error:
            raise DnsTrouble(f"the DNS did not answer for {name} {kind} ({type(error).__name__})") from None

    def txt(self, name: str) -> list[str] | None:
        answer = self._resolve(name, "TXT")
        if answer is None:
            return None
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer.rrset or ()]

    def cname(self, name: str) -> str | None:
        answer = self._resolve(name, "CNAME")
        if answer is None or answer.rrset is None:
            return None
        return answer.rrset[0].target.to_text().rstrip(".").lower()

    def mx(self, name: str) -> list[tuple[int, str]] | None:
        answer = self._resolve(name, "MX")
        if answer is None:
            return None
        return [(r.preference, r.exchange.to_text().rstrip(".").lower()) for r in answer.rrset or ()]


def zone_line(name: str, kind: str, value: str) -> str:
    """One record in zone-file form, fully qualified."""
    return f"{name.rstrip('.')}. {DNS_TTL} IN {kind} {value}"


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def organisational_domain(name: str) -> str:
    labels = name.rstrip(".").lower().split(".")
    keep = 3 if ".".join(labels[-2:]) in TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


def feedback_host(region: str) -> str:
    return f"feedback-smtp.{region}.amazonses.com"


def inbound_host(region: str) -> str:
    """Where SES receives mail in ``region`` (the unsubscribe address's MX: docs/unsubscribe.md)."""
    return f"inbound-smtp.{region}.amazonaws.com"


def dkim_targets(token: str, region: str) -> tuple[str, ...]:
    """Where an Easy DKIM CNAME may point: SES's global DKIM host, or the region's (newer regions use it)."""
    return (f"{token}.dkim.amazonses.com", f"{token}.dkim.{region}.amazonses.com")


# ------------------------------------------------------------------------------------------------------------ SPF
def _spf_records(texts: list[str] | None) -> list[str]:
    return [t for t in texts or () if re.match(r"(?i)^v=spf1(\s|$)", t.strip())]


@dataclass
class _SpfWalk:
    lookup: Lookup
    lookups: int = 0
    includes_ses: bool = False
    loops: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # includes without exactly one SPF record
    ptr: bool = False

    def walk(self, domain: str, path: tuple[str, ...]) -> None:
        """Count the DNS-querying terms of ``domain``'s SPF record and of every record it includes."""
        records = _spf_records(self.lookup.txt(domain))
        if len(records) != 1:
            self.broken.append(f"{domain} ({'no SPF record' if not records else f'{len(records)} SPF records'})")
            return
        self.terms(records[0], domain, path)

    def terms(self, record: str, domain: str, path: tuple[str, ...]) -> None:
        for term in record.split()[1:]:
            mechanism = term.lstrip("+-~?").lower()
            kind, argument = re.match(r"([a-z0-9._-]*)[:=/]?(.*)", mechanism).groups()
            if kind in ("include", "redirect"):
                self.lookups += 1
                target = argument.rstrip(".")
                if target == "amazonses.com":
                    self.includes_ses = True
                    continue  # SES's own record: counted as the one lookup SES documents
                if target in path or target == domain:
                    self.loops.append(" -> ".join((*path, domain, target)))
                    continue
                self.walk(target, (*path, domain))
            elif kind in ("a", "mx", "exists"):
                self.lookups += 1
            elif kind == "ptr":
                self.lookups += 1
                self.ptr = True


def check_spf(lookup: Lookup, identity: Identity) -> list[Check]:
    domain = identity.mail_from_domain
    if not domain:
        return [
            Check(
                "spf",
                "SPF on the MAIL FROM domain",
                FAIL,
                "the identity has no custom MAIL FROM domain, so SPF is checked on amazonses.com and can "
                "never align with your From domain",
                f"set one: aws sesv2 put-email-identity-mail-from-attributes --email-identity "
                f"{identity.domain} --mail-from-domain bounce.{identity.domain} "
                "--behavior-on-mx-failure USE_DEFAULT_VALUE, then create its MX and SPF records",
            )
        ]
    fix_record = zone_line(domain, "TXT", quoted(SPF_FOR_SES))
    records = _spf_records(lookup.txt(domain))
    if not records:
        return [Check("spf", "one SPF record", FAIL, f"no v=spf1 TXT record at {domain}", fix_record)]
    if len(records) > 1:
        return [
            Check(
                "spf",
                "one SPF record",
                FAIL,
                f"{len(records)} v=spf1 records at {domain}: receivers treat SPF as a permanent error "
                f"(RFC 7208 4.5): {' | '.join(records)}",
                f"merge them into one record, and delete the others: {fix_record}",
            )
        ]
    record = records[0]
    checks = [Check("spf", "one SPF record", PASS, f"{domain}: {record}")]
    walk = _SpfWalk(lookup)
    walk.terms(record, domain, ())
    if walk.includes_ses:
        checks.append(Check("spf", "SPF includes Amazon SES", PASS, "include:amazonses.com"))
    else:
        checks.append(
            Check(
                "spf",
                "SPF includes Amazon SES",
                FAIL,
                f"no include:amazonses.com in {domain}'s SPF or the records it includes",
                f"add include:amazonses.com before the all term: {fix_record}",
            )
        )
    if walk.loops:
        checks.append(
            Check(
                "spf",
                "SPF include loop",
                FAIL,
                "an include loops back: " + "; ".join(walk.loops),
                f"remove the include that points back; for SES alone: {fix_record}",
            )
        )
    if walk.broken:
        checks.append(
            Check(
                "spf",
                "included SPF records",
                FAIL,
                "an include or redirect names a domain without exactly one SPF record: " + ", ".join(walk.broken),
                "remove that include, or fix the domain it names",
            )
        )
    if walk.lookups > SPF_LOOKUP_LIMIT:
        checks.append(
            Check(
                "spf",
                "SPF DNS lookups",
                FAIL,
                f"{walk.lookups} DNS lookups (include, a, mx, ptr, exists, redirect, counted through "
                f"every include): over the limit of {SPF_LOOKUP_LIMIT}, so SPF fails at receivers",
                "remove includes you no longer send through, or flatten them into ip4:/ip6: terms; "
                f"the MAIL FROM domain needs only SES: {fix_record}",
            )
        )
    else:
        checks.append(Check("spf", "SPF DNS lookups", PASS, f"{walk.lookups} of at most {SPF_LOOKUP_LIMIT}"))
    ending = next((t for t in reversed(record.split()) if t.lstrip("+-~?").lower() == "all"), None)
    if ending in ("-all", "~all"):
        checks.append(Check("spf", "SPF ends in ~all or -all", PASS, ending))
    elif ending in ("all", "+all"):
        checks.append(
            Check(
                "spf",
                "SPF ends in ~all or -all",
                WARN,
                f"{ending}: any server in the world may send as {domain}",
                f"end it in ~all: {fix_record}",
            )
        )
    else:
        checks.append(
            Check(
                "spf",
                "SPF ends in ~all or -all",
                WARN,
                f"{ending or 'no all term'}: mail from other servers is neither refused nor marked",
                f"end it in ~all: {fix_record}",
            )
        )
    if walk.ptr:
        checks.append(
            Check(
                "spf",
                "SPF without ptr",
                WARN,
                "a ptr mechanism: slow, unreliable and deprecated (RFC 7208 5.5); many receivers skip it",
                "replace it with ip4:/ip6: or include: terms",
            )
        )
    return checks


# ----------------------------------------------------------------------------------------------------------- DKIM
def check_dkim(lookup: Lookup, identity: Identity) -> list[Check]:
    checks = []
    if not identity.dkim_tokens:
        checks.append(
            Check(
                "dkim",
                "Easy DKIM records",
                FAIL,
                f"SES holds no Easy DKIM tokens for {identity.domain}",
                f"aws sesv2 put-email-identity-dkim-signing-attributes --email-identity {identity.domain} "
                "--signing-attributes-origin AWS_SES, then `postline doctor --records` for the records",
            )
        )
    for token in identity.dkim_tokens:
        name = f"{token}._domainkey.{identity.domain}"
        targets = dkim_targets(token, identity.region)
        fix = zone_line(name, "CNAME", targets[0] + ".")
        found = lookup.cname(name)
        if found in targets:
            checks.append(Check("dkim", f"DKIM CNAME {token[:8]}…", PASS, f"{name} -> {found}"))
        elif found is None:
            checks.append(Check("dkim", f"DKIM CNAME {token[:8]}…", FAIL, f"no CNAME at {name}", fix))
        else:
            checks.append(
                Check(
                    "dkim",
                    f"DKIM CNAME {token[:8]}…",
                    FAIL,
                    f"{name} points to {found}, not to SES's DKIM host",
                    f"replace it: {fix}",
                )
            )
    status = identity.dkim_status or "NOT_STARTED"
    if status == "SUCCESS":
        checks.append(Check("dkim", "SES DKIM status", PASS, "SES signs with DKIM (status SUCCESS)"))
    elif status == "PENDING":
        checks.append(
            Check(
                "dkim",
                "SES DKIM status",
                WARN,
                "SES has not found the DKIM records yet (status PENDING); it looks for 72 hours",
                "create the CNAMEs above; SES checks them again on its own",
            )
        )
    else:
        checks.append(
            Check(
                "dkim",
                "SES DKIM status",
                FAIL,
                f"SES's DKIM status is {status}",
                "fix the CNAMEs above; a FAILED identity is checked again once they are right "
                f"(aws sesv2 get-email-identity --email-identity {identity.domain})",
            )
        )
    return checks


# ---------------------------------------------------------------------------------------------------------- DMARC
def parse_dmarc(record: str) -> tuple[dict[str, str], list[str]]:
    """Tags and problems (a record that is not DMARC, or a tag without a value) of one TXT string."""
    tags, problems = {}, []
    parts = [p.strip() for p in record.split(";") if p.strip()]
    for position, part in enumerate(parts):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            problems.append(f"{part!r} is not tag=value")
            continue
        if position == 0 and (key != "v" or value != "DMARC1"):
            problems.append("it must start with v=DMARC1")
        tags[key] = value
    return tags, problems


def _dmarc_records(texts: list[str] | None) -> list[str]:
    return [t for t in texts or () if re.match(r"(?i)^\s*v\s*=\s*DMARC1\b", t)]


def dmarc_record(policy: str = "none", report_address: str | None = None) -> str:
    return f"v=DMARC1; p={policy}" + (f"; rua=mailto:{report_address}" if report_address else "")


def check_dmarc(lookup: Lookup, identity: Identity, warmed_up: bool) -> list[Check]:
    """The From domain's DMARC record (or its organisational domain's), and whether DKIM or SPF aligns with it.
    ``warmed_up``: the domain sends in volume already, so ``p=none`` is a warning rather than advice."""
    domain = identity.author_domain
    organisational = organisational_domain(domain)
    fix = zone_line(f"_dmarc.{domain}", "TXT", quoted(dmarc_record("none", f"dmarc@{domain}")))
    where, records = f"_dmarc.{domain}", _dmarc_records(lookup.txt(f"_dmarc.{domain}"))
    inherited = False
    if not records and organisational != domain:
        where, records = f"_dmarc.{organisational}", _dmarc_records(lookup.txt(f"_dmarc.{organisational}"))
        inherited = bool(records)
    if not records:
        return [
            Check(
                "dmarc",
                "one DMARC record",
                FAIL,
                f"no v=DMARC1 record at _dmarc.{domain}"
                + (f" nor at _dmarc.{organisational}" if organisational != domain else "")
                + ": Gmail and Yahoo refuse bulk mail without one",
                fix,
            )
        ]
    if len(records) > 1:
        return [
            Check(
                "dmarc",
                "one DMARC record",
                FAIL,
                f"{len(records)} DMARC records at {where}: receivers then apply none of them",
                f"keep one and delete the others: {fix}",
            )
        ]
    record = records[0]
    tags, problems = parse_dmarc(record)
    checks = [
        Check(
            "dmarc",
            "one DMARC record",
            PASS,
            f"{where}: {record}" + (" (inherited from the organisational domain)" if inherited else ""),
        )
    ]
    unknown = [key for key in tags if key not in DMARC_TAGS]
    for key in unknown:
        close = closest(key, DMARC_TAGS, max_distance=max(1, len(key) // 2))
        problems.append(
            f"tag {key!r} is not a DMARC tag"
            + (f" (did you mean {close!r}?)" if close else "")
            + ", so receivers ignore it"
        )
    policy = tags.get("sp" if inherited and "sp" in tags else "p")
    if policy is None:
        problems.append("no p= tag: the record names no policy")
    elif policy not in DMARC_POLICIES:
        problems.append(f"p={policy} is not none, quarantine or reject")
    if problems:
        checks.append(
            Check(
                "dmarc",
                "DMARC record valid",
                FAIL,
                "; ".join(problems),
                f"rewrite it with only DMARC's tags, for example: {fix}",
            )
        )
        return checks
    checks.append(Check("dmarc", "DMARC record valid", PASS, f"policy {policy}"))
    if policy == "none":
        stricter = dmarc_record("quarantine", tags.get("rua", "").removeprefix("mailto:") or None)
        advice = (
            "p=none only reports. Once the aggregate reports show only your own mail passing, move to "
            f"p=quarantine (pct=25, then 100) and then p=reject: {zone_line(where, 'TXT', quoted(stricter))}"
        )
        checks.append(
            Check(
                "dmarc",
                "DMARC policy",
                WARN if warmed_up else PASS,
                "p=none: spoofed mail is still delivered" + ("" if warmed_up else " (fine while the domain warms up)"),
                advice,
            )
        )
    elif tags.get("pct", "100") != "100":
        checks.append(
            Check(
                "dmarc",
                "DMARC policy",
                WARN,
                f"p={policy} applies to pct={tags['pct']}% of mail only",
                "raise pct to 100 once the reports are clean",
            )
        )
    else:
        checks.append(Check("dmarc", "DMARC policy", PASS, f"p={policy}"))
    if tags.get("rua"):
        checks.append(Check("dmarc", "DMARC reports", PASS, f"rua={tags['rua']}"))
    else:
        checks.append(
            Check(
                "dmarc",
                "DMARC reports",
                WARN,
                "no rua=: nobody receives the aggregate reports that show who sends as the domain",
                f"add rua=mailto:ADDRESS: {fix}",
            )
        )
    checks.append(_alignment(identity, tags))
    return checks


def _aligned(domain: str | None, author: str, strict: bool) -> bool:
    if not domain:
        return False
    return domain == author if strict else organisational_domain(domain) == organisational_domain(author)


def _alignment(identity: Identity, tags: dict[str, str]) -> Check:
    author = identity.author_domain
    dkim = _aligned(identity.domain if identity.dkim_tokens else None, author, tags.get("adkim") == "s")
    spf = _aligned(identity.mail_from_domain, author, tags.get("aspf") == "s")
    found = (
        f"From {author}: DKIM d={identity.domain} {'aligned' if dkim else 'not aligned'}"
        + (" (adkim=s)" if tags.get("adkim") == "s" else "")
        + f", SPF {identity.mail_from_domain or 'amazonses.com'} {'aligned' if spf else 'not aligned'}"
        + (" (aspf=s)" if tags.get("aspf") == "s" else "")
    )
    if dkim or spf:
        return Check("dmarc", "From domain aligned", PASS, found)
    return Check(
        "dmarc",
        "From domain aligned",
        FAIL,
        found + ": DMARC fails, and Gmail and Yahoo refuse the mail",
        f"send From an address at {identity.domain} (or a subdomain of it), or drop adkim=s/aspf=s",
    )


# ------------------------------------------------------------------------------------------------------ MAIL FROM
def check_mail_from(lookup: Lookup, identity: Identity) -> list[Check]:
    domain = identity.mail_from_domain
    if not domain:
        return [
            Check(
                "mail_from",
                "MAIL FROM domain",
                FAIL,
                "SES has no custom MAIL FROM domain for the identity",
                f"aws sesv2 put-email-identity-mail-from-attributes --email-identity {identity.domain} "
                f"--mail-from-domain bounce.{identity.domain} --behavior-on-mx-failure USE_DEFAULT_VALUE",
            )
        ]
    host = feedback_host(identity.region)
    fix = zone_line(domain, "MX", f"10 {host}.")
    exchanges = lookup.mx(domain)
    if not exchanges:
        checks = [Check("mail_from", "MAIL FROM MX", FAIL, f"no MX record at {domain}", fix)]
    elif any(exchange in ("", ".") for _, exchange in exchanges):
        checks = [
            Check(
                "mail_from",
                "MAIL FROM MX",
                FAIL,
                f"{domain} has a null MX (it receives no mail), so bounces cannot reach SES",
                f"replace it: {fix}",
            )
        ]
    elif host in {exchange for _, exchange in exchanges}:
        checks = [Check("mail_from", "MAIL FROM MX", PASS, f"{domain} MX {host}")]
    else:
        checks = [
            Check(
                "mail_from",
                "MAIL FROM MX",
                FAIL,
                f"{domain} MX {', '.join(e for _, e in exchanges)}: not SES's feedback host for {identity.region}",
                f"replace it: {fix}",
            )
        ]
    status = identity.mail_from_status or "unknown"
    if status == "SUCCESS":
        checks.append(Check("mail_from", "SES MAIL FROM status", PASS, f"SES uses {domain} (status SUCCESS)"))
    elif status == "PENDING":
        checks.append(
            Check(
                "mail_from",
                "SES MAIL FROM status",
                WARN,
                "SES has not found the MX record yet (status PENDING): it sends from amazonses.com meanwhile",
                "create the MX record; SES checks it again on its own",
            )
        )
    else:
        checks.append(
            Check(
                "mail_from",
                "SES MAIL FROM status",
                FAIL,
                f"SES's MAIL FROM status is {status}",
                f"fix the MX record: {fix}",
            )
        )
    return checks


# ------------------------------------------------------------------------------------------- unsubscribe by email
def check_unsubscribe_mx(lookup: Lookup, domain: str, region: str) -> list[Check]:
    """The MX of the List-Unsubscribe mailto address's domain: without it, unsubscribe requests sent by email
    bounce. A warning, not a failure: a deployment may read that mailbox itself (``receive_unsubscribe_mail``)."""
    host = inbound_host(region)
    fix = zone_line(domain, "MX", f"10 {host}.")
    exchanges = lookup.mx(domain) or []
    if host in {exchange for _, exchange in exchanges}:
        return [Check("unsubscribe", "unsubscribe MX", PASS, f"{domain} MX {host}")]
    found = f"{domain} MX {', '.join(e or '.' for _, e in exchanges)}" if exchanges else f"no MX record at {domain}"
    return [
        Check(
            "unsubscribe",
            "unsubscribe MX",
            WARN,
            f"{found}: SES does not receive the unsubscribe requests people send by email",
            fix,
        )
    ]


def dns_checks(
    resolver: dns.resolver.Resolver, identity: Identity, warmed_up: bool, unsubscribe_domain: str | None = None
) -> list[Check]:
    """Every DNS check; a DNS that does not answer becomes a failing check of its own, never a crash."""
    lookup = Lookup(resolver)
    checks: list[Check] = []
    areas = [
        ("spf", lambda: check_spf(lookup, identity)),
        ("dkim", lambda: check_dkim(lookup, identity)),
        ("dmarc", lambda: check_dmarc(lookup, identity, warmed_up)),
        ("mail_from", lambda: check_mail_from(lookup, identity)),
    ]
    if unsubscribe_domain:
        areas.append(("unsubscribe", lambda: check_unsubscribe_mx(lookup, unsubscribe_domain, identity.region)))
    for area, run in areas:
        try:
            checks += run()
        except DnsTrouble as trouble:
            checks.append(
                Check(
                    area,
                    "DNS answered",
                    FAIL,
                    str(trouble),
                    "check the nameserver (--nameserver) and run the doctor again",
                )
            )
    return checks


def records_to_create(
    identity: Identity,
    dmarc_policy: str = "none",
    dmarc_report_address: str | None = None,
    unsubscribe_domain: str | None = None,
) -> list[str]:
    """Every record the sending domain needs, in zone-file form (``postline doctor --records``)."""
    mail_from = identity.mail_from_domain or f"bounce.{identity.domain}"
    lines = [f"; DNS records for sending {identity.domain} through Amazon SES ({identity.region}) with postline"]
    lines += ["; Easy DKIM: SES signs with these keys"]
    lines += [
        zone_line(f"{t}._domainkey.{identity.domain}", "CNAME", dkim_targets(t, identity.region)[0] + ".")
        for t in identity.dkim_tokens
    ]
    lines += [
        "; MAIL FROM: bounces come back to SES, and SPF aligns with your domain",
        zone_line(mail_from, "MX", f"10 {feedback_host(identity.region)}."),
        zone_line(mail_from, "TXT", quoted(SPF_FOR_SES)),
        "; DMARC: what receivers do with mail that fails, and where they send reports",
        zone_line(f"_dmarc.{identity.domain}", "TXT", quoted(dmarc_record(dmarc_policy, dmarc_report_address))),
    ]
    if unsubscribe_domain:
        lines += [
            "; Unsubscribe by email: SES receives the List-Unsubscribe mailto address's mail",
            zone_line(unsubscribe_domain, "MX", f"10 {inbound_host(identity.region)}."),
        ]
    return lines
