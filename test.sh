#!/usr/bin/env bash
# Restores the tools and packages, builds everything (Release) and runs the whole test suite.
# Extra arguments go to Expecto (e.g. --filter-test-list Qwen2ForCausalLM, --summary, --sequenced).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
dotnet tool restore >/dev/null
dotnet build LLGBM.sln -c Release --nologo -v quiet "-clp:ErrorsOnly;NoSummary"
exec dotnet run --project tests/LLGBM.Tests -c Release --no-build -- --no-spinner "$@"
