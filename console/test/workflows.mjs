// Workflows the browser tests start, written for what each test looks at.

/** Two sleeps side by side between a start and a join. */
export const PARALLEL = `name: parallel
description: two sleeps side by side, then a join
nodes:
  start: {agent: local://echo, inputs: {x: "1"}, outputs: [result]}
  left: {agent: local://sleep, config: {ms: 400}, inputs: {x: "\${start.result}"}, outputs: [result], depends_on: [start]}
  right: {agent: local://sleep, config: {ms: 400}, inputs: {x: "\${start.result}"}, outputs: [result], depends_on: [start]}
  join: {agent: local://echo, outputs: [result], depends_on: [left, right]}
`;

/** Fails at its middle node, so the last one is skipped. */
export const FAILING = `name: failing
nodes:
  fetch: {agent: local://echo, inputs: {x: "1"}, outputs: [result]}
  transform: {agent: local://fail, config: {message: "the parser choked on line 3"}, outputs: [result], depends_on: [fetch]}
  publish: {agent: local://echo, inputs: {x: "\${transform.result}"}, outputs: [result], depends_on: [transform]}
`;

/** Still running a minute after it starts, at its third node. */
export const SLOW = `name: slow
nodes:
  first: {agent: local://sleep, config: {ms: 300}, outputs: [result]}
  second: {agent: local://sleep, config: {ms: 600}, outputs: [result], depends_on: [first]}
  third: {agent: local://sleep, config: {ms: 60000}, outputs: [result], depends_on: [second]}
`;
