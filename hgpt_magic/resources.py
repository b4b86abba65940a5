"""What a plan may touch: the files and URLs this session's user gave, and nothing else.

The LLM writes the plan, and the LLM is untrusted input (it may be remote, or be reading a hostile
document through a `{var}`). So a file or URL argument runs only when the user gave it:

- named in this or an earlier request of the session (as typed, `{var}` interpolation included);
- made by this or an earlier run of the session (anything under one of its run directories);
- under a folder the user opened up (`HuggingGPT(allow_paths=...)`, `$HGPT_ALLOW_PATHS`);
- accepted by the user (an edit in the plan editor, or the editor's explicit "accept": `accept(value)`).

Paths are compared after `~`, `..` and symlinks are resolved, relative ones against the working directory
of the request that named them (and the executor reads the same resolved path),
so `~/.ssh/id_rsa`, `photos/../../.ssh/id_rsa` and a symlink to it are all the same refused file. Text
written by a task (an OCR result, a transcript) never widens the set: only the user does.

`check_plan(plan, allowed)` is the pure check (one message per refused argument, naming task, argument and
value); the pipeline runs it before anything runs and the executor again as the last gate. URLs are
fetched only through `fetch_url`, which also refuses redirects to loopback, private, link-local or
metadata addresses the user did not give.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import re
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from . import settings
from .registry import Registry, default_registry
from .text import is_url, named_paths, named_urls
from .types import GENERATED_RE, Plan, Task

#: The most tasks a plan may have: an LLM that asks for more is looping or hostile, not helpful.
MAX_TASKS = 30

#: The most bytes `fetch_url` downloads for one argument.
MAX_FETCH_BYTES = 200 << 20

#: The most seconds one `fetch_url` may take in all (redirects and a slow body included): a server that
#: trickles a byte a second never trips a per-read timeout, so the whole fetch has a deadline.
MAX_FETCH_SECONDS = 120.0


class ResourceError(ValueError):
    """A plan argument names a file or URL the user did not give; the message says which and how to allow it."""


def _resolve(value: str, cwd: Path) -> Path | None:
    """`value` as an absolute path with `~`, `..` and symlinks resolved (relative to `cwd`); None if it cannot be."""
    if not value or "\n" in value or "\x00" in value or len(value) > 4096:
        return None
    try:
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = cwd / path
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def _normal_url(url: str) -> str:
    parts = urlsplit(url.strip())
    return parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower(), fragment="").geturl()


@dataclass
class Allowed:
    """What this session's user gave. Add to it as the session goes; `allows(value)` answers for one value.

    Kept by `HuggingGPT` (`hg.allowed`) across the session's requests. Cheap: a request adds a few path
    resolutions, a check a few set lookups and one `resolve()` per file argument.
    """

    cwd: Path = field(default_factory=Path.cwd)
    #: whether `cwd` follows the working directory (`%cd`) at each request; False when a cwd was given
    follow_cwd: bool = True
    paths: set[Path] = field(default_factory=set)
    folders: list[Path] = field(default_factory=list)
    urls: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    accepted: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @classmethod
    def for_session(cls, allow_paths: Iterable[str | Path] | str | None = None, cwd: str | Path | None = None) -> Allowed:
        """A fresh set: only the folders in `allow_paths` and `$HGPT_ALLOW_PATHS` (os.pathsep-separated)."""
        allowed = cls(cwd=Path(cwd).resolve() if cwd is not None else Path.cwd(), follow_cwd=cwd is None)
        if isinstance(allow_paths, str | Path):
            allow_paths = [allow_paths]
        env = [p for p in settings.ALLOW_PATHS.text().split(os.pathsep) if p.strip()]
        for folder in [*(allow_paths or []), *env]:
            allowed.add_folder(folder)
        return allowed

    # ------------------------------------------------------------------ what the user gives

    def add_request(self, text: str) -> None:
        """Everything a request names (as typed, with the `{var}`s that are files or URLs) is the user's word.

        Relative names resolve against the working directory of now, the moment the user names them, and
        that directory stays the one this request's plan is checked and read against (`cwd`): a `%cd`
        between naming a file and running the plan cannot swap in another file of the same name."""
        if self.follow_cwd:
            try:
                self.cwd = Path.cwd()
            except OSError:  # the working directory was removed: keep the last one
                pass
        if not text:
            return
        self.requests.append(text)
        for url in named_urls(text):
            self._add_url(url)
        for token in named_paths(text):
            if (path := _resolve(token, self.cwd)) is not None:
                self.paths.add(path)

    def add_folder(self, folder: str | Path) -> None:
        """Everything under `folder` is allowed (a run directory, or a folder the user opened up)."""
        if (path := _resolve(str(folder), self.cwd)) is not None and path not in self.folders:
            self.folders.append(path)

    def accept(self, value: str) -> None:
        """The user's explicit yes to one value (an editor edit or its "accept" click); recorded for the Run."""
        value = str(value).strip()
        if not value or value in self.accepted:
            return
        self.accepted.append(value)
        if is_url(value):
            self._add_url(value)
        elif (path := _resolve(value, self.cwd)) is not None:
            self.paths.add(path)

    def _add_url(self, url: str) -> None:
        self.urls.add(_normal_url(url))
        if host := urlsplit(url).hostname:
            self.hosts.add(host.lower())

    # ------------------------------------------------------------------ the check

    def allows(self, value: str) -> bool:
        """Whether a file or URL argument came from the user (see the module docstring)."""
        value = value.strip()
        if is_url(value):
            return _normal_url(value) in self.urls
        if value.lower().startswith("data:"):
            return True  # carries its own bytes: nothing is read or fetched
        path = _resolve(value, self.cwd)
        if path is None:
            return False
        return path in self.paths or any(path.is_relative_to(folder) for folder in self.folders)

    def host_given(self, host: str) -> bool:
        """Whether the user named this host in a URL (so a non-public address there is theirs to reach)."""
        return host.lower() in self.hosts


