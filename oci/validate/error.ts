/**
 * A refusal of an OCI document (config.json, an exec's process.json, an
 * update's linux.resources): `field` is the JSON path of what is wrong
 * (`process.capabilities.bounding[2]`), the message is `<field>: <reason>`,
 * lower-case, as runc words its own. The agent maps it to INVALID_ARGUMENT,
 * the runtime prints it as its error.
 */
export class SpecError extends Error {
  override readonly name = 'SpecError';
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}
