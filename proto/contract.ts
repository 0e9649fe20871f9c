// Names the host runtime and the guest agent must agree on beyond the
// messages of agent.proto. Both halves import this file (they never import
// each other); the C copies (native/init) cannot, so a unit test
// (test/unit/contract.test.ts) holds them to these values.

/**
 * The virtio-serial port that carries the agent API: QEMU's
 * `virtserialport,name=...` on the host, /sys/class/virtio-ports/vportNpM/name
 * in the guest.
 */
export const AGENT_PORT_NAME = 'agent.channel.0';

/**
 * The virtio-serial port that carries DNS queries from the guest's
 * kapsel-dns-relay (native/dns/relay.c) to the sandbox process, which asks
 * the resolver of the container's host network namespace (Docker's 127.0.0.11).
 */
export const DNS_PORT_NAME = 'kapsel.dns.0';

/**
 * runc's rule for container ids (libcontainer's `idRegex`); exec ids follow
 * it too. The host checks it before it makes state directories, the agent
 * before it makes cgroups and paths from an id.
 */
export const CONTAINER_ID_PATTERN = /^[\w+\-.]+$/;

/**
 * The longest container id: runc has no limit of its own, but the id names
 * its state directory, so the file-name limit (NAME_MAX) is where runc fails.
 */
export const CONTAINER_ID_MAX_LENGTH = 255;

/**
 * runc's validateID (libcontainer/factory_linux.go): the pattern's
 * characters only, and a name a path can hold, so neither `.` nor `..`.
 */
export function isValidContainerId(id: string): boolean {
  return (
    id.length <= CONTAINER_ID_MAX_LENGTH &&
    CONTAINER_ID_PATTERN.test(id) &&
    id !== '.' &&
    id !== '..'
  );
}
