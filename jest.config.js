/** @type {import('jest').Config} */
module.exports = {
  projects: [
    {
      displayName: 'cdk8s',
      testEnvironment: 'node',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.test.ts'],
      transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }] },
    },
    '<rootDir>/epp',
    '<rootDir>/sim',
    '<rootDir>/gateway',
    '<rootDir>/bench',
  ],
};
