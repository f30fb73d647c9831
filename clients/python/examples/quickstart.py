import os
from retake_client import Client, common_pb2

client = Client(os.environ.get("RETAKE_SERVER", "127.0.0.1:50051"))
run = client.start_run("examples/hello.yaml")
for event in client.watch(run.id):
    print(event.sequence, common_pb2.EventKind.Name(event.kind), event.node_id)
replay = client.wait(client.replay(run.id, swaps={"summarize_b": "local://echo"}).id)
for node in client.diff(run.id, replay.id).nodes:
    print(node.node_id, "changed" if node.changed else "same")
