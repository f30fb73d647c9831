"""The Python client against a real retake-server: runs and their event
streams, replay with an agent swap and an output override, diff, human
waits, and the status codes a caller has to handle."""

from __future__ import annotations

import json

import grpc
import pytest

from retake_client import Client, artifact_pb2, common_pb2, experiment_pb2, run_pb2

from conftest import EXAMPLES, running_server

# A deadline for every streaming call, so a hung server fails the test.
TIMEOUT_S = 60


def node_records(client: Client, run_id: str) -> dict:
    return {n.node_id: n for n in client.get_run(run_id, include_nodes=True).nodes}


def output_text(client: Client, node: common_pb2.NodeExecution) -> str:
    assert len(node.output_artifact_ids) == 1, node
    req = artifact_pb2.GetArtifactRequest(artifact_id=node.output_artifact_ids[0])
    return client.artifacts.GetArtifact(req).content.decode()


def run_to_end(client: Client, workflow, variables=None) -> common_pb2.Run:
    run = client.start_run(workflow, variables)
    return client.wait(run.id, timeout=TIMEOUT_S)


def test_run_streams_every_event_to_the_end(client):
    run = client.start_run(EXAMPLES / "hello.yaml")
    assert run.id.startswith("run_")
    assert run.workflow_name == "hello"

    events = list(client.watch(run.id, timeout=TIMEOUT_S))

    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert all(e.run_id == run.id for e in events)
    assert events[0].kind == common_pb2.EVENT_KIND_RUN_STARTED
    assert events[-1].kind == common_pb2.EVENT_KIND_RUN_FINISHED
    assert events[-1].run_status == common_pb2.RUN_STATUS_COMPLETED
    completed = {e.node_id for e in events if e.kind == common_pb2.EVENT_KIND_NODE_COMPLETED}
    assert completed == {"fetch", "summarize_a", "summarize_b", "publish"}

    final = client.wait(run.id)
    assert final.status == common_pb2.RUN_STATUS_COMPLETED
    assert (final.counts.total, final.counts.completed, final.counts.failed) == (4, 4, 0)

    # Resuming after a sequence number gives the rest, without gaps or repeats.
    rest = list(client.watch(run.id, after=2, timeout=TIMEOUT_S))
    assert [e.sequence for e in rest] == [e.sequence for e in events[2:]]


def test_run_from_yaml_text_with_variables(client):
    final = run_to_end(client, (EXAMPLES / "report-pipeline.yaml").read_text(), {"topic": "durable execution"})
    assert final.status == common_pb2.RUN_STATUS_COMPLETED
    assert dict(final.variables) == {"topic": "durable execution"}
    fetch = node_records(client, final.id)["fetch"]
    assert json.loads(output_text(client, fetch)) == {"topic": "durable execution"}


def test_run_from_a_file_sends_its_file_prompts(client, tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "summarize.md").write_text("Summarize in five words.")
    workflow = tmp_path / "flow.yaml"
    workflow.write_text(
        "name: with-prompt-file\n"
        "nodes:\n"
        "  summarize:\n"
        "    agent: local://mock\n"
        "    system_prompt: file://prompts/summarize.md\n"
        "    config: {response: done}\n"
        "    outputs: [summary]\n"
    )
    final = run_to_end(client, workflow)
    assert final.status == common_pb2.RUN_STATUS_COMPLETED
    assert "Summarize in five words." in node_records(client, final.id)["summarize"].prompt


def test_replay_with_agent_swap_and_override(client):
    source = run_to_end(client, EXAMPLES / "report-pipeline.yaml", {"topic": "replay"})
    assert source.status == common_pb2.RUN_STATUS_COMPLETED

    replay = client.replay(
        source.id,
        swaps={"transform": "local://echo"},
        overrides={"review": "approved by a human"},
    )
    assert replay.id != source.id
    assert replay.replay.forked_from == source.id
    final = client.wait(replay.id, timeout=TIMEOUT_S)
    # "approved by a human" != "approved": publish's `when` is false now.
    assert final.status == common_pb2.RUN_STATUS_COMPLETED
    assert final.replay.forked_from == source.id
    assert [(s.node_id, s.agent) for s in final.replay.swaps] == [("transform", "local://echo")]
    assert [(o.selector, o.value) for o in final.replay.overrides] == [("review", "approved by a human")]

    nodes = node_records(client, final.id)
    source_nodes = node_records(client, source.id)
    # Upstream of every root: reused by reference, not executed again.
    assert nodes["fetch"].status == common_pb2.NODE_STATUS_REUSED
    assert nodes["fetch"].output_artifact_ids == source_nodes["fetch"].output_artifact_ids
    # The swapped node ran with the new agent: echo returns its inputs.
    assert nodes["transform"].status == common_pb2.NODE_STATUS_COMPLETED
    assert nodes["transform"].agent == "local://echo"
    assert set(json.loads(output_text(client, nodes["transform"]))) == {"data"}
    # The overridden node was not executed; its output is the override.
    review_art = client.artifacts.GetArtifact(
        artifact_pb2.GetArtifactRequest(artifact_id=nodes["review"].output_artifact_ids[0])
    )
    assert review_art.content.decode() == "approved by a human"
    assert review_art.artifact.origin == common_pb2.ARTIFACT_ORIGIN_OVERRIDE
    assert nodes["publish"].status == common_pb2.NODE_STATUS_SKIPPED


