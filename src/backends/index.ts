/**
 * Registers every backend that can run here. `reference` always works; faster backends register
 * themselves with a higher priority when they load, and become the default.
 */
import './reference/index.js';
import './native/index.js';
