/** @type {import('jest').Config} */
module.exports = {
  globalSetup: '<rootDir>/jest.global-setup.js',
  globalTeardown: '<rootDir>/jest.global-teardown.js',
  projects: [
    { ...require('./jest.preset.js')('cdk8s'), rootDir: __dirname },
    '<rootDir>/protocol',
    '<rootDir>/tokenizer',
    '<rootDir>/testkit',
    '<rootDir>/epp',
    '<rootDir>/sim',
    '<rootDir>/gateway',
    '<rootDir>/bench',
  ],
};
