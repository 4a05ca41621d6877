import { createHash } from 'node:crypto';
import { CattailError } from '../../errors.js';
import { BUILTIN_FEED_NAMES, findResource, SYNCER_FEEDS } from '../../registry.js';
import type { FeedDefinition } from '../pipeline/seams.js';
import { PROJECTION_VERSION } from './projections/index.js';
import { parseFieldSelector, parseLabelSelector } from './selector.js';
import type { CustomFeedConfig, ProjectionKind } from './types.js';

/**
 * Feed definitions: the built-in feeds (Typha's four syncer types, resource lists from
 * src/registry.ts SYNCER_FEEDS, every resource projected the `libcalico` way, as Typha's syncers
 * send it) and custom feeds from
 * the config file. Validation here is strict: a typo in a feed table is a coded error at start-up,
 * never a feed that silently stays empty.
 */

/** The built-in feed names (src/registry.ts). */
export const BUILTIN_FEEDS = BUILTIN_FEED_NAMES;

export interface FeedResourceSpec {
  readonly resource: string;
  readonly projection: ProjectionKind;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
}

export interface FeedSpec extends FeedDefinition {
  readonly specs: readonly FeedResourceSpec[];
}

const PROJECTIONS: readonly ProjectionKind[] = ['calico', 'strip', 'raw', 'libcalico'];

function invalid(message: string, details?: Record<string, unknown>): CattailError {
  return new CattailError('CATTAIL_UPSTREAM_FEED_INVALID', message, details ? { details } : undefined);
}

/**
 * The projection version of a feed: PROJECTION_VERSION mixed with the feed's own definition, so
 * changing a custom feed's selector or projection also invalidates agents' resume tokens (their
 * state was built from a different definition). A 31-bit integer, compared for equality only.
 */
function projectionVersion(specs: readonly FeedResourceSpec[]): number {
  const digest = createHash('sha256').update(JSON.stringify({ v: PROJECTION_VERSION, specs })).digest();
  return digest.readUInt32BE(0) >>> 1;
}

/**
 * The version of each projection's data model (PROTOCOL.md 3.2): bumped with PROJECTION_VERSION
 * whenever that projection's keys or values change meaning. `libcalico.v3` is the model
 * docs/data-model.md describes (v2 sent Tiers as v3 resources; v1 also FelixConfiguration and
 * Calico policies).
 */
export const MODEL_VERSIONS: Readonly<Record<ProjectionKind, number>> = Object.freeze({ libcalico: 3, calico: 1, strip: 1, raw: 1 });

/**
 * The data model a feed announces in WELCOME: `<projection>.v<N>` when every resource uses one
 * projection, `mixed` otherwise (the agent then knows the feed from its config).
 */
export function feedModel(specs: readonly FeedResourceSpec[]): string {
  const kinds = new Set(specs.map((s) => s.projection));
  if (kinds.size !== 1) return 'mixed';
  const kind = [...kinds][0] as ProjectionKind;
  return `${kind}.v${MODEL_VERSIONS[kind]}`;
}

function feed(name: string, specs: FeedResourceSpec[]): FeedSpec {
  return { name, resources: specs.map((s) => s.resource), projectionVersion: projectionVersion(specs), model: feedModel(specs), specs };
}

export function builtinFeed(name: string): FeedSpec {
  const ids = (SYNCER_FEEDS as Record<string, readonly string[]>)[name];
  if (ids === undefined) throw invalid(`unknown feed ${JSON.stringify(name)} (built-in feeds: ${BUILTIN_FEEDS.join(', ')}; others must be declared in customFeeds)`, { feed: name });
  return feed(name, ids.map((resource) => ({ resource, projection: 'libcalico' })));
}

/** Validates one custom feed declaration (from the config file: shape unchecked until here). */
export function customFeed(raw: unknown): FeedSpec {
  if (typeof raw !== 'object' || raw === null) throw invalid('each customFeeds entry must be a mapping with name and resources');
  const { name, resources } = raw as Partial<CustomFeedConfig>;
  if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) throw invalid(`custom feed name ${JSON.stringify(name)} must be lower-case letters, digits and dashes`, { feed: name });
  if (BUILTIN_FEEDS.includes(name)) throw invalid(`custom feed ${name} would shadow the built-in feed of that name`, { feed: name });
  if (!Array.isArray(resources) || resources.length === 0) throw invalid(`custom feed ${name} needs a non-empty resources list`, { feed: name });
  const seen = new Set<string>();
  const specs = resources.map((r: unknown): FeedResourceSpec => {
    if (typeof r !== 'object' || r === null) throw invalid(`custom feed ${name}: each resource must be a mapping`, { feed: name });
    const { resource, labelSelector, fieldSelector, projection = 'calico' } = r as Partial<FeedResourceSpec>;
    if (typeof resource !== 'string' || findResource(resource) === undefined) throw invalid(`custom feed ${name}: unknown resource ${JSON.stringify(resource)}`, { feed: name, resource });
    // One resource per feed: its keys (group/plural/ns/name) would collide otherwise.
    if (seen.has(resource)) throw invalid(`custom feed ${name} lists ${resource} twice`, { feed: name, resource });
    seen.add(resource);
    if (!PROJECTIONS.includes(projection as ProjectionKind)) throw invalid(`custom feed ${name}: projection must be one of ${PROJECTIONS.join(', ')}`, { feed: name, projection });
    const spec: { -readonly [K in keyof FeedResourceSpec]: FeedResourceSpec[K] } = { resource, projection: projection as ProjectionKind };
    try {
      if (labelSelector !== undefined) {
        if (typeof labelSelector !== 'string') throw new TypeError('labelSelector must be a string');
        parseLabelSelector(labelSelector);
        spec.labelSelector = labelSelector;
      }
      if (fieldSelector !== undefined) {
        if (typeof fieldSelector !== 'string') throw new TypeError('fieldSelector must be a string');
        parseFieldSelector(fieldSelector);
        spec.fieldSelector = fieldSelector;
      }
    } catch (err) {
      throw new CattailError('CATTAIL_UPSTREAM_FEED_INVALID', `custom feed ${name}: ${(err as Error).message}`, { cause: err, details: { feed: name, resource } });
    }
    return spec;
  });
  return feed(name, specs);
}

/** The served feeds: the selected built-ins plus every custom feed. */
export function resolveFeeds(builtins: readonly string[] = BUILTIN_FEEDS, custom: readonly unknown[] = []): FeedSpec[] {
  const out = [...new Set(builtins)].map(builtinFeed);
  for (const raw of custom) {
    const f = customFeed(raw);
    if (out.some((o) => o.name === f.name)) throw invalid(`custom feed ${f.name} is declared twice`, { feed: f.name });
    out.push(f);
  }
  if (out.length === 0) throw invalid('no feed selected: serve at least one built-in or custom feed');
  return out;
}
