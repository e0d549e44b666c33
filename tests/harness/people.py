"""People of a test network: accounts on real nodes, with their person keys attested in
the directory as a network's coordinators would, and what they send."""

from __future__ import annotations

import functools
import html
import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bootstrap.keys import write_key
from bootstrap.network import demo_anchor
from tests.harness.cluster import Cluster, add_records
from tests.harness.nodes import tsfnode
from tests.harness.waiting import wait_for
from tsfnode.intake.journey import SUFFIX as JOURNEY_SUFFIX

PASSWORD = "correct horse battery"

FORM = {
    "urgency": "routine",
    "age_years": 4,
    "age_months": None,
    "sex": "F",
    "clinical_history": "Toux fébrile depuis 10 jours.",
    "question": "Pneumopathie ? Épanchement ?",
    "modality": "CT",
    "body_part": "CHEST",
    "prior_imaging": "",
    "preliminary_reading": "Opacité basale droite ?",
    "answer_language": "fr",
}
REPORT = {
    "language": "fr",
    "findings": "Condensation du lobe inférieur droit avec bronchogramme aérique.",
    "impression": "Pneumopathie lobaire inférieure droite.",
    "recommendations": "Antibiothérapie ; contrôle à 6 semaines si persistance.",
    "image_quality": "adequate",
    "quality_reason": "",
}


