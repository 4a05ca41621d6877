/**
 * The store each served feed gets by default. The server depends on the store's shape
 * (store-port.ts); this is the one place that names an implementation.
 */
import type { StoreFactory } from './store-port.js';
import { MemoryStore } from './testing/memory-store.js';

export const defaultStoreFactory: StoreFactory = (o) => new MemoryStore({ logMaxAgeMs: o.logMaxAgeMs, logMaxBytes: o.logMaxBytes });
