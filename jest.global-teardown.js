// See jest.global-setup.js.
const fs = require('fs');

module.exports = async () => {
  const dir = process.env.KVROUTE_JEST_TMPDIR;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
};
