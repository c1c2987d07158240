/// F# interactive computes with the library the documented way (`#load "scripts/Library.fsx"`), and the TorchSharp
/// native shim it loads is the build output's patched copy: its GLIBCXX_3.4.32 requirement weak, so it loads on the
/// libstdc++ of Debian 12 and Ubuntu 22.04. The weak flag is read here with an ELF reader of the test's own, so the
/// check means the same on a machine whose libstdc++ is new enough to load the unpatched original.
module LLGBM.Tests.FsiLibraryTests

open System
open System.Diagnostics
open System.IO
open System.Text
open System.Text.Json
open Expecto

let private repository = Repository.root

/// The flags (vna_flags) of every version requirement named `version` in the ELF file's SHT_GNU_verneed sections
/// (Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32; Elf64_Vernaux: vna_hash u32,
/// vna_flags u16, vna_other u16, vna_name u32, vna_next u32; System V gABI and the LSB's symbol versioning).
let versionRequirementFlags (version: string) (elf: byte[]) : uint16 list =
    let u16 (o: int) = BitConverter.ToUInt16(elf, o)
    let u32 (o: int) = BitConverter.ToUInt32(elf, o)
    let u64 (o: int) = int (BitConverter.ToUInt64(elf, o))

    let cString (o: int) =
        Encoding.ASCII.GetString(elf, o, Array.IndexOf(elf, 0uy, o) - o)

    let sectionTable, sectionSize, sections = u64 0x28, int (u16 0x3A), int (u16 0x3C)
    let section i = sectionTable + i * sectionSize

    [
        for i in 0 .. sections - 1 do
            if u32 (section i + 4) = 0x6ffffffeu then
                let strings = u64 (section (int (u32 (section i + 40))) + 24)
                let mutable need = u64 (section i + 24)

                for _ in 1 .. int (u32 (section i + 44)) do
                    let mutable aux = need + int (u32 (need + 8))

                    for _ in 1 .. int (u16 (need + 2)) do
                        if cString (strings + int (u32 (aux + 8))) = version then
                            yield u16 (aux + 4)

                        aux <- aux + int (u32 (aux + 12))

                    need <- need + int (u32 (need + 12))
    ]

let private runFsi (script: string) =
    let info =
        ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true)

    for a in [ "fsi"; "--quiet"; script ] do
        info.ArgumentList.Add a

    use proc = Process.Start info
    let out = proc.StandardOutput.ReadToEndAsync()
    let err = proc.StandardError.ReadToEndAsync()

    if not (proc.WaitForExit(TimeSpan.FromMinutes 3.0)) then
        proc.Kill true
        failwith $"dotnet fsi {script} did not finish in 3 minutes"

    proc.ExitCode, out.Result, err.Result

[<Tests>]
let tests =
    testList "FsiLibrary" [
        test "the ELF reader finds the requirement strong in the package's shim" {
            // The NuGet package's original: the requirement the build marks weak is strong there, so the reader below
            // can tell the two apart.
            let root =
                match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
                | null
                | "" ->
                    Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
                | dir -> dir

            let original =
                Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so")

            if OperatingSystem.IsLinux() && File.Exists original then
                let flags = versionRequirementFlags "GLIBCXX_3.4.32" (File.ReadAllBytes original)
                Expect.equal flags.Length 1 "one GLIBCXX_3.4.32 requirement"
                Expect.equal (flags.Head &&& 2us) 0us "VER_FLG_WEAK not set in the package's copy"
        }

        test "dotnet fsi loads scripts/Library.fsx, computes a LoRA layer, and loads the patched native shim" {
            if OperatingSystem.IsLinux() then
                let script =
                    Path.Combine(repository, "tests", "fixtures", "fsi", "library-tensors.fsx")

                let code, out, err = runFsi script
                Expect.equal code 0 $"dotnet fsi exit code; stderr:\n{err}\nstdout:\n{out}"

                let line =
                    out.Split('\n')
                    |> Array.map _.Trim()
                    |> Array.findBack (fun l -> l.StartsWith "{")

                use json = JsonDocument.Parse line
                let y = [ for v in json.RootElement.GetProperty("y").EnumerateArray() -> v.GetSingle() ]

                // y0 + scale · (x Aᵀ) Bᵀ with x = [1, 2, 3], A = [[1, 0, -1]], B = [[2], [3]], scale 0.5, y0 = [0.5, -1].
                let x, a, b, y0, scale =
                    [ 1.0; 2.0; 3.0 ], [ 1.0; 0.0; -1.0 ], [ 2.0; 3.0 ], [ 0.5; -1.0 ], 0.5

                let xa = List.map2 (*) x a |> List.sum
                let expected = List.map2 (fun y0 b -> y0 + scale * xa * b) y0 b |> List.map float32
                Expect.sequenceEqual y expected "LoRA layer output"

                let loaded = [
                    for v in json.RootElement.GetProperty("loaded").EnumerateArray() -> v.GetString()
                ]

                let patched =
                    Path.Combine(
                        repository,
                        "src",
                        "LLGBM.Cli",
                        "bin",
                        "Release",
                        "net10.0",
                        "runtimes",
                        "linux-x64",
                        "native",
                        "libLibTorchSharp.so"
                    )

                Expect.equal loaded [ Path.GetFullPath patched ] "the build output's shim, and no other copy"
                let flags = versionRequirementFlags "GLIBCXX_3.4.32" (File.ReadAllBytes patched)
                Expect.isNonEmpty flags "the shim names GLIBCXX_3.4.32"
                Expect.all flags (fun f -> f &&& 2us = 2us) "every GLIBCXX_3.4.32 requirement is weak"
        }
    ]
