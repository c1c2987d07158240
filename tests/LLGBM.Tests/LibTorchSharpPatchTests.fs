module LLGBM.Tests.LibTorchSharpPatchTests

open System
open System.IO
open Expecto

/// The copy of TorchSharp's native shim in this test run's build output, and the package's original.
let private outputCopy =
    Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so")

let private packageOriginal =
    let root =
        match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
        | null
        | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
        | dir -> dir

    Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so")

[<Tests>]
let tests =
    testList "LibTorchSharpPatch" [
        test "the build output differs from the package's shim by the weak flag alone, and the package is untouched" {
            if
                OperatingSystem.IsLinux()
                && File.Exists packageOriginal
                && File.Exists outputCopy
            then
                let original = File.ReadAllBytes packageOriginal
                let patched = File.ReadAllBytes outputCopy
                Expect.equal patched.Length original.Length "same size"

                let differences = [
                    for i in 0 .. original.Length - 1 do
                        if original[i] <> patched[i] then
                            yield i
                ]

                // One byte, on every machine: the low byte of vna_flags of the GLIBCXX_3.4.32 requirement, with
                // VER_FLG_WEAK (0x2) added.
                Expect.equal differences.Length 1 "exactly one byte changed"
                let i = differences.Head
                Expect.equal patched[i] (original[i] ||| 2uy) "VER_FLG_WEAK added"
                Expect.equal (original[i] &&& 2uy) 0uy "the package's copy is still strong"
        }
    ]
