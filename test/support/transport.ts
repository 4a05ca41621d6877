/**
 * The agent transport the tests that start a real server run on: `CATTAIL_TRANSPORT=uws npm test`
 * runs them over uWebSockets.js (default ws).
 */
export const TEST_TRANSPORT = (process.env['CATTAIL_TRANSPORT'] ?? 'ws') as 'ws' | 'uws';
