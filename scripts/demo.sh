#!/bin/sh
# Runs a container from the built-in busybox image in its own VM and shows
# what it sees from inside.
set -eu
cd "$(dirname "$0")/.."
demo=build/demo-bundle
mkdir -p "$demo"
node -e '
  const fs = require("fs");
  const spec = JSON.parse(fs.readFileSync("build/bundle/config.json", "utf8"));
  spec.root.path = fs.realpathSync("build/bundle/rootfs");
  spec.hostname = "kapsel-demo";
  spec.process.args = ["sh", "-c",
    "echo \"hello from $(hostname), pid $$, kernel $(uname -r)\"; echo host kernel: '"$(uname -r)"'; ls /"];
  fs.writeFileSync(process.argv[1] + "/config.json", JSON.stringify(spec, null, 2));
' "$demo"
echo "demo: booting a VM (QEMU) for the container; under TCG this takes a while"
exec bin/kapsel run --bundle "$demo" "demo-$$" </dev/null