# ---------------------------------------------------------------------- plans


def names_resource(value: str, media: str, cwd: Path | None = None) -> bool:
    """Whether an argument names a file or URL: a media slot always (unless a `<GENERATED>-N` reference);
    a text slot when the whole value is a URL or an existing file (an expert would read it: a table, say)."""
    value = value.strip()
    if not value or GENERATED_RE.search(value):
        return False
    if media != "text" or is_url(value):
        return True
    if "\n" in value or " " in value or len(value) > 1024 or not ("/" in value or "." in value):
        return False
    path = _resolve(value, cwd or Path.cwd())
    return path is not None and path.is_file()


def resource_args(task: Task, registry: Registry | None = None, cwd: Path | None = None) -> list[tuple[str, str]]:
    """(argument, value) for each argument of `task` that names a file or URL."""
    registry = registry or default_registry()
    spec = registry[task.task] if task.task in registry else None
    found = []
    for name, value in task.args.items():
        slot = spec.slot(name) if spec else None
        if names_resource(str(value), slot.type if slot else "text", cwd):
            found.append((name, str(value).strip()))
    return found


def refusal(task: Task, name: str, value: str) -> str:
    """The one line that says which argument was refused and how to allow it."""
    what = "URL" if is_url(value) else "file"
    return (f"task {task.id} ({task.task}): argument {name}={value!r} is a {what} you did not give in a request; "
            "name it in your request, accept it in the plan editor, or allow its folder with "
            "allow_paths / $HGPT_ALLOW_PATHS")


def check_plan(plan: Plan, allowed: Allowed, registry: Registry | None = None) -> list[str]:
    """Every reason `plan` may not run as it is: too many tasks, or arguments the user did not give. Pure."""
    problems = []
    if len(plan) > MAX_TASKS:
        problems.append(f"the plan has {len(plan)} tasks; at most {MAX_TASKS} may run (a plan this large "
                        "means the LLM is looping or was told to); ask for less at a time")
    for task in plan:
        for name, value in resource_args(task, registry, allowed.cwd):
            if not allowed.allows(value):
                problems.append(refusal(task, name, value))
    return problems


