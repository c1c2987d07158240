#!/usr/bin/env bash
# Restores the tools and packages, builds everything (Release) and runs the whole test suite.
# Extra arguments go to Expecto (e.g. --filter-test-list Qwen2ForCausalLM, --summary, --sequenced).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
dotnet tool restore >/dev/null
# Qwen's tokenizer files and the ids an independent (JavaScript) tokenizer gives, for the Qwen2Tokenizer tests; quick
# when already fetched. Without network the tests that need them fail and say how to fetch them.
tests/fixtures/fetch-qwen-tokenizer.sh >/dev/null ||
  echo "test.sh: could not fetch the Qwen tokenizer fixture (tests/fixtures/fetch-qwen-tokenizer.sh)" >&2
dotnet build LLGBM.sln -c Release --nologo -v quiet "-clp:ErrorsOnly;NoSummary"
exec dotnet run --project tests/LLGBM.Tests -c Release --no-build -- --no-spinner "$@"
