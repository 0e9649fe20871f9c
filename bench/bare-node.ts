// Node's own start in the guest: init starts node with the agent's flags
// and `-e` code that only opens the virtio-serial ports (QEMU reports it as
// the agent's port opening) and stays. No agent written for Node can be
// ready sooner, so it bounds what a faster agent start can gain.

/**
 * The code node runs instead of the agent (init passes the agent's script
 * after it, as an argument nobody reads). No commas or spaces: init splits
 * kapsel.agent_flags at commas, and kapsel takes no space or double quote
 * in a kernel parameter (qemu-args.ts kernelCommandLine).
 */
const OPEN_PORTS =
  "require('fs').readdirSync('/dev').filter((f)=>f.startsWith('vport')).map((f)=>require('fs').openSync('/dev/'+f));setInterval(()=>{})";

/**
 * The kernel parameter that makes init start bare node, after requiring
 * `builtins` (to price one built-in module's load in the guest).
 */
export function bareNodeKernelParam(builtins: readonly string[] = []): string {
  const requires = builtins.map((m) => `require('${m}');`).join('');
  return `kapsel.agent_flags=-e,${requires}${OPEN_PORTS}`;
}
