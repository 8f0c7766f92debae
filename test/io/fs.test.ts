import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { displayPath } from '../../src/io/fs.js';

describe('displayPath', () => {
  it('shows paths inside the working directory relative to it, others absolute', () => {
    const cwd = process.cwd();
    assert.equal(displayPath(join(cwd, 'runs', 'cv', 'fold_0', 'model')), join('runs', 'cv', 'fold_0', 'model'));
    assert.equal(displayPath('runs/cv/../cv2'), join('runs', 'cv2'));
    assert.equal(displayPath(cwd), '.');
    assert.equal(displayPath(resolve(cwd, '..', 'elsewhere')), resolve(cwd, '..', 'elsewhere'));
    // a folder whose name begins with two dots is still inside
    assert.equal(displayPath(join(cwd, '..hidden', 'x')), join('..hidden', 'x'));
  });
});
