/**
 * onnxruntime-node for the tests that run our ONNX exports, or null with the reason it cannot be
 * loaded (those tests then skip with that reason instead of failing on a machine without it).
 */
type Ort = typeof import('onnxruntime-node');

async function load(): Promise<{ ort: Ort | null; why: string }> {
  try {
    return { ort: await import('onnxruntime-node'), why: '' };
  } catch (e) {
    const why = `onnxruntime-node not available: ${(e as Error).message}`;
    console.log(`# skipping ONNX runtime test: ${why}`);
    return { ort: null, why };
  }
}

export const { ort, why } = await load();
