"""Watch caches: what a reconcile pass reads, kept current by list+watch instead of read per pass.

One `Informer` per resource kind (and watched namespace) runs in its own thread: it lists,
then watches from the list's resourceVersion; a watch that ends or whose connection drops is
resumed from the last resourceVersion seen, a 410 Gone (the apiserver no longer has that
history) or any other error is answered by a fresh list (with a bounded, jittered backoff),
never by giving up.
Objects are kept as compact JSON keyed by (namespace, name), without `managedFields`; every
read parses a fresh copy, so no caller can change what the cache holds.

`WatchCache` holds the informers for the kinds a pass reads (Vigil's Deployments, RiskPolicies,
HTTPRoutes, VirtualServices); `Kube(api_client, cache=...)` reads from it once it is synced
and still goes to the API for everything else.

Staleness rule (why a pass never acts on a cache older than its own writes): every write
`Kube` makes returns the object the apiserver stored, and that object is put into the cache
at once (`Informer.observe`). An entry is only ever replaced by one with a higher
resourceVersion, so a watch event that arrives late cannot take the cache back behind the
pass's own write; a delete leaves a tombstone with the highest resourceVersion seen, so a
late event cannot resurrect it. resourceVersions are compared as integers (etcd revisions,
which is what kube-apiserver serves); an entry whose resourceVersion is not an integer is
always replaced.

Bounded memory: an informer holds at most `max_objects`; beyond that it stops serving (the
client reads from the API again, which is correct, only slower) and logs why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from vigil.api.names import API_VERSION, LABEL_MD

log = logging.getLogger("vigil.kube.cache")

Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""

Lister = Callable[[], tuple[list[dict[str, Any]], str]]
"""Lists the kind: (objects, the list's resourceVersion)."""

Watcher = Callable[[str], Iterable[dict[str, Any]]]
"""Watches from a resourceVersion: events {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": dict}.
Ends when the server closes the watch; raises ApiException(410) when the version is gone."""

CONNECTION_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
"""A watch that failed on the wire, not in the apiserver: resumed, not re-listed."""

DEFAULT_MAX_OBJECTS = 50_000
WATCH_TIMEOUT_S = 60
"""Server-side watch timeout: the watch is resumed (not re-listed) after it, and `stop()`
never waits longer than this for a quiet watch to notice."""


def rv_int(obj: Mapping[str, Any] | None) -> int | None:
    """An object's resourceVersion as an integer, None when absent or not an integer."""
    raw = ((obj or {}).get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(raw)) if raw is not None else None
    except ValueError:
        return None


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta["name"])


def slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without `managedFields` (often half its size, never read by Vigil)."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


@dataclass(frozen=True, slots=True)
class Entry:
    """One held object: compact JSON (a few KiB instead of the tens a parsed dict costs, and
    parsing it back is cheaper than the deep copy a dict would need to be handed out safely),
    with the resourceVersion and labels the staleness rule and the selectors read."""

    rv: int | None
    labels: dict[str, str]
    data: bytes

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Entry:
        slimmed = slim(obj)
        return cls(rv_int(slimmed), dict((slimmed.get("metadata") or {}).get("labels") or {}),
                   json.dumps(slimmed, separators=(",", ":"), default=str).encode())

    def load(self) -> dict[str, Any]:
        return json.loads(self.data)


class Overflow(RuntimeError):
    """More objects than the informer may hold."""


def parse_selector(selector: str | None) -> dict[str, str | None] | None:
    """An equality/existence label selector ("a=b,c") as {label: value or None}; None when it
    uses anything else (!=, in, notin, !key), which the cache does not evaluate."""
    if not selector:
        return {}
    out: dict[str, str | None] = {}
    for part in selector.split(","):
        part = part.strip()
        if not part or any(t in part for t in ("!", " in ", " notin ", "(")):
            return None
        if "==" in part:
            k, v = part.split("==", 1)
        elif "=" in part:
            k, v = part.split("=", 1)
        else:
            k, v = part, None
        out[k.strip()] = None if v is None else v.strip()
    return out


def matches(labels: Mapping[str, str], selector: Mapping[str, str | None]) -> bool:
    return all(k in labels and (v is None or labels[k] == v) for k, v in selector.items())


