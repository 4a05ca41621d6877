/**
 * The store each served feed gets by default: src/snapshot's FeedStore. The server depends on the
 * store's shape (store-port.ts); this is the one place that names an implementation, and the type
 * annotation is where a drift between the two APIs shows up as a compile error.
 */
import { FeedStore } from '../../snapshot/index.js';
import type { StoreFactory } from './store-port.js';

export const defaultStoreFactory: StoreFactory = (o) => new FeedStore({ feed: o.feed, logMaxAgeMs: o.logMaxAgeMs, logMaxBytes: o.logMaxBytes });
