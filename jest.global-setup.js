/**
 * Gives the run its own temporary folder and removes it afterwards (jest.global-teardown.js). cdk8s's
 * `Testing.app()` makes a `cdk8s.outdir.*` folder in the temporary directory for every app and never removes it, so
 * each `npm test` left ~1,500 of them in /tmp; servers the tests start write there too. Workers are forked after this
 * runs and inherit TMPDIR, which `os.tmpdir()` reads.
 */
const fs = require('fs');
const os = require('os');
const path = require('path');

module.exports = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-jest-'));
  process.env.KVROUTE_JEST_TMPDIR = dir;
  process.env.TMPDIR = dir;
};