class Informer:
    """A list+watch cache of one resource kind; thread-safe; start() once, stop() to end."""

    def __init__(self, name: str, lister: Lister, watcher: Watcher, *, max_objects: int = DEFAULT_MAX_OBJECTS,
                 selector: Mapping[str, str | None] | None = None, backoff_s: tuple[float, float] = (0.5, 30.0),
                 on_stop: Callable[[], None] | None = None, index_label: str | None = None) -> None:
        self.name = name
        self._lister, self._watcher = lister, watcher
        self.max_objects = max_objects
        self.selector = dict(selector or {})
        self._backoff = backoff_s
        self._on_stop = on_stop
        self._lock = threading.Lock()
        self._objects: dict[Key, Entry] = {}
        # (namespace, value of index_label) -> keys: a pass lists one ModelDeployment's Deployments
        # without scanning every Deployment the cache holds
        self.index_label = index_label
        self._index: dict[tuple[str, str], set[Key]] = {}
        self._tombstones: dict[Key, int] = {}
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.overflowed = False
        self.resource_version = ""
        self.lists = 0  # how many times it listed (1 + resyncs), for tests and the benchmark
        self.events = 0
        self.gone = 0  # 410 Gone answers (a watch from a resourceVersion the apiserver forgot)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Informer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"vigil-informer-{self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stopping.set()
        if self._on_stop is not None:
            self._on_stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    @property
    def serving(self) -> bool:
        """True when reads may come from here: listed at least once, not stopped, not over its bound."""
        return self._synced.is_set() and not self._stopping.is_set() and not self.overflowed

    # ------------------------------------------------------------ reads
    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._objects.get((namespace or "", name))
        return entry.load() if entry is not None else None

    def list(self, namespace: str | None, selector: Mapping[str, str | None] | None = None) -> list[dict[str, Any]]:
        selector = selector or {}
        indexed = selector.get(self.index_label) if self.index_label else None
        with self._lock:
            if indexed is not None and namespace is not None:
                candidates: Iterable[tuple[Key, Entry]] = [
                    (k, self._objects[k]) for k in self._index.get((namespace or "", indexed), ())]
            else:
                candidates = self._objects.items()
            found = sorted((k, e) for k, e in candidates
                           if (namespace is None or k[0] == (namespace or "")) and matches(e.labels, selector))
        return [e.load() for _, e in found]

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    # ------------------------------------------------------------ writes seen
    def observe(self, obj: Mapping[str, Any]) -> None:
        """An object as the apiserver returned it (a watch event or our own write): kept only
        if newer than what is held and than any tombstone (the staleness rule)."""
        if not matches((obj.get("metadata") or {}).get("labels") or {}, self.selector):
            self.forget(key_of(obj), rv_int(obj))  # it left the selection (a label was removed)
            return
        key, rv = key_of(obj), rv_int(obj)
        with self._lock:
            held = self._objects.get(key)
            held_rv = held.rv if held is not None else None
            dead = self._tombstones.get(key)
            if rv is not None and ((held_rv is not None and rv <= held_rv) or (dead is not None and rv <= dead)):
                return
            if held is None and len(self._objects) >= self.max_objects:
                self._overflow()
                return
            self._unindex(key, held)
            self._objects[key] = entry = Entry.of(obj)
            self._reindex(key, entry)
            self._tombstones.pop(key, None)

    def apply(self, event_type: str | None, obj: Mapping[str, Any]) -> None:
        """A watch event's object: DELETED forgets it, anything else (ADDED, MODIFIED, or None for
        a listing) is observed."""
        if event_type == "DELETED":
            self.forget(key_of(obj), rv_int(obj))
        else:
            self.observe(obj)

    def forget(self, key: Key, rv: int | None = None) -> None:
        """The object is gone (as of resourceVersion `rv`, when known)."""
        with self._lock:
            held = self._objects.get(key)
            held_rv = held.rv if held is not None else None
            if rv is not None and held_rv is not None and held_rv > rv:
                return  # it was re-created after that delete
            self._unindex(key, self._objects.pop(key, None))
            mark = max(v for v in (rv, held_rv, self._tombstones.get(key)) if v is not None) \
                if any(v is not None for v in (rv, held_rv, self._tombstones.get(key))) else None
            if mark is not None:
                self._tombstones[key] = mark
            if len(self._tombstones) > self.max_objects:  # keep the newest half; old ones matter least
                newest = sorted(self._tombstones.items(), key=lambda kv: kv[1])[len(self._tombstones) // 2:]
                self._tombstones = dict(newest)

    def _indexed(self, key: Key, entry: Entry | None) -> tuple[str, str] | None:
        value = entry.labels.get(self.index_label) if self.index_label and entry is not None else None
        return (key[0], str(value)) if value is not None else None

    def _reindex(self, key: Key, entry: Entry) -> None:
        slot = self._indexed(key, entry)
        if slot is not None:
            self._index.setdefault(slot, set()).add(key)

    def _unindex(self, key: Key, entry: Entry | None) -> None:
        slot = self._indexed(key, entry)
        if slot is not None and slot in self._index:
            self._index[slot].discard(key)
            if not self._index[slot]:
                del self._index[slot]

    def _overflow(self) -> None:
        if not self.overflowed:
            log.error("informer %s holds its maximum of %d objects; reads go to the API until restart",
                      self.name, self.max_objects)
        self.overflowed = True

    # ------------------------------------------------------------ the loop
    def _run(self) -> None:
        """List, then watch for as long as the history holds. A dropped or refused connection
        resumes the watch from the last resourceVersion seen (as client-go's reflector does: a
        restarting apiserver must not make every informer list everything again); a 410 Gone,
        an ERROR event or anything else lists afresh."""
        failures, listed = 0, False
        while not self._stopping.is_set():
            try:
                if not listed:
                    self._relist()
                    listed, failures = True, 0
                while not self._stopping.is_set():
                    self._watch_once()
                    failures = 0
            except ApiException as err:
                if self._stopping.is_set():
                    break
                listed = False
                if err.status == 410:
                    self.gone += 1
                    log.info("informer %s: resourceVersion %s is gone (410); listing again", self.name,
                             self.resource_version)
                    continue
                failures += 1
                log.warning("informer %s: %s %s; listing again", self.name, err.status, err.reason)
            except CONNECTION_ERRORS as err:
                if self._stopping.is_set():
                    break
                failures += 1
                log.info("informer %s: %s; watching again from %s", self.name, err, self.resource_version)
            except Exception as err:  # noqa: BLE001 - a malformed answer must not end the informer
                if self._stopping.is_set():
                    break
                listed, failures = False, failures + 1
                log.warning("informer %s: %s; listing again", self.name, err)
            if failures:
                low, high = self._backoff
                self._stopping.wait(min(high, low * 2 ** min(failures, 10)) * random.uniform(0.5, 1.0))

    def _relist(self) -> None:
        items, rv = self._lister()
        self.lists += 1
        fresh = {key_of(o): Entry.of(o) for o in items}
        if len(fresh) > self.max_objects:
            self._overflow()
            raise Overflow(f"{len(fresh)} objects")
        listed = int(rv) if rv.isdigit() else None
        with self._lock:
            for key, held in self._objects.items():
                held_rv = held.rv
                if listed is not None and held_rv is not None and held_rv > listed and (
                        key not in fresh or (fresh[key].rv or 0) < held_rv):
                    fresh[key] = held  # our own write, newer than the list's snapshot
            for key, dead in list(self._tombstones.items()):
                if key in fresh and (fresh[key].rv or 0) <= dead:
                    del fresh[key]  # deleted after the snapshot
                elif listed is not None and dead <= listed:
                    del self._tombstones[key]
            self._objects = fresh
            self._index = {}
            for key, held in fresh.items():
                self._reindex(key, held)
            self.resource_version = rv
        self._synced.set()

    def _watch_once(self) -> None:
        for event in self._watcher(self.resource_version):
            if self._stopping.is_set():
                return
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                raise ApiException(status=int(obj.get("code") or 500), reason=str(obj.get("message") or obj))
            self.events += 1
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self.apply(kind, obj)
            if rv:
                self.resource_version = str(rv)


# ---------------------------------------------------------------- the kinds a pass reads


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    selector: str | None = None  # label selector the informer lists with


def default_kinds() -> tuple[Kind, ...]:
    """What a reconcile pass reads: Vigil's Deployments (by label), RiskPolicies, and both route
    kinds. Routes are watched without a selector: a route of the same name that Vigil does not
    own must be seen, so the router refuses to touch it."""
    return (
        Kind("apps/v1", "Deployment", LABEL_MD),
        Kind(API_VERSION, "RiskPolicy"),
        Kind("gateway.networking.k8s.io/v1", "HTTPRoute"),
        Kind("networking.istio.io/v1", "VirtualService"),
    )


class WatchCache:
    """Informers for the kinds a pass reads, in the watched namespaces (None: all)."""

    def __init__(self, api_client: k8s.ApiClient, namespaces: Iterable[str] | None = None,
                 kinds: Iterable[Kind] | None = None, max_objects: int = DEFAULT_MAX_OBJECTS,
                 watch_timeout_s: int = WATCH_TIMEOUT_S) -> None:
        # informers stream on a client of their own: a watch holds a connection for minutes
        self.api_client = k8s.ApiClient(api_client.configuration)
        self.dynamic = DynamicClient(self.api_client)
        self.namespaces = None if namespaces is None else sorted(set(namespaces))
        self.kinds = tuple(kinds or default_kinds())
        self.max_objects = max_objects
        self.watch_timeout_s = watch_timeout_s
        self.informers: dict[tuple[str, str, str | None], Informer] = {}
        self.missing: list[str] = []  # kinds the apiserver does not serve (no CRD): read from the API

    # ------------------------------------------------------------ lifecycle
    def start(self) -> WatchCache:
        for kind in self.kinds:
            try:
                resource = self.dynamic.resources.get(api_version=kind.api_version, kind=kind.kind)
            except ResourceNotFoundError:
                self.missing.append(f"{kind.kind}.{kind.api_version}")
                log.info("watch cache: %s %s is not served by this apiserver; read directly", kind.api_version, kind.kind)
                continue
            scopes: list[str | None] = list(self.namespaces) if self.namespaces else [None]
            for ns in scopes:
                informer = self._informer(resource, kind, ns)
                self.informers[(kind.api_version, kind.kind, ns)] = informer.start()
        return self

    def wait_synced(self, timeout: float = 60.0) -> bool:
        import time

        deadline = time.monotonic() + timeout
        return all(i.wait_synced(max(0.0, deadline - time.monotonic())) for i in self.informers.values())

    def stop(self) -> None:
        for informer in self.informers.values():
            informer._stopping.set()
            if informer._on_stop is not None:
                informer._on_stop()
        for informer in self.informers.values():
            informer.stop(timeout=2.0)

    def _informer(self, resource: Any, kind: Kind, namespace: str | None) -> Informer:
        holder: dict[str, k8s_watch.Watch] = {}

        def lister() -> tuple[list[dict[str, Any]], str]:
            items: list[dict[str, Any]] = []
            token, rv = None, ""
            while True:  # paged, so a big list never needs one huge response
                page = resource.get(namespace=namespace, label_selector=kind.selector, limit=500, _continue=token,
                                    _request_timeout=(10, 120)).to_dict()
                items.extend(page.get("items") or [])
                meta = page.get("metadata") or {}
                rv, token = str(meta.get("resourceVersion") or rv), meta.get("continue")
                if not token:
                    return items, rv

        def watcher(rv: str) -> Iterator[dict[str, Any]]:
            w = k8s_watch.Watch()
            holder["w"] = w
            for event in w.stream(resource.get, namespace=namespace, label_selector=kind.selector,
                                  resource_version=rv, timeout_seconds=self.watch_timeout_s,
                                  allow_watch_bookmarks=True, serialize=False,
                                  _request_timeout=(10, self.watch_timeout_s + 30)):
                yield {"type": event["type"], "object": event.get("raw_object") or {}}

        def interrupt() -> None:
            w = holder.get("w")
            if w is not None:
                w.stop()
                resp = getattr(w, "_resp", None)
                if resp is not None:
                    with contextlib.suppress(Exception):  # best effort on the way out
                        resp.shutdown()  # wakes the blocked read at once

        name = f"{kind.kind}/{namespace or '*'}"
        selector = parse_selector(kind.selector)
        index = next(iter(selector), None) if selector and len(selector) == 1 else None
        return Informer(name, lister, watcher, max_objects=self.max_objects, selector=selector, on_stop=interrupt,
                        index_label=index)

    # ------------------------------------------------------------ reads for Kube
    def informer(self, api_version: str, kind: str, namespace: str | None) -> Informer | None:
        """The informer that may answer a read of this kind in `namespace`, if it is serving."""
        for ns in (namespace, None):
            found = self.informers.get((api_version, kind, ns))
            if found is not None and found.serving:
                return found
        return None

    def observe(self, obj: Mapping[str, Any]) -> None:
        """A write's result: put it in the informer that holds its kind (the staleness rule)."""
        informer = self._holder(obj.get("apiVersion"), obj.get("kind"), (obj.get("metadata") or {}).get("namespace"))
        if informer is not None:
            informer.observe(obj)

    def apply(self, event_type: str | None, obj: Mapping[str, Any]) -> None:
        """A watch event seen elsewhere (kopf's): applied to the informer that holds its kind."""
        informer = self._holder(obj.get("apiVersion"), obj.get("kind"), (obj.get("metadata") or {}).get("namespace"))
        if informer is not None:
            informer.apply(event_type, obj)

    def forget(self, api_version: str, kind: str, namespace: str, name: str, rv: int | None = None) -> None:
        informer = self._holder(api_version, kind, namespace)
        if informer is not None:
            informer.forget((namespace or "", name), rv)

    def _holder(self, api_version: Any, kind: Any, namespace: Any) -> Informer | None:
        for ns in (namespace, None):
            found = self.informers.get((str(api_version), str(kind), ns))
            if found is not None:
                return found
        return None
