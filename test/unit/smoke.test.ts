import { main } from '../../src/cli.js';
test('cli loads', async () => { expect(await main(['node', 'patchvet'])).toBe(0); });
