import { rmSync } from 'node:fs';
import { AgentClient } from '../../runtime/src/agent/client.js';
import { StandaloneAgent } from './agent-process.js';

/** The real agent standalone on the host, a client of it, and a fresh rootfs. */
export interface AgentFixture {
  agent: StandaloneAgent;
  client: AgentClient;
  rootfs: string;
}

/**
 * For a describe block's beforeAll; env adds to the agent's environment,
 * options.netns starts it in that network namespace (StandaloneAgent.start).
 */
export async function startAgentFixture(
  makeRootfs: () => string,
  env: Record<string, string> = {},
  options: { netns?: string } = {},
): Promise<AgentFixture> {
  const rootfs = makeRootfs();
  const agent = await StandaloneAgent.start(env, options);
  return { agent, client: AgentClient.forSocket(agent.socket), rootfs };
}

/** For its afterAll: stops the agent and removes the rootfs. */
export async function stopAgentFixture(f: AgentFixture): Promise<void> {
  f.client.close();
  await f.agent.stop();
  rmSync(f.rootfs, { recursive: true, force: true });
}
