// See jest.preset.js: every project's tests and hooks get 30 s, above testkit's waitFor limit.
jest.setTimeout(30_000);
