#!/bin/sh
# Regenerates proto/generated from proto/*.proto and from containerd's own
# .proto files (needs protoc, Debian's protobuf-compiler, and the packages
# golang-github-containerd-containerd-dev, golang-github-containerd-cgroups-dev
# and golang-github-gogo-protobuf-dev). CI checks that the committed output is
# current.
set -eu
cd "$(dirname "$0")/.."
rm -rf proto/generated
mkdir -p proto/generated
protoc \
  --plugin=protoc-gen-ts_proto=node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out=proto/generated \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,importSuffix=.js,useExactTypes=false,forceLong=number,env=node,oneof=unions-value \
  -I proto proto/agent.proto proto/sandbox.proto

# The CRI subset the tests' CRI client speaks to containerd's CRI plugin
# (proto/cri.proto, package runtime.v1 as Kubernetes' cri-api): 64-bit fields
# as bigints (its nanosecond timestamps are past Number.MAX_SAFE_INTEGER).
protoc \
  --plugin=protoc-gen-ts_proto=node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out=proto/generated \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,importSuffix=.js,useExactTypes=false,forceLong=bigint,env=node \
  -I proto proto/cri.proto

# The shim v2 side (runtime/src/shimv2): ttrpc's envelope, containerd's task
# service, its types and events, and the cgroup v2 metrics `ctr task metrics`
# decodes. Services come out as generic definitions: the ttrpc server
# dispatches on them. gogo.proto is on the include path for the gogoproto
# options those files carry; the options themselves do not change the wire.
# 64-bit integers are bigints: cgroup "max" is MaxUint64 in the metrics.
GOCODE=/usr/share/gocode/src
protoc \
  --plugin=protoc-gen-ts_proto=node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out=proto/generated \
  --ts_proto_opt=outputServices=generic-definitions,esModuleInterop=true,importSuffix=.js,useExactTypes=false,forceLong=bigint,env=node,useDate=true \
  -I proto -I "$GOCODE" -I "$GOCODE/github.com/gogo/protobuf" -I /usr/include \
  proto/ttrpc.proto \
  "$GOCODE/github.com/containerd/containerd/runtime/v2/task/shim.proto" \
  "$GOCODE/github.com/containerd/containerd/api/types/mount.proto" \
  "$GOCODE/github.com/containerd/containerd/api/types/task/task.proto" \
  "$GOCODE/github.com/containerd/containerd/api/types/metrics.proto" \
  "$GOCODE/github.com/containerd/containerd/api/events/task.proto" \
  "$GOCODE/github.com/containerd/cgroups/v2/stats/metrics.proto"
npx prettier --log-level warn --write proto/generated
