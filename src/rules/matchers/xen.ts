// Matchers of the Xen pack (rules/xen/*.yml). Placeholder until the Xen pack lands:
// keys are "xen.<name>", registered in ./index.ts.
import type { Matcher } from '../types.js';

export const xenMatchers: Record<string, Matcher> = {};
