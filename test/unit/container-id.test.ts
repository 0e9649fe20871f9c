import { describe, expect, it } from 'vitest';
import { CONTAINER_ID_MAX_LENGTH, isValidContainerId } from '../../proto/contract.js';
import { checkContainerId } from '../../runtime/src/container/state.js';

// runc's validateID (libcontainer/factory_linux.go, runc 1.2+): letters,
// digits, _ + - . and a name a path can hold.
describe('container ids as runc takes them', () => {
  it.each(['a', '-x', 'A_b+c-d.e', '..a', '.hidden', 'x'.repeat(CONTAINER_ID_MAX_LENGTH)])(
    'accepts %j',
    (id) => {
      expect(isValidContainerId(id)).toBe(true);
    },
  );

  it.each(['', '.', '..', 'a/b', 'a,b', 'a b', 'é', 'x'.repeat(CONTAINER_ID_MAX_LENGTH + 1)])(
    'refuses %j',
    (id) => {
      expect(isValidContainerId(id)).toBe(false);
      expect(() => {
        checkContainerId(id);
      }).toThrow(/invalid container id format/);
    },
  );

  it("refuses kapsel's own names under --root", () => {
    expect(() => {
      checkContainerId('.vm');
    }).toThrow("invalid container id: .vm names kapsel's own files under --root");
  });
});
