"""A Python worker serving `worker://retrieve`: run it next to a retake
server (python examples/workers/worker.py [HOST:PORT])."""

import sys

from retake_client import Worker

NOTES = {
    "durable execution": [
        "Every step's result is recorded before the next step starts.",
        "A crashed run resumes from its last recorded step.",
        "Replaying from a step reuses everything upstream of it.",
    ],
}

worker = Worker(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051", concurrency=4)


@worker.agent("retrieve")
def retrieve(task):
    topic = task.inputs["topic"]["topic"]
    task.progress(f"looking up {topic}")
    notes = NOTES.get(topic.lower(), [f"No notes about {topic} yet."])
    return "\n".join(f"- {n}" for n in notes)


if __name__ == "__main__":
    worker.run()
