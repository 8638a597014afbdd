// The matcher registry: rule YAML names a matcher by key ("matcher: common.signedOffBy").
// One module per pack, keys prefixed "<pack>."; to add a pack, import its table and spread it
// here. Keys must be unique across packs (test/unit/rules-engine.test.ts checks).
import type { Matcher } from '../types.js';
import { commonMatchers } from './common.js';
import { xenMatchers } from './xen.js';

export const MATCHER_PACKS: Record<string, Record<string, Matcher>> = {
  common: commonMatchers,
  xen: xenMatchers,
};

export const MATCHERS: Record<string, Matcher> = {
  ...commonMatchers,
  ...xenMatchers,
};
