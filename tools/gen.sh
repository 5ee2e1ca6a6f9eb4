#!/usr/bin/env bash
# Generates everything derived from protos/: vendored third-party protos, Python stubs with .pyi
# files under gen/python, and Envoy's descriptor set. Run through `make gen`; never edit the output.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

"$PY" tools/vendor_protos.py protos

rm -rf gen/python
mkdir -p gen/python
mapfile -t OURS < <(cd protos && find ticketing -name '*.proto' | LC_ALL=C sort)
"$PY" -m grpc_tools.protoc -Iprotos \
  --python_out=gen/python --pyi_out=gen/python --grpc_python_out=gen/python \
  "${OURS[@]}" buf/validate/validate.proto
# Regular packages (not namespace packages), so mypy and pytest resolve them one way only.
find gen/python -type d -exec touch {}/__init__.py \;

# Envoy's transcoder needs every file the public services use, plus error_details so that
# ErrorInfo and BadRequest render in REST error bodies.
"$PY" -m grpc_tools.protoc -Iprotos --include_imports --include_source_info=false \
  --descriptor_set_out=envoy/ticketing.binpb \
  "${OURS[@]}" google/rpc/error_details.proto
