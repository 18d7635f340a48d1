/**
 * The jest project every workspace uses. Tests are transpiled only (`isolatedModules` in tsconfig.base.json makes
 * ts-jest use TypeScript's per-file transpiler): `npm test` type-checks every package, tests included, with tsc before
 * jest starts, so jest need not do it again per file.
 */
module.exports = (displayName) => ({
  displayName,
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // Tests and hooks get 30 s, above testkit's waitFor limit (20 s): jest's 5 s default cut hooks that start real
  // servers short on a loaded machine while the polls inside them would still have succeeded. (`testTimeout` is a
  // global option, which a project config cannot set; the setup file sets it per project.)
  setupFilesAfterEnv: [require('path').join(__dirname, 'jest.timeout.js')],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }] },
});
