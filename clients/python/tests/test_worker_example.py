"""examples/workers runs as its README says: the Python and the JavaScript
worker serve their steps, and the model step talks to a fake
OpenAI-compatible endpoint on loopback in place of Ollama."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from retake_client import Client, artifact_pb2, common_pb2

from conftest import EXAMPLES, REPO, running_server

WORKERS = EXAMPLES / "workers"
TS_DIST = REPO / "clients" / "typescript" / "dist" / "src" / "index.js"


class FakeModel(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the http.server interface
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "llama3.2",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Every step is recorded; a crashed run resumes."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_workers_example_runs_with_both_workers(tmp_path):
    if not TS_DIST.is_file():
        pytest.fail(f"{TS_DIST} is missing: build the TypeScript client (cd clients/typescript && npm run build)")
    node = shutil.which("node")
    assert node, "node is needed for the JavaScript worker"
    model = HTTPServer(("127.0.0.1", 0), FakeModel)
    threading.Thread(target=model.serve_forever, daemon=True).start()
    workflow = (WORKERS / "research.yaml").read_text().replace(
        "    agent: llm://ollama/llama3.2\n",
        f"    agent: llm://ollama/llama3.2\n    config: {{api_base: 'http://127.0.0.1:{model.server_port}/v1'}}\n",
    )
    with running_server(tmp_path) as address, Client(address) as client:
        env = {"PYTHONPATH": str(REPO / "clients" / "python")}
        workers = [
            subprocess.Popen([sys.executable, str(WORKERS / "worker.py"), address], env={**os.environ, **env}),
            subprocess.Popen([node, str(WORKERS / "worker.mjs"), address]),
        ]
        try:
            run = client.start_run(workflow, variables={"topic": "durable execution"})
            finished = client.wait(run.id, timeout=60)
            nodes = {n.node_id: n for n in client.get_run(run.id, include_nodes=True).nodes}
            assert finished.status == common_pb2.RUN_STATUS_COMPLETED, {k: n.error for k, n in nodes.items()}

            def text(node_id: str, i: int = 0) -> str:
                req = artifact_pb2.GetArtifactRequest(artifact_id=nodes[node_id].output_artifact_ids[i])
                return client.artifacts.GetArtifact(req).content.decode()

            assert "A crashed run resumes" in text("retrieve")
            assert text("summarize").startswith("Every step is recorded")
            assert text("score", 1) in ("faithful", "thin")
            assert nodes["retrieve"].attempts[0].worker
            assert nodes["score"].attempts[0].worker
        finally:
            for w in workers:
                w.terminate()
                w.wait(10)
            model.shutdown()
