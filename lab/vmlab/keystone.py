"""A real Keystone for tests: Debian's python3-keystone (SQLite, Fernet
tokens) served by uwsgi on a loopback address, plus the few identity calls
the tests make (stdlib only).

    ks = Keystone(Path("/tmp/ks"), host="127.0.0.1", port=35301).start()
    ks.url                                  # http://127.0.0.1:35301/v3
    pa = ks.project("proj-a")               # id
    ks.user("alice", "pw", pa, "member")
    tok = ks.login("alice", "pw", project="proj-a")
    ks.revoke(tok)
    ks.stop()

Facts (../shared/OPENSTACK.md): one uwsgi process with one thread (SQLite
says "database is locked" otherwise); [cache] with dogpile's memory backend
(else ~400 SQL queries per request); bcrypt rounds 4; setup (db_sync,
fernet/credential keys, bootstrap) 12-25 s, start 4-9 s. The bootstrap
makes admin => member => reader implied roles.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

from .errors import LabError

PYTHON = "/usr/bin/python3"   # the python3 that can import keystone

CONF = """[DEFAULT]
log_file = {dir}/keystone.log
[database]
connection = sqlite:///{dir}/keystone.db
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = {dir}/fernet-keys
[fernet_receipts]
key_repository = {dir}/fernet-receipts
[credential]
key_repository = {dir}/credential-keys
[identity]
password_hash_rounds = 4
[cache]
enabled = true
backend = dogpile.cache.memory
[oslo_policy]
enforce_new_defaults = false
enforce_scope = false
"""


def available() -> bool:
    return Path("/usr/bin/keystone-wsgi-public").exists() and shutil.which("uwsgi") is not None


class Keystone:
    def __init__(self, state_dir: Path, host: str = "127.0.0.1", port: int = 35300,
                 admin_password: str = "lab-admin-pw") -> None:
        self.dir = Path(state_dir)
        self.host, self.port = host, port
        self.admin_password = admin_password
        self.proc: Optional[subprocess.Popen] = None
        self._admin_token: Optional[str] = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v3"

    @property
    def conf(self) -> Path:
        return self.dir / "keystone.conf"

    # ---- lifecycle ----
    def _manage(self, *args: str) -> None:
        r = subprocess.run(["keystone-manage", "--config-file", str(self.conf), *args],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=180)
        if r.returncode != 0:
            raise LabError(f"keystone-manage {args[0]} failed: {r.stdout[-2000:]}")

    def setup(self) -> "Keystone":
        """A fresh database and keys (12-25 s)."""
        if not available():
            raise LabError("Keystone is not installed: apt-get install python3-keystone uwsgi-core "
                           "uwsgi-plugin-python3")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        for d in ("fernet-keys", "fernet-receipts", "credential-keys"):
            (self.dir / d).mkdir(mode=0o700)
        self.conf.write_text(CONF.format(dir=self.dir))
        self._manage("db_sync")
        self._manage("fernet_setup", "--keystone-user", "root", "--keystone-group", "root")
        self._manage("credential_setup", "--keystone-user", "root", "--keystone-group", "root")
        url = f"http://{self.host}:{self.port}/v3/"
        self._manage("bootstrap", "--bootstrap-password", self.admin_password, "--bootstrap-username", "admin",
                     "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
                     "--bootstrap-service-name", "keystone", "--bootstrap-region-id", "RegionOne",
                     "--bootstrap-admin-url", url, "--bootstrap-internal-url", url, "--bootstrap-public-url", url)
        return self

    def serve(self, timeout: float = 60.0) -> "Keystone":
        """Start uwsgi (detached, every inherited fd closed) and wait for /v3."""
        log = open(self.dir / "uwsgi.log", "ab")
        try:
            self.proc = subprocess.Popen(
                ["uwsgi", "--plugin", "python3", "--http-socket", f"{self.host}:{self.port}",
                 "--wsgi-file", "/usr/bin/keystone-wsgi-public", "--master", "--processes", "1",
                 "--threads", "1", "--lazy-apps", "--die-on-term",
                 "--env", f"OS_KEYSTONE_CONFIG_FILES={self.conf}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"uwsgi (Keystone) exited: {(self.dir / 'uwsgi.log').read_text()[-2000:]}")
            try:
                self.request("GET", "/", auth=False)
                return self
            except (OSError, LabError):
                time.sleep(0.3)
        raise LabError(f"Keystone did not answer on {self.url} within {timeout:.0f} s")

    def start(self) -> "Keystone":
        return self.setup().serve()

    def stop(self) -> None:
        """Stop uwsgi (SIGTERM to its process group); the state stays."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None
        self._admin_token = None

    # ---- HTTP ----
    def request(self, method: str, path: str, body: Any = None, token: Optional[str] = None,
                headers: Optional[dict] = None, auth: bool = True) -> tuple:
        """(status, headers, JSON or None). Raises LabError when unreachable."""
        h = {"Accept": "application/json", **(headers or {})}
        if auth:
            h["X-Auth-Token"] = token or self.admin_token()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, dict(r.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                doc = json.loads(raw) if raw else None
            except ValueError:
                doc = None
            return e.code, dict(e.headers), doc
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            raise LabError(f"Keystone {self.url}: {e}") from None

    def _ok(self, r: tuple, what: str) -> Any:
        if r[0] >= 300:
            raise LabError(f"Keystone: {what} failed: HTTP {r[0]} {r[2]}")
        return r[2]

    def login(self, user: str, password: str, project: Optional[str] = None, domain: Optional[str] = None,
              system: bool = False) -> str:
        """A token: project- (by name, Default domain), domain- (by name),
        system- or (none given) unscoped."""
        auth: dict = {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}}}
        if project:
            auth["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
        elif domain:
            auth["scope"] = {"domain": {"name": domain}}
        elif system:
            auth["scope"] = {"system": {"all": True}}
        r = self.request("POST", "/auth/tokens?nocatalog", {"auth": auth}, auth=False)
        self._ok(r, f"login of {user}")
        return next(v for k, v in r[1].items() if k.lower() == "x-subject-token")

    def login_app_cred(self, cred_id: str, secret: str) -> str:
        r = self.request("POST", "/auth/tokens?nocatalog", {"auth": {"identity": {
            "methods": ["application_credential"],
            "application_credential": {"id": cred_id, "secret": secret}}}}, auth=False)
        self._ok(r, "application credential login")
        return next(v for k, v in r[1].items() if k.lower() == "x-subject-token")

    def admin_token(self) -> str:
        if not self._admin_token:
            self._admin_token = self.login("admin", self.admin_password, project="admin")
        return self._admin_token

    def _find(self, kind: str, name: str) -> Optional[str]:
        doc = self._ok(self.request("GET", f"/{kind}?name={name}"), f"listing {kind}")
        items = doc[kind]
        return items[0]["id"] if items else None

    def project(self, name: str) -> str:
        pid = self._find("projects", name)
        if pid:
            return pid
        return self._ok(self.request("POST", "/projects", {"project": {"name": name, "domain_id": "default"}}),
                        f"creating project {name}")["project"]["id"]

    def role(self, name: str) -> str:
        rid = self._find("roles", name)
        if rid:
            return rid
        return self._ok(self.request("POST", "/roles", {"role": {"name": name}}), f"creating role {name}")["role"]["id"]

    def user(self, name: str, password: str, project_id: Optional[str] = None, *roles: str) -> str:
        uid = self._find("users", name)
        if not uid:
            uid = self._ok(self.request("POST", "/users", {"user": {"name": name, "password": password,
                                                                    "domain_id": "default"}}),
                           f"creating user {name}")["user"]["id"]
        for r in roles:
            if project_id:
                self._ok(self.request("PUT", f"/projects/{project_id}/users/{uid}/roles/{self.role(r)}"),
                         f"granting {r} to {name}")
        return uid

    def grant_domain(self, user_id: str, role: str, domain_id: str = "default") -> None:
        self._ok(self.request("PUT", f"/domains/{domain_id}/users/{user_id}/roles/{self.role(role)}"),
                 "granting a domain role")

    def app_cred(self, user_id: str, user_token: str, name: str, access_rules: Optional[list] = None) -> tuple:
        """(id, secret) of a new application credential of the token's user."""
        body: dict = {"application_credential": {"name": name}}
        if access_rules:
            body["application_credential"]["access_rules"] = access_rules
        doc = self._ok(self.request("POST", f"/users/{user_id}/application_credentials", body, token=user_token),
                       "creating an application credential")["application_credential"]
        return doc["id"], doc["secret"]

    def revoke(self, token: str) -> None:
        r = self.request("DELETE", "/auth/tokens", headers={"X-Subject-Token": token})
        if r[0] != 204:
            raise LabError(f"Keystone: revoking a token failed: HTTP {r[0]}")

    def validate(self, token: str) -> dict:
        """GET /v3/auth/tokens as admin: the raw document (for recordings)."""
        return self._ok(self.request("GET", "/auth/tokens?nocatalog", headers={"X-Subject-Token": token}),
                        "validation")

    def register_service(self, public_url: str, type_: str = "vm-process-monitor",
                         name: str = "vmwatch") -> str:
        """The catalog entry (service + public endpoint) the deploy guide describes."""
        sid = self._ok(self.request("POST", "/services", {"service": {"type": type_, "name": name}}),
                       "creating the service")["service"]["id"]
        self._ok(self.request("POST", "/endpoints", {"endpoint": {"service_id": sid, "interface": "public",
                                                                 "url": public_url, "region_id": "RegionOne"}}),
                 "creating the endpoint")
        return sid
