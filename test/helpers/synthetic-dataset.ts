import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeNiftiFile } from '../../src/io/nifti/index.js';
import { mat4 } from '../../src/io/nifti/mat4.js';

/**
 * A small MSD-style dataset of ellipsoid "organs" on noise: class 1 is a bright blob, class 2 a
 * darker blob beside it. Shapes differ per case (and are not multiples of 16) to exercise padding
 * and sliding windows. Deterministic from the case index.
 */
export async function writeSyntheticDataset(dir: string, n = 5, shape: [number, number, number] = [20, 22, 18]): Promise<string[]> {
  await mkdir(join(dir, 'imagesTr'), { recursive: true });
  await mkdir(join(dir, 'labelsTr'), { recursive: true });
  const ids: string[] = [];
  let s = 12345;
  const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
  const cases = [];
  for (let c = 0; c < n; c++) {
    const sh: [number, number, number] = [shape[0] + (c % 3), shape[1] - (c % 2), shape[2] + (c % 2)];
    const [X, Y, Z] = sh;
    const img = new Float32Array(X * Y * Z);
    const lbl = new Uint8Array(X * Y * Z);
    const cx = X / 2 + (c % 3) - 1,
      cy = Y / 2,
      cz = Z / 2;
    for (let x = 0; x < X; x++)
      for (let y = 0; y < Y; y++)
        for (let z = 0; z < Z; z++) {
          const i = (x * Y + y) * Z + z;
          const r1 = ((x - cx + 3) / 4) ** 2 + ((y - cy) / 5) ** 2 + ((z - cz) / 4) ** 2;
          const r2 = ((x - cx - 4) / 3) ** 2 + ((y - cy) / 4) ** 2 + ((z - cz) / 3) ** 2;
          const l = r1 <= 1 ? 1 : r2 <= 1 ? 2 : 0;
          lbl[i] = l;
          img[i] = 100 + 20 * rand() + (l === 1 ? 80 : l === 2 ? 40 : 0);
        }
    const id = `case_${String(c).padStart(3, '0')}`;
    ids.push(id);
    const affine = mat4([
      [1.5, 0, 0, -10],
      [0, 1, 0, 5],
      [0, 0, 1.2, 2],
      [0, 0, 0, 1],
    ]);
    await writeNiftiFile(join(dir, 'imagesTr', `${id}.nii.gz`), { data: img, shape: sh, affine });
    await writeNiftiFile(join(dir, 'labelsTr', `${id}.nii.gz`), { data: lbl, shape: sh, affine });
    cases.push({ id, image: `imagesTr/${id}.nii.gz`, label: `labelsTr/${id}.nii.gz` });
  }
  await writeFile(
    join(dir, 'dataset.json'),
    JSON.stringify({
      name: 'synthetic',
      modality: { 0: 'MRI' },
      labels: { 0: 'background', 1: 'bright', 2: 'dark' },
      training: cases.map((c) => ({ image: `./${c.image}`, label: `./${c.label}` })),
    }),
  );
  return ids;
}
