#!/bin/sh
# Regenerates proto/generated from proto/*.proto (needs protoc, Debian's
# protobuf-compiler). CI checks that the committed output is current.
set -eu
cd "$(dirname "$0")/.."
rm -rf proto/generated
mkdir -p proto/generated
protoc \
  --plugin=protoc-gen-ts_proto=node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out=proto/generated \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,importSuffix=.js,useExactTypes=false,forceLong=number,env=node,oneof=unions-value \
  -I proto proto/agent.proto proto/sandbox.proto
npx prettier --log-level warn --write proto/generated
