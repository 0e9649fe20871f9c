import { RuntimeError } from '../../sys/errors.js';

/**
 * A step of starting or stopping a VM failed. The message names the step and
 * the path it worked on (`start virtiofsd for /x: ...`); `detail` holds what
 * the user needs to debug it (QEMU's stderr, the guest's last console lines).
 */
export class VmError extends RuntimeError {
  constructor(
    readonly step: string,
    readonly path: string,
    reason: string,
    options?: { cause?: unknown; detail?: string },
  ) {
    super(
      `${step} ${path}: ${reason}${options?.detail ? `\n${options.detail}` : ''}`,
      1,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
  }
}

/** Indents captured output so it reads as part of an error message. */
export function indentBlock(title: string, text: string): string {
  const body = text.trimEnd();
  if (body === '') return '';
  return `${title}:\n${body
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')}`;
}