def test_replay_with_override_tuple_and_from(client):
    source = run_to_end(client, EXAMPLES / "hello.yaml")
    replay = client.replay(source.id, from_="publish", overrides=[("summarize_b", "", "shorter")])
    final = client.wait(replay.id, timeout=TIMEOUT_S)
    assert final.status == common_pb2.RUN_STATUS_COMPLETED
    assert final.replay.forked_at_step == "publish"
    nodes = node_records(client, final.id)
    assert nodes["summarize_a"].status == common_pb2.NODE_STATUS_REUSED
    assert json.loads(output_text(client, nodes["publish"]))["b"] == "shorter"


def test_diff_shows_what_the_replay_changed(client):
    source = run_to_end(client, EXAMPLES / "hello.yaml")
    replay = client.wait(client.replay(source.id, swaps={"summarize_b": "local://echo"}).id, timeout=TIMEOUT_S)

    diff = client.diff(source.id, replay.id)

    assert diff.run_a.id == source.id and diff.run_b.id == replay.id
    by_node = {n.node_id: n for n in diff.nodes}
    assert set(by_node) == {"fetch", "summarize_a", "summarize_b", "publish"}
    changed = by_node["summarize_b"]
    assert changed.changed
    assert (changed.agent_a, changed.agent_b) == ("local://mock", "local://echo")
    assert changed.outputs[0].changed and changed.outputs[0].text_diff
    assert not by_node["fetch"].changed
    assert not by_node["summarize_a"].changed
    assert by_node["publish"].changed  # its input b changed
    assert diff.summary.changed == 2 and diff.summary.unchanged == 2


# Human waits: a human://input node waits until ResolveWait answers it.
HUMAN_INPUT = """
name: ask-a-human
nodes:
  ask:
    agent: human://input
    system_prompt: "Which colour?"
    outputs: [answer]
  use:
    agent: local://echo
    inputs: {colour: "${ask.answer}"}
    outputs: [result]
    depends_on: [ask]
"""


def test_experiment_replays_a_workflows_runs_with_one_swap(client):
    sources = [run_to_end(client, EXAMPLES / "report-pipeline.yaml", {"topic": f"t{i}"}).id for i in range(3)]
    started = client.start_experiment(
        workflow_name="report-pipeline", last=3, swaps={"transform": "local://echo"}, name="echo transform"
    )
    assert started.id.startswith("exp_")
    assert sorted(i.source_run_id for i in started.items) == sorted(sources)
    got = client.wait_experiment(started.id, timeout=TIMEOUT_S)
    assert got.experiment.status == experiment_pb2.EXPERIMENT_STATUS_COMPLETED
    assert got.experiment.progress.completed == 3
    nodes = {n.node_id: n for n in got.comparison.nodes}
    assert (nodes["fetch"].reused, nodes["fetch"].changed) == (3, 0)
    assert nodes["transform"].changed == 3
    assert {p.first_divergence for p in got.comparison.pairs} == {"transform"}


def test_human_input_wait_is_resolved_by_the_client(client):
    run = client.start_run(HUMAN_INPUT)
    # Follow the stream up to the wait announcement, then answer it.
    stream = client.watch(run.id, timeout=TIMEOUT_S)
    for event in stream:
        assert event.kind != common_pb2.EVENT_KIND_RUN_FINISHED, f"run finished without waiting: {event}"
        if event.kind == common_pb2.EVENT_KIND_WAIT_STARTED:
            break
    assert event.node_id == "ask"
    assert "Which colour?" in event.message

    waits = client.list_waits(run.id)
    assert [(w.node_id, w.kind) for w in waits] == [("ask", run_pb2.WAIT_KIND_INPUT)]
    assert client.get_run(run.id).run.status == common_pb2.RUN_STATUS_WAITING

    resolved = client.resolve_wait(run.id, value="blue")
    assert resolved.wait.node_id == "ask"

    rest = list(stream)
    assert any(e.kind == common_pb2.EVENT_KIND_WAIT_RESOLVED for e in rest)
    assert rest[-1].kind == common_pb2.EVENT_KIND_RUN_FINISHED
    final = client.wait(run.id)
    assert final.status == common_pb2.RUN_STATUS_COMPLETED
    assert client.list_waits(run.id) == []
    assert json.loads(output_text(client, node_records(client, run.id)["use"])) == {"colour": "blue"}