# ---------------------------------------------------------------------- fetching URLs


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
                                 or ip.is_multicast or ip.is_unspecified)


def vetted_address(host: str, port: int, allowed: Allowed) -> str:
    """An IP for `host` that may be reached: any when the user named the host, else public ones only."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ResourceError(f"cannot resolve {host}: {exc}") from None
    addresses = [info[4][0] for info in infos]
    if allowed.host_given(host):
        return addresses[0]
    for address in addresses:
        if not _public(ipaddress.ip_address(address.split("%")[0])):
            raise ResourceError(f"{host} resolves to the non-public address {address}, which you did not give")
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the vetted address, not to whatever the name resolves to a moment later."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch_url(url: str, allowed: Allowed, dest_dir: str | Path, *, timeout: float = 30.0, max_redirects: int = 5,
              deadline: float = MAX_FETCH_SECONDS) -> Path:
    """Download a URL the user gave into `dest_dir`; the one way the pipeline fetches anything a plan names.

    Refuses a URL the user did not give, a redirect to a non-public address the user did not give, and
    more than `MAX_FETCH_BYTES`. `timeout` bounds each connect and read, `deadline` the whole fetch.
    The file name is stable per URL, so a re-run reuses its inputs.
    """
    if not allowed.allows(url):
        raise ResourceError(f"{url!r} is a URL you did not give in a request")
    ends = time.monotonic() + deadline
    current = url
    for _ in range(max_redirects + 1):
        parts = urlsplit(current)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ResourceError(f"cannot fetch {current!r}: only http and https URLs")
        https = parts.scheme.lower() == "https"
        port = parts.port or (443 if https else 80)
        address = vetted_address(parts.hostname, port, allowed)
        left = ends - time.monotonic()
        if left <= 0:
            raise ResourceError(f"cannot fetch {url}: it took longer than {deadline:g} s")
        conn = (_PinnedHTTPS if https else _PinnedHTTP)(parts.hostname, port, address, min(timeout, left))
        try:
            path = parts.path or "/"
            conn.request("GET", path + (f"?{parts.query}" if parts.query else ""),
                         headers={"User-Agent": "hgpt-magic"})
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise ResourceError(f"{url}: redirect without a Location")
                current = urljoin(current, location)
                continue
            if response.status != 200:
                raise ResourceError(f"{url}: the server answered HTTP {response.status}")
            data = _read_until(response, conn, ends, deadline, url)
        except TimeoutError:
            raise ResourceError(f"cannot fetch {url}: it took longer than {deadline:g} s"
                                if time.monotonic() >= ends - 0.05 else f"cannot fetch {url}: timed out") from None
        except OSError as exc:
            raise ResourceError(f"cannot fetch {url}: {exc}") from None
        finally:
            conn.close()
        if len(data) > MAX_FETCH_BYTES:
            raise ResourceError(f"{url} is larger than {MAX_FETCH_BYTES >> 20} MB")
        name = Path(urlsplit(url).path).name or "download"
        suffix = Path(name).suffix[:8] if re.fullmatch(r"[\w.\-]+", name) else ""
        dest = Path(dest_dir) / f"url-{hashlib.sha256(url.encode()).hexdigest()[:16]}{suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return dest
    raise ResourceError(f"{url}: more than {max_redirects} redirects")


def _read_until(response: http.client.HTTPResponse, conn: http.client.HTTPConnection, ends: float,
                deadline: float, url: str) -> bytes:
    """The body, read in chunks until `ends` (monotonic time); at most `MAX_FETCH_BYTES` + 1 bytes."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_FETCH_BYTES:
        left = ends - time.monotonic()
        if left <= 0:
            raise ResourceError(f"cannot fetch {url}: it took longer than {deadline:g} s ({size:,} bytes read)")
        if conn.sock is not None:
            conn.sock.settimeout(min(conn.timeout or left, left))
        chunk = response.read1(min(1 << 16, MAX_FETCH_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


__all__ = ["MAX_TASKS", "Allowed", "ResourceError", "check_plan", "fetch_url", "is_url", "names_resource", "refusal", "resource_args"]
