// The library in F# interactive: `#load "scripts/Library.fsx"` (relative to your script) references the built
// assemblies (TorchSharp, LLGBM.Core, LLGBM.Algebra, LLGBM.Experiments) and makes TorchSharp load its native libraries from the build
// output — the copies the build patched to load on Debian 12 and Ubuntu 22.04 (docs/older-linux.md) — instead of the
// NuGet package's originals. Nothing native is loaded until the first tensor operation.
//
//   ./llgbm --help >/dev/null         # builds src/LLGBM.Cli/bin/Release/net10.0 (once, and after source changes)
//   dotnet fsi my-experiment.fsx      # which starts with #load "scripts/Library.fsx"
#I "../src/LLGBM.Cli/bin/Release/net10.0"
#r "TorchSharp.dll"
#r "LLGBM.Core.dll"
#r "LLGBM.Algebra.dll"
#r "LLGBM.Experiments.dll"

LLGBM.TorchNativeLibraries.UseBuildOutput()
