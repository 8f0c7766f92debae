import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from '../../src/io/crc32.js';
import { nodeZipCodec } from '../../src/io/zip.js';

describe('CRC-32 (ZIP entries)', () => {
  it('gives the standard check value of "123456789" (0xCBF43926) and 0 for no bytes', () => {
    assert.equal(crc32(new TextEncoder().encode('123456789')) >>> 0, 0xcbf43926);
    assert.equal(crc32(new Uint8Array(0)) >>> 0, 0);
  });

  it('the Node codec (zlib.crc32 where Node has it, else the plain one) agrees with the plain one', () => {
    const data = new Uint8Array(70001).map((_, i) => (i * 2654435761) >>> 24);
    assert.equal(nodeZipCodec.crc32(data) >>> 0, crc32(data) >>> 0);
    assert.equal(nodeZipCodec.crc32(data.subarray(1, 9)) >>> 0, crc32(data.subarray(1, 9)) >>> 0);
  });
});
