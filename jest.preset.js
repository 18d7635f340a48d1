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
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }] },
});
