"""A small real model server for the demo (aiohttp).

    python -m vigil.demo.modelserver --model iris --version v2 --port 8081 \
        --namespace demo [--fault latency:ms=250,share=0.05] [--nondeterminism 0.01]

Endpoints:
    POST /predict   {"features": [...30 floats...]} or {"row": 17}, optional "group"
                    -> {"request_id", "model", "version", "class", "score", "confidence", "group"}
                    Mirrored requests carry ``X-Vigil-Mirror: 1`` and the stable
                    prediction in ``X-Vigil-Stable-Prediction``; they are compared and counted.
                    A request the splitter mirrors carries ``X-Vigil-Shadow-Control: 1``: the
                    answering (stable) server scores it a second time and counts whether it
                    agrees with itself (``vigil_model_shadow_control_comparisons_total``).
    POST /feedback  {"request_id": "...", "label": 0|1}  (the delayed true label)
    GET  /metrics   the metric contract (see vigil.demo.metrics)
    GET  /healthz   200 once the model is trained

Client errors (4xx) are not counted as requests: they never reached the model.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vigil.demo.dataset import GROUPS
from vigil.demo.faults import FaultConfig, FaultSpecError, faults_from_env
from vigil.demo.headers import (
    CONTROL_HEADER, MIRROR_HEADER, REQUEST_ID_HEADER, STABLE_PREDICTION_HEADER, VERSION_HEADER,
)
from vigil.demo.metrics import ModelMetrics
from vigil.demo.classifier import DemoModel, FaultDraws, Prediction, fails, latency_seconds

log = logging.getLogger("vigil.demo.modelserver")

MAX_REMEMBERED_PREDICTIONS = 200_000


@dataclass(frozen=True)
class ServerConfig:
    model: str
    version: str
    namespace: str
    faults: FaultConfig
    seed: int = 0
    train_seed: int = 7
    base_latency_ms: float = 8.0


async def serve_for(seconds: float) -> float:
    """Spend the simulated service time; return how late the event loop handed control back.

    The demo runs every version's server as one process on one machine, and the traffic split
    gives them unequal loads (95% against 5% in the holdback). On a busy host the loaded
    process's event loop resumes a sleeping request late, and that lag grows with its share of
    the traffic, not with anything the model does: left in, it made a healthy version slower
    than its baseline whenever it carried most of the traffic. A real fleet scales its pods
    with the load; the demo's latency is the model's simulated service time plus the real time
    spent computing the answer, without that scheduling lag."""
    asleep = time.perf_counter()
    await asyncio.sleep(seconds)
    return max(0.0, time.perf_counter() - asleep - seconds)


class PredictionLog:
    """Recent predictions by request id, so a delayed label can be scored once.

    Bounded: the oldest entries go first; a label for a forgotten request is a 404.
    """

    def __init__(self, capacity: int = MAX_REMEMBERED_PREDICTIONS) -> None:
        self._items: OrderedDict[str, Prediction] = OrderedDict()
        self._capacity = capacity

    def remember(self, request_id: str, prediction: Prediction) -> None:
        self._items[request_id] = prediction
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def take(self, request_id: str) -> Prediction | None:
        return self._items.pop(request_id, None)

    def __len__(self) -> int:
        return len(self._items)


class ModelServer:
    """Request handling for one model version; the aiohttp app wraps it."""

    def __init__(self, config: ServerConfig, model: DemoModel | None = None) -> None:
        self.config = config
        self.model = model or DemoModel(train_seed=config.train_seed)
        self.metrics = ModelMetrics(config.model, config.version, config.namespace)
        self.log = PredictionLog()
        self._rng = np.random.default_rng(config.seed)
        # The control's second scoring draws from its own stream, so the main stream stays
        # aligned across versions whatever is mirrored.
        self._control_rng = np.random.default_rng(config.seed + 1_000_003)

    def _features_from(self, body: dict[str, Any]) -> list[float]:
        if "row" in body:
            row = body["row"]
            if not isinstance(row, int) or isinstance(row, bool):
                raise ValueError("'row' must be an integer")
            return self.model.dataset.row(row)
        features = body.get("features")
        if not isinstance(features, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in features
        ):
            raise ValueError("send 'features' (a list of numbers) or 'row' (an integer)")
        return [float(v) for v in features]

    async def predict(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            features = self._features_from(body)
            group = body.get("group")
            if group is not None and group not in GROUPS:
                raise ValueError(f"'group' must be one of {list(GROUPS)}")
            self.model.check_features(features)
            draws = FaultDraws.draw(self._rng)
            prediction = self.model.predict(features, self.config.faults, draws, group)
        except (ValueError, IndexError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

        lag = await serve_for(latency_seconds(self.config.faults, draws, self.config.base_latency_ms))
        if fails(self.config.faults, draws):
            self.metrics.observe_request(time.perf_counter() - started - lag, success=False)
            return web.json_response({"error": "injected fault: errors"}, status=503)

        request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        self.metrics.observe_prediction(prediction)
        if request.headers.get(MIRROR_HEADER) == "1":
            self._compare_with_stable(request, prediction)
        else:
            self.log.remember(request_id, prediction)
            if request.headers.get(CONTROL_HEADER) == "1":
                self._control(features, group, prediction)
        self.metrics.observe_request(time.perf_counter() - started - lag, success=True)
        return web.json_response(
            {
                "request_id": request_id,
                "model": self.config.model,
                "version": self.config.version,
                "class": prediction.predicted_class,
                "score": round(prediction.score, 6),
                "confidence": round(prediction.confidence, 6),
                "group": prediction.group,
            },
            headers={VERSION_HEADER: self.config.version},
        )

    def _compare_with_stable(self, request: web.Request, prediction: Prediction) -> None:
        stable = request.headers.get(STABLE_PREDICTION_HEADER, "").strip()
        if stable in ("0", "1"):
            self.metrics.observe_shadow(agrees=int(stable) == prediction.predicted_class)

    def _control(self, features: list[float], group: str | None, prediction: Prediction) -> None:
        """Score a mirrored request a second time, as a second replica would, and count whether
        this version agrees with itself: the live control of natural nondeterminism."""
        again = self.model.predict(features, self.config.faults, FaultDraws.draw(self._control_rng), group)
        self.metrics.observe_control(agrees=again.predicted_class == prediction.predicted_class)

    async def feedback(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            request_id = body["request_id"]
            label = body["label"]
            if not isinstance(request_id, str) or label not in (0, 1) or isinstance(label, bool):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return web.json_response(
                {"error": "send {'request_id': str, 'label': 0 or 1}"}, status=400
            )
        prediction = self.log.take(request_id)
        if prediction is None:
            return web.json_response({"error": f"unknown request id {request_id!r}"}, status=404)
        correct = self.metrics.observe_feedback(prediction, int(label))
        return web.json_response({"request_id": request_id, "correct": correct})

    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "model": self.config.model,
                "version": self.config.version,
                "namespace": self.config.namespace,
                "faults": self.config.faults.describe(),
            }
        )


SERVER_KEY = web.AppKey("server", ModelServer)


def build_app(server: ModelServer) -> web.Application:
    app = web.Application()
    app.router.add_post("/predict", server.predict)
    app.router.add_post("/feedback", server.feedback)
    app.router.add_get("/metrics", server.metrics_endpoint)
    app.router.add_get("/healthz", server.healthz)
    app[SERVER_KEY] = server
    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vigil.demo.modelserver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model name (metric label 'model')")
    parser.add_argument("--version", required=True, help="model version (metric label 'version')")
    parser.add_argument("--namespace", default="default", help="metric label 'namespace'")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fault", action="append", default=[], metavar="KIND[:k=v,...]",
                        help="inject a fault (repeatable); also read from $VIGIL_DEMO_FAULTS")
    parser.add_argument("--nondeterminism", type=float, default=None,
                        help="natural prediction flip rate, e.g. 0.01 (env VIGIL_DEMO_NONDETERMINISM)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-request random draws")
    parser.add_argument("--train-seed", type=int, default=7, help="seed of the train split")
    parser.add_argument("--base-latency-ms", type=float, default=8.0,
                        help="median simulated service time (lognormal)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        faults = faults_from_env(args.fault, args.nondeterminism)
    except FaultSpecError as exc:
        raise SystemExit(f"modelserver: {exc}") from None
    from prometheus_client import disable_created_metrics

    disable_created_metrics()
    config = ServerConfig(
        model=args.model, version=args.version, namespace=args.namespace, faults=faults,
        seed=args.seed, train_seed=args.train_seed, base_latency_ms=args.base_latency_ms,
    )
    started = time.perf_counter()
    server = ModelServer(config)
    log.info("model %s %s trained in %.2fs; faults %s", config.model, config.version,
             time.perf_counter() - started, faults.describe())
    web.run_app(build_app(server), host=args.host, port=args.port, print=None,
                access_log=None, handle_signals=True)


if __name__ == "__main__":
    main()
