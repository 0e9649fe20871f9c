import { describe, expect, it } from 'vitest';
import { checkCreateContainer } from '../../agent/src/request-checks.js';
import { NINEP_MOUNT_OPTIONS, shareStorage } from '../../runtime/src/sandbox/share-storage.js';
import type { Storage } from '../../proto/generated/agent.js';

function create(storage: Storage): void {
  checkCreateContainer({
    containerId: 'c1',
    ociSpecJson: '{}',
    storages: [storage],
    sandboxContainerId: '',
  });
}

const nine = (over: Partial<Storage>): Storage => ({
  ...shareStorage('virtio-9p', '/run/kapsel/containers/c1/share'),
  ...over,
});

describe('the agent checks a share storage', () => {
  it('takes what the host sends for either shared_fs', () => {
    expect(() => {
      create(shareStorage('virtio-fs', '/run/x'));
    }).not.toThrow();
    expect(() => {
      create(shareStorage('virtio-9p', '/run/x'));
    }).not.toThrow();
    expect(shareStorage('virtio-9p', '/run/x')).toEqual({
      driver: '9p',
      source: 'kapsel-shared',
      mountPoint: '/run/x',
      options: [...NINEP_MOUNT_OPTIONS],
    });
  });

  it.each([
    ['a 9p tag that climbs out of its directory', nine({ source: '..' }), 'not . or ..'],
    ['a 9p tag with a slash', nine({ source: 'a/b' }), '1-31 of'],
    ['a 9p tag longer than QEMU takes', nine({ source: 'x'.repeat(32) }), '1-31 of'],
    ['a 9p storage over TCP', nine({ options: ['version=9p2000.L'] }), 'needs trans=virtio'],
    ['an empty tag', nine({ source: '' }), 'the 9p tag is missing'],
  ])('refuses %s', (_name, storage, message) => {
    expect(() => {
      create(storage);
    }).toThrow(message);
  });
});
