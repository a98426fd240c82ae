// Post step of envctl's action: in up mode, remove the environment when the job ends.
"use strict";
const { spawnSync } = require("child_process");

const envctl = process.env.STATE_envctl;
const profile = process.env.STATE_profile;
if (envctl && profile) {
  const result = spawnSync(envctl, ["down", profile], { stdio: "inherit" });
  process.exitCode = result.status === null ? 1 : result.status;
}
