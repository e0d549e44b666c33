"""People of a test network: accounts on real nodes, with their person keys attested in
the directory as a network's coordinators would, and what they send."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.cluster import Cluster
from tests.nodes import tsfnode

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


def call(url: str, token: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
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

    def api(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        return call(f"{self.cluster.url(self.node)}/api/v1{path}", self.token, method, body)

    def ok(self, path: str, method: str = "GET", body: Any = None) -> Any:
        status, answer = self.api(path, method, body)
        assert 200 <= status < 300, (path, status, answer)
        return answer

    def case(self, case_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.ok(f"/cases/{case_id}")
        return found


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