def test_unknown_run_is_not_found(client):
    for call in (
        lambda: client.get_run("run_x"),
        lambda: list(client.watch("run_x", timeout=TIMEOUT_S)),
        lambda: client.replay("run_x", from_="fetch"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == "Run 'run_x' not found"


def test_bad_workflow_is_invalid_argument(client):
    bad = """
name: broken
nodes:
  a:
    agent: local://echo
    outputs: [result]
    depends_on: [missing]
"""
    with pytest.raises(grpc.RpcError) as err:
        client.start_run(bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "missing" in err.value.details()


def test_bearer_token(tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    with running_server(tmp_path, "--auth-token-file", str(tmp_path / "token")) as address:
        with Client(address) as anonymous:
            with pytest.raises(grpc.RpcError) as err:
                anonymous.get_run("latest")
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with Client(address, token="wrong") as wrong:
            with pytest.raises(grpc.RpcError) as err:
                wrong.start_run(EXAMPLES / "hello.yaml")
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with Client(f"http://{address}", token="s3cret") as c:
            run = c.start_run(EXAMPLES / "hello.yaml")
            assert [e.sequence for e in c.watch(run.id, timeout=TIMEOUT_S)][-1] > 1
            assert c.wait(run.id).status == common_pb2.RUN_STATUS_COMPLETED


class _LoseTheFirstReply(grpc.UnaryUnaryClientInterceptor):
    """Sends a StartRun or ReplayRun on, then reports UNAVAILABLE once, as
    when the server stored the run but its reply was lost on the way."""

    def __init__(self) -> None:
        self.sent: list = []

    def intercept_unary_unary(self, continuation, call_details, request):
        response = continuation(call_details, request)
        if call_details.method.endswith(("/StartRun", "/ReplayRun")):
            self.sent.append(request.request_id)
            if len(self.sent) == 1:
                response.result()  # the server has stored it
                raise _Unavailable()
        return response


class _Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "connection reset (simulated)"


def _count_runs(client: Client) -> int:
    return len(client.runs.ListRuns(run_pb2.ListRunsRequest(page_size=1000)).runs)


def test_a_start_whose_reply_was_lost_is_retried_without_a_second_run(server):
    lose = _LoseTheFirstReply()
    with Client(server, interceptors=[lose]) as c:
        before = _count_runs(c)
        run = c.start_run(EXAMPLES / "hello.yaml")
        assert len(lose.sent) == 2 and lose.sent[0] == lose.sent[1] and lose.sent[0], lose.sent
        assert _count_runs(c) == before + 1
        assert c.wait(run.id, timeout=TIMEOUT_S).status == common_pb2.RUN_STATUS_COMPLETED
        # The same id again, by hand: the same run.
        again = c.start_run(EXAMPLES / "hello.yaml", request_id=lose.sent[0])
        assert again.id == run.id
        # And a replay the same way.
        lose.sent.clear()
        replay = c.replay(run.id, from_="publish")
        assert len(lose.sent) == 2 and lose.sent[0] == lose.sent[1], lose.sent
        assert _count_runs(c) == before + 2
        assert c.replay(run.id, from_="publish", request_id=lose.sent[0]).id == replay.id


def test_a_5_mb_artifact_is_read_whole(client):
    big = "".join(chr(97 + i % 26) for i in range(5_000_000))
    yaml = 'name: big\nnodes:\n  a: {agent: local://echo, inputs: {text: "${user.big}"}, outputs: [result]}\n'
    run = client.start_run(yaml, {"big": big})
    client.wait(run.id, timeout=TIMEOUT_S)
    # (GetRun with its nodes would carry the 5 MB input: ListArtifacts does not.)
    listed = client.artifacts.ListArtifacts(artifact_pb2.ListArtifactsRequest(run_id=run.id)).artifacts
    artifact_id = next(a.id for a in listed if a.node_id == "a" and a.name == "result")
    with pytest.raises(grpc.RpcError) as refused:
        client.artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(artifact_id=artifact_id))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ReadArtifact" in refused.value.details()
    content = client.read_artifact(artifact_id)
    assert len(content) >= 5_000_000 and big in content.decode()
    assert client.read_artifact(artifact_id, offset=10, limit=5) == content[10:15]