def call(
    url: str, token: str, method: str = "GET", body: Any = None, timeout: float = 30
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    text = raw.decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Person:
    def __init__(self, cluster: Cluster, node: int, username: str, role: str, name: str) -> None:
        self.cluster, self.node, self.username = cluster, node, username
        directory = cluster.dirs[node]
        made = tsfnode(
            "account", "add", directory, username, "--role", role, "--name", name,
            "--password-stdin", input_text=PASSWORD,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        self.id = made.stdout.split("Person id: ")[1].split()[0]
        self.key = directory / "people" / f"{username}.key"
        token = tsfnode("account", "token", directory, username)
        assert token.returncode == 0, token.stderr
        self.token = token.stdout.strip()

    def api(
        self, path: str, method: str = "GET", body: Any = None, timeout: float = 30
    ) -> tuple[int, Any]:
        url = f"{self.cluster.url(self.node)}/api/v1{path}"
        return call(url, self.token, method, body, timeout)

    def ok(self, path: str, method: str = "GET", body: Any = None, timeout: float = 30) -> Any:
        status, answer = self.api(path, method, body, timeout)
        assert 200 <= status < 300, (path, status, answer)
        return answer

    def case(self, case_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.ok(f"/cases/{case_id}")
        return found

    def state(self, case_id: str) -> str | None:
        """The case's state as this person's node holds it (None: not there yet)."""
        status, found = self.api(f"/cases/{case_id}")
        return str(found["state"]) if status == 200 else None


class Records:
    """Signed directory records made with the offline tools, as a network's anchor holder
    and coordinators would: groups, then members attested by their coordinators."""

    def __init__(self, base: Path, cluster: Cluster) -> None:
        self.base, self.cluster = base, cluster
        self.parts: list[bytes] = []

    def group(self, name: str, kind: str, coordinator: str, covers: str = "") -> str:
        out = self.base / f"{name}.tsfd"
        key = self.base / f"{name}.key"
        routing = {"institutional": "assign", "subspeciality": "assign", "community": "pool"}
        made = tsfnode(
            "group", "create", "--network", self.cluster.network_file,
            "--anchor-key", self.base / "anchor.key", "--group-key", key, "--name", name,
            "--kind", kind, "--routing", routing[kind], "--coordinator", coordinator,
            "--out", out, *(("--subspeciality", covers) if covers else ()),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        self.parts.append(out.read_bytes())
        return tsfnode("key", "show", key).stdout.split()[-1]

    def hospital(self) -> tuple[Path, str]:
        """CHU Cotonou's institutional group, with a coordinator key of its own made
        here: that key (to attest its senders) and the group's id."""
        key = self.base / "cotonou-coordinator.key"
        assert tsfnode("key", "new", key).returncode == 0
        coordinator = tsfnode("key", "show", key).stdout.split()[-1]
        return key, self.group("CHU Cotonou", "institutional", coordinator)

    def attest(self, key: Path, group: str, who: Person, role: str) -> None:
        out = self.base / f"member-{who.username}.tsfd"
        made = tsfnode(
            "member", "attest", "--network", self.cluster.network_file, "--key", key,
            "--group", group, "--member", who.id, "--role", role, "--name", who.username,
            "--registration", "ONMB-1234", "--diploma", "DES radiologie",
            "--facility", "CHU Cotonou", "--charter-date", "2026-01-15",
            "--home-node", self.cluster.ids[who.node], "--out", out,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        self.parts.append(out.read_bytes())

    def write(self) -> Path:
        records = self.base / "records.tsfd"
        records.write_bytes(b"".join(self.parts))
        return records


def pair_up(reader: Person, sender: Person, *, quota: int, hours: int) -> str:
    """The reader proposes a pair, the sender accepts: in force at both nodes."""
    terms = {"with": sender.id, "weekly_quota": quota, "reading_delay_hours": hours}
    pair = str(reader.ok("/pairs", "POST", terms)["pair_id"])
    wait_for(
        "the proposal reaches the sender's node",
        lambda: any(p["pair_id"] == pair for p in sender.ok("/pairs")["proposals"]),
    )
    sender.ok(f"/pairs/{pair}/accept", "POST")

    def active(who: Person) -> bool:
        return any(
            p["pair_id"] == pair and p["status"] == "active" for p in who.ok("/pairs")["pairs"]
        )

    wait_for("the pair is in force at both nodes", lambda: active(reader) and active(sender))
    return pair


def _is(count: Any, i: int, wanted: int) -> bool:
    return bool(count(i) == wanted)


class PairedNet:
    """Two real nodes on loopback: CHU Cotonou (node 0) with Dr Koffi, a sender; Erasme
    (node 1) with Dr Anne, coordinator of the paediatric group, and Dr Marie, a reader
    of it; Marie and Koffi in a pair (5 cases a week, 48 h), signed by both. With
    ``nodes`` > 2, more nodes of nobody, admitted, that gossip with them."""

    def __init__(self, base: Path, *, nodes: int = 2, **sections: Any) -> None:
        anchor_key = base / "anchor.key"
        write_key(anchor_key, demo_anchor())
        self.base = base
        self.cluster = c = Cluster(base, anchor_key, nodes, **sections)
        self.koffi = Person(c, 0, "koffi", "sender", "Dr Koffi Émetteur")
        self.anne = Person(c, 1, "anne", "coordinator", "Dr Anne Coordinatrice")
        self.marie = Person(c, 1, "marie", "reader", "Dr Marie Lectrice")
        records = Records(base, c)
        hospital_key, hospital = records.hospital()
        self.paediatrics = paediatrics = records.group(
            "Pédiatrie", "subspeciality", self.anne.id, "paediatrics"
        )
        records.attest(hospital_key, hospital, self.koffi, "sender")
        records.attest(self.anne.key, paediatrics, self.anne, "coordinator")
        records.attest(self.anne.key, paediatrics, self.marie, "reader")
        add_records(c.dirs[0], records.write())
        c.start()

        def members(i: int) -> int:
            return len(call(f"{c.url(i)}/api/v1/directory?kind=member", "")[1])

        try:  # a network that does not come together leaves no node running
            for i in range(nodes):
                wait_for(f"node {i} knows every person", functools.partial(_is, members, i, 3))
            self.pair = pair_up(self.marie, self.koffi, quota=5, hours=48)
        except BaseException:
            c.close()
            raise

    def close(self) -> None:
        self.cluster.close()

    def submit(
        self, folder: Path, routing: dict[str, Any], timeout: float = 30, *, prepared: bool = True
    ) -> str:
        """The study of ``folder`` imported at Cotonou with the CLI, its flagged images
        confirmed, sent by Koffi as a case routed as ``routing`` says (``timeout``: for
        the answer, which comes once the study is sealed). ``prepared=False``: the
        encodings the CLI's import made for the journey are deleted, so that the running
        node encodes the study itself when it seals it (its own worker processes)."""
        node0 = self.cluster.dirs[0]
        intake = node0 / "intake"
        before = {p.name for p in intake.iterdir()} if intake.exists() else set()
        assert tsfnode("import", folder, "--node", node0, "--quiet").returncode == 0
        (study,) = {p.name for p in intake.iterdir() if p.is_dir()} - before
        if not prepared:
            for path in (intake / study).rglob(f"*{JOURNEY_SUFFIX}"):
                path.unlink()
        assert tsfnode("review", study, "--node", node0, "--confirm-all").returncode == 0
        body = {"study_uid": study, "form": {**FORM, "body_part": "HEAD"}, **routing}
        return str(self.koffi.ok("/cases", "POST", body, timeout)["case_id"])


class Browser:
    """A person's browser without JavaScript: cookies, forms with their CSRF token; the
    page as text (entities decoded)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.page = ""

    def get(self, path: str) -> tuple[int, str, str]:
        try:
            with self.opener.open(self.base + path, timeout=30) as response:
                self.page = html.unescape(response.read().decode())
                return response.status, response.url, self.page
        except urllib.error.HTTPError as exc:
            self.page = html.unescape(exc.read().decode())
            return exc.code, exc.url, self.page

    def post(self, path: str, fields: dict[str, str], csrf: bool = True) -> tuple[int, str, str]:
        if csrf:
            fields = {"csrf": re.findall(r'name="csrf" value="([^"]+)"', self.page)[-1], **fields}
        data = urllib.parse.urlencode(fields).encode()
        try:
            with self.opener.open(self.base + path, data=data, timeout=30) as response:
                self.page = html.unescape(response.read().decode())
                return response.status, response.url, self.page
        except urllib.error.HTTPError as exc:
            self.page = html.unescape(exc.read().decode())
            return exc.code, exc.url, self.page

    def sign_in(self, username: str, password: str = PASSWORD) -> tuple[int, str, str]:
        self.get("/web/login")
        return self.post("/web/login", {"username": username, "password": password})


def application(group: str, **extra: str) -> dict[str, str]:
    """What a radiologist, Dr Jo Lecteur, types on the joining page to read for
    ``group`` (``extra``: the form's CSRF token, or a field changed)."""
    return {
        "role": "reader", "group": group, "username": "jo.lecteur",
        "display_name": "Dr Jo Lecteur", "password": "a long password here",
        "password_again": "a long password here", "charter": "yes", "languages": "fr en",
        "registration": "ONMB-77", "diploma": "DES radiologie", "weekly_capacity": "3",
        "language": "fr", **extra,
    }  # fmt: skip
