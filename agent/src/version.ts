// Replaced by the bundler with package.json's version; tests see the fallback.
declare const KAPSEL_VERSION: string | undefined;
export const AGENT_VERSION: string =
  typeof KAPSEL_VERSION === 'string' ? KAPSEL_VERSION : '0.0.0-dev';

/** The virtio-serial port the host runtime connects to (QEMU's `name=`). */
export const AGENT_PORT_NAME = 'agent.channel.0';
