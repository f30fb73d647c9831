"""A2A agents served by the official a2a-sdk, for retake's a2a:// tests.

Binds 127.0.0.1:0, prints `listening on PORT` once it serves, and runs
until killed. Each agent lives under its own path, with its card at
`/NAME/.well-known/agent-card.json` and its JSON-RPC endpoint at
`/NAME/rpc`:

- echo:    answers with a Message: "echo: " + the text it received.
- slow:    returns a Task that completes after a delay, with a text artifact.
- data:    answers with a Message holding one data part.
- failing: returns a Task that fails with a status message.
- asking:  returns a Task that asks for more input.
- legacy:  the slow agent behind a card that offers protocol 0.3 only
           (served by the SDK's 0.3 compatibility layer).
"""

import asyncio
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from a2a.helpers.proto_helpers import (
    new_data_part,
    new_task_from_user_message,
    new_text_message,
    new_text_part,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Message,
    Part,
    Role,
)

DELAY_SECONDS = 1.0


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        await event_queue.enqueue_event(new_text_message('echo: ' + context.get_user_input()))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        pass


class Data(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        words = context.get_user_input().split()
        message = Message(
            role=Role.ROLE_AGENT,
            message_id='data-' + (context.task_id or 'x'),
            parts=[new_data_part({'words': len(words), 'first': words[0] if words else None})],
        )
        await event_queue.enqueue_event(message)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        pass


class TaskAgent(AgentExecutor):
    """Works on a Task; `outcome` is complete, fail or ask."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        text = context.get_user_input()
        if self.outcome == 'complete':
            await asyncio.sleep(DELAY_SECONDS)
            await updater.add_artifact([new_text_part('done: ' + text)], name='result')
            await updater.complete()
        elif self.outcome == 'fail':
            await asyncio.sleep(0.2)
            await updater.failed(updater.new_agent_message([new_text_part('cannot do that: the input is too vague')]))
        else:
            await updater.requires_input(updater.new_agent_message([new_text_part('Which city do you mean?')]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel()


def card(name: str, url: str, version: str) -> AgentCard:
    return AgentCard(
        name=name,
        description=f'retake test agent {name}',
        version='1.0.0',
        supported_interfaces=[AgentInterface(url=url, protocol_binding='JSONRPC', protocol_version=version)],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=['text/plain'],
        default_output_modes=['text/plain', 'application/json'],
        skills=[AgentSkill(id=name, name=name, description=f'{name} skill', tags=['test'])],
    )


def mount(name: str, executor: AgentExecutor, base: str, version: str = '1.0') -> Mount:
    agent_card = card(name, f'{base}/{name}/rpc', version)
    handler = DefaultRequestHandler(agent_executor=executor, task_store=InMemoryTaskStore(), agent_card=agent_card)
    routes = create_agent_card_routes(agent_card) + create_jsonrpc_routes(
        handler, rpc_url='/rpc', enable_v0_3_compat=version.startswith('0.')
    )
    return Mount(f'/{name}', routes=routes)


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    base = f'http://127.0.0.1:{port}'
    app = Starlette(
        routes=[
            mount('echo', Echo(), base),
            mount('slow', TaskAgent('complete'), base),
            mount('data', Data(), base),
            mount('failing', TaskAgent('fail'), base),
            mount('asking', TaskAgent('ask'), base),
            mount('legacy', TaskAgent('complete'), base, version='0.3'),
        ]
    )
    config = uvicorn.Config(app, log_level='warning')
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.02)
        print(f'listening on {port}', flush=True)
        await task

    asyncio.run(serve())


if __name__ == '__main__':
    sys.exit(main())
