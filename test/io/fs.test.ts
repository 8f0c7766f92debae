import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { displayPath, isInside } from '../../src/io/fs.js';

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

describe('isInside', () => {
  it('a folder, anything below it, and nothing beside or above it', () => {
    assert.equal(isInside('/runs/cv', '/runs/cv'), true);
    assert.equal(isInside('/runs/cv', '/runs/cv/'), true);
    assert.equal(isInside('/runs/cv', '/runs/cv/fold_0/model'), true);
    assert.equal(isInside('/runs/cv', '/runs/cv/../cv/x'), true);
    assert.equal(isInside('/runs/cv', '/runs/cv2'), false);
    assert.equal(isInside('/runs/cv', '/runs'), false);
    // A child whose name starts with two dots is inside; the parent's sibling "..x" is not.
    assert.equal(isInside('/runs/cv', '/runs/cv/..x'), true);
    assert.equal(isInside('/runs/cv', '/runs/..x'), false);
    assert.equal(isInside('runs/cv', join(process.cwd(), 'runs', 'cv', 'a')), true, 'relative paths resolve against the working directory');
  });
});
