// envctl's GitHub Action: installs envctl from this action's own checkout into a private
// virtualenv, then runs `envctl run` or `envctl up`. envctl itself writes the outputs,
// $GITHUB_ENV, masks, annotations and the step summary (GITHUB_ACTIONS=true).
"use strict";
const { spawnSync } = require("child_process");
const fs = require("fs");
const path = require("path");

function input(name) {
  return (process.env[`INPUT_${name.replace(/ /g, "_").toUpperCase()}`] || "").trim();
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: "inherit", ...options });
  if (result.error) {
    console.log(`::error::${command} could not run: ${result.error.message}`);
    return 1;
  }
  return result.status === null ? 1 : result.status;
}

function saveState(name, value) {
  if (process.env.GITHUB_STATE) {
    fs.appendFileSync(process.env.GITHUB_STATE, `${name}=${value}\n`);
  }
}

function main() {
  const profile = input("profile");
  const mode = input("mode") || "run";
  if (!profile) {
    console.log("::error::the profile input is required");
    return 2;
  }
  if (!["run", "up"].includes(mode)) {
    console.log(`::error::mode must be run or up, not ${mode}`);
    return 2;
  }
  const version = input("python-version");
  const python = version ? `python${version}` : "python3";
  const venv = path.join(process.env.RUNNER_TEMP || "/tmp", "envctl-venv");
  const root = path.resolve(__dirname, "..");
  console.log("::group::install envctl");
  let code = run(python, ["-m", "venv", venv]);
  if (code === 0) {
    code = run(path.join(venv, "bin", "pip"), ["install", "--quiet", root]);
  }
  console.log("::endgroup::");
  if (code !== 0) {
    console.log("::error::envctl could not be installed");
    return code;
  }
  const envctl = path.join(venv, "bin", "envctl");
  saveState("envctl", envctl);
  const args = [mode, profile];
  const pgVersion = input("version");
  if (pgVersion) args.push("--postgres-version", pgVersion);
  if (mode === "up") {
    saveState("profile", profile);
    return run(envctl, args);
  }
  const repeat = input("repeat");
  if (repeat && repeat !== "1") args.push("--repeat", repeat);
  const workers = input("workers");
  if (workers) args.push("--workers", workers);
  const command = input("command");
  if (command) args.push("--", "bash", "-eo", "pipefail", "-c", command);
  return run(envctl, args);
}

process.exitCode = main();
