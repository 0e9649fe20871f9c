// The sandbox process's end of the DNS relay, alone, for test/host/dns-relay:
// run in a test network namespace with `nsenter --net=`, as the sandbox
// process runs in the container's host namespace.
//   node --import tsx dns-host-end.ts CHARDEV ADDRESS
import { pino } from 'pino';
import { HostDnsRelay, resolverListens } from '../../runtime/src/sandbox/network/dns-relay.js';

const [chardev, address] = process.argv.slice(2);
if (chardev === undefined || address === undefined) {
  process.stderr.write('usage: dns-host-end.ts CHARDEV ADDRESS\n');
  process.exit(2);
}
const log = pino({ level: 'debug' }, pino.destination(2));
const relay = new HostDnsRelay(chardev, log, { retryMs: 50 });
const listens = await resolverListens(address);
relay.start(address);
process.stdout.write(`started listens=${listens}\n`);
process.on('SIGTERM', () => {
  relay.close();
});
