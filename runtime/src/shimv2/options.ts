import { readFileSync } from 'node:fs';
import { isatty } from 'node:tty';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { Any } from '../../../proto/generated/google/protobuf/any.js';

/**
 * containerd's runtimeoptions.v1.Options (pkg/runtimeoptions/v1/api.proto):
 * what its CRI plugin sends a shim whose runtime is not runc when
 * `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<name>.options]`
 * has ConfigPath, and what `ctr run --runtime-config-path` sends.
 */
const RUNTIME_OPTIONS_TYPE = 'runtimeoptions.v1.Options';

/**
 * The configuration file containerd names for this shim: the ConfigPath of
 * the runtime options it writes, as a protobuf Any, to the stdin of
 * `start` (runtime/v2/shim/util.go Command; the task's options, else the
 * runtime's: runtime/v2/manager.go startShim), or undefined. Kata's shim
 * reads the same field. Other option types (runc's) carry no path.
 */
export function configPathFromStdin(): string | undefined {
  // Run by hand at a terminal there are no options, and reading would wait.
  if (isatty(0)) return undefined;
  let data: Buffer;
  try {
    data = readFileSync(0);
  } catch {
    return undefined;
  }
  return data.length === 0 ? undefined : configPathOf(data);
}

/** ConfigPath of an encoded Any holding runtimeoptions.v1.Options, else undefined. */
export function configPathOf(encodedAny: Uint8Array): string | undefined {
  const any = Any.decode(encodedAny);
  // typeurl names gogo-registered types by their full name, others with a prefix.
  if (!any.typeUrl.endsWith(RUNTIME_OPTIONS_TYPE)) return undefined;
  const reader = new BinaryReader(any.value);
  let path: string | undefined;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 2 && wireType === WireType.LengthDelimited) path = reader.string();
    else reader.skip(wireType);
  }
  return path === '' ? undefined : path;
}
